/**
 * Weight histograms before/after incoherence processing (pure): two histograms on one x range
 * and one y scale, so the flattening of the tails reads directly. Counts on a sqrt y scale keep
 * the tails visible next to the central peak.
 */
import { scaleLinear, scaleSqrt } from "../d3";
import type { Rect } from "./heatmap";

export interface Hist {
  lo: number;
  hi: number;
  counts: readonly number[];
}

export interface HistBar {
  bin: number;
  lo: number;
  hi: number;
  count: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface HistogramPairLayout {
  before: HistBar[];
  after: HistBar[];
  /** Each panel's plot area (stacked: before on top). */
  beforePlot: Rect;
  afterPlot: Rect;
  xDomain: [number, number];
  yMax: number;
  xTicks: { x: number; label: string }[];
}

export const HIST_MARGIN = { top: 16, right: 12, bottom: 24, left: 48 };

export function computeHistogramPair(before: Hist, after: Hist, size: { width: number; height: number }): HistogramPairLayout {
  for (const [name, h] of [["before", before], ["after", after]] as const) {
    if (!(h.hi > h.lo)) throw new RangeError(`histogram ${name}: empty range [${h.lo}, ${h.hi})`);
  }
  const m = HIST_MARGIN;
  const panelH = Math.max(1, (size.height - 2 * (m.top + m.bottom)) / 2);
  const width = Math.max(1, size.width - m.left - m.right);
  const beforePlot: Rect = { x: m.left, y: m.top, width, height: panelH };
  const afterPlot: Rect = { x: m.left, y: m.top + panelH + m.bottom + m.top, width, height: panelH };
  const lo = Math.min(before.lo, after.lo);
  const hi = Math.max(before.hi, after.hi);
  const x = scaleLinear().domain([lo, hi]).range([m.left, m.left + width]);
  let yMax = 0;
  for (const h of [before, after]) for (const c of h.counts) yMax = Math.max(yMax, c);
  const bars = (h: Hist, plot: Rect): HistBar[] => {
    const y = scaleSqrt().domain([0, Math.max(1, yMax)]).range([0, plot.height]);
    const w = (h.hi - h.lo) / Math.max(1, h.counts.length);
    return h.counts.map((count, bin) => {
      const b0 = h.lo + bin * w;
      const b1 = b0 + w;
      const height = y(count);
      return { bin, lo: b0, hi: b1, count, x: x(b0), width: Math.max(0, x(b1) - x(b0)), y: plot.y + plot.height - height, height };
    });
  };
  const xTicks = x.ticks(Math.max(2, Math.floor(width / 70))).map((v) => ({ x: x(v), label: String(v) }));
  return { before: bars(before, beforePlot), after: bars(after, afterPlot), beforePlot, afterPlot, xDomain: [lo, hi], yMax, xTicks };
}
