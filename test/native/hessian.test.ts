/**
 * hessianUpdate (core/hessian.h through kernels/linalg.ts): H [n×n] += Xᵀ·X, fp32 chunk products
 * summed in float64, vs the float64 reference `hessianUpdateRef`:
 *   - ragged n and row counts around the 512-row chunk, accumulation into an existing H,
 *     exact symmetry, both micro-kernels, any thread count (bit for bit);
 *   - 10⁶ tokens with a mean offset: the float64 running sum keeps relative 1e-6;
 *   - NaN/Inf, bad lengths, cancellation.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CancelledError } from "../../extension/src/engine/errors";
import { configureKernels, hessianUpdate } from "../../extension/src/engine/kernels/index";
import { hessianSymmetrize } from "../../extension/src/engine/kernels/linalg";
import { hessianUpdateRef } from "../../extension/src/engine/kernels/reference-linalg";
import { gaussian, NATIVE_DISABLED, requireNative } from "./helpers";

const k = requireNative();

/**
 * |H − H_ref|_ij ≤ HESSIAN_TOL · √(H_ii·H_jj) (the natural scale of an entry: Cauchy–Schwarz).
 * Each ≤ 512-row chunk is an fp32 FMA sum (error ~√512·ε ≈ 1.4e-6 worst per chunk, much less on
 * average); chunks add in float64, so the error does not grow with the token count. Measured
 * ≤ 3e-7. Pure fp32 accumulation over 10⁶ tokens would be off by ~1e-4.
 */
const HESSIAN_TOL = 1e-6;

function mismatches(actual: Float64Array, expected: Float64Array, n: number): string[] {
  const bad: string[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const scale = Math.sqrt(expected[i * n + i] * expected[j * n + j]);
      const err = Math.abs(actual[i * n + j] - expected[i * n + j]);
      if (!(err <= HESSIAN_TOL * scale)) bad.push(`H[${i}][${j}] = ${actual[i * n + j]}, expected ${expected[i * n + j]} (rel ${(err / scale).toExponential(2)})`);
      if (actual[i * n + j] !== actual[j * n + i]) bad.push(`H[${i}][${j}] ≠ H[${j}][${i}]`);
    }
  }
  return bad.slice(0, 5);
}

function reference(n: number, ...xs: Float32Array[]): Float64Array {
  const h = new Float64Array(n * n);
  for (const x of xs) hessianUpdateRef(h, n, x, x.length / n);
  return h;
}

