import { afterEach, describe, expect, it } from "vitest";
import { channelBatchOut, type ChannelBatchOut } from "../../extension/src/engine/kernels/channel-stats";
import { channelBatchStatsRef, histBin, histBinEdge, HIST_BINS } from "../../extension/src/engine/kernels/reference-channel-stats";
import { bytesDiffer, gaussian, requireNative } from "./helpers";

const k = requireNative();

/**
 * The default (AVX2) kernel against the reference. It sums in another order (power sums about a
 * per-channel shift in SIMD lanes, moved to the mean; row groups added up), so the float64 sums
 * agree to rounding: measured worst ~2e-14 relative over the cases below (offsets of 1000σ and a
 * poor shift included), against these bounds; the "atypical rows" case fails them without the
 * kernel's fallback for a poor shift. rowNorm is float32 (the sum of squares rounds differently
 * before the square root, then to float). absmax, hist, rowPeak, rowPeakChannel and the non-finite count
 * must match exactly.
 */
const TOL = {
  /** |Δmean| ≤ mean · (|mean| + σ), σ² = m2 / rows */
  mean: 1e-12,
  /** |Δm2| ≤ m2 · m2 */
  m2: 1e-12,
  /** |Δm3| ≤ m3 · m2^1.5 / √rows (= rows·σ³, the size of Σ|x − mean|³; m3 itself may be ~0) */
  m3: 1e-12,
  /** |Δm4| ≤ m4 · m4 */
  m4: 1e-12,
  /** |ΔabsSum| ≤ absSum · absSum */
  absSum: 1e-12,
  /** |ΔrowNorm| ≤ rowNorm · rowNorm */
  rowNorm: 1e-6,
} as const;

const EXACT = ["absmax", "hist", "rowPeak", "rowPeakChannel"] as const;
const ALL = ["mean", "m2", "m3", "m4", "absSum", "rowNorm", ...EXACT] as const;

/** Outputs with running values already in them (absmax, Σ|x| and hist start from earlier batches'). */
function primedOut(rows: number, C: number): ChannelBatchOut {
  const o = channelBatchOut(rows, C);
  o.absmax.fill(0.5);
  o.absSum.fill(1.5);
  o.hist.fill(2);
  return o;
}

/** Messages naming each value out of tolerance (at most a few per field); [] when all match. */
function mismatches(a: ChannelBatchOut, b: ChannelBatchOut, rows: number, C: number): string[] {
  const bad: string[] = [];
  const check = (key: "mean" | "m2" | "m3" | "m4" | "absSum", c: number, scale: number) => {
    const err = Math.abs(a[key][c] - b[key][c]);
    if (!(err <= TOL[key] * scale) && bad.length < 20) {
      bad.push(`${key}[${c}]: ${a[key][c]} vs ${b[key][c]} (|Δ| ${err.toExponential(2)} > ${(TOL[key] * scale).toExponential(2)})`);
    }
  };
  for (let c = 0; c < C; c++) {
    const sigma = Math.sqrt(b.m2[c] / rows);
    check("mean", c, Math.abs(b.mean[c]) + sigma);
    check("m2", c, b.m2[c]);
    check("m3", c, b.m2[c] ** 1.5 / Math.sqrt(rows));
    check("m4", c, b.m4[c]);
    check("absSum", c, b.absSum[c]);
  }
  for (let r = 0; r < rows; r++) {
    const same = a.rowNorm[r] === b.rowNorm[r]; // Infinity where Σx² passes the float32 range
    if (!same && !(Math.abs(a.rowNorm[r] - b.rowNorm[r]) <= TOL.rowNorm * b.rowNorm[r]) && bad.length < 20) {
      bad.push(`rowNorm[${r}]: ${a.rowNorm[r]} vs ${b.rowNorm[r]}`);
    }
  }
  for (const key of EXACT) {
    const diff = bytesDiffer(a[key], b[key]);
    if (diff) bad.push(`${key}: ${diff}`);
  }
  return bad;
}

/** Gaussian activations with outliers every 97th value, a NaN, an Inf and a zero. */
function activations(rows: number, C: number): Float32Array {
  const x = gaussian(rows * C, 0.3, 2, rows * 31 + C);
  for (let i = 0; i < x.length; i += 97) x[i] *= 40;
  if (x.length > 10) {
    x[5] = NaN;
    x[x.length - 1] = Infinity;
    x[3] = 0;
  }
  return x;
}

/** Native and reference on the same data and primed outputs; the native outputs must match. */
async function expectMatchesReference(x: Float32Array, rows: number, C: number): Promise<ChannelBatchOut> {
  const a = primedOut(rows, C);
  const b = primedOut(rows, C);
  const badNative = await k!.channelBatchStats(x, rows, C, a);
  const badRef = channelBatchStatsRef(x, rows, C, b);
  expect(badNative).toBe(badRef);
  expect(mismatches(a, b, rows, C)).toEqual([]);
  return a;
}

const SHAPES = [
  [1, 1],
  [3, 5],
  [17, 64],
  [100, 13],
  [256, 172],
  [1000, 130],
  [65, 5440],
  [2048, 1024],
] as const;

