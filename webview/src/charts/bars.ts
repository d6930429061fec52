/**
 * Bar charts (pure): grouped bars for before/after pairs (μ_W, μ_H per layer), plain bars with a
 * category per bar (bits per layer, residual error per block).
 */
import { scaleBand, scaleLinear } from "../d3";
import type { Rect } from "./heatmap";

export interface Bar {
  /** Index of the datum. */
  index: number;
  key: string;
  value: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface BarLayout {
  plot: Rect;
  bars: Bar[];
  yMax: number;
  yTicks: { y: number; label: string; value: number }[];
  /** Centre of each band (for labels). */
  bandCenters: number[];
  bandWidth: number;
}

export interface BarOptions {
  width: number;
  height: number;
  margin?: { top: number; right: number; bottom: number; left: number };
  /** Lower bound for the y maximum (e.g. 8 bits). */
  minYMax?: number;
}

export const BAR_MARGIN = { top: 10, right: 12, bottom: 40, left: 48 };

/** One bar per value (NaN/negative → zero height, still one bar). */
export function computeBarLayout(values: readonly number[], keys: readonly string[], o: BarOptions): BarLayout {
  return computeGroupedBarLayout(values.map((v) => [v]), keys, o);
}

/**
 * `groups[i][k]`: the k-th bar of band i (e.g. k = 0 before, 1 after). Bars are numbered
 * band-major in `bars` (index = i·K + k, key = keys[i]).
 */
export function computeGroupedBarLayout(groups: readonly (readonly number[])[], keys: readonly string[], o: BarOptions): BarLayout {
  const m = o.margin ?? BAR_MARGIN;
  const plot: Rect = { x: m.left, y: m.top, width: Math.max(1, o.width - m.left - m.right), height: Math.max(1, o.height - m.top - m.bottom) };
  let yMax = o.minYMax ?? 0;
  for (const g of groups) for (const v of g) if (Number.isFinite(v)) yMax = Math.max(yMax, v);
  if (!(yMax > 0)) yMax = 1;
  const band = scaleBand<number>()
    .domain(groups.map((_, i) => i))
    .range([plot.x, plot.x + plot.width])
    .paddingInner(groups.length > 60 ? 0.05 : 0.2)
    .paddingOuter(0.1);
  const y = scaleLinear().domain([0, yMax]).range([plot.y + plot.height, plot.y]).nice();
  const top = y.domain()[1];
  const bars: Bar[] = [];
  groups.forEach((g, i) => {
    const k = g.length;
    const bw = band.bandwidth() / Math.max(1, k);
    g.forEach((v, j) => {
      const val = Number.isFinite(v) && v > 0 ? v : 0;
      const yv = y(Math.min(val, top));
      bars.push({ index: i * k + j, key: keys[i] ?? String(i), value: v, x: (band(i) ?? 0) + j * bw, width: Math.max(0.5, bw), y: yv, height: plot.y + plot.height - yv });
    });
  });
  const yTicks = y.ticks(5).map((v) => ({ y: y(v), label: String(v), value: v }));
  const bandCenters = groups.map((_, i) => (band(i) ?? 0) + band.bandwidth() / 2);
  return { plot, bars, yMax: top, yTicks, bandCenters, bandWidth: band.bandwidth() };
}
