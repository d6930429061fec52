/**
 * Sensitivity and error-propagation layouts (pure): role rows in a fixed role order, KL bars,
 * SQNR per layer through depth with block bands, residual-stream error per block.
 */
import type { PropagationData, SensitivityEntry } from "../../../extension/src/protocol";
import { ROLE_ORDER } from "../../../extension/src/protocol";
import { scaleLinear } from "../d3";
import type { Rect } from "./heatmap";

/**
 * One row per role. When several settings were measured (e.g. 4-bit and 3-bit), keep the
 * `preferBits` ones (default: the lowest bits measured, the most telling). Ordered by KL,
 * largest first (rank 1 first); roles outside ROLE_ORDER go last.
 */
export function roleRows(entries: readonly SensitivityEntry[], preferBits?: number): SensitivityEntry[] {
  const roles = entries.filter((e) => e.by === "role");
  if (roles.length === 0) return [];
  const bits = preferBits ?? Math.min(...roles.map((e) => e.bits));
  const chosen = new Map<string, SensitivityEntry>();
  for (const e of roles) {
    if (e.bits !== bits) continue;
    const prev = chosen.get(e.target);
    if (!prev || e.klMean > prev.klMean) chosen.set(e.target, e);
  }
  return [...chosen.values()].sort((a, b) => b.klMean - a.klMean || ROLE_ORDER.indexOf(a.target as never) - ROLE_ORDER.indexOf(b.target as never));
}

/** Distinct bit widths measured (for a selector), ascending. */
export function measuredBits(entries: readonly SensitivityEntry[]): number[] {
  return [...new Set(entries.map((e) => e.bits))].sort((a, b) => a - b);
}

export interface DepthPoint {
  layer: string;
  block: number | null;
  x: number;
  y: number;
  /** dB; null = exact (no error). */
  value: number | null;
  /** The layer-alone SQNR (dashed companion line), when known. */
  localY: number | null;
}

export interface DepthLayout {
  plot: Rect;
  points: DepthPoint[];
  path: string;
  localPath: string;
  /** Alternate shading per block: x range of each block's layers. */
  blockBands: { block: number; x0: number; x1: number }[];
  yTicks: { y: number; label: string }[];
  yDomain: [number, number];
}

export const DEPTH_MARGIN = { top: 10, right: 12, bottom: 28, left: 48 };

/** SQNR (dB) per layer in graph order: one point per layer. Exact outputs (null or +∞ SQNR) are drawn at the top. */
export function computeSqnrLayout(p: PropagationData, size: { width: number; height: number }): DepthLayout {
  const m = DEPTH_MARGIN;
  const plot: Rect = { x: m.left, y: m.top, width: Math.max(1, size.width - m.left - m.right), height: Math.max(1, size.height - m.top - m.bottom) };
  const vals: number[] = [];
  for (const l of p.layers) {
    if (l.sqnrDb !== null && Number.isFinite(l.sqnrDb)) vals.push(l.sqnrDb);
    if (l.localSqnrDb !== null && Number.isFinite(l.localSqnrDb)) vals.push(l.localSqnrDb);
  }
  let lo = vals.length ? Math.min(...vals) : 0;
  let hi = vals.length ? Math.max(...vals) : 1;
  if (hi === lo) {
    lo -= 1;
    hi += 1;
  }
  const y = scaleLinear().domain([lo, hi]).range([plot.y + plot.height, plot.y]).nice();
  const [ylo, yhi] = y.domain() as [number, number];
  const n = p.layers.length;
  const step = plot.width / Math.max(1, n);
  const yOf = (v: number | null) => (v === null ? y(yhi) : Number.isFinite(v) ? y(v) : v > 0 ? y(yhi) : y(ylo));
  const points: DepthPoint[] = p.layers.map((l, i) => ({
    layer: l.layer,
    block: l.block,
    x: plot.x + (i + 0.5) * step,
    y: yOf(l.sqnrDb),
    value: l.sqnrDb,
    localY: l.localSqnrDb === null ? null : yOf(l.localSqnrDb),
  }));
  const path = points.map((q, k) => `${k ? "L" : "M"}${q.x.toFixed(2)},${q.y.toFixed(2)}`).join("");
  const local = points.filter((q) => q.localY !== null);
  const localPath = local.map((q, k) => `${k ? "L" : "M"}${q.x.toFixed(2)},${(q.localY as number).toFixed(2)}`).join("");
  const blockBands: DepthLayout["blockBands"] = [];
  points.forEach((q, i) => {
    if (q.block === null) return;
    const last = blockBands[blockBands.length - 1];
    const x0 = plot.x + i * step;
    if (last && last.block === q.block) last.x1 = x0 + step;
    else blockBands.push({ block: q.block, x0, x1: x0 + step });
  });
  const yTicks = y.ticks(5).map((v) => ({ y: y(v), label: `${v}` }));
  return { plot, points, path, localPath, blockBands, yTicks, yDomain: [ylo, yhi] };
}
