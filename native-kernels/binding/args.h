// Argument parsing: JS values -> plain C++ values, with TypeErrors that name the function and
// the argument. The TypeScript layer validates first; these checks keep a direct caller of the
// addon from crashing the process.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>

#include "../core/cancel.h"

namespace qlb {

/** A typed-array argument: where its elements are, and the array itself to keep it alive. */
template <typename T>
struct ArrayArg {
  T* data = nullptr;
  size_t length = 0;
  Napi::Object array;
};

[[noreturn]] void ThrowTypeError(Napi::Env env, const char* fn, const char* arg, const std::string& what);
[[noreturn]] void ThrowRangeError(Napi::Env env, const char* fn, const char* arg, const std::string& what);

ArrayArg<float> Float32ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);
ArrayArg<uint16_t> Uint16ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);
ArrayArg<double> Float64ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);
ArrayArg<uint8_t> Uint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);
ArrayArg<int32_t> Int32ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);

/** A string argument that must be present. */
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name);

/** An integer argument in [min, max]. */
int64_t IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name, int64_t min,
                   int64_t max);

/** An optional CancelToken (undefined or null -> nullptr). Defined in cancel_token.cpp. */
std::shared_ptr<ql::CancelFlag> CancelArg(const Napi::CallbackInfo& info, size_t index, const char* fn);

/** True when the byte ranges of two arrays intersect (same memory seen twice). */
bool Overlaps(const void* a, size_t aBytes, const void* b, size_t bBytes);

}  // namespace qlb
