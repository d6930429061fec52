// libquantlens_cuda: host side of the C ABI in ql_cuda.h (kernels in kernels.cuh).
//
// Built by scripts/build-cuda.mjs with nvcc (CUDA runtime linked statically: only the driver is
// needed at run time). With -DQL_CUDA_EMULATE it compiles as plain C++ against emulate.h instead,
// running the same code on the CPU (the tests use that where there is no GPU).
#ifdef QL_CUDA_EMULATE
#include "emulate.h"
#else
#include <cuda_runtime.h>
#define QL_LAUNCH(kernel, grid, block, stream) kernel<<<(grid), (block), 0, (stream)>>>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "kernels.cuh"
#define QL_CUDA_BUILDING
#include "ql_cuda.h"

namespace {

using qlcu::kThreads;
using qlcu::kTile;

thread_local std::string g_error;

int fail(int code, const std::string& message) {
  g_error = message;
  return code;
}

int cudaFail(cudaError_t e, const char* what) {
  const std::string text = cudaGetErrorString(e);
  (void)cudaGetLastError();  // clear it if it is not sticky
  int code = QL_CUDA_ERUNTIME;
  if (e == cudaErrorMemoryAllocation) code = QL_CUDA_ENOMEM;
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) code = QL_CUDA_ENODEV;
  return fail(code, std::string(what) + ": " + text);
}

#define QL_CK(call, what)                          \
  do {                                             \
    const cudaError_t e_ = (call);                 \
    if (e_ != cudaSuccess) return cudaFail(e_, what); \
  } while (0)

/** A call's private stream and device buffers; the destructor waits for the stream, then frees. */
class Work {
 public:
  Work() = default;
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;
  ~Work() { release(); }

  void release() {
    if (stream_) (void)cudaStreamSynchronize(stream_);
    for (void* p : buffers_) (void)cudaFree(p);
    buffers_.clear();
    if (stream_) (void)cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }

  int init() {
    QL_CK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    return QL_CUDA_OK;
  }

  template <typename T>
  int alloc(T** p, size_t count, const char* what) {
    void* raw = nullptr;
    const size_t bytes = std::max<size_t>(count, 1) * sizeof(T);
    const cudaError_t e = cudaMalloc(&raw, bytes);
    if (e != cudaSuccess) {
      const int code = cudaFail(e, "cudaMalloc");
      g_error += " (" + std::to_string(bytes) + " bytes for " + what + ")";
      return code;
    }
    buffers_.push_back(raw);
    *p = static_cast<T*>(raw);
    return QL_CUDA_OK;
  }

  /** Frees one buffer of alloc() now (call only when no queued work uses it). */
  void free(void* p) {
    const auto it = std::find(buffers_.begin(), buffers_.end(), p);
    if (it == buffers_.end()) return;
    (void)cudaFree(p);
    buffers_.erase(it);
  }

  cudaStream_t stream() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
  std::vector<void*> buffers_;
};

bool cancelled(ql_cuda_cancel_fn cancel, void* ctx) { return cancel != nullptr && cancel(ctx) != 0; }

bool isPowerOfTwo(size_t n) { return n != 0 && (n & (n - 1)) == 0; }

/** a·b, or false on size_t overflow. */
bool mulOk(size_t a, size_t b, size_t* out) {
  if (a != 0 && b > std::numeric_limits<size_t>::max() / a) return false;
  *out = a * b;
  return true;
}

unsigned gridFor(size_t work) {
  const size_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::max<size_t>(1, std::min<size_t>(blocks, size_t{1} << 16)));
}

int multiprocessors() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return 80;
  }
  return std::max(1, sms);
}

constexpr size_t kMiB = size_t{1} << 20;

/**
 * Bytes of host data per upload (X of the Hessian, blocks of the FWHT): `dflt`, or
 * $QL_CUDA_PIECE_BYTES (the tests make it small to exercise the several-piece paths).
 */
