/**
 * Plain TypeScript references of the BLAS-3 family (native-kernels/core/{gemm,hessian,cholesky}.h):
 * the fallback when the addon is not available and the yardstick the native kernels are tested
 * against. Triple loops with float64 accumulation, results rounded to float32 once, so they are
 * more accurate than the fp32 native kernels and the tests can bound the native error.
 *
 * Matrices are row-major; `ld*` is the row stride of a matrix as stored (default: its column count).
 */

/** Arguments of `C[m×n] = alpha·op(A)·op(B) + beta·C` (BLAS sgemm, row-major). */
export interface SgemmArgs {
  /** op(A) = Aᵀ: A is stored [k×m] instead of [m×k]. */
  transA: boolean;
  /** op(B) = Bᵀ: B is stored [n×k] instead of [k×n]. */
  transB: boolean;
  m: number;
  n: number;
  k: number;
  alpha: number;
  a: Float32Array;
  /** Row stride of A as stored (default: its stored column count, k or m). */
  lda?: number;
  b: Float32Array;
  /** Row stride of B as stored (default: n or k). */
  ldb?: number;
  /** 0: C is only written (it may hold NaN or garbage). */
  beta: number;
  c: Float32Array;
  /** Row stride of C (default n). */
  ldc?: number;
}

/** Strides with their defaults filled in. */
export function sgemmStrides(args: SgemmArgs): { lda: number; ldb: number; ldc: number } {
  return {
    lda: args.lda ?? (args.transA ? args.m : args.k),
    ldb: args.ldb ?? (args.transB ? args.k : args.n),
    ldc: args.ldc ?? args.n,
  };
}

/**
 * C = alpha·op(A)·op(B) + beta·C with a float64 dot product per element, rounded to float32 once.
 * Rows [rowBegin, rowEnd) of C only (the fallback does them in slices between event-loop turns).
 */
export function sgemmRef(args: SgemmArgs, rowBegin = 0, rowEnd = args.m): void {
  const { transA, transB, n, k, alpha, beta, a, b, c } = args;
  const { lda, ldb, ldc } = sgemmStrides(args);
  // Element strides of op(A) along (i, p) and op(B) along (p, j).
  const aRow = transA ? 1 : lda;
  const aCol = transA ? lda : 1;
  const bRow = transB ? 1 : ldb;
  const bCol = transB ? ldb : 1;
  for (let i = rowBegin; i < rowEnd; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      if (alpha !== 0) {
        for (let p = 0; p < k; p++) acc += a[i * aRow + p * aCol] * b[p * bRow + j * bCol];
      }
      const at = i * ldc + j;
      c[at] = beta === 0 ? alpha * acc : alpha * acc + beta * c[at];
    }
  }
}

/**
 * H[n×n] += Xᵀ·X for X [rows×n] (float64 throughout), rows [rowBegin, rowEnd) of X only; the lower
 * triangle is accumulated and, when `mirror`, copied to the upper one (H must be symmetric on entry).
 */
export function hessianUpdateRef(
  h: Float64Array,
  n: number,
  x: Float32Array,
  rows: number,
  rowBegin = 0,
  rowEnd = rows,
  mirror = true,
): void {
  for (let r = rowBegin; r < rowEnd; r++) {
    const base = r * n;
    for (let i = 0; i < n; i++) {
      const xi = x[base + i];
      if (xi === 0) continue;
      const hi = i * n;
      for (let j = 0; j <= i; j++) h[hi + j] += xi * x[base + j];
    }
  }
  if (mirror) mirrorLower(h, n);
}

/** H[i][j] = H[j][i] for j > i. */
export function mirrorLower(h: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) h[i * n + j] = h[j * n + i];
}

export type CholeskyResult = { ok: true } | { ok: false; pivot: number };

/**
 * In-place lower Cholesky a = L·Lᵀ (reads the lower triangle). On success the lower triangle holds
 * L and the strict upper one 0. On failure (a non-positive or NaN pivot: not SPD) `a` is left as it
 * was and the index of the first failing pivot is returned.
 */
export function choleskyRef(a: Float32Array, n: number, lda = n): CholeskyResult {
  const L = lowerToFloat64(a, n, lda);
  const pivot = choleskyF64(L, n);
  if (pivot >= 0) return { ok: false, pivot };
  storeLower(L, a, n, lda);
  return { ok: true };
}

/** Inverse of the lower-triangular L in place (reads the lower triangle; strict upper set to 0). */
export function trtriLowerRef(l: Float32Array, n: number, lda = n): void {
  const L = lowerToFloat64(l, n, lda);
  trtriF64(L, n);
  storeLower(L, l, n, lda);
}

/**
 * GPTQ's factor: H (SPD, n×n) is overwritten with the upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ·U,
 * diag(U) > 0, zeros below), i.e. torch.linalg.cholesky(torch.cholesky_inverse(
 * torch.linalg.cholesky(H)), upper=True). Returns -1 on success, else the failing pivot (H is then
 * left unchanged).
 *
 * Same route as the native kernel (core/cholesky.h): with J the reversal, J·H·J = L̃·L̃ᵀ, and
 * U = J·L̃⁻¹·J (one Cholesky and one triangular inverse, no explicit H⁻¹), in float64. The
 * elimination runs from the last index down, so a failure reports the largest i for which
 * H[i:, i:] is found not positive definite. Reads H's upper triangle (H must be symmetric).
 */
export function gptqInverseCholeskyUpperRef(h: Float32Array, n: number, lda = n): number {
  // R = J·H·J, lower triangle: R[i][j] = H[n−1−i][n−1−j] for j ≤ i (H's upper triangle).
  const R = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) R[i * n + j] = h[(n - 1 - i) * lda + (n - 1 - j)];
  }
  const pivot = choleskyF64(R, n);
  if (pivot >= 0) return n - 1 - pivot;
  trtriF64(R, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      // U[i][j] = L̃⁻¹[n−1−i][n−1−j], upper (j ≥ i).
      h[i * lda + j] = j >= i ? R[(n - 1 - i) * n + (n - 1 - j)] : 0;
    }
  }
  return -1;
}

// ---- float64 building blocks (dense n×n, stride n) ----------------------------------------

function lowerToFloat64(a: Float32Array, n: number, lda: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) L[i * n + j] = a[i * lda + j];
  return L;
}

function storeLower(L: Float64Array, a: Float32Array, n: number, lda: number): void {
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * lda + j] = j <= i ? L[i * n + j] : 0;
}

/** Lower Cholesky in place (lower triangle); -1, or the first pivot that is not > 0. */
function choleskyF64(L: Float64Array, n: number): number {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = L[rj + j];
    for (let p = 0; p < j; p++) d -= L[rj + p] * L[rj + p];
    if (!(d > 0)) return j;
    const ljj = Math.sqrt(d);
    L[rj + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = L[ri + j];
      for (let p = 0; p < j; p++) s -= L[ri + p] * L[rj + p];
      L[ri + j] = s / ljj;
    }
  }
  return -1;
}

/**
 * Lower-triangular inverse in place (LAPACK strti2 order: columns right to left, each from the
 * already-inverted trailing block; rows bottom-up so the column's originals are read first).
 */
function trtriF64(L: Float64Array, n: number): void {
  for (let j = n - 1; j >= 0; j--) {
    const inv = 1 / L[j * n + j];
    L[j * n + j] = inv;
    for (let i = n - 1; i > j; i--) {
      let s = 0;
      for (let p = j + 1; p <= i; p++) s += L[i * n + p] * L[p * n + j];
      L[i * n + j] = -s * inv;
    }
  }
}
