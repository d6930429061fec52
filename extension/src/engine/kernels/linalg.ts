/**
 * The BLAS-3 family every quantization pass runs on: validated arguments, then the addon
 * (core/gemm.h, core/hessian.h, core/cholesky.h: blocked, AVX2/FMA, multithreaded, off the JS
 * thread) when it loads, else the float64 TypeScript references (reference-linalg.ts).
 *
 *   await sgemm({ transA: false, transB: true, m, n, k, alpha: 1, a, b, beta: 0, c });
 *   await hessianUpdate(H, n, X, rows);              // H [n×n] += Xᵀ·X, both triangles
 *   const r = await cholesky(A, n);                   // { ok: true } | { ok: false, pivot }
 *   await trtriLower(L, n);                           // L ← L⁻¹
 *   const pivot = await gptqInverseCholeskyUpper(H, n); // H ← U, H⁻¹ = Uᵀ·U; -1 when SPD
 *
 * Row-major everywhere. Every input must be finite: a NaN/±Inf rejects with a RangeError
 * (code ERR_QUANTLENS_NON_FINITE) naming the function, the argument and the first bad element,
 * before any output is written. Bad shapes, strides or types throw (reject) at once, naming the
 * argument. Arrays must not be modified while a call is pending.
 *
 * Without the addon, sgemm and hessianUpdate give the event loop a turn every ~8M multiply-adds
 * (and honour `signal` there); the Cholesky family runs to completion on the calling thread
 * (n³/3 float64 operations: seconds at n = 1000, minutes at 4096).
 */
import {
  choleskyRef,
  gptqInverseCholeskyUpperRef,
  hessianUpdateRef,
  mirrorLower,
  sgemmRef,
  sgemmStrides,
  trtriLowerRef,
  type CholeskyResult,
  type SgemmArgs,
} from "./reference-linalg";
import { expectArray, native, throwIfAborted, withCancel, type KernelCallOptions } from "./index";

export type { CholeskyResult, SgemmArgs } from "./reference-linalg";

/** Largest dimension or stride accepted (the addon's limit). */
const MAX_DIM = 2147483647;
/** At most this many multiply-adds run synchronously in the addon (a thread hop costs more). */
const SYNC_MAX_MACS = 1 << 16;
/** The TypeScript fallbacks of sgemm / hessianUpdate give the event loop a turn this often. */
const FALLBACK_MACS_PER_TURN = 1 << 23;

// ---- sgemm ---------------------------------------------------------------------------------

/**
 * C[m×n] = alpha·op(A)·op(B) + beta·C (op(X) = X or Xᵀ). A is stored [m×k] ([k×m] when transA),
 * B [k×n] ([n×k] when transB); strides default to the stored column counts. beta = 0 never reads
 * C; C must not overlap A or B. Native: fp32 FMA sums in 256-long blocks (relative error ~1e-6 of
 * Σ|a·b|); fallback: float64 sums.
 */
export async function sgemm(args: SgemmArgs, options: KernelCallOptions = {}): Promise<void> {
  const fn = "sgemm";
  const s = checkSgemm(fn, args);
  throwIfAborted(options.signal, fn);
  const k = native();
  const { transA, transB, m, n, alpha, a, b, beta, c } = args;
  if (k) {
    if (m * n * args.k <= SYNC_MAX_MACS) {
      scanSgemmInputs(fn, args, s); // tiny: scanned here, so the error names sgemm(), not sgemmSync()
      k.sgemmSync(transA, transB, m, n, args.k, alpha, a, s.lda, b, s.ldb, beta, c, s.ldc);
      return;
    }
    await withCancel(k, options.signal, fn, (token) =>
      k.sgemm(transA, transB, m, n, args.k, alpha, a, s.lda, b, s.ldb, beta, c, s.ldc, token),
    );
    return;
  }
  scanSgemmInputs(fn, args, s);
  const rowsPerTurn = Math.max(1, Math.floor(FALLBACK_MACS_PER_TURN / Math.max(1, n * args.k)));
  for (let i = 0; i < m; i += rowsPerTurn) {
    if (i > 0) {
      await nextTurn();
      throwIfAborted(options.signal, fn);
    }
    sgemmRef(args, i, Math.min(m, i + rowsPerTurn));
  }
}

function scanSgemmInputs(fn: string, args: SgemmArgs, s: { lda: number; ldb: number; ldc: number }): void {
  const { transA, transB, m, n, k } = args;
  if (m === 0 || n === 0) return;
  if (k > 0) {
    scanFinite(fn, "a", args.a, transA ? k : m, transA ? m : k, s.lda);
    scanFinite(fn, "b", args.b, transB ? n : k, transB ? k : n, s.ldb);
  }
  if (args.beta !== 0) scanFinite(fn, "c", args.c, m, n, s.ldc);
}

