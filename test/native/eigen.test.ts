/**
 * symmetricEigen (kernels/eigen.ts → native-kernels/core/eigen.h) against the cyclic Jacobi
 * reference (reference-eigen.ts) and against spectra known in closed form:
 *   - random symmetric matrices, float32 and float64 input, SIMD and scalar paths;
 *   - diagonal matrices (exact), Q·diag(λ)·Qᵀ with λ spanning 1e-8..1e4, repeated eigenvalues,
 *     a rank-deficient XᵀX, the 1-D Laplacian (λ_k = 2 − 2cos(kπ/(n+1)));
 *   - A·V = V·Λ and VᵀV = I on every case with vectors;
 *   - bad input (NaN, types, lengths, n > 4096 with vectors), cancellation, the event loop
 *     turning during n = 1000, results independent of the thread count, the Jacobi fallback.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { CancelledError } from "../../extension/src/engine/errors";
import {
  EIGEN_MAX_N_VECTORS,
  setThreads,
  symmetricEigen,
  type SymmetricEigenResult,
} from "../../extension/src/engine/kernels/index";
import type * as KernelsModule from "../../extension/src/engine/kernels/index";
import { symmetricEigenJacobiRef } from "../../extension/src/engine/kernels/reference-eigen";
import { NATIVE_DISABLED, requireNative, uniform } from "./helpers";

const k = requireNative();

/**
 * Tolerances relative to ‖A‖₂ = max|λ|: the algorithm (Householder + divide and conquer) is
 * backward stable, so errors scale with the norm, not with each eigenvalue. Measured worst cases
 * over the cases below are ~2e-15 (values, residuals) and ~1e-14 (orthogonality at n = 500);
 * a real bug (a wrong reflector, a lost deflation rotation) is off by far more.
 */
const EIGEN_TOL = {
  /** |λ̂ − λ| ≤ value·‖A‖₂ (the brief's bar is 1e-12). */
  value: 1e-13,
  /** Relative error of eigenvalues above 1e-3·‖A‖₂: |λ̂ − λ| ≤ relativeLarge·|λ|. */
  relativeLarge: 1e-11,
  /** max_ij |(A·V − V·Λ)_ij| ≤ residual·‖A‖₂. */
  residual: 1e-13,
  /** max_ij |(VᵀV − I)_ij| ≤ orthogonality·n (the brief's bar is 1e-10·n). */
  orthogonality: 1e-14,
  /** The same for float32 vectors (rounded at the end). */
  orthogonality32: 1e-6,
} as const;

// ---- matrices ------------------------------------------------------------------------------

function gaussian64(n: number, seed: number): Float64Array {
  const u = uniform(seed);
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sqrt(-2 * Math.log(u() || Number.MIN_VALUE)) * Math.cos(2 * Math.PI * u());
  return x;
}

/** A random symmetric matrix, both triangles filled. */
function randomSymmetric(n: number, seed: number): Float64Array {
  const g = gaussian64(n * n, seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = g[i * n + j];
  return a;
}

/** Q·diag(λ)·Qᵀ with Q a product of n random Householder reflectors (both triangles, fp64). */
function withSpectrum(lambda: number[], seed: number): Float64Array {
  const n = lambda.length;
  const m = new Float64Array(n * n);
  lambda.forEach((l, i) => (m[i * n + i] = l));
  const g = gaussian64(n * n, seed);
  const mu = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    // M ← H·M·H with H = I − 2uuᵀ: M −= 2u(uᵀM) then M −= 2(Mu)uᵀ.
    const u = g.subarray(r * n, (r + 1) * n);
    const norm = Math.hypot(...u);
    for (let i = 0; i < n; i++) u[i] /= norm;
    mu.fill(0);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) mu[j] += u[i] * m[i * n + j];
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] -= 2 * u[i] * mu[j];
    mu.fill(0);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) mu[i] += m[i * n + j] * u[j];
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] -= 2 * mu[i] * u[j];
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) m[j * n + i] = m[i * n + j] = (m[i * n + j] + m[j * n + i]) / 2;
  return m;
}

/** The tridiagonal 1-D Laplacian: 2 on the diagonal, −1 beside it. */
function laplacian(n: number): Float64Array {
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    a[i * n + i] = 2;
    if (i > 0) a[i * n + i - 1] = a[(i - 1) * n + i] = -1;
  }
  return a;
}

