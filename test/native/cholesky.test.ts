/**
 * cholesky / trtriLower / gptqInverseCholeskyUpper (core/cholesky.h through kernels/linalg.ts):
 *   - L·Lᵀ reproduces A (relative Frobenius 1e-5 at n = 300 and 1000), L lower with zeros above;
 *   - non-SPD matrices return the first failing pivot (the upper triangle untouched), n = 0 and 1;
 *   - L·L⁻¹ = I; a zero diagonal is refused;
 *   - GPTQ's factor: U upper with a positive diagonal, Uᵀ·U = H⁻¹, equal to the float64 torch
 *     route cholesky(cholesky_inverse(cholesky(H)), upper=True); on failure H is restored;
 *   - NaN/Inf refused naming the element; cancellation; the event loop keeps turning.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CancelledError } from "../../extension/src/engine/errors";
import { cholesky, configureKernels, gptqInverseCholeskyUpper, sgemm, trtriLower } from "../../extension/src/engine/kernels/index";
import { choleskyRef, gptqInverseCholeskyUpperRef, trtriLowerRef } from "../../extension/src/engine/kernels/reference-linalg";
import { gaussian, NATIVE_DISABLED, requireNative } from "./helpers";

const k = requireNative();

/** ‖L·Lᵀ − A‖_F / ‖A‖_F (fp32 factor of a matrix with condition ~40; LAPACK spotrf gets ~1e-7). */
const CHOLESKY_RESIDUAL_TOL = 1e-5;
/** max |L·L⁻¹ − I| for the well-conditioned L above (cond(L) ≈ 6; measured ~2e-7). */
const TRTRI_IDENTITY_TOL = 1e-5;
/** ‖U − U_torch‖_F / ‖U_torch‖_F against the float64 torch route (cond(H) ≈ 40; measured ~5e-7). */
const GPTQ_FACTOR_TOL = 1e-5;
/** Same, for a damped rank-deficient Hessian as GPTQ sees it (cond ≈ 1e3–1e4): scaled by cond·ε. */
const GPTQ_ILL_TOL_PER_COND = 4e-7;

/** SPD test matrix: G·Gᵀ/n + 0.1·I (eigenvalues in ~[0.1, 4.1]), exactly symmetric, float32. */
async function spd(n: number, seed: number): Promise<Float32Array> {
  const g = gaussian(n * n, 0, 1, seed);
  const a = new Float32Array(n * n);
  await sgemm({ transA: false, transB: true, m: n, n, k: n, alpha: 1 / n, a: g, b: g, beta: 0, c: a });
  for (let i = 0; i < n; i++) {
    a[i * n + i] += 0.1;
    for (let j = i + 1; j < n; j++) a[i * n + j] = a[j * n + i];
  }
  return a;
}

/** ‖L·Lᵀ − A‖_F / ‖A‖_F in float64 (L lower, only its lower triangle used). */
function choleskyResidual(L: Float32Array, A: Float32Array, n: number): number {
  let num = 0, den = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let p = 0; p <= j; p++) s += L[i * n + p] * L[j * n + p];
      const d = s - A[i * n + j];
      const w = i === j ? 1 : 2;
      num += w * d * d;
      den += w * A[i * n + j] * A[i * n + j];
    }
  }
  return Math.sqrt(num / den);
}

function strictUpperIsZero(X: Float32Array, n: number): boolean {
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (X[i * n + j] !== 0) return false;
  return true;
}

function relFrobenius(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

/** torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True), float64. */
function torchRoute(H: Float32Array, n: number): Float64Array {
  const L = chol64(Float64Array.from(H), n);
  // Linv (lower), Hinv = Linvᵀ·Linv.
  const Linv = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    for (let i = j; i < n; i++) {
      let s = i === j ? 1 : 0;
      for (let p = j; p < i; p++) s -= L[i * n + p] * Linv[p * n + j];
      Linv[i * n + j] = s / L[i * n + i];
    }
  }
  const Hinv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = Math.max(i, j); p < n; p++) s += Linv[p * n + i] * Linv[p * n + j];
      Hinv[i * n + j] = s;
    }
  }
  const C = chol64(Hinv, n); // Hinv = C·Cᵀ, U = Cᵀ
  const U = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) U[i * n + j] = C[j * n + i];
  return U;
}