function checkSgemm(fn: string, args: SgemmArgs): { lda: number; ldb: number; ldc: number } {
  if (typeof args !== "object" || args === null) throw new TypeError(`${fn}(): expected an arguments object`);
  for (const flag of ["transA", "transB"] as const) {
    if (typeof args[flag] !== "boolean") throw new TypeError(`${fn}(): ${flag} must be a boolean, got ${String(args[flag])}`);
  }
  const m = dim(fn, "m", args.m);
  const n = dim(fn, "n", args.n);
  const k = dim(fn, "k", args.k);
  finiteScalar(fn, "alpha", args.alpha);
  finiteScalar(fn, "beta", args.beta);
  expectArray(fn, "a", args.a, Float32Array);
  expectArray(fn, "b", args.b, Float32Array);
  expectArray(fn, "c", args.c, Float32Array);
  const s = sgemmStrides(args);
  matrix(fn, "a", "lda", args.a, args.transA ? k : m, args.transA ? m : k, s.lda);
  matrix(fn, "b", "ldb", args.b, args.transB ? n : k, args.transB ? k : n, s.ldb);
  matrix(fn, "c", "ldc", args.c, m, n, s.ldc);
  if (overlaps(args.c, args.a)) throw new RangeError(`${fn}(): c overlaps a in memory; C is written while A is read`);
  if (overlaps(args.c, args.b)) throw new RangeError(`${fn}(): c overlaps b in memory; C is written while B is read`);
  return s;
}

// ---- Hessian -------------------------------------------------------------------------------

/**
 * H [n×n] += Xᵀ·X for X [rows×n] (one row per token). H is float64 and must be symmetric on entry
 * (zeros, or an earlier result); both triangles are written. Native: fp32 products summed over
 * chunks of 256 rows, chunks summed in float64 (relative error ~1e-7 of √(H_ii·H_jj)); fallback:
 * float64 throughout.
 * `lowerOnly` (for an accumulator that owns H): only the lower triangle and the diagonal are read
 * and written, H itself is not checked for NaN/Inf, and one `hessianSymmetrize` at the end fills
 * the upper triangle — instead of a mirror pass over all of H per update.
 */
export async function hessianUpdate(
  h: Float64Array,
  n: number,
  x: Float32Array,
  rows: number,
  options: KernelCallOptions & { lowerOnly?: boolean } = {},
): Promise<void> {
  const fn = "hessianUpdate";
  expectArray(fn, "h", h, Float64Array);
  expectArray(fn, "x", x, Float32Array);
  dim(fn, "n", n);
  dim(fn, "rows", rows);
  if (h.length !== n * n) throw new RangeError(`${fn}(): h.length (${h.length}) must be n·n = ${n * n}`);
  if (x.length !== rows * n) throw new RangeError(`${fn}(): x.length (${x.length}) must be rows·n = ${rows}·${n} = ${rows * n}`);
  throwIfAborted(options.signal, fn);
  const k = native();
  const lowerOnly = options.lowerOnly ?? false;
  if (k) {
    await withCancel(k, options.signal, fn, (token) => k.hessianUpdate(h, n, x, rows, token, lowerOnly));
    return;
  }
  if (!lowerOnly) {
    for (let i = 0; i < n * n; i++) {
      if (!Number.isFinite(h[i])) throw nonFinite(fn, "h", Math.floor(i / n), i % n);
    }
  }
  scanFinite(fn, "x", x, rows, n, n);
  const rowsPerTurn = Math.max(1, Math.floor(FALLBACK_MACS_PER_TURN / Math.max(1, (n * n) / 2)));
  for (let r = 0; r < rows; r += rowsPerTurn) {
    if (r > 0) {
      await nextTurn();
      throwIfAborted(options.signal, fn);
    }
    hessianUpdateRef(h, n, x, rows, r, Math.min(rows, r + rowsPerTurn), false);
  }
  if (!lowerOnly) mirrorLower(h, n);
}

/** H ← scale·H with the strict upper triangle copied from the lower one (ends `lowerOnly` updates). */
export async function hessianSymmetrize(h: Float64Array, n: number, scale = 1): Promise<void> {
  const fn = "hessianSymmetrize";
  expectArray(fn, "h", h, Float64Array);
  dim(fn, "n", n);
  if (h.length !== n * n) throw new RangeError(`${fn}(): h.length (${h.length}) must be n·n = ${n * n}`);
  if (!Number.isFinite(scale)) throw new RangeError(`${fn}(): scale must be finite, not ${scale}`);
  const k = native();
  if (k) return k.hessianSymmetrize(h, n, scale);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) h[i * n + j] *= scale;
  mirrorLower(h, n);
}

// ---- Cholesky family ---------------------------------------------------------------------

/**
 * In-place lower Cholesky a [n×n] = L·Lᵀ (reads the lower triangle). `{ ok: true }`: the lower
 * triangle holds L, the strict upper one 0. `{ ok: false, pivot }`: not positive definite, `pivot`
 * the first failing index (add damping and retry); the strict upper triangle is untouched, the
 * lower one unspecified (partly factored natively, unchanged on the fallback).
 */
