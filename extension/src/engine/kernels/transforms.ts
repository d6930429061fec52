/**
 * Orthogonal transforms for incoherence processing (QuIP): the orthonormal FWHT and seeded random
 * orthogonal transforms of any size (rule and math: native-kernels/core/orthogonal.h). Native
 * when the addon loads, else reference-transforms.ts; bit-identical either way.
 *
 *   await fwht(x, rows, 4096);                                    // rows of x ← H·x/√n
 *   const T = randomOrthogonalTransform({ n: 11008, seed: 7 });   // Q(43) ⊗ H(256)
 *   await T.apply(x, rows);                                       // rows ← T·row
 *   await T.apply(x, rows, { inverse: true });                    // rows ← Tᵀ·row
 */
import { expectArray, native, throwIfAborted, withCancel, type KernelCallOptions } from "./index";
import {
  fwhtRef,
  isPowerOfTwo,
  orthoApplyRef,
  orthoFactorsRef,
  orthoPlan,
  type FactorPlan,
  type OrthoFactor,
  type OrthoKind,
} from "./reference-transforms";

export { MAX_DENSE_FACTOR, orthoPlan } from "./reference-transforms";
export type { FactorPlan, OrthoFactor, OrthoKind } from "./reference-transforms";

export interface OrthogonalTransformConfig {
  /** The dimension: any n ≥ 1 without a prime factor above 4096 (MAX_DENSE_FACTOR). */
  n: number;
  /** Unsigned 32-bit seed: the same (n, seed, kind) gives the same transform everywhere. */
  seed: number;
  /** "auto" (default): dense(odd part) ⊗ Hadamard(2^k); "hadamard": n = 2^k only; "kron": two balanced dense factors. */
  kind?: OrthoKind;
}

export interface ApplyOptions extends KernelCallOptions {
  /** Apply Tᵀ = T⁻¹ instead of T. */
  inverse?: boolean;
}

export interface OrthogonalTransform {
  readonly n: number;
  readonly seed: number;
  readonly kind: OrthoKind;
  /** The Kronecker factors, outermost first (T = F_1 ⊗ F_2 ⊗ …). */
  readonly factors: readonly FactorPlan[];
  /** Rows of x [rows × n] in place (x ← T·x, or Tᵀ·x); resolves to x. */
  apply(x: Float32Array, rows: number, options?: ApplyOptions): Promise<Float32Array>;
  /** As apply, on the calling thread. */
  applySync(x: Float32Array, rows: number, options?: { inverse?: boolean }): Float32Array;
  /** The factors' random data (signs, Householder vectors), as the addon draws them. */
  drawFactors(): OrthoFactor[];
}

/** Rows of x [rows × n] ← H_n·row/√n in place (n a power of two); off the JS thread when native. */
export async function fwht(x: Float32Array, rows: number, n: number, options: KernelCallOptions = {}): Promise<Float32Array> {
  checkX("fwht", x, rows, n);
  if (!isPowerOfTwo(n)) throw new RangeError(`fwht(): n must be a power of two, got ${n}`);
  throwIfAborted(options.signal, "fwht");
  const k = native();
  if (!k) {
    checkFinite("fwht", x, n);
    fwhtRef(x, rows, n);
    return x;
  }
  await withCancel(k, options.signal, "fwht", (token) => k.fwht(x, rows, n, token));
  return x;
}

export function fwhtSync(x: Float32Array, rows: number, n: number): Float32Array {
  checkX("fwhtSync", x, rows, n);
  if (!isPowerOfTwo(n)) throw new RangeError(`fwhtSync(): n must be a power of two, got ${n}`);
  const k = native();
  if (k) k.fwhtSync(x, rows, n);
  else {
    checkFinite("fwhtSync", x, n);
    fwhtRef(x, rows, n);
  }
  return x;
}

/** A seeded random orthogonal transform of size n (throws a RangeError for an n it cannot do). */
export function randomOrthogonalTransform(config: OrthogonalTransformConfig): OrthogonalTransform {
  const { n, seed } = config;
  const kind = config.kind ?? "auto";
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`randomOrthogonalTransform(): seed must be an integer in [0, 2^32), got ${seed}`);
  }
  const factors = orthoPlan(n, kind);
  let drawn: OrthoFactor[] | null = null;
  const draw = () => (drawn ??= orthoFactorsRef(n, seed, kind));
  const applySync = (x: Float32Array, rows: number, options: { inverse?: boolean } = {}) => {
    checkX("OrthogonalTransform.applySync", x, rows, n);
    const k = native();
    if (k) k.orthoApplySync(x, rows, n, seed, kind, options.inverse ?? false);
    else orthoApplyRef(draw(), n, x, rows, options.inverse ?? false);
    return x;
  };
  return {
    n,
    seed,
    kind,
    factors,
    drawFactors: () => {
      const k = native();
      return k ? k.orthoFactors(n, seed, kind) : draw();
    },
    applySync,
    async apply(x, rows, options = {}) {
      const fn = "OrthogonalTransform.apply";
      checkX(fn, x, rows, n);
      throwIfAborted(options.signal, fn);
      const k = native();
      if (!k) return applySync(x, rows, options);
      await withCancel(k, options.signal, fn, (token) => k.orthoApply(x, rows, n, seed, kind, options.inverse ?? false, token));
      return x;
    },
  };
}

function checkX(fn: string, x: Float32Array, rows: number, n: number): void {
  expectArray(fn, "x", x, Float32Array);
  if (!Number.isSafeInteger(rows) || rows < 0) throw new RangeError(`${fn}(): rows must be a non-negative integer, got ${rows}`);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${fn}(): n must be a positive integer, got ${n}`);
  if (x.length !== rows * n) throw new RangeError(`${fn}(): x has ${x.length} values, not rows ${rows} × n ${n}`);
}

/** The reference FWHT has no per-row check of its own: the same message as the addon's. */
function checkFinite(fn: string, x: Float32Array, n: number): void {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      const what = Number.isNaN(x[i]) ? "NaN" : "infinite";
      throw new RangeError(`${fn}(): X[${Math.floor(i / n)}, ${i % n}] is ${what}; transform finite values only`);
    }
  }
}