function chol64(A: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = A[j * n + j];
    for (let p = 0; p < j; p++) d -= L[j * n + p] ** 2;
    L[j * n + j] = Math.sqrt(d);
    for (let i = j + 1; i < n; i++) {
      let s = A[i * n + j];
      for (let p = 0; p < j; p++) s -= L[i * n + p] * L[j * n + p];
      L[i * n + j] = s / L[j * n + j];
    }
  }
  return L;
}

describe.skipIf(NATIVE_DISABLED)("native Cholesky family", () => {
  const native = k!;
  afterEach(() => {
    native.setSimd("auto");
    native.setThreads(0);
  });

  describe("cholesky", () => {
    it.each([2, 7, 33, 100, 300, 1000])("n = %i: L·Lᵀ reproduces A, zeros above the diagonal", async (n) => {
      const A = await spd(n, n);
      const L = A.slice();
      expect(await cholesky(L, n)).toEqual({ ok: true });
      expect(choleskyResidual(L, A, n)).toBeLessThan(CHOLESKY_RESIDUAL_TOL);
      expect(strictUpperIsZero(L, n)).toBe(true);
      if (n <= 300) {
        const R = A.slice();
        choleskyRef(R, n);
        expect(relFrobenius(L, R)).toBeLessThan(CHOLESKY_RESIDUAL_TOL);
      }
    });

    it("n = 0 and n = 1", async () => {
      expect(await cholesky(new Float32Array(0), 0)).toEqual({ ok: true });
      const one = new Float32Array([6.25]);
      expect(await cholesky(one, 1)).toEqual({ ok: true });
      expect(one[0]).toBe(2.5);
      expect(await cholesky(new Float32Array([-1]), 1)).toEqual({ ok: false, pivot: 0 });
      expect(await cholesky(new Float32Array([0]), 1)).toEqual({ ok: false, pivot: 0 });
    });

    it.each([0, 31, 32, 150, 299])("a negative pivot at %i is reported there; the upper triangle stays", async (p) => {
      const n = 300;
      const A = await spd(n, 3);
      A[p * n + p] = -1;
      const L = A.slice();
      expect(await cholesky(L, n)).toEqual({ ok: false, pivot: p });
      let upperKept = true;
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) upperKept &&= L[i * n + j] === A[i * n + j];
      expect(upperKept).toBe(true);
      expect(choleskyRef(A.slice(), n)).toEqual({ ok: false, pivot: p });
    });

    it("a rank-deficient PSD matrix fails at (about) its rank", async () => {
      const n = 120, r = 50;
      const g = gaussian(n * r, 0, 1, 4);
      const A = new Float32Array(n * n);
      await sgemm({ transA: false, transB: true, m: n, n, k: r, alpha: 1, a: g, b: g, beta: 0, c: A });
      const result = await cholesky(A, n);
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.pivot).toBeGreaterThanOrEqual(r - 1);
        expect(result.pivot).toBeLessThanOrEqual(r + 2);
      }
    });

    it("gives the same factor with the scalar micro-kernel and on one thread", async () => {
      const n = 400;
      const A = await spd(n, 8);
      const auto = A.slice();
      await cholesky(auto, n);
      native.setThreads(1);
      const one = A.slice();
      await cholesky(one, n);
      expect(Buffer.from(one.buffer).equals(Buffer.from(auto.buffer))).toBe(true);
      native.setSimd("scalar");
      const scalar = A.slice();
      await cholesky(scalar, n);
      expect(choleskyResidual(scalar, A, n)).toBeLessThan(CHOLESKY_RESIDUAL_TOL);
    });
  });

  describe("trtriLower", () => {
    it.each([1, 5, 33, 300, 1000])("n = %i: L·L⁻¹ = I, L⁻¹ lower", async (n) => {
      const L = await spd(n, 2 * n + 1);
      await cholesky(L, n);
      const X = L.slice();
      await trtriLower(X, n);
      expect(strictUpperIsZero(X, n)).toBe(true);
      const P = new Float32Array(n * n);
      await sgemm({ transA: false, transB: false, m: n, n, k: n, alpha: 1, a: L, b: X, beta: 0, c: P });
      let worst = 0;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) worst = Math.max(worst, Math.abs(P[i * n + j] - (i === j ? 1 : 0)));
      expect(worst).toBeLessThan(TRTRI_IDENTITY_TOL);
      if (n <= 300) {
        const R = L.slice();
        trtriLowerRef(R, n);
        expect(relFrobenius(X, R)).toBeLessThan(TRTRI_IDENTITY_TOL);
      }
    });

    it("a zero on the diagonal is refused, naming it", async () => {
      const L = new Float32Array([1, 0, 0, 2, 0, 0, 3, 4, 5]);
      const err = await trtriLower(L, 3).then(() => null, (e: unknown) => e as Error & { code?: string });
      expect(err).toBeInstanceOf(RangeError);
      expect(err?.message).toMatch(/trtriLower\(\): argument 'l' is singular: l\[1\]\[1\] is 0/);
      expect(err?.code).toBe("ERR_QUANTLENS_SINGULAR");
    });
  });

  describe("gptqInverseCholeskyUpper", () => {
    it.each([1, 5, 64, 300])("n = %i: equals the float64 torch route; U upper, diag > 0", async (n) => {
      const H = await spd(n, 5 * n);
      const U = H.slice();
      expect(await gptqInverseCholeskyUpper(U, n)).toBe(-1);
      for (let i = 0; i < n; i++) {
        expect(U[i * n + i]).toBeGreaterThan(0);
        for (let j = 0; j < i; j++) expect(U[i * n + j]).toBe(0);
      }
      expect(relFrobenius(U, torchRoute(H, n))).toBeLessThan(GPTQ_FACTOR_TOL);
      const R = H.slice();
      expect(gptqInverseCholeskyUpperRef(R, n)).toBe(-1);
      expect(relFrobenius(R, torchRoute(H, n))).toBeLessThan(1e-6);
    });

    it("n = 1000: H·(Uᵀ·U) = I", async () => {
      const n = 1000;
      const H = await spd(n, 17);
      const U = H.slice();
      expect(await gptqInverseCholeskyUpper(U, n)).toBe(-1);
      const Hinv = new Float32Array(n * n);
      await sgemm({ transA: true, transB: false, m: n, n, k: n, alpha: 1, a: U, b: U, beta: 0, c: Hinv });
      const P = new Float32Array(n * n);
      await sgemm({ transA: false, transB: false, m: n, n, k: n, alpha: 1, a: H, b: Hinv, beta: 0, c: P });
      let worst = 0;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) worst = Math.max(worst, Math.abs(P[i * n + j] - (i === j ? 1 : 0)));
      // cond(H) ≈ 40: fp32 residual ≈ cond · √n · ε.
      expect(worst).toBeLessThan(1e-4);
    });

    it("a damped rank-deficient Hessian (what GPTQ sees) stays within cond·ε of float64", async () => {
      const n = 256, tokens = 96;
      const x = gaussian(tokens * n, 0, 1, 21);
      for (let t = 0; t < tokens; t++) x[t * n + 7] *= 30; // an outlier channel
      const H = new Float32Array(n * n);
      await sgemm({ transA: true, transB: false, m: n, n, k: tokens, alpha: 2 / tokens, a: x, b: x, beta: 0, c: H });
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) H[i * n + j] = H[j * n + i];
      let mean = 0;
      for (let i = 0; i < n; i++) mean += H[i * n + i] / n;
      for (let i = 0; i < n; i++) H[i * n + i] += 0.01 * mean;
      const U = H.slice();
      expect(await gptqInverseCholeskyUpper(U, n)).toBe(-1);
      const expected = torchRoute(H, n);
      // cond(H) from the extreme pivots of the float64 factor (a lower bound, good to a small factor).
      let dmin = Infinity, dmax = 0;
      for (let i = 0; i < n; i++) {
        const d = 1 / expected[i * n + i] ** 2;
        dmin = Math.min(dmin, d);
        dmax = Math.max(dmax, d);
      }
      const cond = dmax / dmin;
      expect(cond).toBeGreaterThan(100);
      expect(relFrobenius(U, expected)).toBeLessThan(GPTQ_ILL_TOL_PER_COND * cond);
    });

    it("not SPD: returns the pivot and restores H exactly", async () => {
      const n = 200;
      const H = await spd(n, 6);
      H[120 * n + 120] = -3;
      const copy = H.slice();
      const pivot = await gptqInverseCholeskyUpper(H, n);
      expect(pivot).toBe(120);
      expect(Buffer.from(H.buffer).equals(Buffer.from(copy.buffer))).toBe(true);
      expect(gptqInverseCholeskyUpperRef(copy.slice(), n)).toBe(120);
    });
  });

  describe("sizes around the solve leaves (32-row slabs, 8×8 transposes, leaves of ≤ 32)", () => {
    // The triangular solves inside all three run on slabs of 32 right-hand sides (rows for X·Lᵀ = B,
    // columns for L·X = B) moved through 8×8 transposes: sizes off those multiples leave partial
    // slabs and tiles, in every combination as the recursion splits n.
    const SIZES = [3, 8, 9, 17, 31, 32, 33, 40, 47, 63, 65, 97, 129, 191, 257];

    it.each(SIZES)("n = %i: cholesky, trtriLower and the GPTQ factor against float64", async (n) => {
      const A = await spd(n, 100 + n);
      const L = A.slice();
      expect(await cholesky(L, n)).toEqual({ ok: true });
      const R = A.slice();
      choleskyRef(R, n);
      expect(relFrobenius(L, R)).toBeLessThan(CHOLESKY_RESIDUAL_TOL);
      const X = L.slice();
      await trtriLower(X, n);
      const Xr = L.slice();
      trtriLowerRef(Xr, n);
      expect(relFrobenius(X, Xr)).toBeLessThan(TRTRI_IDENTITY_TOL);
      expect(strictUpperIsZero(X, n)).toBe(true);
      const U = A.slice();
      expect(await gptqInverseCholeskyUpper(U, n)).toBe(-1);
      expect(relFrobenius(U, torchRoute(A, n))).toBeLessThan(GPTQ_FACTOR_TOL);
    });

    it("n = 523 (odd, every slab partial): SIMD, scalar, one and eight threads agree", async () => {
      const n = 523;
      const A = await spd(n, 77);
      const runs: Float32Array[] = [];
      for (const [simd, threads] of [["auto", 0], ["auto", 1], ["auto", 8], ["scalar", 0]] as const) {
        native.setSimd(simd);
        native.setThreads(threads);
        const X = A.slice();
        await cholesky(X, n);
        await trtriLower(X, n);
        runs.push(X);
      }
      // Thread count: bit for bit (fixed blocks); scalar vs SIMD leaves: rounding only.
      expect(Buffer.from(runs[1].buffer).equals(Buffer.from(runs[0].buffer))).toBe(true);
      expect(Buffer.from(runs[2].buffer).equals(Buffer.from(runs[0].buffer))).toBe(true);
      expect(relFrobenius(runs[3], runs[0])).toBeLessThan(1e-5);
      const R = A.slice();
      choleskyRef(R, n);
      trtriLowerRef(R, n);
      expect(relFrobenius(runs[0], R)).toBeLessThan(TRTRI_IDENTITY_TOL);
    });
  });

  describe("refusals, cancellation, event loop", () => {
    it("NaN/Inf is refused naming the function, argument and element", async () => {
      const A = await spd(40, 1);
      A[33 * 40 + 5] = NaN;
      await expect(cholesky(A, 40)).rejects.toThrow(/cholesky.*argument 'a' holds a non-finite value .* at row 33, column 5/);
      // Above the diagonal is not read by cholesky, but is by the GPTQ factor (H must be symmetric).
      const B = await spd(40, 2);
      B[5 * 40 + 33] = Infinity;
      expect(await cholesky(B.slice(), 40)).toEqual({ ok: true });
      await expect(gptqInverseCholeskyUpper(B, 40)).rejects.toThrow(/gptqInverseCholeskyUpper.*argument 'h' holds a non-finite value .* at row 5, column 33/);
      const L = new Float32Array([1, 0, -Infinity, 1]);
      await expect(trtriLower(L, 2)).rejects.toThrow(/trtriLower.*argument 'l' holds a non-finite value .* at row 1, column 0/);
    });

    it("bad lengths throw naming the argument", async () => {
      await expect(cholesky(new Float32Array(8), 3)).rejects.toThrow(/cholesky\(\): a.length \(8\) must be n·n = 9/);
      await expect(trtriLower(new Float32Array(4), -1)).rejects.toThrow(/n must be an integer/);
      await expect(gptqInverseCholeskyUpper(new Float64Array(4) as unknown as Float32Array, 2)).rejects.toThrow(/h must be a Float32Array/);
      const f = native.choleskyLower as (...args: unknown[]) => Promise<number>;
      expect(() => f(new Float32Array(8), 3, 3)).toThrow(/argument 'a' has 8 elements/);
    });

    it("a large GPTQ factor keeps the event loop turning and is cancellable", async () => {
      const n = 1536;
      const H = await spd(n, 9);
      let last = performance.now();
      let worst = 0;
      const probe = setInterval(() => {
        const now = performance.now();
        worst = Math.max(worst, now - last);
        last = now;
      }, 1);
      const started = performance.now();
      expect(await gptqInverseCholeskyUpper(H.slice(), n)).toBe(-1);
      const elapsed = performance.now() - started;
      clearInterval(probe);
      expect(worst).toBeLessThan(Math.max(60, elapsed / 3));
      const controller = new AbortController();
      const p = cholesky(H.slice(), n, { signal: controller.signal });
      setTimeout(() => controller.abort(), 1);
      await expect(p).rejects.toBeInstanceOf(CancelledError);
    });
  });
});

