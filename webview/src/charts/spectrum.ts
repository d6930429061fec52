/**
 * Hessian eigenvalue spectrum (pure): one point per eigenvalue on a log10 y axis, the damping
 * level λ as a horizontal line, and the condition numbers GPTQ sees with and without damping.
 */
import { scaleLinear, scaleLog } from "../d3";
import type { Rect } from "./heatmap";

export interface SpectrumPoint {
  /** Eigenvalue index (ascending order). */
  i: number;
  value: number;
  x: number;
  y: number;
  /** Non-positive (or below the axis floor) eigenvalue drawn at the floor. */
  clamped: boolean;
}

export interface SpectrumLayout {
  plot: Rect;
  points: SpectrumPoint[];
  /** SVG path through the points. */
  path: string;
  /** y of the damping line, null when λ ≤ 0 or off the axis. */
  dampY: number | null;
  yDomain: [number, number];
  yTicks: { y: number; label: string }[];
  xTicks: { x: number; label: string }[];
}

export const SPECTRUM_MARGIN = { top: 10, right: 16, bottom: 28, left: 56 };

/**
 * Eigenvalues (any order; drawn ascending as given) → points. The log axis spans the positive
 * eigenvalues and λ; its floor is max(min positive, max·1e-12) so exact zeros (dead inputs) and
 * round-off negatives sit visibly at the bottom, flagged `clamped`.
 */
export function computeSpectrumLayout(eigenvalues: ArrayLike<number>, damp: number, size: { width: number; height: number }): SpectrumLayout {
  const m = SPECTRUM_MARGIN;
  const plot: Rect = { x: m.left, y: m.top, width: Math.max(1, size.width - m.left - m.right), height: Math.max(1, size.height - m.top - m.bottom) };
  const n = eigenvalues.length;
  let maxPos = 0;
  let minPos = Infinity;
  for (let i = 0; i < n; i++) {
    const v = eigenvalues[i];
    if (v > 0 && Number.isFinite(v)) {
      if (v > maxPos) maxPos = v;
      if (v < minPos) minPos = v;
    }
  }
  if (damp > 0 && Number.isFinite(damp)) {
    maxPos = Math.max(maxPos, damp);
    minPos = Math.min(minPos, damp);
  }
  if (maxPos === 0) {
    maxPos = 1;
    minPos = 1e-12;
  }
  const floor = Math.max(minPos, maxPos * 1e-12);
  const lo = floor === maxPos ? floor / 10 : floor;
  const hi = floor === maxPos ? maxPos * 10 : maxPos;
  const y = scaleLog().domain([lo, hi]).range([plot.y + plot.height, plot.y]);
  const x = scaleLinear().domain([0, Math.max(1, n - 1)]).range([plot.x, plot.x + plot.width]);
  const points: SpectrumPoint[] = [];
  for (let i = 0; i < n; i++) {
    const v = eigenvalues[i];
    const clamped = !(v >= lo) || !Number.isFinite(v);
    points.push({ i, value: v, x: x(i), y: y(clamped ? lo : v), clamped });
  }
  const path = points.map((p, k) => `${k === 0 ? "M" : "L"}${p.x.toFixed(2)},${p.y.toFixed(2)}`).join("");
  const dampY = damp > 0 && damp >= lo && damp <= hi ? y(damp) : null;
  const yTicks = decadeTicks(lo, hi).map((v) => ({ y: y(v), label: `1e${Math.round(Math.log10(v))}` }));
  const xTicks = x.ticks(Math.max(2, Math.floor(plot.width / 80))).filter(Number.isInteger).map((i) => ({ x: x(i), label: String(i) }));
  return { plot, points, path, dampY, yDomain: [lo, hi], yTicks, xTicks };
}

/** Powers of ten in [lo, hi], thinned to at most ~8. */
export function decadeTicks(lo: number, hi: number): number[] {
  // The tolerance keeps a decade that float32 rounding put a hair outside the domain.
  const a = Math.ceil(Math.log10(lo) - 1e-6);
  const b = Math.floor(Math.log10(hi) + 1e-6);
  const step = Math.max(1, Math.ceil((b - a + 1) / 8));
  const out: number[] = [];
  for (let e = a; e <= b; e += step) out.push(Math.pow(10, e));
  return out;
}

/** λ_max/λ_min (null when λ_min ≤ 0) and (λ_max+λ)/(λ_min+λ) for damping λ. */
export function conditionNumbers(eigenvalues: ArrayLike<number>, damp: number): { raw: number | null; damped: number | null } {
  if (eigenvalues.length === 0) return { raw: null, damped: null };
  let mn = Infinity;
  let mx = -Infinity;
  for (let i = 0; i < eigenvalues.length; i++) {
    mn = Math.min(mn, eigenvalues[i]);
    mx = Math.max(mx, eigenvalues[i]);
  }
  const raw = mn > 0 ? mx / mn : null;
  const damped = mn + damp > 0 ? (mx + damp) / (mn + damp) : null;
  return { raw, damped };
}