describe.skipIf(!k)("channelBatchStats (native) vs the TypeScript reference", () => {
  afterEach(() => {
    k!.setSimd("auto");
    k!.setThreads(0);
  });

  it.each(SHAPES)("rows %i × channels %i: the scalar kernel gives identical results", async (rows, C) => {
    k!.setSimd("scalar");
    const x = activations(rows, C);
    const a = primedOut(rows, C);
    const b = primedOut(rows, C);
    expect(await k!.channelBatchStats(x, rows, C, a)).toBe(channelBatchStatsRef(x, rows, C, b));
    // Same operations in the same order (per channel, rows in order, float64): bit-identical.
    for (const key of ALL) expect(bytesDiffer(a[key], b[key]), key).toBeUndefined();
  });

  it.each(SHAPES)("rows %i × channels %i: the default kernel agrees within tolerance", async (rows, C) => {
    const x = activations(rows, C);
    const a = await expectMatchesReference(x, rows, C);
    let finite = 0;
    for (const v of x) if (Number.isFinite(v)) finite++;
    expect(a.hist.reduce((s, v) => s + v, 0)).toBe(finite + 2 * HIST_BINS);
    // Σ|x| against the definition.
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let r = 0; r < rows; r++) if (Number.isFinite(x[r * C + c])) s += Math.abs(x[r * C + c]);
      expect(a.absSum[c] - 1.5).toBeCloseTo(s, 6);
    }
  });

  it("keeps m2..m4 accurate far from zero (mean 1000, σ 1)", async () => {
    const rows = 700;
    const C = 13;
    const a = await expectMatchesReference(gaussian(rows * C, 1000, 1, 3), rows, C);
    for (let c = 0; c < C; c++) expect(a.m2[c] / rows).toBeCloseTo(1, 0);
  });

  it("keeps m2..m4 accurate when the rows it samples for its shift are atypical", async () => {
    // Every 256th row (1 in 256, where the kernel samples 32 rows of 8192 for its per-channel
    // shift) sits 10^4 above the rest (mean 1000, σ 1): the shift is then far from the mean in
    // units of σ and the sums are taken again about the mean.
    const rows = 8192;
    const C = 12;
    const x = gaussian(rows * C, 1000, 1, 4);
    for (let r = 0; r < rows; r += 256) for (let c = 0; c < C; c++) x[r * C + c] += 1e4;
    await expectMatchesReference(x, rows, C);
  });

  it("skips NaN and ±Inf anywhere in a vector, whole rows of them included", async () => {
    const rows = 150;
    const C = 21; // two full vectors and a tail of 5
    const x = gaussian(rows * C, 0, 3, 5);
    for (let i = 7; i < x.length; i += 37) x[i] = [NaN, Infinity, -Infinity][i % 3];
    for (let c = 0; c < C; c++) x[10 * C + c] = NaN; // a row of NaN
    for (let c = 0; c < C; c++) x[11 * C + c] = c % 2 ? -0 : 0; // a row of zeros
    for (let r = 0; r < rows; r++) x[r * C + 16] = NaN; // a channel of NaN (in the tail)
    x[12 * C + 2] = -40; // ties for the row peak: the first channel wins
    x[12 * C + 9] = 40;
    x[12 * C + 19] = -40;
    const a = await expectMatchesReference(x, rows, C);
    expect([a.rowNorm[10], a.rowPeak[10], a.rowPeakChannel[10]]).toEqual([0, 0, 0]);
    expect([a.rowPeak[12], a.rowPeakChannel[12]]).toEqual([-40, 2]);
    expect([a.mean[16], a.m2[16], a.absSum[16], a.absmax[16]]).toEqual([0, 0, 1.5, 0.5]);
  });

  it("bins values at and just below every quarter-octave edge as the reference does", async () => {
    const values: number[] = [0, -0, 1e-45, 3e38, -3e38];
    for (let b = 1; b < HIST_BINS; b++) {
      const edge = Math.fround(histBinEdge(b));
      values.push(edge, -edge, Math.fround(edge * (1 - 2 ** -20)));
    }
    const C = 9;
    const rows = Math.ceil(values.length / C);
    const x = new Float32Array(rows * C);
    x.set(values);
    const a = await expectMatchesReference(x, rows, C);
    const expected = new Float64Array(HIST_BINS).fill(2);
    for (const v of x) expected[histBin(Math.abs(v))]++;
    expect(bytesDiffer(a.hist, expected)).toBeUndefined();
  });

  it("gives bit-identical results on 1, 2 and 3 threads", async () => {
    const rows = 600; // several row groups and channel blocks, neither a multiple of the tile
    const C = 1100;
    const x = activations(rows, C);
    const outs: ChannelBatchOut[] = [];
    for (const threads of [1, 2, 3]) {
      k!.setThreads(threads);
      const o = primedOut(rows, C);
      await k!.channelBatchStats(x, rows, C, o);
      outs.push(o);
    }
    for (const o of outs.slice(1)) for (const key of ALL) expect(bytesDiffer(o[key], outs[0][key]), key).toBeUndefined();
  });

  it("puts values on the right side of every quarter-octave edge", () => {
    for (let b = 1; b < HIST_BINS - 1; b++) {
      const edge = Math.fround(histBinEdge(b));
      expect(histBin(edge), `edge of bin ${b}`).toBe(b);
      expect(histBin(Math.fround(edge * (1 - 2 ** -20))), `just below bin ${b}`).toBe(b - 1);
    }
    expect(histBin(0)).toBe(0);
    expect(histBin(3e38)).toBe(HIST_BINS - 1);
  });

  it("rejects a cancelled call and wrong shapes", async () => {
    const x = gaussian(64 * 64, 0, 1, 1);
    expect(() => k!.channelBatchStats(x, 63, 64, channelBatchOut(63, 64))).toThrow(/rows × channels/);
    const token = new k!.CancelToken();
    token.cancel();
    const o = primedOut(64, 64);
    await expect(k!.channelBatchStats(x, 64, 64, o, token)).rejects.toThrow(/cancelled/);
    // The running values are left as they were.
    expect([o.absmax[0], o.absSum[0], o.hist[0]]).toEqual([0.5, 1.5, 2]);
  });
});
