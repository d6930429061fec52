/**
 * RTN quantization (core/rtn.h) against its TypeScript reference (reference-quant.ts):
 *   - codes, scales and zeros bit for bit (tolerance RTN_ULPS = 0: the float operations are the
 *     same, in the same order), on the AVX2 and the scalar path, any thread count;
 *   - ragged last groups, per-channel, every bits value, symmetric and asymmetric, MSE clipping;
 *   - the format's promises: |w − dq| ≤ scale/2, zeros in [0, maxq], all-zero groups exact,
 *     clipping never worse than min/max in the p-norm it minimizes;
 *   - NaN/Inf and bad arguments give errors that name the place.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  GPTQ_CLIP,
  rtnDequantize,
  rtnDequantizeSync,
  rtnParams,
  rtnQuantize,
  rtnQuantizeSync,
  type ClipSearch,
  type QuantBits,
  type RtnResult,
} from "../../extension/src/engine/kernels/index";
import { CancelledError } from "../../extension/src/engine/errors";
import {
  rtnDequantizeRef,
  rtnGroups,
  rtnMaxq,
  rtnParamsRef,
  rtnQuantizeRef,
  roundHalfEven,
} from "../../extension/src/engine/kernels/reference-quant";
import { bytesDiffer, gaussian, NATIVE_DISABLED, requireNative, uniform } from "./helpers";

const k = requireNative();

/** Native and reference scales/zeros differ by this many ulps: none (same operations, same order). */
const RTN_ULPS = 0;
/**
 * |w − dq| ≤ scale/2 + slack, slack = (maxq + 1)·2^−23·scale + ulp(w): scale itself is rounded
 * (relative 2^−24), which moves the clamped ends of the grid by up to (maxq + 1)/2 of that, and
 * w/scale and scale·(q − zero) each round once more.
 */
function roundTripSlack(scale: number, maxq: number, w: number): number {
  return (maxq + 1) * 2 ** -23 * scale + Math.abs(w) * 2 ** -23;
}

const BITS: QuantBits[] = [2, 3, 4, 8];
/** [rows, cols, group]: ragged last groups (172 = 128 + 44), exact groups, per-channel. */
const SHAPES: [number, number, number][] = [
  [13, 172, 128],
  [9, 64, 32],
  [7, 172, 0],
  [5, 37, 8],
  [3, 100, 200], // group > cols: one group per row
];

/** Weights with the shapes that matter: Gaussian, an outlier column, a one-signed row, zero rows. */
function weights(rows: number, cols: number, seed: number): Float32Array {
  const W = gaussian(rows * cols, 0, 0.02, seed);
  const u = uniform(seed + 1);
  for (let r = 0; r < rows; r++) W[r * cols + (r % cols)] *= 40; // outliers
  if (rows > 2) for (let c = 0; c < cols; c++) W[cols + c] = Math.abs(W[cols + c]) + 0.01; // all > 0
  if (rows > 3) W.fill(0, 2 * cols, 3 * cols); // all-zero row
  for (let i = 0; i < W.length; i++) if (u() < 0.01) W[i] = 0;
  return W;
}

function sameResult(a: RtnResult, b: RtnResult): string | undefined {
  const codes = bytesDiffer(a.codes, b.codes);
  if (codes) return `codes: ${codes}`;
  for (const key of ["scales", "zeros"] as const) {
    for (let i = 0; i < a[key].length; i++) {
      if (ulps(a[key][i], b[key][i]) > RTN_ULPS) return `${key}[${i}]: ${a[key][i]} vs ${b[key][i]}`;
    }
  }
  return undefined;
}

function ulps(a: number, b: number): number {
  const x = new Int32Array(Float32Array.of(a, b).buffer);
  return Math.abs(x[0] - x[1]);
}

