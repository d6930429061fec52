/**
 * Outlier channels of an activation, from its per-channel absmax (the rule SmoothQuant/LLM.int8()
 * motivate, made robust): with m = median(absmax) and MAD = median(|absmax − m|), channel c is an
 * outlier when both
 *   - its robust z-score (absmax_c − m) / (1.4826·MAD) exceeds `zThreshold` (default 6), and
 *   - its magnitude ratio absmax_c / m exceeds `minRatio` (default 4),
 * so a tight distribution does not flag channels that are barely above the rest, and a wide one
 * does not flag its ordinary tail. Returned largest first.
 */
export interface OutlierRule {
  zThreshold: number;
  minRatio: number;
}

export const DEFAULT_OUTLIER_RULE: OutlierRule = { zThreshold: 6, minRatio: 4 };

export interface OutlierChannel {
  channel: number;
  absmax: number;
  /** absmax / median absmax. */
  ratio: number;
  /** Robust z-score. */
  score: number;
}

export function median(values: ArrayLike<number>): number {
  const a = Float64Array.from(values).sort();
  if (a.length === 0) return 0;
  const mid = a.length >> 1;
  return a.length % 2 ? a[mid] : (a[mid - 1] + a[mid]) / 2;
}

export function outlierChannels(absmax: ArrayLike<number>, rule: OutlierRule = DEFAULT_OUTLIER_RULE): OutlierChannel[] {
  const m = median(absmax);
  const mad = median(Array.from(absmax, (v) => Math.abs(v - m)));
  // A zero MAD (more than half the channels equal) would make every deviation infinite; fall
  // back to the mean absolute deviation so the rule still ranks sensibly.
  let spread = 1.4826 * mad;
  if (spread === 0) spread = Array.from(absmax, (v) => Math.abs(v - m)).reduce((s, v) => s + v, 0) / Math.max(1, absmax.length);
  const out: OutlierChannel[] = [];
  for (let c = 0; c < absmax.length; c++) {
    const a = absmax[c];
    const ratio = m > 0 ? a / m : a > 0 ? Infinity : 0;
    const score = spread > 0 ? (a - m) / spread : a > m ? Infinity : 0;
    if (score > rule.zThreshold && ratio > rule.minRatio) out.push({ channel: c, absmax: a, ratio, score });
  }
  return out.sort((p, q) => q.absmax - p.absmax);
}
