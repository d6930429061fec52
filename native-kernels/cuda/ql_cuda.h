/*
 * libquantlens_cuda: the optional CUDA backend of QuantLens' native kernels, as a plain C ABI.
 *
 * The addon (quantlens_kernels.node) never links against this library or against CUDA: it
 * dlopens libquantlens_cuda.so at run time (core/cuda_backend.cpp), checks
 * ql_cuda_abi_version() == QL_CUDA_ABI_VERSION and ql_cuda_device_count() > 0, and falls back to
 * its CPU kernels otherwise. This header is shared by both sides and needs no CUDA headers.
 *
 * Conventions
 *   - Every matrix is row-major with an explicit row stride (ld*, in elements, >= its width).
 *   - Pointers are HOST pointers (pageable memory is fine); the library copies to and from the
 *     device itself. Nothing is kept between calls except inside a ql_cuda_gptq session.
 *   - Functions return QL_CUDA_OK (0) or a negative QL_CUDA_E* code and never abort; the message
 *     of the last failure on the calling thread is ql_cuda_last_error().
 *   - Unless a function says otherwise, on any error its outputs are untouched, EXCEPT
 *     QL_CUDA_EOUTPUT: the final device-to-host copy failed part-way and the output is undefined.
 *   - The work runs on the calling thread's current CUDA device (device 0 unless the process
 *     chose another; CUDA_VISIBLE_DEVICES applies), on a private stream: calls from several
 *     threads may run at once.
 *   - cancel (may be NULL) is polled between pieces of work; when it returns non-zero the call
 *     stops with QL_CUDA_ECANCELLED and its outputs untouched.
 *
 * The library links the CUDA runtime statically, so at run time it needs only the NVIDIA driver
 * (libcuda.so.1); without one, ql_cuda_device_count() returns 0.
 */
#ifndef QL_CUDA_H
#define QL_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported by the library (ql_cuda.cu defines QL_CUDA_BUILDING); plain declarations elsewhere. */
#if !defined(QL_CUDA_BUILDING)
#define QL_CUDA_API
#elif defined(_WIN32)
#define QL_CUDA_API __declspec(dllexport)
#else
#define QL_CUDA_API __attribute__((visibility("default")))
#endif

/** Bumped on any incompatible change of this header; the addon refuses another version. */
#define QL_CUDA_ABI_VERSION 1

/** Rows per fp32 product in ql_cuda_hessian_update (core/hessian.h's kHessianChunkRows). */
#define QL_CUDA_HESSIAN_CHUNK_ROWS 256

enum {
  QL_CUDA_OK = 0,
  QL_CUDA_ENODEV = -1,     /* no driver or no device */
  QL_CUDA_EINVAL = -2,     /* bad arguments (sizes, strides, null pointers) */
  QL_CUDA_ENOMEM = -3,     /* device (or pinned host) memory could not be allocated */
  QL_CUDA_ERUNTIME = -4,   /* a CUDA runtime error (launch failure, illegal address, ...) */
  QL_CUDA_ENONFINITE = -5, /* ql_cuda_fwht*: the input holds NaN/±Inf (outputs untouched) */
  QL_CUDA_ECANCELLED = -6, /* cancel() returned non-zero */
  QL_CUDA_EOUTPUT = -7     /* the copy back failed part-way: the output is undefined */
};

typedef int (*ql_cuda_cancel_fn)(void* ctx);

/** QL_CUDA_ABI_VERSION of the library. */
QL_CUDA_API int ql_cuda_abi_version(void);

/** Devices visible to the CUDA runtime; 0 (never negative) when there is no driver or device. */
QL_CUDA_API int ql_cuda_device_count(void);

/**
 * Describes the current device into buf (NUL-terminated, truncated to len): e.g.
 * "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB, CUDA runtime 13.0, driver 13.0". Returns a code.
 */
QL_CUDA_API int ql_cuda_device_name(char* buf, size_t len);

/** The message of the last failing call on this thread ("" if none). Valid until the next call. */
QL_CUDA_API const char* ql_cuda_last_error(void);

/**
 * H[n×n] (fp64, row stride n, symmetric on entry) += Xᵀ·X for X [rows×n] fp32 (row stride ldx).
 * The contract of core/hessian.h: the rows are cut into chunks of QL_CUDA_HESSIAN_CHUNK_ROWS
 * from the first row; each chunk's product is an fp32 FMA sum, added into fp64. The lower
 * triangle is computed and mirrored, so H is exactly symmetric on return. H is copied to the
 * device, updated there and copied back (16·n² bytes of traffic per call, whatever `rows` is).
 */
