// The N-API face of the kernels: registration functions, one per file, and per-env data.
//
// Rules (lovell/sharp style, see ../README.md): arguments are parsed into plain C++ values on
// the JS thread; anything that can take more than ~1 ms runs in a PromiseWorker whose Run()
// touches no JS; results become JS values on the JS thread. No external ArrayBuffers (Electron
// forbids them): outputs are written into caller-provided typed arrays or plain JS values.
#pragma once

#include <napi.h>

namespace qlb {

/**
 * Bumped whenever the JS-visible surface changes incompatibly; binding.ts refuses an addon built
 * from other sources (a stale build) and falls back to the TypeScript references.
 */
constexpr int kAbiVersion = 1;

/** Per-environment state (worker_threads each load their own). */
struct AddonData {
  Napi::FunctionReference cancelTokenClass;
};

void RegisterCancelToken(Napi::Env env, Napi::Object exports);
void RegisterSystem(Napi::Env env, Napi::Object exports);
void RegisterMoments(Napi::Env env, Napi::Object exports);
void RegisterConvert(Napi::Env env, Napi::Object exports);
void RegisterEigen(Napi::Env env, Napi::Object exports);
void RegisterLinalg(Napi::Env env, Napi::Object exports);
void RegisterQuant(Napi::Env env, Napi::Object exports);
void RegisterTransform(Napi::Env env, Napi::Object exports);
void RegisterChannelStats(Napi::Env env, Napi::Object exports);
void RegisterGptq(Napi::Env env, Napi::Object exports);

}  // namespace qlb