size_t pieceBytes(size_t dflt) {
  const char* env = std::getenv("QL_CUDA_PIECE_BYTES");
  if (env == nullptr || *env == 0) return dflt;
  const unsigned long long v = std::strtoull(env, nullptr, 10);
  return v > 0 ? static_cast<size_t>(v) : dflt;
}

/** W[:, :cols] of the device GEMM C −= Aᵀ·B with the k-major operands of ql_cuda.h. */
int launchGemmTnSub(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, size_t M, size_t N,
                    size_t K, cudaStream_t stream) {
  if (M == 0 || N == 0 || K == 0) return QL_CUDA_OK;
  const size_t gx = (N + kTile - 1) / kTile, gy = (M + kTile - 1) / kTile;
  if (gy > 65535 || gx > 0x7fffffffu) return fail(QL_CUDA_EINVAL, "gemm: matrix too large for one launch");
  QL_LAUNCH(qlcu::gemmTnSubKernel, dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), dim3(kThreads), stream)
  (C, ldc, A, lda, B, ldb, M, N, K);
  QL_CK(cudaGetLastError(), "gemmTnSubKernel launch");
  return QL_CUDA_OK;
}

// ---- FWHT on a device buffer ---------------------------------------------------------------

int fwhtDevice(float* dX, size_t outer, size_t d, size_t inner, float norm, unsigned long long* dBad,
               cudaStream_t stream) {
  const size_t total = outer * d * inner;
  if (d == 1) {
    QL_LAUNCH(qlcu::scaleCheckKernel, dim3(gridFor(total)), dim3(kThreads), stream)(dX, total, norm, dBad);
    QL_CK(cudaGetLastError(), "scaleCheckKernel launch");
    return QL_CUDA_OK;
  }
  size_t h = 1;
  if (inner == 1) {
    const size_t blocks = (total + qlcu::kChunk - 1) / qlcu::kChunk;
    if (blocks > 0x7fffffffu) return fail(QL_CUDA_EINVAL, "fwht: too many rows for one launch");
    const int scale = d <= static_cast<size_t>(qlcu::kChunk) ? 1 : 0;
    QL_LAUNCH(qlcu::fwhtChunkKernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), stream)
    (dX, total, d, norm, scale, dBad);
    QL_CK(cudaGetLastError(), "fwhtChunkKernel launch");
    h = std::min<size_t>(d, qlcu::kChunk);
  }
  for (; h < d; h *= 2) {
    const int first = h == 1 ? 1 : 0, scale = 2 * h == d ? 1 : 0;
    QL_LAUNCH(qlcu::fwhtStageKernel, dim3(gridFor(total / 2)), dim3(kThreads), stream)
    (dX, outer, d, inner, h, norm, first, scale, dBad);
    QL_CK(cudaGetLastError(), "fwhtStageKernel launch");
  }
  return QL_CUDA_OK;
}

std::string where(size_t e, size_t d, size_t inner) {
  if (inner == 1) return "X[" + std::to_string(e / d) + ", " + std::to_string(e % d) + "]";
  return "X[" + std::to_string(e / (d * inner)) + ", " + std::to_string(e / inner % d) + ", " +
         std::to_string(e % inner) + "]";
}

