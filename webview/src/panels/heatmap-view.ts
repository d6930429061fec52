/**
 * One dense heatmap: a <canvas> for the cells, an SVG overlay for axes, outlier marks, the hover
 * cursor and the brush (drag to zoom into channels). Keyboard: arrows move the cursor cell
 * (Shift: bigger steps), + / − zoom around it, 0 resets, Enter picks the row. Layout math is
 * in charts/heatmap.ts.
 */
import { brushX, interpolateViridis, pointer, select, type D3BrushEvent } from "../d3";
import { buildLut, type LogDomain } from "../charts/color";
import { brushToView, cellAt, clampView, computeHeatmapLayout, heatmapImage, valueAt, type ColumnView, type HeatmapLayout, type Matrix } from "../charts/heatmap";
import { formatNumber } from "../charts/format";
import { clear, h, onResize, s } from "../dom";
import { themeColors } from "../theme";
import { axisLabel, xAxis } from "./common";

let viridis: Uint8ClampedArray | null = null;
const lut = () => (viridis ??= buildLut(interpolateViridis));

export interface HeatmapViewOptions {
  matrix: Matrix;
  rowLabels: string[];
  outliers: readonly (readonly number[])[];
  testid: string;
  /** Extra attributes on the canvas (e.g. data-rows). */
  canvasAttrs?: Record<string, string | number>;
  ariaLabel: string;
  /** Height of one row in px (clamped to keep the chart between 120 and 560 px). */
  rowPx?: number;
  xLabel: string;
  domain?: LogDomain | null;
  view?: ColumnView;
  onView?: (v: ColumnView) => void;
  /** Readout text for a cell. */
  describe: (row: number, channel: number, value: number) => string;
  readout: HTMLElement;
  onSelectRow?: (row: number) => void;
  outlierTestid?: string;
  marginLeft?: number;
}

export interface HeatmapView {
  root: HTMLElement;
  setView(v: ColumnView): void;
  redraw(): void;
}

