/**
 * Dense heatmap layout (pure): rows × channels cells on a canvas, with a column window for zoom,
 * max-pooling when there are more channels in view than pixels (so an outlier channel never
 * disappears between pixels), hover lookup and brush → window conversion.
 */
import { ticks } from "../d3";
import { LUT_SIZE, logDomain, logPosition, lutIndex, type LogDomain } from "./color";

/** Row-major values, NaN where a row is shorter than `cols`. */
export interface Matrix {
  rows: number;
  cols: number;
  values: Float32Array;
}

/** The channels in view: [c0, c1). */
export interface ColumnView {
  c0: number;
  c1: number;
}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface HeatmapOptions {
  width: number;
  height: number;
  view: ColumnView;
  /** One label per row. */
  rowLabels: string[];
  /** Outlier channels per row (marked). */
  outliers: readonly (readonly number[])[];
  margin?: { top: number; right: number; bottom: number; left: number };
  /** Fix the colour domain (e.g. shared by two heatmaps); default: from the values in view's rows. */
  domain?: LogDomain | null;
}

export interface HeatmapLayout {
  plot: Rect;
  rows: number;
  cols: number;
  view: ColumnView;
  /** Canvas image: one pixel column per `colsPerPixel` channels, one pixel row per row. */
  image: { width: number; height: number; colsPerPixel: number };
  rowHeight: number;
  /** Width of one channel in CSS px (may be < 1 when pooled). */
  colWidth: number;
  domain: LogDomain | null;
  xTicks: { x: number; label: string }[];
  rowLabels: { y: number; label: string; row: number }[];
  /** Outlier marks inside the view, one per (row, channel). */
  outliers: { row: number; channel: number; x: number; y: number; width: number; height: number }[];
}

export const HEATMAP_MARGIN = { top: 6, right: 12, bottom: 26, left: 150 };

export function clampView(view: ColumnView, cols: number): ColumnView {
  const c0 = Math.max(0, Math.min(cols - 1, Math.floor(view.c0)));
  const c1 = Math.max(c0 + 1, Math.min(cols, Math.ceil(view.c1)));
  return { c0, c1 };
}

export function computeHeatmapLayout(m: Matrix, o: HeatmapOptions): HeatmapLayout {
  if (m.values.length !== m.rows * m.cols) {
    throw new RangeError(`heatmap: ${m.values.length} values for ${m.rows} × ${m.cols}`);
  }
  const margin = o.margin ?? HEATMAP_MARGIN;
  const plot: Rect = {
    x: margin.left,
    y: margin.top,
    width: Math.max(1, o.width - margin.left - margin.right),
    height: Math.max(1, o.height - margin.top - margin.bottom),
  };
  const view = clampView(o.view, m.cols);
  const n = view.c1 - view.c0;
  const pxCols = Math.max(1, Math.floor(plot.width));
  const imageWidth = Math.min(n, pxCols);
  const rowHeight = plot.height / Math.max(1, m.rows);
  const colWidth = plot.width / n;

  let domain: LogDomain | null;
  if (o.domain !== undefined) domain = o.domain;
  else domain = logDomain(m.values);

  const xTicks = ticks(view.c0, view.c1 - 1, Math.max(2, Math.floor(plot.width / 80)))
    .filter((c) => Number.isInteger(c))
    .map((c) => ({ x: plot.x + (c - view.c0 + 0.5) * colWidth, label: String(c) }));

  // Label every row when there is room, else every k-th.
  const every = Math.max(1, Math.ceil(11 / Math.max(rowHeight, 1e-9)));
  const rowLabels: HeatmapLayout["rowLabels"] = [];
  for (let r = 0; r < m.rows; r += every) rowLabels.push({ y: plot.y + (r + 0.5) * rowHeight, label: o.rowLabels[r] ?? String(r), row: r });

  const outliers: HeatmapLayout["outliers"] = [];
  const markW = Math.max(colWidth, 2);
  for (let r = 0; r < Math.min(m.rows, o.outliers.length); r++) {
    for (const c of o.outliers[r]) {
      if (c < view.c0 || c >= view.c1) continue;
      const cx = plot.x + (c - view.c0 + 0.5) * colWidth;
      outliers.push({ row: r, channel: c, x: cx - markW / 2, y: plot.y + r * rowHeight, width: markW, height: rowHeight });
    }
  }

  return {
    plot,
    rows: m.rows,
    cols: m.cols,
    view,
    image: { width: imageWidth, height: m.rows, colsPerPixel: n / imageWidth },
    rowHeight,
    colWidth,
    domain,
    xTicks,
    rowLabels,
    outliers,
  };
}

