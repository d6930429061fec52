// Device kernels of libquantlens_cuda (included by ql_cuda.cu only).
//
// Written against a small subset of CUDA (threadIdx/blockIdx/blockDim/gridDim, __shared__ arrays
// of fixed size, __syncthreads, atomicMin on 64-bit, no warp intrinsics) so that emulate.h can run
// the very same code on the CPU, thread by thread, where there is no GPU (the tests do).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace qlcu {

// ---- tiled products Σ_k A[k][i]·B[k][j] -------------------------------------------------------
//
// Both operands are k-major (row k holds all i, resp. all j), which is how the Hessian reads X
// (A = B = X: H = XᵀX) and how GPTQ keeps its errors (A = ErrT, B = U rows). One block computes a
// kTile×kTile tile of the output with 256 threads; thread (tx, ty) owns the 8×8 elements
// (ty + 16·a, tx + 16·b), so shared-memory reads are broadcasts / consecutive words and global
// stores of a warp are 16 consecutive elements per row. kK rows of A and B are staged per step
// in double-buffered shared memory (the next step's loads are in registers while this step
// computes). Each output element is one fp32 FMA chain along k, in k order.

constexpr int kTile = 128;
constexpr int kK = 8;
constexpr int kThreads = 256;
constexpr int kSub = 8;  // outputs per thread per dimension
constexpr int kLoads = kK * kTile / kThreads;  // elements of A (and of B) each thread stages per step

struct TileOperands {
  const float* A;
  size_t lda;
  size_t M;  // valid i
  const float* B;
  size_t ldb;
  size_t N;  // valid j
  size_t i0, j0;
};

/** Register-staged loads of rows [k0, k0 + kK) (zero past kEnd, M or N). */
__device__ __forceinline__ void loadStep(const TileOperands& op, size_t k0, size_t kEnd, float* ra, float* rb) {
  const int t = threadIdx.x;
  for (int q = 0; q < kLoads; q++) {
    const int e = t + q * kThreads;
    const int kk = e / kTile, c = e % kTile;
    const size_t k = k0 + kk;
    const bool kin = k < kEnd;
    const size_t i = op.i0 + c, j = op.j0 + c;
    ra[q] = (kin && i < op.M) ? op.A[k * op.lda + i] : 0.0f;
    rb[q] = (kin && j < op.N) ? op.B[k * op.ldb + j] : 0.0f;
  }
}

__device__ __forceinline__ void storeStep(float (*As)[kTile], float (*Bs)[kTile], const float* ra, const float* rb) {
  const int t = threadIdx.x;
  for (int q = 0; q < kLoads; q++) {
    const int e = t + q * kThreads;
    As[e / kTile][e % kTile] = ra[q];
    Bs[e / kTile][e % kTile] = rb[q];
  }
}

/**
 * acc += Σ_{k in [kBegin, kEnd)} A[k][i]·B[k][j] over this thread's 8×8 elements. Ends with a
 * barrier, so the caller may start another range (the shared buffers are free again).
 */
__device__ __forceinline__ void accumulateRange(const TileOperands& op, size_t kBegin, size_t kEnd,
                                                float (*As)[kK][kTile], float (*Bs)[kK][kTile],
                                                float acc[kSub][kSub]) {
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float ra[kLoads], rb[kLoads];
  loadStep(op, kBegin, kEnd, ra, rb);
  storeStep(As[0], Bs[0], ra, rb);
  __syncthreads();
  int buf = 0;
  for (size_t k0 = kBegin; k0 < kEnd; k0 += kK) {
    const bool more = k0 + kK < kEnd;
    if (more) loadStep(op, k0 + kK, kEnd, ra, rb);
    for (int kk = 0; kk < kK; kk++) {
      float a[kSub], b[kSub];
      for (int s = 0; s < kSub; s++) a[s] = As[buf][kk][ty + 16 * s];
      for (int s = 0; s < kSub; s++) b[s] = Bs[buf][kk][tx + 16 * s];
      for (int u = 0; u < kSub; u++)
        for (int v = 0; v < kSub; v++) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
    }
    // Buffer buf^1 was last read in the previous step, which ended with a barrier.
    if (more) storeStep(As[buf ^ 1], Bs[buf ^ 1], ra, rb);
    __syncthreads();
    buf ^= 1;
  }
}

/**
 * C[i][j] −= Σ_{k<K} A[k][i]·B[k][j] for i < M, j < N (the GPTQ trailing update with A = ErrT,
 * B = U[i1:i2, i2:], C = W[:, i2:]). Grid: (ceil(N/kTile), ceil(M/kTile)).
 */
