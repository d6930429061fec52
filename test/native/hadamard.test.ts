/**
 * The orthonormal FWHT (core/hadamard.h): the math (explicit Sylvester matrix, H·H = I, norms),
 * and the addon against the TypeScript reference bit for bit on the AVX2 and the scalar path
 * (every stage is the same IEEE add/sub per element, in any grouping), on any thread count.
 */
import { afterEach, describe, expect, it } from "vitest";
import { fwht, fwhtSync } from "../../extension/src/engine/kernels/index";
import { fwhtNorm, fwhtRef } from "../../extension/src/engine/kernels/reference-transforms";
import { bytesDiffer, gaussian, NATIVE_DISABLED, requireNative } from "./helpers";

const k = requireNative();

/** |H(Hx) − x| ≤ HH_TOL·‖x‖∞·log2(n): two passes of log2 n float adds plus two scalings. */
const HH_TOL = 4e-7;
/** fwht vs the explicit matrix in double, relative to ‖x‖₂. */
const MATRIX_TOL = 1e-6;

/** H[i][j] = (−1)^popcount(i & j) / √n, in double. */
function hadamardEntry(i: number, j: number, n: number): number {
  let v = i & j;
  let parity = 0;
  while (v) {
    parity ^= v & 1;
    v >>= 1;
  }
  return (parity ? -1 : 1) / Math.sqrt(n);
}

describe("FWHT (reference)", () => {
  it("equals the explicit Sylvester Hadamard matrix for n ≤ 64", () => {
    for (let n = 1; n <= 64; n *= 2) {
      const rows = 3;
      const x = gaussian(rows * n, 0, 1, n);
      const y = x.slice();
      fwhtRef(y, rows, n);
      for (let r = 0; r < rows; r++) {
        let norm = 0;
        for (let j = 0; j < n; j++) norm += x[r * n + j] ** 2;
        for (let i = 0; i < n; i++) {
          let want = 0;
          for (let j = 0; j < n; j++) want += hadamardEntry(i, j, n) * x[r * n + j];
          expect(Math.abs(y[r * n + i] - want)).toBeLessThanOrEqual(MATRIX_TOL * Math.sqrt(norm));
        }
      }
    }
  });

  it("is its own inverse (H·H = I) and preserves norms", () => {
    for (const n of [1, 2, 4, 8, 16, 1024, 4096]) {
      const x = gaussian(2 * n, 0, 1, 3 * n);
      const y = x.slice();
      fwhtRef(y, 2, n);
      let a = 0, b = 0;
      for (let i = 0; i < n; i++) {
        a += x[i] ** 2;
        b += y[i] ** 2;
      }
      expect(Math.abs(b / a - 1)).toBeLessThan(1e-5);
      fwhtRef(y, 2, n);
      let amax = 0, err = 0;
      for (let i = 0; i < x.length; i++) {
        amax = Math.max(amax, Math.abs(x[i]));
        err = Math.max(err, Math.abs(y[i] - x[i]));
      }
      expect(err).toBeLessThanOrEqual(HH_TOL * amax * Math.max(1, Math.log2(n)));
    }
  });

  it("uses float(1/√n) as the scale (exact powers of two when log2 n is even)", () => {
    expect(fwhtNorm(4096)).toBe(1 / 64);
    expect(fwhtNorm(2)).toBe(Math.fround(Math.SQRT1_2));
  });
});

describe.skipIf(NATIVE_DISABLED)("native FWHT vs reference", () => {
  const native = k!;
  afterEach(() => {
    native.setSimd("auto");
    native.setThreads(0);
  });

  for (const simd of ["auto", "scalar"] as const) {
    it(`${simd} path: bit for bit for n = 1 … 2^14`, async () => {
      native.setSimd(simd);
      for (let n = 1; n <= 1 << 14; n *= 2) {
        const rows = n >= 4096 ? 9 : 33;
        const x = gaussian(rows * n, 0.5, 2, n + 1);
        const want = x.slice();
        fwhtRef(want, rows, n);
        const got = x.slice();
        await fwht(got, rows, n);
        const diff = bytesDiffer(got, want);
        if (diff) throw new Error(`n = ${n}: ${diff}`);
        const sync = fwhtSync(x.slice(), rows, n);
        expect(bytesDiffer(sync, want)).toBeUndefined();
      }
    });
  }

  it("4096 × 4096 on 1 thread equals 2 threads and the reference", async () => {
    const n = 4096, rows = 4096;
    const x = gaussian(rows * n, 0, 1, 5);
    const want = x.slice();
    fwhtRef(want, rows, n);
    native.setThreads(1);
    const one = await fwht(x.slice(), rows, n);
    native.setThreads(0);
    const all = await fwht(x.slice(), rows, n);
    expect(bytesDiffer(one, want)).toBeUndefined();
    expect(bytesDiffer(all, want)).toBeUndefined();
  });
});

describe("FWHT errors (native and fallback)", () => {
  it("n not a power of two, a wrong length, NaN/Inf", async () => {
    await expect(fwht(new Float32Array(12), 1, 12)).rejects.toThrow(/n must be a power of two, got 12/);
    await expect(fwht(new Float32Array(12), 2, 8)).rejects.toThrow(/x has 12 values, not rows 2 × n 8/);
    const x = gaussian(4 * 64, 0, 1, 1);
    x[2 * 64 + 9] = NaN;
    await expect(fwht(x, 4, 64)).rejects.toThrow(/X\[2, 9\] is NaN/);
    x[2 * 64 + 9] = 0;
    x[3 * 64] = Infinity;
    expect(() => fwhtSync(x, 4, 64)).toThrow(/X\[3, 0\] is infinite/);
  });
});