int fwhtImpl(float* X, size_t outer, size_t d, size_t inner, ql_cuda_cancel_fn cancel, void* ctx) {
  if (!isPowerOfTwo(d)) return fail(QL_CUDA_EINVAL, "fwht: n must be a power of two, got " + std::to_string(d));
  if (outer == 0 || inner == 0) return QL_CUDA_OK;
  size_t per = 0, total = 0;
  if (!mulOk(d, inner, &per) || !mulOk(per, outer, &total) || total > (std::numeric_limits<size_t>::max() >> 3))
    return fail(QL_CUDA_EINVAL, "fwht: size overflows");
  if (X == nullptr) return fail(QL_CUDA_EINVAL, "fwht: X is null");
  if (cancelled(cancel, ctx)) return fail(QL_CUDA_ECANCELLED, "cancelled");
  const float norm = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));

  // Pieces of whole outer blocks, about 256 MiB each.
  const size_t pieceOuter = std::min(outer, std::max<size_t>(1, (pieceBytes(256 * kMiB) / sizeof(float)) / per));
  if (pieceOuter < outer) {
    // Several pieces: pieces go back to X one by one, so refuse bad input before the first.
    for (size_t e = 0; e < total; e++)
      if (!std::isfinite(X[e])) return fail(QL_CUDA_ENONFINITE, "fwht: " + where(e, d, inner) + " is not finite");
  }
  Work w;
  int rc = w.init();
  if (rc) return rc;
  float* dX = nullptr;
  unsigned long long* dBad = nullptr;
  if ((rc = w.alloc(&dX, pieceOuter * per, "X"))) return rc;
  if ((rc = w.alloc(&dBad, 1, "flag"))) return rc;
  for (size_t o0 = 0; o0 < outer; o0 += pieceOuter) {
    const size_t po = std::min(pieceOuter, outer - o0);
    const size_t count = po * per;
    float* src = X + o0 * per;
    QL_CK(cudaMemsetAsync(dBad, 0xFF, sizeof *dBad, w.stream()), "cudaMemsetAsync");
    QL_CK(cudaMemcpyAsync(dX, src, count * sizeof(float), cudaMemcpyHostToDevice, w.stream()), "cudaMemcpyAsync X");
    if ((rc = fwhtDevice(dX, po, d, inner, norm, dBad, w.stream()))) return rc;
    unsigned long long bad = 0;
    QL_CK(cudaMemcpyAsync(&bad, dBad, sizeof bad, cudaMemcpyDeviceToHost, w.stream()), "cudaMemcpyAsync flag");
    QL_CK(cudaStreamSynchronize(w.stream()), "fwht kernels");
    if (bad != ~0ull) return fail(QL_CUDA_ENONFINITE, "fwht: " + where(o0 * per + bad, d, inner) + " is not finite");
    const cudaError_t e1 = cudaMemcpyAsync(src, dX, count * sizeof(float), cudaMemcpyDeviceToHost, w.stream());
    const cudaError_t e2 = e1 == cudaSuccess ? cudaStreamSynchronize(w.stream()) : e1;
    if (e2 != cudaSuccess) {
      cudaFail(e2, "cudaMemcpyAsync X back");
      return QL_CUDA_EOUTPUT;
    }
  }
  return QL_CUDA_OK;
}

}  // namespace

// ---- C ABI ----------------------------------------------------------------------------------

struct ql_cuda_gptq {
  Work work;
  float* W = nullptr;    // [rows × cols], row stride cols
  float* U = nullptr;    // [cols × cols], row stride cols
  float* Err = nullptr;  // [errRows × rows]
  size_t errRows = 0;
  size_t rows = 0, cols = 0;
};

extern "C" {

QL_CUDA_API int ql_cuda_abi_version(void) { return QL_CUDA_ABI_VERSION; }

QL_CUDA_API const char* ql_cuda_last_error(void) { return g_error.c_str(); }

QL_CUDA_API int ql_cuda_device_count(void) {
  try {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      cudaFail(e, "cudaGetDeviceCount");
      if (e == cudaErrorInsufficientDriver) {
        // What a machine without the NVIDIA driver reports, too.
        g_error = "no NVIDIA driver, or one older than CUDA " + std::to_string(CUDART_VERSION / 1000) + "." +
                  std::to_string(CUDART_VERSION % 1000 / 10) + " needs (" + g_error + ")";
      }
      return 0;
    }
    if (count <= 0) fail(QL_CUDA_ENODEV, "cudaGetDeviceCount: no CUDA-capable device is detected");
    return std::max(count, 0);
  } catch (...) {
    return 0;
  }
}

