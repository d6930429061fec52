// CPU emulation of the CUDA subset that ql_cuda.cu and kernels.cuh use, so the library's own code
// (host orchestration and device kernels alike) can run and be tested on a machine without a GPU:
//
//   g++ -std=c++17 -O2 -fPIC -shared -x c++ -DQL_CUDA_EMULATE ql_cuda.cu -o libquantlens_cuda_emu.so
//
// Each CUDA thread of a block is a ucontext fiber with its own stack; __syncthreads() switches to
// the next fiber, so a block runs barrier phase by barrier phase. Within a phase the fibers run in
// a shuffled order (a new order per phase), so results that depend on the order of unsynchronized
// shared-memory accesses show up as mismatches; a barrier reached by only some threads of a block
// is reported as an error ("barrier divergence"). Blocks run one after another. "Device" memory
// is host memory with guard bytes checked when it is freed (writes out of bounds are reported;
// built with -fsanitize=address, reads too).
// Launches are serialized process-wide (__shared__ arrays become function statics).
//
// It checks index arithmetic, bounds, barriers and the host code's copies and launches; it says
// nothing about speed, occupancy, register limits or the real memory model.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

// ---- language ---------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace qlemu {

struct ThreadState {
  dim3 threadIdx, blockIdx, blockDim, gridDim;
  ucontext_t scheduler;
  ucontext_t* current = nullptr;
};
inline thread_local ThreadState g;

inline std::mutex& launchMutex() {
  static std::mutex m;
  return m;
}

/** The sticky "device" error of this emulation (like a CUDA context error). */
inline std::string& stickyError() {
  static std::string e;
  return e;
}
inline thread_local std::string lastLaunchError;

// getcontext/swapcontext "return twice"; keeping them in their own non-inlined functions keeps
// the callers' locals out of -Wclobbered's way.
__attribute__((noinline)) inline void syncthreads() { swapcontext(g.current, &g.scheduler); }

struct Fiber {
  ucontext_t ctx;
  std::unique_ptr<char[]> stack;
  bool done = false;
};

inline thread_local const std::function<void()>* g_body = nullptr;
inline thread_local Fiber* g_fiber = nullptr;

inline void fiberEntry() {
  (*g_body)();
  g_fiber->done = true;
  // Returning resumes uc_link (the scheduler).
}

constexpr size_t kStack = 128 * 1024;

__attribute__((noinline)) inline void initFiber(Fiber& f) {
  f.done = false;
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack.get();
  f.ctx.uc_stack.ss_size = kStack;
  f.ctx.uc_link = &g.scheduler;
  makecontext(&f.ctx, fiberEntry, 0);
}

__attribute__((noinline)) inline void resumeFiber(Fiber& f) {
  g.current = &f.ctx;
  g_fiber = &f;
  swapcontext(&g.scheduler, &f.ctx);
}

/** Runs body as a grid of blocks of threads. */
inline void runGrid(dim3 grid, dim3 block, const std::function<void()>& body) {
  std::lock_guard<std::mutex> lock(launchMutex());
  const size_t nthreads = static_cast<size_t>(block.x) * block.y * block.z;
  if (nthreads == 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
      grid.z > 65535) {
    lastLaunchError = "invalid configuration argument";
    return;
  }
  static thread_local std::mt19937 rng(12345);
  std::vector<Fiber> fibers(nthreads);
  for (Fiber& f : fibers) f.stack.reset(new char[kStack]);
  std::vector<size_t> order(nthreads);
  g.gridDim = grid;
  g.blockDim = block;
  g_body = &body;
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) {
        g.blockIdx = dim3(bx, by, bz);
        for (size_t t = 0; t < nthreads; t++) {
          initFiber(fibers[t]);
          order[t] = t;
        }
        for (;;) {
          std::shuffle(order.begin(), order.end(), rng);
          size_t finished = 0;
          for (size_t t : order) {
            Fiber& f = fibers[t];
            g.threadIdx = dim3(static_cast<unsigned>(t % block.x), static_cast<unsigned>(t / block.x % block.y),
                               static_cast<unsigned>(t / (static_cast<size_t>(block.x) * block.y)));
            resumeFiber(f);
            finished += f.done ? 1 : 0;
          }
          if (finished == nthreads) break;
          if (finished != 0) {
            lastLaunchError = "barrier divergence: " + std::to_string(finished) + " of " + std::to_string(nthreads) +
                              " threads of block (" + std::to_string(bx) + "," + std::to_string(by) +
                              ") returned while the others wait at __syncthreads()";
            stickyError() = lastLaunchError;
            return;
          }
        }
      }
}

template <typename Kernel>
struct Launcher {
  dim3 grid, block;
  Kernel* kernel;
  template <typename... Args>
  void operator()(Args... args) const {
    Kernel* k = kernel;
    runGrid(grid, block, [&]() { k(args...); });
  }
};

template <typename Kernel>
Launcher<Kernel> launch(dim3 grid, dim3 block, Kernel* kernel) {
  return Launcher<Kernel>{grid, block, kernel};
}

}  // namespace qlemu