describe("Cholesky family TypeScript fallback (no addon)", () => {
  let A: Float32Array;
  const n = 60;
  beforeAll(async () => {
    A = await spd(n, 13); // built natively when available; the fallback starts below
    configureKernels({ allowNative: false });
  });
  afterAll(() => configureKernels({ allowNative: true }));

  it("cholesky, trtriLower and the GPTQ factor are the float64 references", async () => {
    const L = A.slice();
    expect(await cholesky(L, n)).toEqual({ ok: true });
    expect(choleskyResidual(L, A, n)).toBeLessThan(1e-6);
    const X = L.slice();
    await trtriLower(X, n);
    const R = L.slice();
    trtriLowerRef(R, n);
    expect(Array.from(X)).toEqual(Array.from(R));
    const U = A.slice();
    expect(await gptqInverseCholeskyUpper(U, n)).toBe(-1);
    expect(relFrobenius(U, torchRoute(A, n))).toBeLessThan(1e-6);
  });

  it("reports pivots, restores H, refuses NaN and singular L", async () => {
    const bad = A.slice();
    bad[17 * n + 17] = -2;
    expect(await cholesky(bad.slice(), n)).toEqual({ ok: false, pivot: 17 });
    const h = bad.slice();
    expect(await gptqInverseCholeskyUpper(h, n)).toBe(17);
    expect(Array.from(h)).toEqual(Array.from(bad));
    const nan = A.slice();
    nan[3 * n + 1] = NaN;
    await expect(cholesky(nan, n)).rejects.toThrow(/cholesky\(\): argument 'a' holds a non-finite value .* at row 3, column 1/);
    await expect(trtriLower(new Float32Array([2, 0, 1, 0]), 2)).rejects.toThrow(/argument 'l' is singular: l\[1\]\[1\] is 0/);
  });
});