QL_CUDA_API int ql_cuda_device_name(char* buf, size_t len) {
  try {
    if (buf == nullptr || len == 0) return fail(QL_CUDA_EINVAL, "device_name: empty buffer");
    buf[0] = 0;
    int dev = 0, rt = 0, drv = 0;
    QL_CK(cudaGetDevice(&dev), "cudaGetDevice");
    cudaDeviceProp p;
    QL_CK(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
    (void)cudaRuntimeGetVersion(&rt);
    (void)cudaDriverGetVersion(&drv);
    std::snprintf(buf, len, "%s, sm_%d%d, %.1f GiB, CUDA runtime %d.%d, driver %d.%d", p.name, p.major, p.minor,
                  static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0), rt / 1000, rt % 1000 / 10,
                  drv / 1000, drv % 1000 / 10);
    return QL_CUDA_OK;
  } catch (...) {
    return fail(QL_CUDA_ENOMEM, "device_name: host allocation failed");
  }
}

QL_CUDA_API int ql_cuda_hessian_update(double* H, size_t n, const float* X, size_t rows, size_t ldx,
                                       ql_cuda_cancel_fn cancel, void* cancel_ctx) {
  try {
    if (n == 0 || rows == 0) return QL_CUDA_OK;
    if (H == nullptr || X == nullptr) return fail(QL_CUDA_EINVAL, "hessian_update: H or X is null");
    if (ldx < n) return fail(QL_CUDA_EINVAL, "hessian_update: ldx < n");
    size_t nn = 0;
    if (!mulOk(n, n, &nn) || nn > (std::numeric_limits<size_t>::max() >> 4))
      return fail(QL_CUDA_EINVAL, "hessian_update: n too large");
    if (cancelled(cancel, cancel_ctx)) return fail(QL_CUDA_ECANCELLED, "cancelled");
    const size_t chunk = QL_CUDA_HESSIAN_CHUNK_ROWS;
    const size_t nt = (n + kTile - 1) / kTile;
    const size_t tiles = nt * (nt + 1) / 2;
    if (tiles > 0x7fffffffu) return fail(QL_CUDA_EINVAL, "hessian_update: n too large");

    // Rows per upload: a multiple of the chunk (chunks stay aligned to row 0), ~64 MiB of X.
    size_t piece = std::max<size_t>(1, (pieceBytes(64 * kMiB) / sizeof(float)) / n / chunk) * chunk;
    piece = std::min(piece, (rows + chunk - 1) / chunk * chunk);
    const size_t pieceChunks = piece / chunk;
    // Few tiles (small n): split the chunks over `splits` partial sums (reduced in a fixed order)
    // so that about two blocks per multiprocessor run; capped at 256 MiB of partials.
    size_t splits = 1;
    const size_t want = 2 * static_cast<size_t>(multiprocessors());
    if (tiles < want) {
      splits = std::min(pieceChunks, (want + tiles - 1) / tiles);
      splits = std::max<size_t>(1, std::min(splits, (256 * kMiB / sizeof(double)) / nn));
      splits = std::min<size_t>(splits, 65535);
    }

    Work w;
    int rc = w.init();
    if (rc) return rc;
    double* dH = nullptr;
    double* dPart = nullptr;
    float* dX = nullptr;
    if ((rc = w.alloc(&dH, nn, "H"))) return rc;
    if (splits > 1 && (rc = w.alloc(&dPart, splits * nn, "partial sums"))) return rc;
    if ((rc = w.alloc(&dX, piece * n, "X"))) return rc;
    QL_CK(cudaMemcpyAsync(dH, H, nn * sizeof(double), cudaMemcpyHostToDevice, w.stream()), "cudaMemcpyAsync H");
    if (splits > 1) QL_CK(cudaMemsetAsync(dPart, 0, splits * nn * sizeof(double), w.stream()), "cudaMemsetAsync");
    for (size_t r0 = 0; r0 < rows; r0 += piece) {
      if (cancelled(cancel, cancel_ctx)) return fail(QL_CUDA_ECANCELLED, "cancelled");
      const size_t pr = std::min(piece, rows - r0);
      QL_CK(cudaMemcpy2DAsync(dX, n * sizeof(float), X + r0 * ldx, ldx * sizeof(float), n * sizeof(float), pr,
                              cudaMemcpyHostToDevice, w.stream()),
            "cudaMemcpy2DAsync X");
      const size_t chunks = (pr + chunk - 1) / chunk;
      const size_t perSplit = (chunks + splits - 1) / splits;
      const size_t gy = (chunks + perSplit - 1) / perSplit;
      QL_LAUNCH(qlcu::hessianKernel, dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(gy)), dim3(kThreads),
                w.stream())
      (splits > 1 ? dPart : dH, n, dX, n, pr, chunk, perSplit);
      QL_CK(cudaGetLastError(), "hessianKernel launch");
      QL_CK(cudaStreamSynchronize(w.stream()), "hessianKernel");
    }
    if (splits > 1) {
      QL_LAUNCH(qlcu::hessianReduceKernel, dim3(gridFor(nn)), dim3(kThreads), w.stream())(dH, dPart, n, splits);
      QL_CK(cudaGetLastError(), "hessianReduceKernel launch");
    }
    const size_t mt = (n + 31) / 32;
    if (mt > 65535) return fail(QL_CUDA_EINVAL, "hessian_update: n too large");
    QL_LAUNCH(qlcu::mirrorLowerKernel, dim3(static_cast<unsigned>(mt), static_cast<unsigned>(mt)), dim3(kThreads),
              w.stream())
    (dH, n);
    QL_CK(cudaGetLastError(), "mirrorLowerKernel launch");
    QL_CK(cudaStreamSynchronize(w.stream()), "hessian kernels");
    const cudaError_t e1 = cudaMemcpyAsync(H, dH, nn * sizeof(double), cudaMemcpyDeviceToHost, w.stream());
    const cudaError_t e2 = e1 == cudaSuccess ? cudaStreamSynchronize(w.stream()) : e1;
    if (e2 != cudaSuccess) {
      cudaFail(e2, "cudaMemcpyAsync H back");
      return QL_CUDA_EOUTPUT;
    }
    return QL_CUDA_OK;
  } catch (...) {
    return fail(QL_CUDA_ENOMEM, "hessian_update: host allocation failed");
  }
}

