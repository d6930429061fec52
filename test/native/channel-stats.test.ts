import { describe, expect, it } from "vitest";
import { channelBatchOut } from "../../extension/src/engine/kernels/channel-stats";
import { channelBatchStatsRef, histBin, histBinEdge, HIST_BINS } from "../../extension/src/engine/kernels/reference-channel-stats";
import { gaussian, requireNative } from "./helpers";

const k = requireNative();

describe.skipIf(!k)("channelBatchStats (native) vs the TypeScript reference", () => {
  it.each([
    [1, 1],
    [3, 5],
    [17, 64],
    [256, 172],
    [1000, 130],
    [2048, 1024],
  ])("rows %i × channels %i: identical results", async (rows, C) => {
    const x = gaussian(rows * C, 0.3, 2, rows * 31 + C);
    for (let i = 0; i < x.length; i += 97) x[i] *= 40; // outliers
    if (x.length > 10) {
      x[5] = NaN;
      x[x.length - 1] = Infinity;
      x[3] = 0;
    }
    const a = channelBatchOut(rows, C);
    const b = channelBatchOut(rows, C);
    a.absmax.fill(0.5);
    b.absmax.fill(0.5); // running max starts from the previous batches'
    a.absSum.fill(1.5);
    b.absSum.fill(1.5); // and so does the running Σ|x|
    const badNative = await k!.channelBatchStats(x, rows, C, a);
    const badRef = channelBatchStatsRef(x, rows, C, b);
    expect(badNative).toBe(badRef);
    // Same operations in the same order (per channel, rows in order, float64): bit-identical.
    for (const key of ["mean", "m2", "m3", "m4", "absmax", "absSum", "hist", "rowNorm", "rowPeak", "rowPeakChannel"] as const) {
      expect(Array.from(a[key]), key).toEqual(Array.from(b[key]));
    }
    expect(a.hist.reduce((s, v) => s + v, 0)).toBe(x.length - badRef);
    // Σ|x| against the definition.
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let r = 0; r < rows; r++) if (Number.isFinite(x[r * C + c])) s += Math.abs(x[r * C + c]);
      expect(a.absSum[c] - 1.5).toBeCloseTo(s, 6);
    }
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
    await expect(k!.channelBatchStats(x, 64, 64, channelBatchOut(64, 64), token)).rejects.toThrow(/cancelled/);
  });
});