export function heatmapView(o: HeatmapViewOptions): HeatmapView {
  const m = o.matrix;
  if (m.rows === 0 || m.cols === 0) {
    const root = h("p", { class: "muted" }, `${o.ariaLabel}: nothing to show (${m.rows} × ${m.cols}).`);
    return { root, setView: () => undefined, redraw: () => undefined };
  }
  const rowPx = o.rowPx ?? 14;
  const height = Math.max(120, Math.min(560, m.rows * rowPx + 34));
  const canvas = h("canvas", { "data-testid": o.testid, role: "img", "aria-label": o.ariaLabel, ...o.canvasAttrs });
  const svg = s("svg", { class: "overlay", tabindex: 0, role: "application", "aria-label": `${o.ariaLabel}. Arrow keys move the cursor (Shift: faster), + and − zoom, 0 resets.` });
  const root = h("div", { class: "heatmap" }, canvas, svg);
  root.style.height = `${height}px`;
  let view = clampView(o.view ?? { c0: 0, c1: m.cols }, m.cols);
  let layout: HeatmapLayout | null = null;
  let cursor: { row: number; channel: number } | null = null;
  let width = 0;
  const margin = { top: 6, right: 12, bottom: 30, left: o.marginLeft ?? 150 };

  const show = (c: { row: number; channel: number } | null) => {
    cursor = c;
    const mark = svg.querySelector<SVGRectElement>("rect.cursor");
    if (!c || !layout) {
      o.readout.textContent = "";
      if (mark) mark.setAttribute("visibility", "hidden");
      return;
    }
    o.readout.textContent = o.describe(c.row, c.channel, valueAt(m, c.row, c.channel));
    if (mark) {
      const L = layout;
      mark.setAttribute("visibility", "visible");
      mark.setAttribute("x", String(L.plot.x + (c.channel - L.view.c0) * L.colWidth));
      mark.setAttribute("y", String(L.plot.y + c.row * L.rowHeight));
      mark.setAttribute("width", String(Math.max(L.colWidth, 2)));
      mark.setAttribute("height", String(L.rowHeight));
    }
  };

  const draw = () => {
    if (width <= 0) return;
    const L = computeHeatmapLayout(m, { width, height, view, rowLabels: o.rowLabels, outliers: o.outliers, margin, domain: o.domain });
    layout = L;
    const colors = themeColors();
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    if (ctx) {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      const img = heatmapImage(m, L, lut());
      const off = document.createElement("canvas");
      off.width = L.image.width;
      off.height = L.image.height;
      off.getContext("2d")?.putImageData(new ImageData(img, L.image.width, L.image.height), 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, L.plot.x, L.plot.y, L.plot.width, L.plot.height);
      ctx.strokeStyle = colors.border;
      ctx.strokeRect(L.plot.x - 0.5, L.plot.y - 0.5, L.plot.width + 1, L.plot.height + 1);
    }
    clear(svg);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.append(xAxis(L.xTicks, L.plot.y + L.plot.height, L.plot.x, L.plot.x + L.plot.width));
    svg.append(axisLabel(o.xLabel, L.plot.x + L.plot.width / 2, height - 2));
    const labels = s("g", { class: "row-labels" });
    for (const r of L.rowLabels) {
      const t = s("text", { x: L.plot.x - 6, y: r.y + 4, "text-anchor": "end", class: o.onSelectRow ? "clickable" : null }, r.label);
      if (o.onSelectRow) t.addEventListener("click", () => o.onSelectRow?.(r.row));
      labels.append(t);
    }
    svg.append(labels);
    const marks = s("g", { class: "outliers" });
    for (const q of L.outliers) {
      marks.append(s("rect", { x: q.x, y: q.y, width: q.width, height: q.height, "data-testid": o.outlierTestid ?? null, "data-row": q.row, "data-channel": q.channel }));
    }
    svg.append(marks);
    const brushG = s("g", { class: "brush" });
    svg.append(brushG);
    svg.append(s("rect", { class: "cursor", visibility: "hidden" }));
    const brush = brushX<unknown>()
      .extent([
        [L.plot.x, L.plot.y],
        [L.plot.x + L.plot.width, L.plot.y + L.plot.height],
      ])
      .keyModifiers(false)
      .on("end", (ev: D3BrushEvent<unknown>) => {
        if (!ev.selection || !ev.sourceEvent) return;
        const [x0, x1] = ev.selection as [number, number];
        if (Math.abs(x1 - x0) < 3) return;
        setView(brushToView(L, x0, x1));
      });
    select(brushG).call(brush);
    brushG.addEventListener("mousemove", (e) => {
      const [x, y] = pointer(e, svg);
      show(cellAt(L, x, y));
    });
    brushG.addEventListener("mouseleave", () => show(null));
    if (cursor) show(cursor);
  };

  const setView = (v: ColumnView) => {
    view = clampView(v, m.cols);
    o.onView?.(view);
    draw();
  };

  svg.addEventListener("keydown", (e) => {
    const c = cursor ?? { row: 0, channel: view.c0 };
    const n = view.c1 - view.c0;
    const step = e.shiftKey ? Math.max(1, Math.round(n / 16)) : 1;
    let next: { row: number; channel: number } | null = null;
    switch (e.key) {
      case "ArrowLeft":
        next = { row: c.row, channel: Math.max(view.c0, c.channel - step) };
        break;
      case "ArrowRight":
        next = { row: c.row, channel: Math.min(view.c1 - 1, c.channel + step) };
        break;
      case "ArrowUp":
        next = { row: Math.max(0, c.row - 1), channel: c.channel };
        break;
      case "ArrowDown":
        next = { row: Math.min(m.rows - 1, c.row + 1), channel: c.channel };
        break;
      case "+":
      case "=":
        setView({ c0: c.channel - n / 4, c1: c.channel + n / 4 });
        break;
      case "-":
        setView({ c0: c.channel - n, c1: c.channel + n });
        break;
      case "0":
        setView({ c0: 0, c1: m.cols });
        break;
      case "Enter":
        o.onSelectRow?.(c.row);
        break;
      default:
        return;
    }
    e.preventDefault();
    if (next) show(next);
  });
  svg.addEventListener("focus", () => {
    if (!cursor) show({ row: 0, channel: view.c0 });
  });

  onResize(root, (w) => {
    if (Math.round(w) !== width) {
      width = Math.round(w);
      draw();
    }
  });
  return { root, setView, redraw: draw };
}

/** A colour legend for a log domain: gradient bar drawn on a small canvas, min and max labels. */
export function legend(domain: LogDomain | null, unit: string): HTMLElement {
  const c = h("canvas", { class: "legend-bar", width: 160, height: 10, "aria-hidden": "true" });
  const ctx = c.getContext("2d");
  if (ctx) {
    for (let x = 0; x < 160; x++) {
      ctx.fillStyle = interpolateViridis(x / 159);
      ctx.fillRect(x, 0, 1, 10);
    }
  }
  const lo = domain ? formatNumber(Math.pow(10, domain.lo)) : "–";
  const hi = domain ? formatNumber(Math.pow(10, domain.hi)) : "–";
  return h("div", { class: "legend" }, h("span", undefined, lo), c, h("span", undefined, `${hi} ${unit} (log)`));
}