QL_CUDA_API int ql_cuda_gptq_block_update(float* W, size_t rows, size_t cols_rest, size_t ldw, const float* ErrT,
                                          size_t ld_err, size_t block, const float* U, size_t ldu) {
  try {
    if (rows == 0 || cols_rest == 0 || block == 0) return QL_CUDA_OK;
    if (W == nullptr || ErrT == nullptr || U == nullptr) return fail(QL_CUDA_EINVAL, "gptq_block_update: null pointer");
    if (ldw < cols_rest || ld_err < rows || ldu < cols_rest)
      return fail(QL_CUDA_EINVAL, "gptq_block_update: a row stride is smaller than its row");
    Work w;
    int rc = w.init();
    if (rc) return rc;
    float *dW = nullptr, *dE = nullptr, *dU = nullptr;
    if ((rc = w.alloc(&dW, rows * cols_rest, "W"))) return rc;
    if ((rc = w.alloc(&dE, block * rows, "ErrT"))) return rc;
    if ((rc = w.alloc(&dU, block * cols_rest, "U"))) return rc;
    const cudaMemcpyKind h2d = cudaMemcpyHostToDevice;
    QL_CK(cudaMemcpy2DAsync(dW, cols_rest * 4, W, ldw * 4, cols_rest * 4, rows, h2d, w.stream()), "cudaMemcpy2DAsync W");
    QL_CK(cudaMemcpy2DAsync(dE, rows * 4, ErrT, ld_err * 4, rows * 4, block, h2d, w.stream()), "cudaMemcpy2DAsync ErrT");
    QL_CK(cudaMemcpy2DAsync(dU, cols_rest * 4, U, ldu * 4, cols_rest * 4, block, h2d, w.stream()), "cudaMemcpy2DAsync U");
    if ((rc = launchGemmTnSub(dW, cols_rest, dE, rows, dU, cols_rest, rows, cols_rest, block, w.stream()))) return rc;
    QL_CK(cudaStreamSynchronize(w.stream()), "gemmTnSubKernel");
    const cudaError_t e1 =
        cudaMemcpy2DAsync(W, ldw * 4, dW, cols_rest * 4, cols_rest * 4, rows, cudaMemcpyDeviceToHost, w.stream());
    const cudaError_t e2 = e1 == cudaSuccess ? cudaStreamSynchronize(w.stream()) : e1;
    if (e2 != cudaSuccess) {
      cudaFail(e2, "cudaMemcpy2DAsync W back");
      return QL_CUDA_EOUTPUT;
    }
    return QL_CUDA_OK;
  } catch (...) {
    return fail(QL_CUDA_ENOMEM, "gptq_block_update: host allocation failed");
  }
}

