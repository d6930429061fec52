import { describe, expect, it } from "vitest";
import { computeSpectrumLayout, conditionNumbers, decadeTicks, SPECTRUM_MARGIN } from "../../../webview/src/charts/spectrum";
import { computeHistogramPair } from "../../../webview/src/charts/histogram";

describe("spectrum layout", () => {
  const size = { width: 400, height: 200 };
  const plotH = size.height - SPECTRUM_MARGIN.top - SPECTRUM_MARGIN.bottom;
  const plotW = size.width - SPECTRUM_MARGIN.left - SPECTRUM_MARGIN.right;

  it("draws one point per eigenvalue, evenly spaced, on a log10 y axis", () => {
    const eig = Float32Array.from([1e-3, 1e-2, 1e-1, 1, 10, 100]);
    const L = computeSpectrumLayout(eig, 0, size);
    expect(L.points).toHaveLength(6);
    expect(L.points[0].x).toBeCloseTo(SPECTRUM_MARGIN.left, 9);
    expect(L.points[5].x).toBeCloseTo(SPECTRUM_MARGIN.left + plotW, 9);
    // Decades are equally spaced in y: 5 decades over the plot height.
    // (float32 eigenvalues: 1e-3 is not exact, hence 4 digits)
    for (let i = 1; i < 6; i++) expect(L.points[i - 1].y - L.points[i].y).toBeCloseTo(plotH / 5, 4);
    expect(L.points[0].y).toBeCloseTo(SPECTRUM_MARGIN.top + plotH, 6);
    expect(L.points.some((p) => p.clamped)).toBe(false);
    expect((L.path.match(/[ML]/g) ?? []).length).toBe(6);
    expect(L.yTicks.map((t) => t.label)).toEqual(["1e-3", "1e-2", "1e-1", "1e0", "1e1", "1e2"]);
  });

  it("clamps zero and negative eigenvalues to the floor and flags them", () => {
    const L = computeSpectrumLayout([-1e-9, 0, 0.5, 2], 0, size);
    expect(L.points.map((p) => p.clamped)).toEqual([true, true, false, false]);
    expect(L.points[0].y).toBeCloseTo(SPECTRUM_MARGIN.top + plotH, 6);
    expect(L.points[1].y).toBeCloseTo(L.points[0].y, 9);
    expect(L.yDomain).toEqual([0.5, 2]);
  });

  it("places the damping line at λ and widens the axis to include it", () => {
    const L = computeSpectrumLayout([1, 10, 100], 0.1, size);
    expect(L.yDomain[0]).toBeCloseTo(0.1, 9);
    expect(L.dampY).toBeCloseTo(SPECTRUM_MARGIN.top + plotH, 6);
    const M = computeSpectrumLayout([1, 10, 100], 10, size);
    expect(M.dampY).toBeCloseTo(M.points[1].y, 6);
    expect(computeSpectrumLayout([1, 10], 0, size).dampY).toBeNull();
  });

  it("handles a single eigenvalue and an all-zero spectrum", () => {
    const one = computeSpectrumLayout([5], 0, size);
    expect(one.points).toHaveLength(1);
    expect(one.yDomain[0]).toBeLessThan(5);
    expect(one.yDomain[1]).toBeGreaterThan(5);
    const dead = computeSpectrumLayout([0, 0, 0], 0, size);
    expect(dead.points.every((p) => p.clamped)).toBe(true);
  });

  it("computes condition numbers with and without damping", () => {
    expect(conditionNumbers([2, 4, 100], 0)).toEqual({ raw: 50, damped: 50 });
    expect(conditionNumbers([2, 4, 100], 1)).toEqual({ raw: 50, damped: 101 / 3 });
    expect(conditionNumbers([0, 4, 100], 1)).toEqual({ raw: null, damped: 101 });
    expect(conditionNumbers([], 1)).toEqual({ raw: null, damped: null });
    expect(decadeTicks(0.05, 2000)).toEqual([0.1, 1, 10, 100, 1000]);
  });
});

describe("histogram pair", () => {
  it("puts both histograms on one x range and one y scale", () => {
    const before = { lo: -1, hi: 1, counts: [0, 10, 40, 10] };
    const after = { lo: -0.5, hi: 0.5, counts: [5, 20, 20, 5] };
    const L = computeHistogramPair(before, after, { width: 412, height: 200 });
    expect(L.xDomain).toEqual([-1, 1]);
    expect(L.yMax).toBe(40);
    expect(L.before).toHaveLength(4);
    expect(L.after).toHaveLength(4);
    // Before bins are 0.5 wide = a quarter of the range each; after bins an eighth.
    const plotW = L.beforePlot.width;
    expect(L.before[1].width).toBeCloseTo(plotW / 4, 9);
    expect(L.after[1].width).toBeCloseTo(plotW / 8, 9);
    expect(L.after[0].x).toBeCloseTo(L.beforePlot.x + plotW / 4, 9);
    // sqrt scale: the tallest bar fills its panel, a 10-count bar is half as tall as a 40.
    expect(L.before[2].height).toBeCloseTo(L.beforePlot.height, 9);
    expect(L.before[1].height).toBeCloseTo(L.beforePlot.height / 2, 9);
    expect(L.before[0].height).toBe(0);
    expect(L.before[2].y).toBeCloseTo(L.beforePlot.y, 9);
    // Bars of the after panel sit in the lower plot.
    expect(L.afterPlot.y).toBeGreaterThan(L.beforePlot.y + L.beforePlot.height);
    expect(L.after[1].y + L.after[1].height).toBeCloseTo(L.afterPlot.y + L.afterPlot.height, 9);
    expect(L.before[3]).toMatchObject({ lo: 0.5, hi: 1, count: 10 });
  });

  it("rejects an empty range", () => {
    expect(() => computeHistogramPair({ lo: 1, hi: 1, counts: [1] }, { lo: 0, hi: 1, counts: [1] }, { width: 100, height: 100 })).toThrow(/histogram before: empty range/);
  });
});
