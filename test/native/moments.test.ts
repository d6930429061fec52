/**
 * Native moments vs the TypeScript references:
 *   - SIMD path (the one users get) vs `momentsRef`: named tolerances (helpers.ts MOMENTS_TOL);
 *   - scalar path vs `momentsBlockedRef` (same blocks, same merge tree): bit for bit;
 *   - any thread count: bit for bit the same.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { momentsBlockedRef, MOMENTS_BLOCK } from "../../extension/src/engine/kernels/index";
import { momentsRef, type Moments } from "../../extension/src/engine/kernels/reference";
import { gaussian, momentsMismatches, NATIVE_DISABLED, requireNative, sameMoments, uniform } from "./helpers";

const k = requireNative();

/** Odd sizes around SIMD widths (8, 16) and the block size, plus big ones. */
const SIZES = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 1000, 32767, 32768, 32769, 65537, 100_003, 1_000_001];

interface Case {
  name: string;
  x: Float32Array;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const n of SIZES) out.push({ name: `N(0,1) n=${n}`, x: gaussian(n, 0, 1, n + 1) });
  out.push({ name: "N(1e4, 1) n=10^6 (large offset)", x: gaussian(1_000_000, 1e4, 1, 7) });
  out.push({ name: "N(100, 0.01) n=300001", x: gaussian(300_001, 100, 0.01, 8) });
  out.push({ name: "N(0, 1e-3) n=200003", x: gaussian(200_003, 0, 1e-3, 9) });
  out.push({ name: "heavy tails (1% ×50 outliers)", x: withOutliers(gaussian(250_007, 0, 1, 10), 0.01, 50, 11) });
  // The AVX2 kernel sums powers about a shift chosen from each block's first 2048 values: blocks
  // whose start is not typical of them must still come out right (they take a second pass).
  out.push({ name: "step inside each block (2048 × N(0,1), then N(50,1))", x: stepped(100_003, 2048, 0, 50, 13) });
  out.push({ name: "step inside each block (2048 × N(0,1), then N(1e4,1))", x: stepped(100_003, 2048, 0, 1e4, 16) });
  out.push({ name: "near-constant: 1e4+1/3 and rare ±1 ulp, mean exact", x: nearConstant(70_000) });
  out.push({ name: "centred start, offset rest (2048 × N(0,1), then N(3,1))", x: stepped(70_001, 2048, 0, 3, 14) });
  out.push({ name: "offset start, centred rest (2048 × N(0.5,1), then N(0,1))", x: stepped(70_001, 2048, 0.5, 0, 15) });
  out.push({ name: "ramp 1e3..1e3+1 (sorted)", x: new Float32Array(99_999).map((_, i) => 1e3 + i / 99_999) });
  out.push({ name: "constant 3", x: new Float32Array(70_001).fill(3) });
  out.push({ name: "constant 0.1 (not exact in binary)", x: new Float32Array(40_000).fill(0.1) });
  out.push({ name: "tiny subnormals", x: new Float32Array(1001).map((_, i) => (i % 7) * 1e-45) });
  out.push({ name: "huge values ±3e38", x: new Float32Array(4099).map((_, i) => (i % 2 ? 3e38 : -3e38) * (i % 3 ? 1 : 0.5)) });
  for (const n of [1, 17, 4096, 100_003]) {
    out.push({ name: `NaN/Inf sprinkled n=${n}`, x: withNonFinite(gaussian(n, 2, 3, n + 5), 0.02, n + 6) });
  }
  out.push({ name: "NaN/Inf at ends and lanes", x: nonFiniteAtEdges(gaussian(100_000, -1, 2, 12)) });
  out.push({ name: "all NaN", x: new Float32Array(1000).fill(NaN) });
  out.push({ name: "all ±Inf", x: new Float32Array(999).map((_, i) => (i % 2 ? Infinity : -Infinity)) });
  out.push({ name: "±0 only", x: new Float32Array(40).map((_, i) => (i % 3 ? 0 : -0)) });
  return out;
}

/** N(before, 1) for the first `head` values of every block, N(after, 1) for the rest. */
function stepped(n: number, head: number, before: number, after: number, seed: number): Float32Array {
  const x = gaussian(n, 0, 1, seed);
  for (let i = 0; i < n; i++) x[i] += i % MOMENTS_BLOCK < head ? before : after;
  return x;
}

/**
 * v = fround(1e4 + 1/3) everywhere but every 1000th value v + 1 ulp and the next v − 1 ulp: the
 * mean is exactly v, the spread is tiny against it (the reference is exact here) and a mean
 * guessed from float sums is off by more than the spread (the shifted sums must not be used).
 */