#define threadIdx (::qlemu::g.threadIdx)
#define blockIdx (::qlemu::g.blockIdx)
#define blockDim (::qlemu::g.blockDim)
#define gridDim (::qlemu::g.gridDim)
#define __syncthreads() ::qlemu::syncthreads()
#define QL_LAUNCH(kernel, grid, block, stream) ((void)(stream), ::qlemu::launch((grid), (block), &kernel))

inline unsigned __float_as_uint(float x) {
  unsigned u;
  std::memcpy(&u, &x, 4);
  return u;
}
// Fibers of one launch share one OS thread and switch only at barriers: a plain min is atomic.
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  const unsigned long long old = *p;
  if (v < old) *p = v;
  return old;
}
using std::fmaf;
using std::sqrt;

// ---- runtime ----------------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
typedef struct qlemu_stream* cudaStream_t;
#define CUDART_VERSION 0
#define cudaStreamNonBlocking 1

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
  int multiProcessorCount;
};

namespace qlemu {
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kGuard = 0;  // exact-size blocks: AddressSanitizer then sees reads out of bounds too
#else
constexpr size_t kGuard = 256;
#endif
constexpr unsigned char kGuardByte = 0xA5;
inline std::mutex& allocMutex() {
  static std::mutex m;
  return m;
}
inline size_t& liveBytes() {
  static size_t b = 0;
  return b;
}
inline cudaError_t fromLaunch() {
  if (!lastLaunchError.empty()) {
    lastLaunchError.clear();
    return cudaErrorLaunchFailure;
  }
  return stickyError().empty() ? cudaSuccess : cudaErrorLaunchFailure;
}
/** Device memory size cap (QL_CUDA_EMU_MEM bytes, default 1 GiB): lets tests hit "out of memory". */
inline size_t memCap() {
  const char* s = std::getenv("QL_CUDA_EMU_MEM");
  return s ? std::strtoull(s, nullptr, 10) : (size_t{1} << 30);
}
}  // namespace qlemu

inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return qlemu::stickyError().empty() ? "unspecified launch failure" : qlemu::stickyError().c_str();
  }
  return "unknown error";
}
inline cudaError_t cudaGetLastError() { return qlemu::fromLaunch(); }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "QuantLens CPU emulation (no GPU)");
  p->totalGlobalMem = qlemu::memCap();
  p->major = 0;
  p->minor = 0;
  p->multiProcessorCount = 4;
  return cudaSuccess;
}
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = 4;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* total) {
  std::lock_guard<std::mutex> lock(qlemu::allocMutex());
  *total = qlemu::memCap();
  *freeBytes = *total > qlemu::liveBytes() ? *total - qlemu::liveBytes() : 0;
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
  std::lock_guard<std::mutex> lock(qlemu::allocMutex());
  if (qlemu::liveBytes() + bytes > qlemu::memCap()) return cudaErrorMemoryAllocation;
  unsigned char* raw = static_cast<unsigned char*>(std::malloc(bytes + 2 * qlemu::kGuard + sizeof(size_t)));
  if (!raw) return cudaErrorMemoryAllocation;
  std::memcpy(raw, &bytes, sizeof(size_t));
  unsigned char* user = raw + sizeof(size_t) + qlemu::kGuard;
  std::memset(user - qlemu::kGuard, qlemu::kGuardByte, qlemu::kGuard);
  std::memset(user, 0xFF, bytes);  // uninitialized device memory: NaN patterns
  std::memset(user + bytes, qlemu::kGuardByte, qlemu::kGuard);
  qlemu::liveBytes() += bytes;
  *p = user;
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(qlemu::allocMutex());
  unsigned char* user = static_cast<unsigned char*>(p);
  unsigned char* raw = user - qlemu::kGuard - sizeof(size_t);
  size_t bytes;
  std::memcpy(&bytes, raw, sizeof(size_t));
  for (size_t i = 0; i < qlemu::kGuard; i++) {
    if (user[-1 - static_cast<long>(i)] != qlemu::kGuardByte || user[bytes + i] != qlemu::kGuardByte) {
      qlemu::stickyError() = "device memory written out of bounds (guard bytes of a " + std::to_string(bytes) +
                             "-byte allocation overwritten)";
      break;
    }
  }
  qlemu::liveBytes() -= bytes;
  std::free(raw);
  return qlemu::stickyError().empty() ? cudaSuccess : cudaErrorLaunchFailure;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = reinterpret_cast<cudaStream_t>(new char(0));
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete reinterpret_cast<char*>(s);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return qlemu::stickyError().empty() ? cudaSuccess : cudaErrorLaunchFailure; }
inline cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                                     size_t height, cudaMemcpyKind, cudaStream_t) {
  if (width > dpitch || width > spitch) return cudaErrorInvalidValue;
  for (size_t r = 0; r < height; r++)
    std::memcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int v, size_t bytes, cudaStream_t) {
  std::memset(dst, v, bytes);
  return cudaSuccess;
}