QL_CUDA_API int ql_cuda_gptq_create(ql_cuda_gptq** session, const float* W, size_t rows, size_t cols, size_t ldw,
                                    const float* U, size_t ldu) {
  try {
    if (session == nullptr) return fail(QL_CUDA_EINVAL, "gptq_create: session is null");
    *session = nullptr;
    if (rows == 0 || cols == 0 || W == nullptr || U == nullptr || ldw < cols || ldu < cols)
      return fail(QL_CUDA_EINVAL, "gptq_create: bad shapes or null pointers");
    ql_cuda_gptq* s = new ql_cuda_gptq();
    s->rows = rows;
    s->cols = cols;
    int rc = s->work.init();
    if (!rc) rc = s->work.alloc(&s->W, rows * cols, "W");
    if (!rc) rc = s->work.alloc(&s->U, cols * cols, "U");
    if (!rc) {
      const cudaError_t e1 = cudaMemcpy2DAsync(s->W, cols * 4, W, ldw * 4, cols * 4, rows, cudaMemcpyHostToDevice,
                                               s->work.stream());
      const cudaError_t e2 = e1 == cudaSuccess ? cudaMemcpy2DAsync(s->U, cols * 4, U, ldu * 4, cols * 4, cols,
                                                                   cudaMemcpyHostToDevice, s->work.stream())
                                               : e1;
      const cudaError_t e3 = e2 == cudaSuccess ? cudaStreamSynchronize(s->work.stream()) : e2;
      if (e3 != cudaSuccess) rc = cudaFail(e3, "gptq_create: upload");
    }
    if (rc) {
      delete s;
      return rc;
    }
    *session = s;
    return QL_CUDA_OK;
  } catch (...) {
    return fail(QL_CUDA_ENOMEM, "gptq_create: host allocation failed");
  }
}