/** (2/rows)·XᵀX for a Gaussian X [rows×n] (rank min(rows, n)), with two outlier channels. */
function hessianLike(n: number, rows: number, seed: number): Float64Array {
  const x = gaussian64(rows * n, seed);
  for (let r = 0; r < rows; r++) {
    x[r * n + 3] *= 100;
    x[r * n + (n >> 1)] *= 30;
  }
  const h = new Float64Array(n * n);
  for (let r = 0; r < rows; r++) {
    const xr = x.subarray(r * n, (r + 1) * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) h[i * n + j] += xr[i] * xr[j];
  }
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) h[j * n + i] = h[i * n + j] = (2 / rows) * h[i * n + j];
  return h;
}

// ---- checks ---------------------------------------------------------------------------------

const norm2 = (values: Float64Array) => Math.max(Math.abs(values[0]), Math.abs(values[values.length - 1]));

function maxValueError(actual: Float64Array, expected: ArrayLike<number>): number {
  let err = 0;
  for (let i = 0; i < actual.length; i++) err = Math.max(err, Math.abs(actual[i] - expected[i]));
  return err;
}

/** max |(A·V − V·Λ)_ij| / ‖A‖₂ and max |(VᵀV − I)_ij| / n (the full symmetric A). */
function vectorErrors(a: ArrayLike<number>, n: number, r: SymmetricEigenResult<Float64Array | Float32Array>) {
  const v = r.vectors!;
  let residual = 0;
  let orthogonality = 0;
  const av = new Float64Array(n);
  const vj = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) vj[i] = v[i * n + j];
    av.fill(0);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let l = 0; l < n; l++) s += a[i * n + l] * vj[l];
      av[i] = s;
    }
    for (let i = 0; i < n; i++) residual = Math.max(residual, Math.abs(av[i] - vj[i] * r.values[j]));
    for (let p = 0; p <= j; p++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += v[i * n + p] * vj[i];
      orthogonality = Math.max(orthogonality, Math.abs(s - (p === j ? 1 : 0)));
    }
  }
  return { residual: residual / Math.max(norm2(r.values), Number.MIN_VALUE), orthogonality: orthogonality / n };
}

function expectGoodVectors(a: ArrayLike<number>, n: number, r: SymmetricEigenResult<Float64Array | Float32Array>) {
  const e = vectorErrors(a, n, r);
  const float32 = r.vectors instanceof Float32Array;
  expect(e.residual).toBeLessThanOrEqual(float32 ? 10 * EIGEN_TOL.orthogonality32 : EIGEN_TOL.residual);
  expect(e.orthogonality).toBeLessThanOrEqual(float32 ? EIGEN_TOL.orthogonality32 : EIGEN_TOL.orthogonality);
  return e;
}

function expectAscending(values: Float64Array): void {
  for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThanOrEqual(values[i - 1]);
}

function lowerOnly(a: Float64Array, n: number, fill: number): Float64Array {
  const b = Float64Array.from(a);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) b[i * n + j] = fill;
  return b;
}

// ---- tests ----------------------------------------------------------------------------------

