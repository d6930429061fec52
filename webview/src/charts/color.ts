/**
 * Colour mapping for dense heatmaps (pure): a log-scaled domain over the finite positive values,
 * a 256-entry RGBA lookup table from a d3 interpolator, and value → LUT index.
 */
import { rgb } from "../d3";

export interface LogDomain {
  /** log10 of the smallest and largest finite positive values. */
  lo: number;
  hi: number;
}

/**
 * The log10 range of the finite positive values; `floorRatio` caps the dynamic range (values
 * below max/floorRatio map to the bottom colour) so one tiny channel does not wash out the rest.
 * Null when no value is finite and positive.
 */
export function logDomain(values: ArrayLike<number>, floorRatio = 1e6): LogDomain | null {
  let mn = Infinity;
  let mx = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]);
    if (!(v > 0) || !Number.isFinite(v)) continue;
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  if (mx === -Infinity) return null;
  const hi = Math.log10(mx);
  const lo = Math.max(Math.log10(mn), hi - Math.log10(floorRatio));
  return { lo, hi };
}

/** Position in [0, 1] of |v| on the log domain; NaN for NaN (padding) or no domain. Zero → 0. */
export function logPosition(v: number, d: LogDomain | null): number {
  if (d === null || Number.isNaN(v)) return NaN;
  const a = Math.abs(v);
  if (!(a > 0)) return 0;
  if (d.hi === d.lo) return 1;
  const t = (Math.log10(a) - d.lo) / (d.hi - d.lo);
  return t < 0 ? 0 : t > 1 ? 1 : t;
}

export const LUT_SIZE = 256;

/** RGBA bytes for LUT_SIZE evenly spaced points of `interpolate` (a d3 colour interpolator). */
export function buildLut(interpolate: (t: number) => string): Uint8ClampedArray {
  const lut = new Uint8ClampedArray(LUT_SIZE * 4);
  for (let i = 0; i < LUT_SIZE; i++) {
    const c = rgb(interpolate(i / (LUT_SIZE - 1)));
    lut[i * 4] = c.r;
    lut[i * 4 + 1] = c.g;
    lut[i * 4 + 2] = c.b;
    lut[i * 4 + 3] = 255;
  }
  return lut;
}

/** LUT index of a position in [0, 1]; -1 for NaN (draw nothing: the background shows). */
export function lutIndex(t: number): number {
  if (Number.isNaN(t)) return -1;
  return Math.min(LUT_SIZE - 1, Math.max(0, Math.round(t * (LUT_SIZE - 1))));
}
