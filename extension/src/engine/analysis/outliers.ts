import { BINS_PER_OCTAVE, HIST_MIN_EXP, type ChannelStats } from "../calib/channel-stats";
import type { Tap } from "../calib/taps";
import { decodeF32, encodeF32, type ActivationKind, type ActivationRow, type Heatmap, type PersistentOutlier, type Role } from "../report/schema";

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

// ---- Report rows: per-activation outliers, the layers × channels heatmap, persistence ----

/** What an activation is, from the roles of the layers reading it (schema.ts ActivationKind). */
export function activationKind(roles: readonly string[]): ActivationKind {
  const has = (r: string) => roles.includes(r);
  if (has("q") || has("k") || has("v")) return "attn_in";
  if (has("gate") || has("up")) return "mlp_in";
  if (has("o")) return "attn_out";
  if (has("down")) return "mlp_hidden";
  if (has("lm_head")) return "head_in";
  return "other";
}

/** Kinds whose channels are residual-stream (hidden) channels, comparable across blocks. */
export const RESIDUAL_KINDS: readonly ActivationKind[] = ["attn_in", "mlp_in", "head_in"];

/** The statistics of one tapped activation that the outlier analysis reads (calibration's). */
export interface ActivationStatsInput {
  tap: Tap;
  stats: ChannelStats;
}

/**
 * One report row per tapped activation: statistics, outlier channels by `rule`, and (when
 * `tokenCounts` has the tensor) how many tokens carry each outlier channel.
 */
export function activationRows(
  inputs: ActivationStatsInput[],
  rule: OutlierRule = DEFAULT_OUTLIER_RULE,
  tokenCounts?: Map<string, Map<number, number>>,
): ActivationRow[] {
  return inputs.map(({ tap, stats }) => {
    const med = median(stats.absmax);
    const counts = tokenCounts?.get(tap.tensor);
    const norms = Float64Array.from(stats.tokenNorms).sort();
    return {
      tensor: tap.tensor,
      kind: activationKind(tap.roles),
      block: tap.block,
      layers: [...tap.layers],
      roles: [...tap.roles] as Role[],
      channels: tap.channels,
      tokens: stats.n,
      absmax: encodeF32(stats.absmax),
      mean: encodeF32(stats.mean),
      kurtosis: encodeF32(stats.kurtosis()),
      median_absmax: med,
      outlier_threshold: outlierThreshold(stats.absmax, rule),
      outliers: outlierChannels(stats.absmax, rule).map((o) => {
        const n = counts?.get(o.channel);
        return { ...o, tokens: n ?? null, token_fraction: n === undefined || stats.n === 0 ? null : n / stats.n };
      }),
      hist: { min_exp: HIST_MIN_EXP, bins_per_octave: BINS_PER_OCTAVE, counts: Array.from(stats.hist) },
      token_norm: {
        median: norms.length ? median(norms) : 0,
        p99: norms.length ? norms[Math.min(norms.length - 1, Math.floor(0.99 * (norms.length - 1)))] : 0,
        max: norms.length ? norms[norms.length - 1] : 0,
      },
      top_tokens: stats.topTokens().map((t) => ({ ...t })),
    };
  });
}

/** |x| above which a value of an outlier channel counts as an outlier token: min_ratio × median absmax. */
export function outlierThreshold(absmax: ArrayLike<number>, rule: OutlierRule = DEFAULT_OUTLIER_RULE): number {
  return rule.minRatio * median(absmax);
}

/** The layers × channels absmax matrix, rows in `rows` order, NaN-padded to the widest. */
export function heatmapOf(rows: ActivationRow[], rule: OutlierRule = DEFAULT_OUTLIER_RULE): Heatmap {
  const width = rows.reduce((m, r) => Math.max(m, r.channels), 0);
  const values = new Float32Array(rows.length * width).fill(NaN);
  rows.forEach((r, i) => values.set(decodeF32(r.absmax), i * width));
  return {
    rows: rows.map((r) => ({ tensor: r.tensor, kind: r.kind, block: r.block, channels: r.channels })),
    width,
    values: encodeF32(values),
    rule: { z_threshold: rule.zThreshold, min_ratio: rule.minRatio },
  };
}

/**
 * Residual-stream channels flagged in more than one block (any of the block's attn_in/mlp_in
 * activations), the "massive activation" channels that persist through depth.
 */
export function persistentOutliers(rows: ActivationRow[]): PersistentOutlier[] {
  const byChannel = new Map<number, { blocks: Set<number>; tensors: string[]; maxRatio: number }>();
  for (const r of rows) {
    if (!RESIDUAL_KINDS.includes(r.kind) || r.block === null) continue;
    for (const o of r.outliers) {
      let e = byChannel.get(o.channel);
      if (!e) byChannel.set(o.channel, (e = { blocks: new Set(), tensors: [], maxRatio: 0 }));
      e.blocks.add(r.block);
      e.tensors.push(r.tensor);
      e.maxRatio = Math.max(e.maxRatio, o.ratio);
    }
  }
  return [...byChannel.entries()]
    .filter(([, e]) => e.blocks.size > 1)
    .map(([channel, e]) => ({ channel, blocks: [...e.blocks].sort((a, b) => a - b), tensors: e.tensors, max_ratio: e.maxRatio }))
    .sort((a, b) => b.blocks.length - a.blocks.length || b.max_ratio - a.max_ratio);
}