__global__ void __launch_bounds__(kThreads)
    gemmTnSubKernel(float* C, size_t ldc, const float* A, size_t lda, const float* B, size_t ldb, size_t M, size_t N,
                    size_t K) {
  __shared__ float As[2][kK][kTile];
  __shared__ float Bs[2][kK][kTile];
  TileOperands op;
  op.A = A;
  op.lda = lda;
  op.M = M;
  op.B = B;
  op.ldb = ldb;
  op.N = N;
  op.i0 = static_cast<size_t>(blockIdx.y) * kTile;
  op.j0 = static_cast<size_t>(blockIdx.x) * kTile;
  float acc[kSub][kSub];
  for (int u = 0; u < kSub; u++)
    for (int v = 0; v < kSub; v++) acc[u][v] = 0.0f;
  accumulateRange(op, 0, K, As, Bs, acc);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  for (int u = 0; u < kSub; u++) {
    const size_t i = op.i0 + ty + 16 * u;
    if (i >= M) continue;
    for (int v = 0; v < kSub; v++) {
      const size_t j = op.j0 + tx + 16 * v;
      if (j < N) C[i * ldc + j] -= acc[u][v];
    }
  }
}

/** Tile t of the lower triangle, row-wise: (0,0), (1,0), (1,1), (2,0), … */
__device__ __forceinline__ void lowerTile(size_t t, size_t* bi, size_t* bj) {
  size_t r = static_cast<size_t>((sqrt(8.0 * static_cast<double>(t) + 1.0) - 1.0) / 2.0);
  while (r * (r + 1) / 2 > t) r--;
  while ((r + 1) * (r + 2) / 2 <= t) r++;
  *bi = r;
  *bj = t - r * (r + 1) / 2;
}

/**
 * The lower triangle of out[n×n] (fp64, row stride n) += Xᵀ·X over rows [0, rows) of X (fp32,
 * row stride ldx): each QL_CUDA_HESSIAN_CHUNK_ROWS-row chunk (counted from row 0) is an fp32 sum,
 * added into fp64 before the next. Grid: (lower tiles, splits); split s takes chunks
 * [s·chunksPerSplit, (s+1)·chunksPerSplit) and adds into out + s·n·n, so no element has two
 * writers and the result does not depend on scheduling.
 */
__global__ void __launch_bounds__(kThreads)
    hessianKernel(double* out, size_t n, const float* X, size_t ldx, size_t rows, size_t chunkRows,
                  size_t chunksPerSplit) {
  __shared__ float As[2][kK][kTile];
  __shared__ float Bs[2][kK][kTile];
  size_t bi, bj;
  lowerTile(blockIdx.x, &bi, &bj);
  TileOperands op;
  op.A = X;
  op.lda = ldx;
  op.M = n;
  op.B = X;
  op.ldb = ldx;
  op.N = n;
  op.i0 = bi * kTile;
  op.j0 = bj * kTile;
  double* H = out + static_cast<size_t>(blockIdx.y) * n * n;
  const size_t c0 = static_cast<size_t>(blockIdx.y) * chunksPerSplit;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  for (size_t c = c0; c < c0 + chunksPerSplit; c++) {
    const size_t r0 = c * chunkRows;
    if (r0 >= rows) break;
    const size_t r1 = r0 + chunkRows < rows ? r0 + chunkRows : rows;
    float acc[kSub][kSub];
    for (int u = 0; u < kSub; u++)
      for (int v = 0; v < kSub; v++) acc[u][v] = 0.0f;
    accumulateRange(op, r0, r1, As, Bs, acc);
    for (int u = 0; u < kSub; u++) {
      const size_t i = op.i0 + ty + 16 * u;
      if (i >= n) continue;
      for (int v = 0; v < kSub; v++) {
        const size_t j = op.j0 + tx + 16 * v;
        if (j <= i) H[i * n + j] += static_cast<double>(acc[u][v]);
      }
    }
  }
}

/** H[i][j] += Σ_s part[s][i][j] (s in order) on and below the diagonal. Grid-stride over n². */
__global__ void __launch_bounds__(kThreads)
    hessianReduceKernel(double* H, const double* part, size_t n, size_t splits) {
  const size_t total = n * n;
  for (size_t e = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t i = e / n, j = e % n;
    if (j > i) continue;
    double sum = 0;
    for (size_t s = 0; s < splits; s++) sum += part[s * total + e];
    H[e] += sum;
  }
}

/**
 * H[i][j] = H[j][i] for j > i, through 32×32 shared tiles. Grid: (ceil(n/32), ceil(n/32)),
 * block 256 = 32×8; only blocks with column tile ≥ row tile work (they write the strict upper
 * triangle and read only the lower one, so blocks never race).
 */