describe.skipIf(NATIVE_DISABLED)("native symmetricEigen", () => {
  afterEach(() => {
    k!.setSimd("auto");
    setThreads(0);
  });

  describe.each([1, 2, 3, 17, 64, 200])("random symmetric n = %i", (n) => {
    const a = randomSymmetric(n, 1000 + n);
    const ref = symmetricEigenJacobiRef(a, n, false);

    it("float64 input: values match Jacobi, vectors are eigenvectors and orthonormal", async () => {
      const r = await symmetricEigen(a, n, { vectors: true });
      expectAscending(r.values);
      expect(maxValueError(r.values, ref.values)).toBeLessThanOrEqual(EIGEN_TOL.value * norm2(ref.values));
      expectGoodVectors(a, n, r);
      const valuesOnly = await symmetricEigen(a, n);
      expect(valuesOnly.vectors).toBeUndefined();
      expect(maxValueError(valuesOnly.values, ref.values)).toBeLessThanOrEqual(EIGEN_TOL.value * norm2(ref.values));
    });

    it("float32 input and float32 vectors; the scalar path agrees", async () => {
      const a32 = Float32Array.from(a);
      const ref32 = symmetricEigenJacobiRef(a32, n, false);
      const r = await symmetricEigen(a32, n, { vectors: true, vectorType: "float32" });
      expect(r.vectors).toBeInstanceOf(Float32Array);
      expect(maxValueError(r.values, ref32.values)).toBeLessThanOrEqual(EIGEN_TOL.value * norm2(ref32.values));
      expectGoodVectors(a32, n, r);
      k!.setSimd("scalar");
      const scalar = await symmetricEigen(a32, n, { vectors: true });
      expect(maxValueError(scalar.values, ref32.values)).toBeLessThanOrEqual(EIGEN_TOL.value * norm2(ref32.values));
      expectGoodVectors(a32, n, scalar);
    });
  });

  it("reads only the lower triangle (NaN above the diagonal is ignored)", async () => {
    const n = 40;
    const a = randomSymmetric(n, 7);
    const clean = await symmetricEigen(a, n, { vectors: true });
    const dirty = await symmetricEigen(lowerOnly(a, n, NaN), n, { vectors: true });
    expect(dirty.values).toEqual(clean.values);
    expect(dirty.vectors).toEqual(clean.vectors);
  });

  it("diagonal matrices: the sorted diagonal exactly, unit vectors", async () => {
    const d = [3, -1, 0, 7.5, -1, 1e-300, 2 ** 60, 3, -4e10, 0.5];
    const n = d.length;
    const a = new Float64Array(n * n);
    d.forEach((x, i) => (a[i * n + i] = x));
    const r = await symmetricEigen(a, n, { vectors: true });
    expect(Array.from(r.values)).toEqual([...d].sort((x, y) => x - y));
    for (let j = 0; j < n; j++) {
      let ones = 0;
      for (let i = 0; i < n; i++) {
        const x = Math.abs(r.vectors![i * n + j]);
        expect(x === 0 || x === 1).toBe(true);
        ones += x;
      }
      expect(ones).toBe(1);
    }
    const zero = await symmetricEigen(new Float32Array(9), 3, { vectors: true });
    expect(Array.from(zero.values)).toEqual([0, 0, 0]);
    expectGoodVectors(new Float32Array(9), 3, zero);
  });

  it("Q·diag(λ)·Qᵀ, λ log-spaced over 1e-8..1e4: absolute to ‖A‖, relative for the large ones", async () => {
    const n = 120;
    const lambda = Array.from({ length: n }, (_, i) => 10 ** (-8 + (12 * i) / (n - 1)));
    const a = withSpectrum(lambda, 11);
    const r = await symmetricEigen(a, n, { vectors: true });
    expect(maxValueError(r.values, lambda)).toBeLessThanOrEqual(EIGEN_TOL.value * 1e4);
    for (let i = 0; i < n; i++) {
      if (lambda[i] >= 1e-3 * 1e4) expect(Math.abs(r.values[i] - lambda[i])).toBeLessThanOrEqual(EIGEN_TOL.relativeLarge * lambda[i]);
    }
    expectGoodVectors(a, n, r);
    // The Jacobi reference sees the same matrix to the same accuracy.
    expect(maxValueError(r.values, symmetricEigenJacobiRef(a, n, false).values)).toBeLessThanOrEqual(EIGEN_TOL.value * 1e4);
  });

  it("repeated eigenvalues: the multiplicities, and an orthonormal basis of each eigenspace", async () => {
    const lambda = [...Array(40).fill(-2), ...Array(60).fill(1), ...Array(50).fill(5), 9];
    const n = lambda.length;
    const a = withSpectrum(lambda, 12);
    const r = await symmetricEigen(a, n, { vectors: true });
    expect(maxValueError(r.values, lambda)).toBeLessThanOrEqual(EIGEN_TOL.value * 9);
    expectGoodVectors(a, n, r);
  });

  it("rank-deficient PSD XᵀX (30 rows, n = 100): 70 zeros to ‖A‖·tol, the rest as Jacobi", async () => {
    const n = 100;
    const a = hessianLike(n, 30, 13);
    const r = await symmetricEigen(a, n, { vectors: true });
    const ref = symmetricEigenJacobiRef(a, n, false);
    const scale = norm2(ref.values);
    for (let i = 0; i < 70; i++) expect(Math.abs(r.values[i])).toBeLessThanOrEqual(EIGEN_TOL.value * scale);
    expect(maxValueError(r.values, ref.values)).toBeLessThanOrEqual(EIGEN_TOL.value * scale);
    expectGoodVectors(a, n, r);
  });

  it("1-D Laplacian, n = 500: λ_k = 2 − 2cos(kπ/(n+1))", async () => {
    const n = 500;
    const a = laplacian(n);
    const exact = Array.from({ length: n }, (_, i) => 2 - 2 * Math.cos(((i + 1) * Math.PI) / (n + 1)));
    const r = await symmetricEigen(a, n, { vectors: true });
    expect(maxValueError(r.values, exact)).toBeLessThanOrEqual(EIGEN_TOL.value * 4);
    expectGoodVectors(a, n, r);
    const valuesOnly = await symmetricEigen(Float32Array.from(a), n);
    expect(maxValueError(valuesOnly.values, exact)).toBeLessThanOrEqual(EIGEN_TOL.value * 4);
  });

  it("eigenvalues alone for n ≥ 2048 (two-stage, through a band) agree with closed forms and the vectors path", async () => {
    const n = 2048;
    const exact = Array.from({ length: n }, (_, i) => 2 - 2 * Math.cos(((i + 1) * Math.PI) / (n + 1)));
    const lap = await symmetricEigen(laplacian(n), n);
    expect(maxValueError(lap.values, exact)).toBeLessThanOrEqual(EIGEN_TOL.value * 4);
    const a = Float32Array.from(randomSymmetric(n, 18));
    const valuesOnly = await symmetricEigen(a, n);
    const withVectors = await symmetricEigen(a, n, { vectors: true, vectorType: "float32" });
    expect(maxValueError(valuesOnly.values, withVectors.values)).toBeLessThanOrEqual(EIGEN_TOL.value * norm2(withVectors.values));
    // The bulge chasing runs sweeps in a pipeline across threads; one thread gives the same bits.
    setThreads(1);
    const oneThread = await symmetricEigen(a, n);
    expect(Buffer.from(oneThread.values.buffer).equals(Buffer.from(valuesOnly.values.buffer))).toBe(true);
  });

  it("a Hessian-like matrix with outlier channels (n = 300): as Jacobi, good vectors", async () => {
    const n = 300;
    const a = hessianLike(n, 400, 14);
    const r = await symmetricEigen(Float32Array.from(a), n, { vectors: true });
    const ref = symmetricEigenJacobiRef(Float32Array.from(a), n, false);
    expect(maxValueError(r.values, ref.values)).toBeLessThanOrEqual(EIGEN_TOL.value * norm2(ref.values));
    expectGoodVectors(Float32Array.from(a), n, r);
  });

  it("results do not depend on the thread count", async () => {
    const n = 700;
    const a = Float32Array.from(hessianLike(n, 200, 15));
    const runs: SymmetricEigenResult[] = [];
    for (const threads of [1, 2, 3]) {
      setThreads(threads);
      runs.push(await symmetricEigen(a, n, { vectors: true }));
    }
    for (const r of runs.slice(1)) {
      expect(Buffer.from(r.values.buffer).equals(Buffer.from(runs[0].values.buffer))).toBe(true);
      expect(Buffer.from(r.vectors!.buffer).equals(Buffer.from(runs[0].vectors!.buffer))).toBe(true);
    }
  });

  it("n = 0 gives empty results", async () => {
    const r = await symmetricEigen(new Float64Array(0), 0, { vectors: true });
    expect(r.values.length).toBe(0);
    expect(r.vectors!.length).toBe(0);
  });

  describe("bad input", () => {
    it("NaN or ±Inf in the lower triangle rejects, naming the function, the argument and the element", async () => {
      const n = 5;
      const a = randomSymmetric(n, 3);
      a[3 * n + 1] = NaN;
      await expect(symmetricEigen(a, n)).rejects.toThrow(/symmetricEigen\(\): argument 'a' holds a non-finite value .* row 3, column 1/);
      await expect(symmetricEigen(a, n)).rejects.toMatchObject({ code: "ERR_QUANTLENS_NON_FINITE" });
      const b = Float32Array.from(randomSymmetric(n, 4));
      b[4 * n + 4] = -Infinity;
      await expect(symmetricEigen(b, n, { vectors: true })).rejects.toThrow(RangeError);
    });

    it("types, lengths, n and options are checked before anything runs", async () => {
      await expect(symmetricEigen([1, 2, 3, 4] as unknown as Float64Array, 2)).rejects.toThrow(
        /symmetricEigen\(\): argument 'a' must be a Float32Array or a Float64Array, got Array/,
      );
      await expect(symmetricEigen(new Float64Array(6), 2)).rejects.toThrow(/argument 'a' has 6 elements.*needs 4/);
      await expect(symmetricEigen(new Float64Array(4), 2.5)).rejects.toThrow(/argument 'n' must be an integer/);
      await expect(symmetricEigen(new Float64Array(4), 2, { vectorType: "f16" as "float32" })).rejects.toThrow(/vectorType/);
    });

    it("n > 4096 with vectors is refused with a way out", async () => {
      const n = EIGEN_MAX_N_VECTORS + 1;
      await expect(symmetricEigen(new Float32Array(n * n), n, { vectors: true })).rejects.toThrow(
        /eigenvectors are limited to n ≤ 4096 .*\{ vectors: false \}/,
      );
    });

    it("the addon checks its arguments too", () => {
      const values = new Float64Array(2);
      expect(() => k!.symmetricEigen(new Int32Array(4) as unknown as Float32Array, 2, values, null)).toThrow(TypeError);
      expect(() => k!.symmetricEigen(new Float64Array(5), 2, values, null)).toThrow(/argument 'a'/);
      expect(() => k!.symmetricEigen(new Float64Array(4), 2, new Float64Array(3), null)).toThrow(/argument 'values'/);
      expect(() => k!.symmetricEigen(new Float64Array(4), 2, values, new Float64Array(3))).toThrow(/argument 'vectors'/);
      const shared = new Float64Array(6);
      expect(() => k!.symmetricEigen(shared.subarray(0, 4), 2, shared.subarray(3, 5), null)).toThrow(/overlaps/);
    });
  });

  describe("long runs", () => {
    it("cancellation rejects with CancelledError (before and during the run)", async () => {
      const aborted = new AbortController();
      aborted.abort();
      await expect(symmetricEigen(new Float64Array(4), 2, { signal: aborted.signal })).rejects.toThrow(CancelledError);
      const n = 2000;
      const a = Float32Array.from(hessianLike(n, 64, 16));
      const controller = new AbortController();
      const started = performance.now();
      const pending = symmetricEigen(a, n, { vectors: true, signal: controller.signal });
      setTimeout(() => controller.abort(), 30);
      await expect(pending).rejects.toThrow(CancelledError);
      expect(performance.now() - started).toBeLessThan(5000);
    });

    it("n = 1000 with vectors runs off the JS thread: timers keep firing", async () => {
      const n = 1000;
      const a = Float32Array.from(randomSymmetric(n, 17));
      let ticks = 0;
      const timer = setInterval(() => ticks++, 2);
      try {
        const r = await symmetricEigen(a, n, { vectors: true });
        expect(r.values.length).toBe(n);
        expectAscending(r.values);
      } finally {
        clearInterval(timer);
      }
      expect(ticks).toBeGreaterThanOrEqual(5);
    });
  });
});