QL_CUDA_API int ql_cuda_gptq_update(ql_cuda_gptq* s, size_t i1, size_t i2, const float* ErrT, size_t ld_err,
                                    float* next, size_t ld_next, size_t next_cols) {
  try {
    if (s == nullptr) return fail(QL_CUDA_EINVAL, "gptq_update: session is null");
    if (!(i1 < i2 && i2 <= s->cols) || ErrT == nullptr || ld_err < s->rows)
      return fail(QL_CUDA_EINVAL, "gptq_update: need i1 < i2 <= cols, ErrT and ld_err >= rows");
    const size_t rest = s->cols - i2;
    next_cols = std::min(next_cols, rest);
    if (next_cols > 0 && (next == nullptr || ld_next < next_cols))
      return fail(QL_CUDA_EINVAL, "gptq_update: next is null or ld_next < next_cols");
    if (rest == 0) return QL_CUDA_OK;
    const size_t block = i2 - i1, rows = s->rows, cols = s->cols;
    cudaStream_t st = s->work.stream();
    if (block > s->errRows) {
      // Grows once in practice (the first batch is the widest), after the queued work that reads it.
      QL_CK(cudaStreamSynchronize(st), "gptq_update: wait");
      s->work.free(s->Err);
      s->Err = nullptr;
      s->errRows = 0;
      float* grown = nullptr;
      int rc = s->work.alloc(&grown, block * rows, "ErrT");
      if (rc) return rc;
      s->Err = grown;
      s->errRows = block;
    }
    QL_CK(cudaMemcpy2DAsync(s->Err, rows * 4, ErrT, ld_err * 4, rows * 4, block, cudaMemcpyHostToDevice, st),
          "cudaMemcpy2DAsync ErrT");
    const float* Ub = s->U + i1 * cols + i2;
    int rc = launchGemmTnSub(s->W + i2, cols, s->Err, rows, Ub, cols, rows, next_cols, block, st);
    if (rc) return rc;
    if (next_cols > 0) {
      QL_CK(cudaMemcpy2DAsync(next, ld_next * 4, s->W + i2, cols * 4, next_cols * 4, rows, cudaMemcpyDeviceToHost, st),
            "cudaMemcpy2DAsync next columns");
      QL_CK(cudaStreamSynchronize(st), "gptq_update: next columns");
    }
    // The rest runs on while the caller quantizes the next batch; the next call's copy of ErrT
    // into s->Err is ordered after it on the stream.
    return launchGemmTnSub(s->W + i2 + next_cols, cols, s->Err, rows, Ub + next_cols, cols, rows, rest - next_cols,
                           block, st);
  } catch (...) {
    return fail(QL_CUDA_ENOMEM, "gptq_update: host allocation failed");
  }
}

QL_CUDA_API int ql_cuda_gptq_read(ql_cuda_gptq* s, size_t c0, size_t c1, float* dst, size_t ldd) {
  if (s == nullptr || dst == nullptr || !(c0 <= c1 && c1 <= s->cols) || ldd < c1 - c0)
    return fail(QL_CUDA_EINVAL, "gptq_read: bad column range or destination");
  if (c0 == c1) return QL_CUDA_OK;
  QL_CK(cudaStreamSynchronize(s->work.stream()), "gptq_read: wait");
  QL_CK(cudaMemcpy2DAsync(dst, ldd * 4, s->W + c0, s->cols * 4, (c1 - c0) * 4, s->rows, cudaMemcpyDeviceToHost,
                          s->work.stream()),
        "cudaMemcpy2DAsync W");
  QL_CK(cudaStreamSynchronize(s->work.stream()), "gptq_read: copy");
  return QL_CUDA_OK;
}

QL_CUDA_API void ql_cuda_gptq_destroy(ql_cuda_gptq* s) { delete s; }

QL_CUDA_API int ql_cuda_fwht(float* X, size_t rows, size_t n, ql_cuda_cancel_fn cancel, void* cancel_ctx) {
  try {
    return fwhtImpl(X, rows, n, 1, cancel, cancel_ctx);
  } catch (...) {
    return fail(QL_CUDA_ENOMEM, "fwht: host allocation failed");
  }
}

QL_CUDA_API int ql_cuda_fwht_strided(float* X, size_t outer, size_t d, size_t inner, ql_cuda_cancel_fn cancel,
                                     void* cancel_ctx) {
  try {
    return fwhtImpl(X, outer, d, inner, cancel, cancel_ctx);
  } catch (...) {
    return fail(QL_CUDA_ENOMEM, "fwht_strided: host allocation failed");
  }
}

}  // extern "C"
