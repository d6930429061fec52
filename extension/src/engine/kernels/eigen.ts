/**
 * Symmetric eigendecomposition A = V·diag(λ)·Vᵀ — Hessian spectra, condition numbers and QuIP's
 * incoherence μ_H = max|V_ij|·√n: validated arguments, then the addon (core/eigen.h: Householder
 * tridiagonalization — through a band for eigenvalues alone from n = 2048 — then implicit QL or,
 * with vectors, divide and conquer; fp64, multithreaded, off the JS thread) when it loads, else
 * the cyclic Jacobi reference (reference-eigen.ts). The fallback yields to the event loop and
 * can be cancelled, but it is O(n³) per sweep with ~12 sweeps (about 3 s at n = 500 and 40 s at
 * n = 1000 with vectors): Hessian-sized matrices need the addon.
 *
 *   const { values } = await symmetricEigen(H, n);                        // ascending
 *   const { values, vectors } = await symmetricEigen(H, n, { vectors: true, signal });
 *   // vectors[i·n + j]: component i of the unit eigenvector of values[j]
 *
 * Input: a Float32Array or Float64Array [n×n], row-major. Only the lower triangle (a[i·n + j],
 * j ≤ i) is read — the upper one is ignored and may hold anything — and it must be finite.
 * Accuracy (native): |λ̂ − λ| ≲ 1e-13·‖A‖₂ in absolute terms (tiny eigenvalues of ill-conditioned
 * Hessians are only that accurate), ‖VᵀV − I‖ ≲ 1e-14·n; measured ~1e-15 for both. Time on 2
 * cores (AMD EPYC, AVX2): with vectors ~0.2 s at n = 1024 and ~7 s at 4096; eigenvalues alone
 * ~3–4 s at 4096 and ~40 s at 11008.
 */
import { CancelledError } from "../errors";
import { native, throwIfAborted, withCancel, type KernelCallOptions } from "./index";
import { JacobiEigen } from "./reference-eigen";

export { symmetricEigenJacobiRef, type EigenRef } from "./reference-eigen";

/** Largest n for eigenvalues (the addon needs 8·n² bytes of work, the input aside). */
export const EIGEN_MAX_N = 32768;
/** Largest n for eigenvectors (≈ 3 × 8·n² bytes of work, ~8·n³ flops). */
export const EIGEN_MAX_N_VECTORS = 4096;

export interface SymmetricEigenOptions extends KernelCallOptions {
  /** Compute the eigenvectors too (n ≤ EIGEN_MAX_N_VECTORS). Default false. */
  vectors?: boolean;
  /** Element type of the returned vectors; both are computed in fp64. Default "float64". */
  vectorType?: "float64" | "float32";
}

export interface SymmetricEigenResult<V extends Float64Array | Float32Array = Float64Array> {
  /** The n eigenvalues, ascending. */
  values: Float64Array;
  /** [n×n] row-major, column j = the unit eigenvector of values[j] (when asked for). */
  vectors?: V;
}

/** The Jacobi fallback gives the event loop a turn after about this many multiply-adds. */
const FALLBACK_MACS_PER_TURN = 1 << 22;
const FN = "symmetricEigen";

/**
 * Eigenvalues (ascending) and optionally eigenvectors of the symmetric matrix `a` [n×n].
 * Rejects with a TypeError/RangeError naming the argument for a bad type, length, n, or a
 * NaN/±Inf in the lower triangle (code ERR_QUANTLENS_NON_FINITE), and with CancelledError when
 * `signal` aborts. `a` must not be modified while the call is pending.
 */
