import type { ChannelBatchOut } from "./binding";

/**
 * TypeScript reference of `channelBatchStats` (native-kernels/core/channel_stats.h), same
 * contract: two passes per channel in float64; histogram of log2|x| in quarter octaves from
 * 2^HIST_MIN_EXP (bin 0 below it, zeros included) to 2^HIST_MAX_EXP (last bin above).
 */
export const HIST_MIN_EXP = -24;
export const HIST_MAX_EXP = 24;
export const BINS_PER_OCTAVE = 4;
export const HIST_BINS = (HIST_MAX_EXP - HIST_MIN_EXP) * BINS_PER_OCTAVE + 2;

/** Lower edge of histogram bin `b` (b ≥ 1) in |x|. */
export function histBinEdge(b: number): number {
  return 2 ** (HIST_MIN_EXP + (b - 1) / BINS_PER_OCTAVE);
}

// Quarter-octave edges inside [1, 2) as float32 mantissa bits (exact, no log per value).
const f = new Float32Array(1);
const u = new Uint32Array(f.buffer);
const EDGES = [1, 2, 3].map((k) => {
  f[0] = 2 ** (k / 4);
  return u[0] & 0x7fffff;
});

export function histBin(a: number): number {
  f[0] = a;
  const bits = u[0];
  const exp = ((bits >>> 23) & 0xff) - 127;
  if (exp < HIST_MIN_EXP) return 0;
  if (exp >= HIST_MAX_EXP) return HIST_BINS - 1;
  const m = bits & 0x7fffff;
  const q = m >= EDGES[2] ? 3 : m >= EDGES[1] ? 2 : m >= EDGES[0] ? 1 : 0;
  return (exp - HIST_MIN_EXP) * BINS_PER_OCTAVE + q + 1;
}

export function channelBatchStatsRef(x: Float32Array, rows: number, C: number, out: ChannelBatchOut): number {
  const { mean, m2, m3, m4, absmax, absSum, hist, rowNorm, rowPeak, rowPeakChannel } = out;
  let bad = 0;
  // Σ|x| of this batch per channel, then added to the running sums (the kernel's order).
  const batchAbs = new Float64Array(C);
  mean.fill(0);
  for (let r = 0; r < rows; r++) {
    const off = r * C;
    let sq = 0;
    let peakAbs = 0;
    let peak = 0;
    let peakC = 0;
    for (let c = 0; c < C; c++) {
      const v = x[off + c];
      if (!Number.isFinite(v)) {
        bad++;
        continue;
      }
      mean[c] += v;
      sq += v * v;
      const a = Math.abs(v);
      if (a > absmax[c]) absmax[c] = a;
      batchAbs[c] += a;
      if (a > peakAbs) {
        peakAbs = a;
        peak = v;
        peakC = c;
      }
      hist[histBin(a)]++;
    }
    rowNorm[r] = Math.sqrt(sq);
    rowPeak[r] = peak;
    rowPeakChannel[r] = peakC;
  }
  for (let c = 0; c < C; c++) mean[c] = rows ? mean[c] / rows : 0;
  for (let c = 0; c < C; c++) absSum[c] += batchAbs[c];
  m2.fill(0);
  m3.fill(0);
  m4.fill(0);
  for (let r = 0; r < rows; r++) {
    const off = r * C;
    for (let c = 0; c < C; c++) {
      const v = x[off + c];
      if (!Number.isFinite(v)) continue;
      const d = v - mean[c];
      const d2 = d * d;
      m2[c] += d2;
      m3[c] += d2 * d;
      m4[c] += d2 * d2;
    }
  }
  return bad;
}