/** Channels [lo, hi) that image pixel column `p` covers. */
export function pixelChannels(layout: HeatmapLayout, p: number): ColumnView {
  const n = layout.view.c1 - layout.view.c0;
  const w = layout.image.width;
  return { c0: layout.view.c0 + Math.floor((p * n) / w), c1: layout.view.c0 + Math.floor(((p + 1) * n) / w) };
}

/**
 * RGBA pixels (image.width × image.height) through `lut` (LUT_SIZE × 4 bytes): each pixel takes
 * the largest |value| of its channels (NaN only when all are NaN: left transparent).
 */
export function heatmapImage(m: Matrix, layout: HeatmapLayout, lut: Uint8ClampedArray): Uint8ClampedArray<ArrayBuffer> {
  if (lut.length !== LUT_SIZE * 4) throw new RangeError(`heatmap: LUT of ${lut.length} bytes (expected ${LUT_SIZE * 4})`);
  const { width, height } = layout.image;
  const out = new Uint8ClampedArray(width * height * 4);
  const spans: ColumnView[] = [];
  for (let p = 0; p < width; p++) spans.push(pixelChannels(layout, p));
  for (let r = 0; r < height; r++) {
    const base = r * m.cols;
    for (let p = 0; p < width; p++) {
      const { c0, c1 } = spans[p];
      let best = NaN;
      for (let c = c0; c < c1; c++) {
        const a = Math.abs(m.values[base + c]);
        if (!Number.isNaN(a) && !(a <= best)) best = a;
      }
      const k = lutIndex(logPosition(best, layout.domain));
      if (k < 0) continue;
      const o = (r * width + p) * 4;
      out[o] = lut[k * 4];
      out[o + 1] = lut[k * 4 + 1];
      out[o + 2] = lut[k * 4 + 2];
      out[o + 3] = 255;
    }
  }
  return out;
}

/** The cell under (x, y) in CSS px, or null outside the plot. */
export function cellAt(layout: HeatmapLayout, x: number, y: number): { row: number; channel: number } | null {
  const { plot } = layout;
  if (x < plot.x || y < plot.y || x >= plot.x + plot.width || y >= plot.y + plot.height) return null;
  const row = Math.floor((y - plot.y) / layout.rowHeight);
  const channel = layout.view.c0 + Math.floor((x - plot.x) / layout.colWidth);
  if (row < 0 || row >= layout.rows || channel >= layout.view.c1) return null;
  return { row, channel };
}

/** A brushed pixel interval [x0, x1] → the channels it covers (at least one). */
export function brushToView(layout: HeatmapLayout, x0: number, x1: number): ColumnView {
  const lo = Math.min(x0, x1) - layout.plot.x;
  const hi = Math.max(x0, x1) - layout.plot.x;
  const c0 = layout.view.c0 + Math.floor(lo / layout.colWidth);
  const c1 = layout.view.c0 + Math.ceil(hi / layout.colWidth);
  return clampView({ c0, c1: Math.max(c1, c0 + 1) }, layout.cols);
}

/** Value at (row, channel), NaN outside the matrix. */
export function valueAt(m: Matrix, row: number, channel: number): number {
  if (row < 0 || row >= m.rows || channel < 0 || channel >= m.cols) return NaN;
  return m.values[row * m.cols + channel];
}