__global__ void __launch_bounds__(kThreads) mirrorLowerKernel(double* H, size_t n) {
  __shared__ double tile[32][33];
  const size_t r0 = static_cast<size_t>(blockIdx.y) * 32, c0 = static_cast<size_t>(blockIdx.x) * 32;
  if (c0 < r0) return;  // uniform over the block: no barrier is skipped by only some threads
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  // tile[a][b] = H[c0 + a][r0 + b] (the lower source block, read row-wise).
  for (int a = ty; a < 32; a += 8) {
    const size_t i = c0 + a, j = r0 + tx;
    tile[a][tx] = (i < n && j < n && j <= i) ? H[i * n + j] : 0.0;
  }
  __syncthreads();
  // H[r0 + a][c0 + b] = H[c0 + b][r0 + a] = tile[b][a], where c0 + b > r0 + a.
  for (int a = ty; a < 32; a += 8) {
    const size_t i = r0 + a, j = c0 + tx;
    if (i < n && j < n && j > i) H[i * n + j] = tile[tx][a];
  }
}

// ---- FWHT -------------------------------------------------------------------------------------
//
// Bit-identical to core/hadamard.cpp: after stage h every element is one IEEE add or subtract of
// two values of the previous stage (no FMA can form: there is no product), and the final scaling
// is one multiply by the same float(1/√n). Flat index e of X [outer × d × inner] holds vector
// element b = (e / inner) % d; stage h pairs b and b + h when b has bit h clear.

constexpr int kChunk = 4096;  // floats per block in the shared-memory kernel (16 KiB)

__device__ __forceinline__ bool isNonFinite(float x) { return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u; }

/**
 * inner = 1, the first stages: block c transforms floats [c·kChunk, …) of X (rows of n, n a power
 * of two) through stages h = 1 … min(n, kChunk)/2 in shared memory. A chunk holds whole rows
 * (n ≤ kChunk) or an aligned 1/(n/kChunk) of one, so no pair leaves it. The first NaN/±Inf
 * index met goes to *bad (atomicMin). scale: multiply by norm at the end (all stages done here).
 */
__global__ void __launch_bounds__(kThreads)
    fwhtChunkKernel(float* X, size_t total, size_t n, float norm, int scale, unsigned long long* bad) {
  __shared__ float s[kChunk];
  const size_t base = static_cast<size_t>(blockIdx.x) * kChunk;
  const size_t len = total - base < static_cast<size_t>(kChunk) ? total - base : static_cast<size_t>(kChunk);
  const int L = n < static_cast<size_t>(kChunk) ? static_cast<int>(n) : kChunk;
  const int m = static_cast<int>(len);
  for (int e = threadIdx.x; e < m; e += kThreads) {
    const float v = X[base + e];
    if (isNonFinite(v)) atomicMin(bad, static_cast<unsigned long long>(base + e));
    s[e] = v;
  }
  __syncthreads();
  for (int h = 1; h < L; h *= 2) {
    for (int p = threadIdx.x; p < m / 2; p += kThreads) {
      const int i = (p / h) * 2 * h + p % h;
      const float a = s[i], b = s[i + h];
      s[i] = a + b;
      s[i + h] = a - b;
    }
    __syncthreads();
  }
  for (int e = threadIdx.x; e < m; e += kThreads) X[base + e] = scale ? s[e] * norm : s[e];
}

/**
 * One stage h over global memory, any inner: every pair (b, b + h) of every vector. first: check
 * the inputs for NaN/±Inf (each element is in exactly one pair); scale: this is the last stage,
 * multiply the results by norm. Grid-stride over the outer·(d/2)·inner pairs.
 */
__global__ void __launch_bounds__(kThreads)
    fwhtStageKernel(float* X, size_t outer, size_t d, size_t inner, size_t h, float norm, int first, int scale,
                    unsigned long long* bad) {
  const size_t half = d / 2 * inner;
  const size_t pairs = outer * half;
  for (size_t p = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < pairs;
       p += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t o = p / half, rem = p % half;
    const size_t q = rem / inner, j = rem % inner;
    const size_t b = (q / h) * 2 * h + q % h;
    const size_t e = o * d * inner + b * inner + j, f = e + h * inner;
    const float a = X[e], c = X[f];
    if (first) {
      if (isNonFinite(a)) atomicMin(bad, static_cast<unsigned long long>(e));
      if (isNonFinite(c)) atomicMin(bad, static_cast<unsigned long long>(f));
    }
    const float s = a + c, t = a - c;
    X[e] = scale ? s * norm : s;
    X[f] = scale ? t * norm : t;
  }
}

/** d = 1: no stages, X *= norm (= 1), with the NaN/±Inf check. Grid-stride. */
__global__ void __launch_bounds__(kThreads)
    scaleCheckKernel(float* X, size_t total, float norm, unsigned long long* bad) {
  for (size_t e = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float v = X[e];
    if (isNonFinite(v)) atomicMin(bad, static_cast<unsigned long long>(e));
    X[e] = v * norm;
  }
}

}  // namespace qlcu
