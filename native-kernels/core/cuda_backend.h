// The optional CUDA backend, seen from the addon: libquantlens_cuda.so (native-kernels/cuda/,
// built by `npm run build:cuda` where nvcc exists) loaded with dlopen on first use. The addon has
// no link-time CUDA dependency and loads everywhere; without the library, a driver or a device,
// available() is false and every call below returns false at once, so callers run their CPU
// kernel:
//
//   if (!(cuda::worthHessian(n, rows) && cuda::hessian_update(H, n, X, rows, ldx, cancel)))
//     cpu_path(...);
//
// Which library: $QUANTLENS_CUDA_LIB if set, else libquantlens_cuda.so in ../cuda/ next to the
// addon's folder (native-kernels/build/Release/../cuda/) or beside the addon. QUANTLENS_CUDA=0
// (or false/off) disables the backend. Nothing happens at addon load: the first call of any
// function here does dlopen + ql_cuda_abi_version() + ql_cuda_device_count() (+ the device's
// name), once per process.
//
// A false return leaves the outputs untouched (the CPU kernel then does the whole job), except
// where noted. If copying a result back from the device fails part-way, the output is undefined
// and the call throws std::runtime_error instead. A CUDA runtime error (not out-of-memory, not
// bad input) switches the backend off for the rest of the process; status() then says why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cancel.h"

namespace ql {
namespace cuda {

/** The library loaded with the expected ABI, ≥ 1 device, not disabled (env or setEnabled). */
bool available();

/**
 * One line for humans and info(): "ok: <device> (<library path>)", "disabled by
 * QUANTLENS_CUDA=0", "library not built: <path> not found (…)", "library failed to load: …",
 * "library ABI vN, addon expects vM: …", "no CUDA device: <driver's reason>", "switched off after
 * a CUDA error: …", "switched off by setEnabled(false)", "unsupported platform: …".
 */
std::string status();

/** Turn the backend off/on at run time (tests compare both paths in one process). */
void setEnabled(bool on);

/** Calls the device has taken since the process started (Hessian updates, GPTQ layers). */
struct DispatchCounts {
  uint64_t hessian;
  uint64_t gptqLayers;
};
DispatchCounts dispatchCounts();

/** The last failure of a call on this thread (why it returned false), "" if none. */
std::string lastError();

/** H[n×n] += Xᵀ·X (core/hessian.h's contract; fp32 chunks of 256 rows, fp64 sums). */
bool hessian_update(double* H, size_t n, const float* X, size_t rows, size_t ldx, const CancelFlag* cancel = nullptr);

/**
 * GPTQ lazy-batch trailing update, stateless: W[rows × colsRest] −= ErrTᵀ · U with ErrT
 * [block × rows] (stride ldErr) and U [block × colsRest] (stride ldu). Copies W both ways: use
 * GptqSession for a whole layer.
 */
bool gptq_block_update(float* W, size_t rows, size_t colsRest, size_t ldw, const float* ErrT, size_t ldErr,
                       size_t block, const float* U, size_t ldu);

/** X [rows × n] ← rows · H_n/√n, bit-identical to ql::fwht. False (X untouched) on NaN/±Inf. */
bool fwht(float* X, size_t rows, size_t n, const CancelFlag* cancel = nullptr);

/** fwhtColumns on each of the `outer` [d × inner] blocks of X, bit-identical. */
bool fwht_strided(float* X, size_t outer, size_t d, size_t inner, const CancelFlag* cancel = nullptr);

/**
 * A layer's GPTQ with W resident on the device (ql_cuda.h's ql_cuda_gptq). In gptqQuantize:
 *
 *   cuda::GptqSession gpu;
 *   const bool onGpu = cuda::worthGptq(rows, cols) && gpu.begin(Wp.data(), rows, cols, cols, U.data(), cols);
 *   for (i1 …) {
 *     … panels → ErrT …
 *     if (i2 < cols) {
 *       // the next batch reads columns [i2, i2 + B) and, with dynamic groups, up to G − 1 more
 *       const size_t next = std::min(cols - i2, B + (L.mode == GptqGroupMode::Dynamic ? L.G - 1 : 0));
 *       if (onGpu) { if (!gpu.update(i1, i2, ErrT.data(), ldErr, Wp.data() + i2, cols, next)) → redo the
 *                    layer on the CPU (Wp must be rebuilt from W: its later columns are stale) }
 *       else sgemm(…);
 *     }
 *   }
 *
 * While the session is active, the host W holds correct values only in the columns the last
 * update returned (and those before). A failed update leaves the session unusable (end() it).
 */
class GptqSession {
 public:
  GptqSession() = default;
  GptqSession(const GptqSession&) = delete;
  GptqSession& operator=(const GptqSession&) = delete;
  ~GptqSession() { end(); }

  /** Uploads W [rows × cols] (stride ldw) and U [cols × cols] (stride ldu). False: not started. */
  bool begin(const float* W, size_t rows, size_t cols, size_t ldw, const float* U, size_t ldu);
  /** W[:, i2:] −= ErrTᵀ · U[i1:i2, i2:]; columns [i2, i2 + nextCols) of W into next (stride ldNext). */
  bool update(size_t i1, size_t i2, const float* ErrT, size_t ldErr, float* next, size_t ldNext, size_t nextCols);
  /** Waits for the queued work and copies columns [c0, c1) of W into dst (stride ldd). */
  bool read(size_t c0, size_t c1, float* dst, size_t ldd);
  void end();
  bool active() const { return session_ != nullptr; }

 private:
  void* session_ = nullptr;
};

// ---- when to dispatch ---------------------------------------------------------------------------
//
// Recommended thresholds: a cost model, not yet measured on a GPU (see native-kernels/cuda/README.md).
// Assumed: host↔device copies of pageable memory at ~10 GB/s, ~2 ms fixed cost per call (stream,
// allocations, launches), a GPU at ≥ 10 fp32 TFLOP/s on these kernels, the CPU path at 0.1–1 TFLOP/s.

/** Hessian: H goes both ways every call (16·n² bytes), so it pays when the rows are many. */
inline bool worthHessian(size_t n, size_t rows) {
  return n >= 256 && rows >= 1024 && static_cast<double>(n) * n * rows >= 2.0e9;
}

/** GPTQ session: rows·cols² flops of updates against ~12·rows·cols + 4·cols² bytes of copies. */
inline bool worthGptq(size_t rows, size_t cols) {
  return cols >= 512 && static_cast<double>(rows) * cols * cols >= 4.0e9;
}

/**
 * FWHT of host data: 8 bytes of copies per element against ~0.2·log2(n) ns of one AVX2 core, so a
 * GPU wins only over very few cores: off unless log2(n) > 4·threads and the batch is large.
 */
inline bool worthFwht(size_t rows, size_t n, unsigned cpuThreads) {
  size_t log2n = 0;
  while ((size_t{1} << log2n) < n) log2n++;
  return static_cast<double>(rows) * n >= 4.0e6 && log2n > 4 * static_cast<size_t>(cpuThreads);
}

}  // namespace cuda
}  // namespace ql