describe("Jacobi fallback (QUANTLENS_NATIVE=0)", () => {
  type Kernels = typeof KernelsModule;
  afterEach(() => vi.unstubAllEnvs());

  async function fallbackKernels(): Promise<Kernels> {
    vi.stubEnv("QUANTLENS_NATIVE", "0");
    vi.resetModules();
    const kernels: Kernels = await import("../../extension/src/engine/kernels/index");
    kernels.configureKernels({ log: () => undefined });
    return kernels;
  }

  it("gives the reference's values and good vectors, yields, cancels, and checks like native", async () => {
    const kernels = await fallbackKernels();
    expect(kernels.kernelBackend().native).toBe(false);
    const n = 60;
    const a = randomSymmetric(n, 21);
    const r = await kernels.symmetricEigen(a, n, { vectors: true, vectorType: "float32" });
    const ref = symmetricEigenJacobiRef(a, n, true);
    expect(Array.from(r.values)).toEqual(Array.from(ref.values));
    expect(r.vectors).toEqual(Float32Array.from(ref.vectors!));
    expectGoodVectors(a, n, r);
    const bad = Float64Array.from(a);
    bad[2 * n + 2] = NaN;
    await expect(kernels.symmetricEigen(bad, n)).rejects.toThrow(/argument 'a' holds a non-finite value .* row 2, column 2/);
    const controller = new AbortController();
    const pending = kernels.symmetricEigen(randomSymmetric(300, 22), 300, { signal: controller.signal });
    setTimeout(() => controller.abort(), 5);
    // A fresh module graph: its CancelledError is another class object, so match by name.
    await expect(pending).rejects.toMatchObject({ name: "CancelledError" });
  });
});