function nearConstant(n: number): Float32Array {
  const v = Math.fround(1e4 + 1 / 3);
  const ulp = 2 ** -10;
  return new Float32Array(n).map((_, i) => (i % 1000 === 1 ? v + ulp : i % 1000 === 2 ? v - ulp : v));
}

function withOutliers(x: Float32Array, fraction: number, scale: number, seed: number): Float32Array {
  const u = uniform(seed);
  for (let i = 0; i < x.length; i++) if (u() < fraction) x[i] *= scale;
  return x;
}

function withNonFinite(x: Float32Array, fraction: number, seed: number): Float32Array {
  const u = uniform(seed);
  const specials = [NaN, Infinity, -Infinity];
  for (let i = 0; i < x.length; i++) if (u() < fraction) x[i] = specials[i % 3];
  x[0] = NaN;
  return x;
}

function nonFiniteAtEdges(x: Float32Array): Float32Array {
  for (const i of [0, 1, 7, 8, 15, 16, 32767, 32768, x.length - 1]) x[i] = i % 2 ? Infinity : NaN;
  // A NaN with a payload and a negative NaN, written as bits.
  const bits = new Uint32Array(x.buffer);
  bits[3] = 0x7f800001;
  bits[x.length - 2] = 0xffc12345;
  return x;
}

describe.skipIf(NATIVE_DISABLED)("native moments", () => {
  const all = cases();
  const native = k!;

  beforeAll(() => {
    expect(native.momentsBlock).toBe(MOMENTS_BLOCK);
  });
  afterEach(() => {
    native.setSimd("auto");
    native.setThreads(0);
  });

  it.each(all.map((c) => [c.name, c] as const))("%s: default path matches momentsRef", async (_name, c) => {
    const expected = momentsRef(c.x);
    const sync = native.momentsSync(c.x);
    expect(momentsMismatches(sync, expected)).toEqual([]);
    expect(sameMoments(await native.moments(c.x), sync)).toBe(true);
  });

  it.each(all.map((c) => [c.name, c] as const))("%s: scalar path equals the blocked reference bit for bit", (_name, c) => {
    native.setSimd("scalar");
    const actual = native.momentsSync(c.x);
    expect(actual).toEqual(momentsBlockedRef(c.x));
    expect(sameMoments(actual, momentsBlockedRef(c.x))).toBe(true);
    // Up to one block the blocked reference is momentsRef itself.
    if (c.x.length <= MOMENTS_BLOCK) expect(sameMoments(actual, momentsRef(c.x))).toBe(true);
  });

  it("empty input gives emptyMoments()", () => {
    const m = native.momentsSync(new Float32Array(0));
    expect(m).toEqual({ n: 0, mean: 0, m2: 0, m3: 0, m4: 0, absmax: 0, min: Infinity, max: -Infinity, nonFinite: 0 });
  });

  it("subarrays at odd offsets read exactly their own elements", () => {
    const base = gaussian(50_000, 0, 1, 99);
    base.fill(NaN, 0, 3);
    base.fill(1e30, 49_990);
    const view = base.subarray(3, 49_990);
    expect(momentsMismatches(native.momentsSync(view), momentsRef(view))).toEqual([]);
    expect(native.momentsSync(view).nonFinite).toBe(0);
  });

  describe("10^7 elements", () => {
    let big: Float32Array;
    let offset: Float32Array;
    beforeAll(() => {
      big = gaussian(10_000_000, 0, 1, 2024);
      offset = gaussian(10_000_000, 1e4, 1, 2025);
    });
    afterAll(() => {
      big = offset = new Float32Array(0);
    });

    it("N(0,1) within tolerance of momentsRef, SIMD and scalar", async () => {
      const expected = momentsRef(big);
      expect(momentsMismatches(await native.moments(big), expected)).toEqual([]);
      native.setSimd("scalar");
      expect(momentsMismatches(await native.moments(big), expected)).toEqual([]);
    });

    it("mean 1e4, std 1: the two-pass blocks keep the variance (naive Σx² would lose it)", async () => {
      const expected = momentsRef(offset);
      const actual = await native.moments(offset);
      expect(momentsMismatches(actual, expected)).toEqual([]);
      expect(actual.m2 / actual.n).toBeCloseTo(1, 2);
      expect(actual.mean).toBeCloseTo(1e4, 2);
    });

    it("the scalar path equals the blocked TypeScript reference bit for bit", () => {
      native.setSimd("scalar");
      expect(sameMoments(native.momentsSync(big), momentsBlockedRef(big))).toBe(true);
    });

    it("results do not depend on the thread count", () => {
      const results: Moments[] = [];
      for (const threads of [1, 2, 3, 8]) {
        expect(native.setThreads(threads)).toBe(threads);
        results.push(native.momentsSync(big));
      }
      for (const r of results) expect(sameMoments(r, results[0])).toBe(true);
    });
  });
});