describe("RTN reference: the format's promises", () => {
  it("rounds half to even like torch.round, ±0 and large values included", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999998, 3.5].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 2, 4]);
    expect(roundHalfEven(8388609)).toBe(8388609);
    // Between 2^22 and 2^23 float32 still has halves.
    expect([4194304.5, 4194305.5, -4194304.5].map(roundHalfEven)).toEqual([4194304, 4194306, -4194304]);
    expect(Object.is(roundHalfEven(-0.4), -0)).toBe(true);
    expect(Object.is(roundHalfEven(-0), 0)).toBe(true);
  });

  for (const bits of BITS) {
    for (const symmetric of [false, true]) {
      it(`${bits}-bit ${symmetric ? "symmetric" : "asymmetric"}: |w − dq| ≤ scale/2, zeros in range, zero rows exact`, () => {
        for (const [rows, cols, group] of SHAPES) {
          const W = weights(rows, cols, rows * cols + bits);
          const q = rtnQuantizeRef(W, rows, cols, group, { bits, symmetric });
          const dq = rtnDequantizeRef(q.codes, q.scales, q.zeros, rows, cols, group);
          const ng = rtnGroups(cols, group);
          const g = group === 0 || group > cols ? cols : group;
          const maxq = rtnMaxq(bits);
          for (let r = 0; r < rows; r++) {
            for (let c = 0; c < cols; c++) {
              const s = q.scales[r * ng + Math.floor(c / g)];
              const err = Math.abs(W[r * cols + c] - dq[r * cols + c]);
              if (!(err <= s / 2 + roundTripSlack(s, maxq, W[r * cols + c]))) {
                throw new Error(`W[${r}, ${c}] = ${W[r * cols + c]}: |w − dq| = ${err} > scale/2 = ${s / 2}`);
              }
              expect(q.codes[r * cols + c]).toBeLessThanOrEqual(maxq);
            }
          }
          for (const z of q.zeros) expect(Number.isInteger(z) && z >= 0 && z <= maxq).toBe(true);
          if (symmetric) for (const z of q.zeros) expect(z).toBe(2 ** (bits - 1));
          if (rows > 3) {
            // The all-zero row: GPTQ's guard (xmin = −1, xmax = 1), every code = zero, dq = 0 exactly.
            for (let kk = 0; kk < ng; kk++) expect(q.scales[2 * ng + kk]).toBe(Math.fround(2 / maxq));
            for (let c = 0; c < cols; c++) expect(dq[2 * cols + c]).toBe(0);
          }
        }
      });
    }
  }

  it("GPTQ's asymmetric rule on a hand-checked group", () => {
    // w ∈ [−1, 2]: scale = 3/15 = 0.2, zero = round(1/0.2) = 5.
    const w = Float32Array.of(-1, 2, 0.1, 0.3, 1);
    expect(rtnParamsRef(w, { bits: 4, symmetric: false })).toEqual({ scale: Math.fround(0.2), zero: 5 });
    // Symmetric: ±max|w| = ±2, scale = 4/15, zero = 8.
    expect(rtnParamsRef(w, { bits: 4, symmetric: true })).toEqual({ scale: Math.fround(Math.fround(4) / 15), zero: 8 });
    // A one-signed group keeps 0 in range (xmin = min(min w, 0)).
    expect(rtnParamsRef(Float32Array.of(3, 4, 5), { bits: 2, symmetric: false })).toEqual({ scale: Math.fround(5 / 3), zero: 0 });
  });

  it("MSE clipping is never worse than min/max in Σ|w − dq|^norm, and helps on heavy tails", () => {
    let helped = 0;
    for (const bits of [2, 3, 4] as const) {
      for (const symmetric of [false, true]) {
        for (const norm of [2.4, 2]) {
          const clip: ClipSearch = { grid: 100, maxShrink: 0.8, norm };
          const rows = 6, cols = 256, group = 64;
          const W = weights(rows, cols, 100 + bits);
          const a = rtnQuantizeRef(W, rows, cols, group, { bits, symmetric });
          const b = rtnQuantizeRef(W, rows, cols, group, { bits, symmetric }, clip);
          const da = rtnDequantizeRef(a.codes, a.scales, a.zeros, rows, cols, group);
          const db = rtnDequantizeRef(b.codes, b.scales, b.zeros, rows, cols, group);
          for (let gi = 0; gi < (rows * cols) / group; gi++) {
            let ea = 0, eb = 0;
            for (let i = gi * group; i < (gi + 1) * group; i++) {
              ea += Math.abs(da[i] - W[i]) ** norm;
              eb += Math.abs(db[i] - W[i]) ** norm;
            }
            expect(eb).toBeLessThanOrEqual(ea * (1 + 1e-12));
            if (eb < ea * 0.99) helped++;
          }
        }
      }
    }
    expect(helped).toBeGreaterThan(0);
  });

  it("rtnParamsRef with a stride equals the contiguous group", () => {
    const W = weights(16, 8, 5); // column 3 of [16 × 8] as a strided group
    const col = Float32Array.from({ length: 16 }, (_, r) => W[r * 8 + 3]);
    for (const clip of [null, GPTQ_CLIP]) {
      expect(rtnParamsRef(W, { bits: 3, symmetric: false }, clip, 3, 16, 8)).toEqual(rtnParamsRef(col, { bits: 3, symmetric: false }, clip));
    }
  });
});

