#include "args.h"

#include <cmath>

namespace qlb {

namespace {

std::string Describe(Napi::Value v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_int8_array: return "an Int8Array";
      case napi_uint8_array: return "a Uint8Array";
      case napi_uint8_clamped_array: return "a Uint8ClampedArray";
      case napi_int16_array: return "an Int16Array";
      case napi_uint16_array: return "a Uint16Array";
      case napi_int32_array: return "an Int32Array";
      case napi_uint32_array: return "a Uint32Array";
      case napi_float32_array: return "a Float32Array";
      case napi_float64_array: return "a Float64Array";
      case napi_bigint64_array: return "a BigInt64Array";
      case napi_biguint64_array: return "a BigUint64Array";
      default: return "a typed array";
    }
  }
  if (v.IsNumber()) return "a number";
  if (v.IsString()) return "a string";
  if (v.IsArray()) return "an Array";
  if (v.IsArrayBuffer()) return "an ArrayBuffer";
  if (v.IsObject()) return "an object";
  return "another value";
}

template <typename T>
ArrayArg<T> TypedArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name,
                          napi_typedarray_type type, const char* typeName) {
  const Napi::Value v = info[index];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    ThrowTypeError(info.Env(), fn, name, std::string("must be a ") + typeName + ", got " + Describe(v));
  Napi::TypedArrayOf<T> array = v.As<Napi::TypedArrayOf<T>>();
  ArrayArg<T> arg;
  arg.data = array.Data();  // already offset by byteOffset
  arg.length = array.ElementLength();
  arg.array = array;
  return arg;
}

std::string Message(const char* fn, const char* arg, const std::string& what) {
  return std::string("quantlens_kernels.") + fn + "(): argument '" + arg + "' " + what;
}

}  // namespace

void ThrowTypeError(Napi::Env env, const char* fn, const char* arg, const std::string& what) {
  throw Napi::TypeError::New(env, Message(fn, arg, what));
}

void ThrowRangeError(Napi::Env env, const char* fn, const char* arg, const std::string& what) {
  throw Napi::RangeError::New(env, Message(fn, arg, what));
}

ArrayArg<float> Float32ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  return TypedArrayArg<float>(info, index, fn, name, napi_float32_array, "Float32Array");
}

ArrayArg<uint16_t> Uint16ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  return TypedArrayArg<uint16_t>(info, index, fn, name, napi_uint16_array, "Uint16Array");
}

ArrayArg<double> Float64ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  return TypedArrayArg<double>(info, index, fn, name, napi_float64_array, "Float64Array");
}

ArrayArg<uint8_t> Uint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  return TypedArrayArg<uint8_t>(info, index, fn, name, napi_uint8_array, "Uint8Array");
}

ArrayArg<int32_t> Int32ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  return TypedArrayArg<int32_t>(info, index, fn, name, napi_int32_array, "Int32Array");
}

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  const Napi::Value v = info[index];
  if (!v.IsString()) ThrowTypeError(info.Env(), fn, name, "must be a string, got " + Describe(v));
  return v.As<Napi::String>().Utf8Value();
}

int64_t IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name, int64_t min,
                   int64_t max) {
  const Napi::Value v = info[index];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), fn, name, "must be a number, got " + Describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(min) && d <= static_cast<double>(max)) || std::floor(d) != d)
    ThrowRangeError(info.Env(), fn, name,
                    "must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return static_cast<int64_t>(d);
}

bool Overlaps(const void* a, size_t aBytes, const void* b, size_t bBytes) {
  if (aBytes == 0 || bBytes == 0) return false;
  const auto pa = reinterpret_cast<uintptr_t>(a);
  const auto pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + bBytes && pb < pa + aBytes;
}

}  // namespace qlb
