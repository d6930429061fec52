/**
 * SmoothQuant α preview (Xiao et al. 2022), pure: per input channel j,
 *   s_j = max|X_j|^α / max|W_j|^(1−α),
 * and the absmax of the smoothed operands, X·diag(s)⁻¹ → max|X_j|/s_j and W·diag(s) → max|W_j|·s_j
 * (W: [out × in], s scales its columns). A channel with zero or missing absmax in X or W keeps
 * s_j = 1 (nothing to migrate). NaN padding stays NaN.
 */
import type { Matrix } from "./heatmap";

export function smoothingScale(x: number, w: number, alpha: number): number {
  if (Number.isNaN(x) || Number.isNaN(w)) return NaN;
  if (!(x > 0) || !(w > 0) || !Number.isFinite(x) || !Number.isFinite(w)) return 1;
  return Math.pow(x, alpha) / Math.pow(w, 1 - alpha);
}

export interface Smoothed {
  s: Matrix;
  /** max|X_j| / s_j */
  x: Matrix;
  /** max|W_j| · s_j */
  w: Matrix;
}

export function smoothMatrices(x: Matrix, w: Matrix, alpha: number): Smoothed {
  if (x.rows !== w.rows || x.cols !== w.cols) throw new RangeError(`smoothquant: X is ${x.rows}×${x.cols}, W is ${w.rows}×${w.cols}`);
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`smoothquant: α = ${alpha} outside [0, 1]`);
  const n = x.values.length;
  const s = new Float32Array(n);
  const xs = new Float32Array(n);
  const ws = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const sj = smoothingScale(x.values[i], w.values[i], alpha);
    s[i] = sj;
    xs[i] = x.values[i] / sj;
    ws[i] = w.values[i] * sj;
  }
  const m = (values: Float32Array): Matrix => ({ rows: x.rows, cols: x.cols, values });
  return { s: m(s), x: m(xs), w: m(ws) };
}

/**
 * How hard a row is to quantize per tensor: max / median of its channels' absmax (1 = flat).
 * NaN for a row without finite positive values.
 */
export function rowSpread(m: Matrix): Float64Array {
  const out = new Float64Array(m.rows);
  for (let r = 0; r < m.rows; r++) {
    const vals: number[] = [];
    for (let c = 0; c < m.cols; c++) {
      const v = Math.abs(m.values[r * m.cols + c]);
      if (Number.isFinite(v)) vals.push(v);
    }
    if (vals.length === 0) {
      out[r] = NaN;
      continue;
    }
    vals.sort((a, b) => a - b);
    const mid = vals.length >> 1;
    const med = vals.length % 2 ? vals[mid] : (vals[mid - 1] + vals[mid]) / 2;
    out[r] = med > 0 ? vals[vals.length - 1] / med : NaN;
  }
  return out;
}