describe.skipIf(NATIVE_DISABLED)("native RTN vs reference", () => {
  const native = k!;
  afterEach(() => {
    native.setSimd("auto");
    native.setThreads(0);
  });

  for (const simd of ["auto", "scalar"] as const) {
    it(`${simd} path: every bits × symmetric × shape, min/max and MSE clip, bit for bit`, async () => {
      native.setSimd(simd);
      for (const bits of BITS) {
        for (const symmetric of [false, true]) {
          for (const [rows, cols, group] of SHAPES) {
            for (const clip of [null, GPTQ_CLIP]) {
              const W = weights(rows, cols, 7 * rows + cols + bits);
              const want = rtnQuantizeRef(W, rows, cols, group, { bits, symmetric }, clip);
              const got = await rtnQuantize(W, rows, cols, { bits, symmetric, group, clip });
              const bad = sameResult(got, want);
              if (bad) throw new Error(`bits ${bits} sym ${symmetric} [${rows}×${cols}] g${group} clip ${!!clip}: ${bad}`);
              const sync = rtnQuantizeSync(W, rows, cols, { bits, symmetric, group, clip });
              expect(sameResult(sync, want)).toBeUndefined();
              const dq = await rtnDequantize(got, rows, cols, group);
              expect(bytesDiffer(dq, rtnDequantizeRef(want.codes, want.scales, want.zeros, rows, cols, group))).toBeUndefined();
              expect(bytesDiffer(rtnDequantizeSync(got, rows, cols, group), dq)).toBeUndefined();
            }
          }
        }
      }
    });
  }

  it("a large layer (W4 g128, 512 × 1100) is identical on 1 and 2 threads and to the reference", async () => {
    const rows = 512, cols = 1100;
    const W = weights(rows, cols, 3);
    const want = rtnQuantizeRef(W, rows, cols, 128, { bits: 4, symmetric: false });
    native.setThreads(1);
    const one = await rtnQuantize(W, rows, cols, { bits: 4, symmetric: false, group: 128 });
    native.setThreads(0);
    const all = await rtnQuantize(W, rows, cols, { bits: 4, symmetric: false, group: 128 });
    expect(sameResult(one, want)).toBeUndefined();
    expect(sameResult(all, want)).toBeUndefined();
  });

  it("rtnParams (one group) matches the reference, with and without clipping", () => {
    const w = gaussian(777, 0.1, 1, 9);
    for (const bits of BITS) {
      for (const symmetric of [false, true]) {
        for (const clip of [null, GPTQ_CLIP]) {
          expect(rtnParams(w, { bits, symmetric }, clip)).toEqual(rtnParamsRef(w, { bits, symmetric }, clip));
        }
      }
    }
  });

  it("values near ties and extremes: subnormals, huge weights, exact halves", async () => {
    const rows = 4, cols = 40;
    const W = new Float32Array(rows * cols);
    for (let c = 0; c < cols; c++) {
      W[c] = (c - 20) * 1e-40; // subnormal group: scale below FLT_MIN, guarded
      W[cols + c] = (c - 20) * 4e36; // huge, range 1.6e38: the scale still fits
      W[2 * cols + c] = (c - 15) * 0.5; // many exact halves of the step
      W[3 * cols + c] = c % 2 ? -0 : 0; // signed zeros
    }
    for (const bits of BITS) {
      for (const symmetric of [false, true]) {
        const want = rtnQuantizeRef(W, rows, cols, 0, { bits, symmetric });
        expect(sameResult(await rtnQuantize(W, rows, cols, { bits, symmetric, group: 0 }), want)).toBeUndefined();
      }
    }
  });
});

describe("RTN errors (native and fallback)", () => {
  it("NaN or Inf names W[row, col]", async () => {
    const W = weights(4, 172, 1);
    W[2 * 172 + 150] = NaN;
    await expect(rtnQuantize(W, 4, 172, { bits: 4, symmetric: false, group: 128 })).rejects.toThrow(/W\[2, 150\] is NaN/);
    expect(() => rtnQuantizeRef(W, 4, 172, 128, { bits: 4, symmetric: false })).toThrow(/W\[2, 150\] is NaN/);
    W[2 * 172 + 150] = 0;
    W[3 * 172 + 5] = -Infinity;
    expect(() => rtnQuantizeSync(W, 4, 172, { bits: 4, symmetric: true, group: 0 })).toThrow(/W\[3, 5\] is infinite/);
  });

  it("a group whose range overflows float is refused", async () => {
    const W = Float32Array.of(-3e38, 3e38, 1, 2);
    await expect(rtnQuantize(W, 1, 4, { bits: 4, symmetric: false, group: 0 })).rejects.toThrow(/range overflows float/);
    expect(() => rtnQuantizeRef(W, 1, 4, 0, { bits: 4, symmetric: false })).toThrow(/range overflows float/);
  });

  it("bad arguments name the field", async () => {
    const W = new Float32Array(12);
    await expect(rtnQuantize(W, 3, 4, { bits: 5 as QuantBits, symmetric: false, group: 0 })).rejects.toThrow(/bits must be 2, 3, 4 or 8/);
    await expect(rtnQuantize(W, 3, 5, { bits: 4, symmetric: false, group: 0 })).rejects.toThrow(/W has 12 values, not rows 3 × cols 5/);
    await expect(rtnQuantize(W, 3, 4, { bits: 4, symmetric: false, group: 0, clip: { grid: 10, maxShrink: 1.5, norm: 2 } })).rejects.toThrow(/maxShrink/);
    const q = await rtnQuantize(W, 3, 4, { bits: 4, symmetric: false, group: 2 });
    await expect(rtnDequantize(q, 3, 4, 0)).rejects.toThrow(/scales\/zeros need rows × ceil\(cols \/ group\) = 3/);
  });

  it.skipIf(NATIVE_DISABLED)("an aborted signal cancels a large layer", async () => {
    const W = gaussian(2048 * 4096, 0, 1, 4);
    const controller = new AbortController();
    const run = rtnQuantize(W, 2048, 4096, { bits: 4, symmetric: false, group: 128, clip: GPTQ_CLIP }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(run).rejects.toBeInstanceOf(CancelledError);
  });
});
