import { describe, expect, it } from "vitest";
import { interpolateViridis } from "d3-scale-chromatic";
import { buildLut, LUT_SIZE, logDomain, logPosition, lutIndex } from "../../../webview/src/charts/color";
import { brushToView, cellAt, clampView, computeHeatmapLayout, heatmapImage, pixelChannels, valueAt, type Matrix } from "../../../webview/src/charts/heatmap";
import { rowSpread, smoothMatrices, smoothingScale } from "../../../webview/src/charts/smoothquant";

const margin = { top: 0, right: 0, bottom: 0, left: 0 };

function matrix(rows: number, cols: number, f: (r: number, c: number) => number): Matrix {
  const values = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) values[r * cols + c] = f(r, c);
  return { rows, cols, values };
}

describe("log colour mapping", () => {
  it("spans the finite positive values in log10, ignoring NaN, zeros and the sign", () => {
    expect(logDomain([NaN, 0, -0.01, 10, 1000, Infinity])).toEqual({ lo: -2, hi: 3 });
    expect(logDomain([NaN, 0])).toBeNull();
    // The floor ratio caps the dynamic range.
    expect(logDomain([1e-12, 1], 1e6)).toEqual({ lo: -6, hi: 0 });
  });
  it("positions values on the log scale, NaN stays NaN", () => {
    const d = { lo: 0, hi: 2 };
    expect(logPosition(10, d)).toBeCloseTo(0.5, 12);
    expect(logPosition(-100, d)).toBe(1);
    expect(logPosition(1e-3, d)).toBe(0);
    expect(logPosition(0, d)).toBe(0);
    expect(logPosition(NaN, d)).toBeNaN();
    expect(lutIndex(NaN)).toBe(-1);
    expect(lutIndex(0.5)).toBe(128);
    expect(lutIndex(1)).toBe(LUT_SIZE - 1);
  });
  it("builds an RGBA LUT from the interpolator's end points", () => {
    const lut = buildLut(interpolateViridis);
    expect(lut.length).toBe(LUT_SIZE * 4);
    expect([...lut.slice(0, 4)]).toEqual([0x44, 0x01, 0x54, 255]); // viridis(0) = #440154
    expect([...lut.slice(-4)]).toEqual([0xfd, 0xe7, 0x25, 255]); // viridis(1) = #fde725
  });
});

describe("heatmap layout", () => {
  const m = matrix(4, 10, (r, c) => (c < 6 + r ? 1 + r * 10 + c : NaN));

  it("sizes cells from the plot and the column window", () => {
    const L = computeHeatmapLayout(m, { width: 200, height: 40, view: { c0: 2, c1: 7 }, rowLabels: ["a", "b", "c", "d"], outliers: [[3], [0], [], [6, 9]], margin });
    expect(L.view).toEqual({ c0: 2, c1: 7 });
    expect(L.colWidth).toBe(40);
    expect(L.rowHeight).toBe(10);
    expect(L.image).toEqual({ width: 5, height: 4, colsPerPixel: 1 });
    // Outliers outside the window (row 1 ch 0, row 3 ch 9) are not marked.
    expect(L.outliers.map((o) => [o.row, o.channel])).toEqual([
      [0, 3],
      [3, 6],
    ]);
    expect(L.outliers[0]).toMatchObject({ x: 40, y: 0, width: 40, height: 10 });
    // 10 px rows are too tight for 11 px labels: every other row is labelled.
    expect(L.rowLabels.map((r) => r.label)).toEqual(["a", "c"]);
    const roomy = computeHeatmapLayout(m, { width: 200, height: 48, view: { c0: 0, c1: 10 }, rowLabels: ["a", "b", "c", "d"], outliers: [], margin });
    expect(roomy.rowLabels.map((r) => [r.label, r.y])).toEqual([
      ["a", 6],
      ["b", 18],
      ["c", 30],
      ["d", 42],
    ]);
  });

  it("finds the cell under the pointer and maps a brush to channels", () => {
    const L = computeHeatmapLayout(m, { width: 100, height: 40, view: { c0: 0, c1: 10 }, rowLabels: [], outliers: [], margin });
    expect(cellAt(L, 0, 0)).toEqual({ row: 0, channel: 0 });
    expect(cellAt(L, 55, 25)).toEqual({ row: 2, channel: 5 });
    expect(cellAt(L, 99.9, 39.9)).toEqual({ row: 3, channel: 9 });
    expect(cellAt(L, 100, 5)).toBeNull();
    expect(cellAt(L, -1, 5)).toBeNull();
    expect(brushToView(L, 25, 61)).toEqual({ c0: 2, c1: 7 });
    expect(brushToView(L, 61, 25)).toEqual({ c0: 2, c1: 7 });
    expect(brushToView(L, 30, 30)).toEqual({ c0: 3, c1: 4 });
    expect(valueAt(m, 1, 3)).toBe(14);
    expect(valueAt(m, 0, 9)).toBeNaN();
    expect(clampView({ c0: -5, c1: 99 }, 10)).toEqual({ c0: 0, c1: 10 });
    expect(clampView({ c0: 9.5, c1: 9.6 }, 10)).toEqual({ c0: 9, c1: 10 });
  });

  it("max-pools channels into pixels so a single outlier channel survives", () => {
    const cols = 1000;
    const big = matrix(2, cols, (r, c) => (r === 0 && c === 537 ? 100 : 1));
    const L = computeHeatmapLayout(big, { width: 100, height: 20, view: { c0: 0, c1: cols }, rowLabels: [], outliers: [], margin });
    expect(L.image.width).toBe(100);
    // Every channel belongs to exactly one pixel.
    let covered = 0;
    for (let p = 0; p < L.image.width; p++) {
      const s = pixelChannels(L, p);
      expect(s.c1).toBeGreaterThan(s.c0);
      covered += s.c1 - s.c0;
    }
    expect(covered).toBe(cols);
    const lut = buildLut(interpolateViridis);
    const img = heatmapImage(big, L, lut);
    const top = lut.slice((LUT_SIZE - 1) * 4, LUT_SIZE * 4);
    const bottom = lut.slice(0, 4);
    const px = (r: number, p: number) => [...img.slice((r * 100 + p) * 4, (r * 100 + p) * 4 + 4)];
    expect(px(0, 53)).toEqual([...top]); // channel 537 lives in pixel 53
    expect(px(0, 52)).toEqual([...bottom]);
    expect(px(1, 53)).toEqual([...bottom]);
  });

  it("leaves NaN padding transparent", () => {
    const L = computeHeatmapLayout(m, { width: 10, height: 4, view: { c0: 0, c1: 10 }, rowLabels: [], outliers: [], margin });
    const img = heatmapImage(m, L, buildLut(interpolateViridis));
    // Row 0 has 6 channels: pixels 6..9 transparent, 0..5 opaque.
    for (let c = 0; c < 10; c++) expect(img[c * 4 + 3]).toBe(c < 6 ? 255 : 0);
  });

  it("rejects a value array that does not match the shape", () => {
    expect(() => computeHeatmapLayout({ rows: 2, cols: 3, values: new Float32Array(5) }, { width: 10, height: 10, view: { c0: 0, c1: 3 }, rowLabels: [], outliers: [] })).toThrow(/5 values for 2 × 3/);
  });
});