export async function cholesky(a: Float32Array, n: number, options: KernelCallOptions = {}): Promise<CholeskyResult> {
  const fn = "cholesky";
  square(fn, "a", a, n);
  throwIfAborted(options.signal, fn);
  const k = native();
  if (k) {
    const pivot = await withCancel(k, options.signal, fn, (token) => k.choleskyLower(a, n, n, token));
    return pivot < 0 ? { ok: true } : { ok: false, pivot };
  }
  scanFinite(fn, "a", a, n, n, n, true);
  return choleskyRef(a, n);
}

/**
 * l [n×n] lower-triangular ← l⁻¹ (reads the lower triangle, zeros the strict upper one). A zero on
 * the diagonal rejects with a RangeError (code ERR_QUANTLENS_SINGULAR) naming it.
 */
export async function trtriLower(l: Float32Array, n: number, options: KernelCallOptions = {}): Promise<void> {
  const fn = "trtriLower";
  square(fn, "l", l, n);
  throwIfAborted(options.signal, fn);
  const k = native();
  if (k) {
    await withCancel(k, options.signal, fn, (token) => k.trtriLower(l, n, n, token));
    return;
  }
  scanFinite(fn, "l", l, n, n, n, true);
  for (let i = 0; i < n; i++) {
    if (l[i * n + i] === 0) {
      throw Object.assign(new RangeError(`${fn}(): argument 'l' is singular: l[${i}][${i}] is 0`), {
        code: "ERR_QUANTLENS_SINGULAR",
      });
    }
  }
  trtriLowerRef(l, n);
}

/**
 * GPTQ's factor: h [n×n] symmetric positive definite (the damped Hessian) is overwritten with
 * the upper Cholesky factor U of h⁻¹ (h⁻¹ = Uᵀ·U, diag(U) > 0, zeros below), what gptq.py gets from
 * cholesky(cholesky_inverse(cholesky(H)), upper=True). Resolves to -1 on success, else the failing
 * pivot, with h restored to its input (so the caller can add damping and retry). Computed as
 * U = J·L̃⁻¹·J from J·h·J = L̃·L̃ᵀ (J the reversal), without forming h⁻¹; see core/cholesky.h.
 */
export async function gptqInverseCholeskyUpper(h: Float32Array, n: number, options: KernelCallOptions = {}): Promise<number> {
  const fn = "gptqInverseCholeskyUpper";
  square(fn, "h", h, n);
  throwIfAborted(options.signal, fn);
  const k = native();
  if (k) return withCancel(k, options.signal, fn, (token) => k.gptqInverseCholeskyUpper(h, n, n, token));
  scanFinite(fn, "h", h, n, n, n);
  return gptqInverseCholeskyUpperRef(h, n);
}

// ---- validation ------------------------------------------------------------------------------

function dim(fn: string, name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_DIM) {
    throw new RangeError(`${fn}(): ${name} must be an integer in [0, ${MAX_DIM}], got ${String(value)}`);
  }
  return value;
}

function finiteScalar(fn: string, name: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isFinite(value) || !Number.isFinite(Math.fround(value))) {
    throw new RangeError(`${fn}(): ${name} must be a finite float32 number, got ${String(value)}`);
  }
}

/** A rows×cols matrix stored with row stride ld in `array`. */
function matrix(fn: string, name: string, ldName: string, array: Float32Array, rows: number, cols: number, ld: number): void {
  if (!Number.isInteger(ld) || ld < cols || ld > MAX_DIM) {
    throw new RangeError(`${fn}(): ${ldName} (${ld}) must be an integer ≥ the ${cols} columns of ${name} as stored`);
  }
  const need = rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
  if (array.length < need) {
    throw new RangeError(`${fn}(): ${name} has ${array.length} elements; a ${rows}×${cols} matrix with row stride ${ld} needs ${need}`);
  }
}

function square(fn: string, name: string, array: Float32Array, n: number): void {
  expectArray(fn, name, array, Float32Array);
  dim(fn, "n", n);
  if (array.length !== n * n) throw new RangeError(`${fn}(): ${name}.length (${array.length}) must be n·n = ${n * n}`);
}

function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.buffer !== b.buffer || a.byteLength === 0 || b.byteLength === 0) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/** The fallback's finiteness check (the addon does its own, off the JS thread). */
function scanFinite(fn: string, name: string, x: Float32Array, rows: number, cols: number, ld: number, lowerOnly = false): void {
  for (let i = 0; i < rows; i++) {
    const end = lowerOnly ? Math.min(cols, i + 1) : cols;
    for (let j = 0; j < end; j++) {
      if (!Number.isFinite(x[i * ld + j])) throw nonFinite(fn, name, i, j);
    }
  }
}

function nonFinite(fn: string, name: string, row: number, col: number): RangeError {
  return Object.assign(
    new RangeError(
      `${fn}(): argument '${name}' holds a non-finite value (NaN or ±Inf) at row ${row}, column ${col} (as stored); the kernels need finite inputs`,
    ),
    { code: "ERR_QUANTLENS_NON_FINITE" },
  );
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