describe.skipIf(NATIVE_DISABLED)("native hessianUpdate", () => {
  const native = k!;
  afterEach(() => {
    native.setSimd("auto");
    native.setThreads(0);
  });

  it.each([
    [1, 1],
    [1, 1000],
    [7, 3],
    [65, 511],
    [65, 512],
    [65, 513],
    [200, 1500],
    [301, 777],
  ])("n = %i, rows = %i matches the float64 reference", async (n, rows) => {
    const x = gaussian(rows * n, 0.3, 1, n * 31 + rows);
    const h = new Float64Array(n * n);
    await hessianUpdate(h, n, x, rows);
    expect(mismatches(h, reference(n, x), n)).toEqual([]);
  });

  it("accumulates into an existing H over many calls and chunks", async () => {
    const n = 97;
    const parts = [gaussian(3000 * n, 1, 2, 1), gaussian(1 * n, -1, 1, 2), gaussian(1025 * n, 0, 0.5, 3)];
    const h = new Float64Array(n * n);
    for (const x of parts) await hessianUpdate(h, n, x, x.length / n);
    expect(mismatches(h, reference(n, ...parts), n)).toEqual([]);
  });

  it("lowerOnly updates leave the strict upper triangle alone; hessianSymmetrize(scale) then equals full updates × scale", async () => {
    const n = 203;
    const parts = [gaussian(700 * n, 0.5, 1, 21), gaussian(300 * n, -0.2, 2, 22)];
    const h = new Float64Array(n * n).fill(0);
    h[1] = 12345; // strict upper entry: must survive lowerOnly updates untouched
    h[0] = 0;
    for (const x of parts) await hessianUpdate(h, n, x, x.length / n, { lowerOnly: true });
    expect(h[1]).toBe(12345);
    const full = new Float64Array(n * n);
    for (const x of parts) await hessianUpdate(full, n, x, x.length / n);
    // The lower triangles agree bit for bit: same kernel, same order.
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) expect(h[i * n + j]).toBe(full[i * n + j]);
    await hessianSymmetrize(h, n, 0.25);
    const bad: string[] = [];
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) if (h[i * n + j] !== 0.25 * full[i * n + j]) bad.push(`H[${i}][${j}]`);
    }
    expect(bad.slice(0, 5)).toEqual([]);
    // A lowerOnly update does not scan H: garbage in the upper triangle is the caller's business.
    h[2] = NaN;
    await hessianUpdate(h, n, parts[1], parts[1].length / n, { lowerOnly: true });
    expect(Number.isNaN(h[2])).toBe(true);
    await expect(hessianUpdate(h, n, parts[1], parts[1].length / n)).rejects.toThrow(/argument 'h' holds a non-finite value/);
  });

  it("hessianSymmetrize on a large H (parallel row blocks) and bad arguments", async () => {
    const n = 1500;
    const h = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) h[i * n + j] = i * 10000 + j;
    await hessianSymmetrize(h, n, 2);
    for (const [i, j] of [[0, 0], [1499, 0], [0, 1499], [700, 701], [701, 700], [1499, 1499]]) {
      expect(h[i * n + j]).toBe(2 * (Math.max(i, j) * 10000 + Math.min(i, j)));
    }
    await expect(hessianSymmetrize(new Float64Array(5), 2)).rejects.toThrow(/h.length/);
    await expect(hessianSymmetrize(h, n, NaN)).rejects.toThrow(/scale/);
  });

  it("rows = 0 and n = 0 change nothing", async () => {
    const h = new Float64Array([1, 2, 2, 5]);
    await hessianUpdate(h, 2, new Float32Array(0), 0);
    expect(Array.from(h)).toEqual([1, 2, 2, 5]);
    await hessianUpdate(new Float64Array(0), 0, new Float32Array(0), 7);
  });

  it("10⁶ tokens with a mean offset keep relative 1e-6 (float64 across chunks)", async () => {
    const n = 12, rows = 1_000_000;
    const x = gaussian(rows * n, 2, 1, 99);
    const h = new Float64Array(n * n);
    await hessianUpdate(h, n, x, rows);
    expect(mismatches(h, reference(n, x), n)).toEqual([]);
  });

  it("the scalar micro-kernel and any thread count give the same H (bit for bit across threads)", async () => {
    const n = 250, rows = 1300;
    const x = gaussian(rows * n, 0, 1, 5);
    const results: Float64Array[] = [];
    for (const threads of [1, 2, 3]) {
      native.setThreads(threads);
      const h = new Float64Array(n * n);
      await hessianUpdate(h, n, x, rows);
      results.push(h);
    }
    for (const h of results) expect(Buffer.from(h.buffer).equals(Buffer.from(results[0].buffer))).toBe(true);
    native.setSimd("scalar");
    const scalar = new Float64Array(n * n);
    await hessianUpdate(scalar, n, x, rows);
    expect(mismatches(scalar, reference(n, x), n)).toEqual([]);
  });

  it("NaN/Inf in x or h rejects naming the element, H untouched", async () => {
    const n = 9, rows = 20;
    const x = gaussian(rows * n, 0, 1, 1);
    x[13 * n + 4] = NaN;
    const h = new Float64Array(n * n).fill(1);
    await expect(hessianUpdate(h, n, x, rows)).rejects.toThrow(/hessianUpdate\(\): argument 'x' holds a non-finite value .* at row 13, column 4/);
    expect(h.every((v) => v === 1)).toBe(true);
    const bad = new Float64Array(n * n);
    bad[2 * n + 3] = Infinity;
    await expect(hessianUpdate(bad, n, gaussian(rows * n, 0, 1, 2), rows)).rejects.toThrow(/argument 'h' holds a non-finite value .* at row 2, column 3/);
  });

  it("bad lengths and types throw naming the argument", async () => {
    await expect(hessianUpdate(new Float64Array(15), 4, new Float32Array(8), 2)).rejects.toThrow(/hessianUpdate\(\): h.length \(15\) must be n·n = 16/);
    await expect(hessianUpdate(new Float64Array(16), 4, new Float32Array(9), 2)).rejects.toThrow(/x.length \(9\) must be rows·n = 2·4 = 8/);
    await expect(hessianUpdate(new Float32Array(16) as unknown as Float64Array, 4, new Float32Array(8), 2)).rejects.toThrow(/h must be a Float64Array/);
    const f = native.hessianUpdate as (...args: unknown[]) => Promise<void>;
    expect(() => f(new Float64Array(16), 4, new Float32Array(9), 2)).toThrow(/argument 'x' has 9 elements/);
  });

  it("an abort cancels a large update and keeps the event loop turning meanwhile", async () => {
    const n = 1024, rows = 4096;
    const x = gaussian(rows * n, 0, 1, 8);
    const h = new Float64Array(n * n);
    let last = performance.now();
    let worst = 0;
    const probe = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
    }, 1);
    const started = performance.now();
    await hessianUpdate(h, n, x, rows);
    const elapsed = performance.now() - started;
    clearInterval(probe);
    expect(worst).toBeLessThan(Math.max(60, elapsed / 3));
    const controller = new AbortController();
    const p = hessianUpdate(new Float64Array(n * n), n, x, rows, { signal: controller.signal });
    setTimeout(() => controller.abort(), 2);
    await expect(p).rejects.toBeInstanceOf(CancelledError);
  });
});

describe("hessianUpdate TypeScript fallback (no addon)", () => {
  beforeAll(() => configureKernels({ allowNative: false }));
  afterAll(() => configureKernels({ allowNative: true }));

  it("equals the reference bit for bit (row slices, then one mirror) and refuses NaN", async () => {
    const n = 300, rows = 400; // 186 rows per turn: three slices
    const x = gaussian(rows * n, 0.1, 1, 12);
    const h = new Float64Array(n * n);
    await hessianUpdate(h, n, x, rows);
    const ref = new Float64Array(n * n);
    hessianUpdateRef(ref, n, x, rows);
    expect(Buffer.from(h.buffer).equals(Buffer.from(ref.buffer))).toBe(true);
    x[5] = -Infinity;
    await expect(hessianUpdate(h, n, x, rows)).rejects.toThrow(/hessianUpdate\(\): argument 'x' holds a non-finite value .* at row 0, column 5/);
  });

  it("lowerOnly + hessianSymmetrize equal the mirrored reference × scale", async () => {
    const n = 40, rows = 90;
    const x = gaussian(rows * n, 0.1, 1, 13);
    const h = new Float64Array(n * n);
    h[1] = 7; // strict upper: left alone by lowerOnly
    await hessianUpdate(h, n, x, rows, { lowerOnly: true });
    expect(h[1]).toBe(7);
    await hessianSymmetrize(h, n, 0.5);
    const ref = new Float64Array(n * n);
    hessianUpdateRef(ref, n, x, rows);
    for (let i = 0; i < n * n; i++) expect(h[i]).toBe(0.5 * ref[i]);
  });
});