describe("SmoothQuant preview", () => {
  it("computes s_j = max|X_j|^α / max|W_j|^(1−α)", () => {
    expect(smoothingScale(16, 4, 0.5)).toBeCloseTo(2, 12);
    expect(smoothingScale(8, 2, 0.75)).toBeCloseTo(Math.pow(8, 0.75) / Math.pow(2, 0.25), 12);
    expect(smoothingScale(0, 3, 0.5)).toBe(1);
    expect(smoothingScale(3, 0, 0.5)).toBe(1);
    expect(smoothingScale(NaN, 1, 0.5)).toBeNaN();
  });

  it("balances X and W at α = 0.5, flattens X at α = 1, leaves X alone at α = 0", () => {
    const x = matrix(2, 3, (r, c) => [1, 50, 2][c] * (r + 1));
    const w = matrix(2, 3, (_r, c) => [0.5, 0.1, 0.2][c]);
    const half = smoothMatrices(x, w, 0.5);
    for (let i = 0; i < 6; i++) {
      const geo = Math.sqrt(x.values[i] * w.values[i]);
      expect(half.x.values[i]).toBeCloseTo(geo, 5);
      expect(half.w.values[i]).toBeCloseTo(geo, 5);
      // The product X·W per channel is invariant (the layer's output does not change).
      expect(half.x.values[i] * half.w.values[i]).toBeCloseTo(x.values[i] * w.values[i], 4);
    }
    const one = smoothMatrices(x, w, 1);
    for (let i = 0; i < 6; i++) expect(one.x.values[i]).toBeCloseTo(1, 6);
    const zero = smoothMatrices(x, w, 0);
    for (let i = 0; i < 6; i++) expect(zero.x.values[i]).toBeCloseTo(x.values[i] * w.values[i], 5);
    // Outlier channel 1 dominates X's spread before, not after.
    expect(rowSpread(x)[0]).toBeCloseTo(25, 6);
    expect(rowSpread(half.x)[0]).toBeLessThan(rowSpread(x)[0]);
  });

  it("keeps NaN padding and rejects mismatched shapes and α outside [0, 1]", () => {
    const x = { rows: 1, cols: 2, values: Float32Array.from([2, NaN]) };
    const w = { rows: 1, cols: 2, values: Float32Array.from([2, NaN]) };
    const s = smoothMatrices(x, w, 0.5);
    expect(s.x.values[1]).toBeNaN();
    expect(() => smoothMatrices(x, { rows: 1, cols: 3, values: new Float32Array(3) }, 0.5)).toThrow(/X is 1×2, W is 1×3/);
    expect(() => smoothMatrices(x, w, 1.5)).toThrow(/α = 1.5/);
  });
});