export function symmetricEigen(
  a: Float32Array | Float64Array,
  n: number,
  options?: SymmetricEigenOptions & { vectorType?: "float64" },
): Promise<SymmetricEigenResult<Float64Array>>;
export function symmetricEigen(
  a: Float32Array | Float64Array,
  n: number,
  options: SymmetricEigenOptions & { vectorType: "float32" },
): Promise<SymmetricEigenResult<Float32Array>>;
export async function symmetricEigen(
  a: Float32Array | Float64Array,
  n: number,
  options: SymmetricEigenOptions = {},
): Promise<SymmetricEigenResult<Float64Array | Float32Array>> {
  const wantVectors = checkEigenArgs(a, n, options);
  const { signal } = options;
  throwIfAborted(signal, FN);
  const values = new Float64Array(n);
  const vectors = wantVectors ? (options.vectorType === "float32" ? new Float32Array(n * n) : new Float64Array(n * n)) : null;
  const k = native();
  if (k) {
    await withCancel(k, signal, FN, (token) => k.symmetricEigen(a, n, values, vectors, token));
    return vectors ? { values, vectors } : { values };
  }
  const bad = findNonFiniteLower(a, n);
  if (bad) throw nonFinite(bad.row, bad.col);
  const run = new JacobiEigen(a, n, wantVectors);
  while (!run.step(FALLBACK_MACS_PER_TURN)) {
    await nextTurn();
    if (signal?.aborted) throw new CancelledError(FN);
  }
  const result = run.result();
  values.set(result.values);
  if (!vectors || !result.vectors) return { values };
  vectors.set(result.vectors);
  return { values, vectors };
}

/** Throws (TypeError/RangeError naming the argument) unless the call is well formed; returns `vectors`. */
function checkEigenArgs(a: unknown, n: number, options: SymmetricEigenOptions): boolean {
  if (!(a instanceof Float32Array) && !(a instanceof Float64Array)) {
    throw new TypeError(`${FN}(): argument 'a' must be a Float32Array or a Float64Array, got ${describe(a)}`);
  }
  if (!Number.isInteger(n) || n < 0 || n > EIGEN_MAX_N) {
    throw new RangeError(`${FN}(): argument 'n' must be an integer in [0, ${EIGEN_MAX_N}], got ${String(n)}`);
  }
  if (a.length !== n * n) {
    throw new RangeError(`${FN}(): argument 'a' has ${a.length} elements; an n × n matrix with n = ${n} needs ${n * n}`);
  }
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${FN}(): argument 'options' must be an object, got ${describe(options)}`);
  }
  const { vectors = false, vectorType = "float64" } = options;
  if (typeof vectors !== "boolean") {
    throw new TypeError(`${FN}(): option 'vectors' must be a boolean, got ${describe(vectors)}`);
  }
  if (vectorType !== "float64" && vectorType !== "float32") {
    throw new RangeError(`${FN}(): option 'vectorType' must be "float64" or "float32", got ${JSON.stringify(vectorType)}`);
  }
  if (vectors && n > EIGEN_MAX_N_VECTORS) {
    throw new RangeError(
      `${FN}(): eigenvectors are limited to n ≤ ${EIGEN_MAX_N_VECTORS} (asked for n = ${n}: ~8·n³ flops and 3 × 8·n² bytes); ` +
        "pass { vectors: false } for the eigenvalues alone",
    );
  }
  return vectors;
}

/** The first NaN/±Inf of the lower triangle, or undefined. */
function findNonFiniteLower(a: Float32Array | Float64Array, n: number): { row: number; col: number } | undefined {
  for (let i = 0; i < n; i++) {
    const row = i * n;
    for (let j = 0; j <= i; j++) {
      if (!Number.isFinite(a[row + j])) return { row: i, col: j };
    }
  }
  return undefined;
}

function nonFinite(row: number, col: number): RangeError {
  return Object.assign(
    new RangeError(
      `${FN}(): argument 'a' holds a non-finite value (NaN or ±Inf) at row ${row}, column ${col} (its lower triangle must be finite)`,
    ),
    { code: "ERR_QUANTLENS_NON_FINITE" },
  );
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  const ctor = (value as { constructor?: { name?: string } }).constructor;
  return ctor?.name ?? "an object";
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