QL_CUDA_API int ql_cuda_hessian_update(double* H, size_t n, const float* X, size_t rows, size_t ldx,
                                       ql_cuda_cancel_fn cancel, void* cancel_ctx);

/**
 * The GPTQ lazy-batch trailing update (core/gptq.cpp), one call per batch, stateless:
 *
 *   W[rows × cols_rest] −= ErrTᵀ · U      i.e. W[r][j] −= Σ_k ErrT[k][r] · U[k][j]
 *
 *   W     [rows × cols_rest], row stride ldw      (gptq.cpp: Wp + i2, ldw = cols)
 *   ErrT  [block × rows],     row stride ld_err   (gptq.cpp: ErrT, ld_err = ldErr)  = Err1ᵀ
 *   U     [block × cols_rest], row stride ldu     (gptq.cpp: U + i1·cols + i2, ldu = cols)
 *
 * fp32 products summed with FMA along k (block ≤ a few hundred). Copies W both ways each call;
 * prefer the session below, which keeps W on the device.
 */
QL_CUDA_API int ql_cuda_gptq_block_update(float* W, size_t rows, size_t cols_rest, size_t ldw, const float* ErrT,
                                          size_t ld_err, size_t block, const float* U, size_t ldu);

/**
 * A device-resident GPTQ layer: W [rows × cols] and U [cols × cols] (only rows i1.. of U's upper
 * part are read) are copied to the device once; each lazy batch then sends only its errors and
 * gets back only the columns the next batch reads.
 *
 *   ql_cuda_gptq_create(&s, W, rows, cols, ldw, U, ldu)
 *   for each batch [i1, i2):
 *     (CPU) quantize columns [i1, i2) of the host W  ->  ErrT [(i2−i1) × rows], row stride ld_err
 *     ql_cuda_gptq_update(s, i1, i2, ErrT, ld_err, W_host + i2, ldw, next_cols)
 *   ql_cuda_gptq_destroy(s)
 *
 * ql_cuda_gptq_update applies W_dev[:, i2:] −= ErrTᵀ · U[i1:i2, i2:] (as ql_cuda_gptq_block_update),
 * first on columns [i2, i2 + next_cols), copies those into next (host, row stride ld_next) and
 * returns as soon as they are there; the update of the columns after them keeps running on the
 * GPU (overlapping the CPU's next batch) and is ordered before the next call's work. The session
 * is not thread-safe (one caller at a time). After any error but QL_CUDA_EINVAL the session's W
 * is undefined: destroy it and redo the layer on the CPU.
 */
typedef struct ql_cuda_gptq ql_cuda_gptq;

QL_CUDA_API int ql_cuda_gptq_create(ql_cuda_gptq** session, const float* W, size_t rows, size_t cols, size_t ldw,
                                    const float* U, size_t ldu);
QL_CUDA_API int ql_cuda_gptq_update(ql_cuda_gptq* session, size_t i1, size_t i2, const float* ErrT, size_t ld_err,
                                    float* next, size_t ld_next, size_t next_cols);
/** Waits for all queued work, then copies W_dev[:, c0:c1) into dst (row stride ldd). */
QL_CUDA_API int ql_cuda_gptq_read(ql_cuda_gptq* session, size_t c0, size_t c1, float* dst, size_t ldd);
/** Frees the session (NULL is fine). Waits for its queued work. */
QL_CUDA_API void ql_cuda_gptq_destroy(ql_cuda_gptq* session);

/**
 * X [rows × n] (row stride n) ← each row times H_n / √n, in place: core/hadamard.h's fwht, bit
 * for bit (the same IEEE adds/subtracts per butterfly stage, then × float(1/√n)). n a power of
 * two. NaN/±Inf anywhere: QL_CUDA_ENONFINITE, X untouched (the CPU kernel then names the element).
 */
QL_CUDA_API int ql_cuda_fwht(float* X, size_t rows, size_t n, ql_cuda_cancel_fn cancel, void* cancel_ctx);

/**
 * X [outer × d × inner]: the normalized FWHT of length d along the middle axis, for each of the
 * outer·inner vectors (core/hadamard.h's fwhtColumns on each of the `outer` [d × inner] blocks),
 * bit for bit. inner = 1 is ql_cuda_fwht. d a power of two.
 */
QL_CUDA_API int ql_cuda_fwht_strided(float* X, size_t outer, size_t d, size_t inner, ql_cuda_cancel_fn cancel,
                                     void* cancel_ctx);

#ifdef __cplusplus
}
#endif

#endif /* QL_CUDA_H */
