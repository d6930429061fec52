/**
 * Streaming statistics of one tapped activation X [rows × C] (rows = tokens), updated batch by
 * batch so no run holds all activations:
 * - per input channel: absmax, mean, variance and excess kurtosis (two passes per batch in
 *   float64, batches merged with Pébay's pairwise formulas — Welford generalised to m3, m4);
 * - a histogram of log2|x| with a fixed, data-independent range (mergeable, stable across runs);
 * - per-token L2 norms and the tokens carrying the largest |x|.
 */

/** Histogram bins: BINS_PER_OCTAVE per power of two from 2^HIST_MIN_EXP to 2^HIST_MAX_EXP. */
export const HIST_MIN_EXP = -24;
export const HIST_MAX_EXP = 24;
export const BINS_PER_OCTAVE = 4;
/** Bin 0 counts exact zeros (and |x| < 2^HIST_MIN_EXP); the last bin everything ≥ 2^HIST_MAX_EXP. */
export const HIST_BINS = (HIST_MAX_EXP - HIST_MIN_EXP) * BINS_PER_OCTAVE + 2;

/** Lower edge of histogram bin `b` (b ≥ 1) in |x|. */
export function histBinEdge(b: number): number {
  return 2 ** (HIST_MIN_EXP + (b - 1) / BINS_PER_OCTAVE);
}

export interface OutlierToken {
  /** Sample (sequence) index in the calibration data, position in it, and the token id. */
  sample: number;
  position: number;
  token: number;
  /** The channel with the largest |x| in this token, and that value. */
  channel: number;
  value: number;
  /** L2 norm of the token's activation vector. */
  norm: number;
}

/** Where each row of a batch came from (rows are tokens of equal-length sequences). */
export interface RowSource {
  samples: number[];
  seqLen: number;
  tokens: number[][];
}

const TOP_TOKENS = 32;

export class ChannelStats {
  /** Rows (tokens) seen. */
  n = 0;
  readonly mean: Float64Array;
  readonly m2: Float64Array;
  readonly m3: Float64Array;
  readonly m4: Float64Array;
  readonly absmax: Float32Array;
  readonly hist = new Float64Array(HIST_BINS);
  readonly tokenNorms: number[] = [];
  nonFinite = 0;
  private top: OutlierToken[] = [];
  private readonly bMean: Float64Array;
  private readonly bM2: Float64Array;
  private readonly bM3: Float64Array;
  private readonly bM4: Float64Array;

  constructor(readonly channels: number) {
    const C = channels;
    this.mean = new Float64Array(C);
    this.m2 = new Float64Array(C);
    this.m3 = new Float64Array(C);
    this.m4 = new Float64Array(C);
    this.absmax = new Float32Array(C);
    this.bMean = new Float64Array(C);
    this.bM2 = new Float64Array(C);
    this.bM3 = new Float64Array(C);
    this.bM4 = new Float64Array(C);
  }

  /** Add a batch X [rows × C] (row-major). Non-finite values are counted and skipped. */
  update(x: Float32Array, rows: number, source?: RowSource): void {
    const C = this.channels;
    if (rows === 0) return;
    const { bMean, bM2, bM3, bM4, absmax } = this;
    bMean.fill(0);
    bM2.fill(0);
    bM3.fill(0);
    bM4.fill(0);
    // Pass 1: sums, absmax, histogram, per-token norm and peak.
    for (let r = 0; r < rows; r++) {
      const off = r * C;
      let sq = 0;
      let peak = 0;
      let peakChannel = 0;
      for (let c = 0; c < C; c++) {
        const v = x[off + c];
        if (!Number.isFinite(v)) {
          this.nonFinite++;
          continue;
        }
        bMean[c] += v;
        sq += v * v;
        const a = Math.abs(v);
        if (a > absmax[c]) absmax[c] = a;
        if (a > peak) {
          peak = a;
          peakChannel = c;
        }
        this.hist[histBin(a)]++;
      }
      const norm = Math.sqrt(sq);
      this.tokenNorms.push(norm);
      if (source) this.offerTop(source, r, peakChannel, x[off + peakChannel], norm);
    }
    for (let c = 0; c < C; c++) bMean[c] /= rows;
    // Pass 2: central sums of this batch (non-finite values were excluded from the mean; they
    // are excluded here too, which leaves those channels' counts slightly off — they are
    // reported through `nonFinite`).
    for (let r = 0; r < rows; r++) {
      const off = r * C;
      for (let c = 0; c < C; c++) {
        const v = x[off + c];
        if (!Number.isFinite(v)) continue;
        const d = v - bMean[c];
        const d2 = d * d;
        bM2[c] += d2;
        bM3[c] += d2 * d;
        bM4[c] += d2 * d2;
      }
    }
    this.merge(rows);
  }

  /** Pébay's pairwise update of (n, mean, m2, m3, m4) with the batch's, channel by channel. */
  private merge(nb: number): void {
    const na = this.n;
    const n = na + nb;
    const { mean, m2, m3, m4, bMean, bM2, bM3, bM4 } = this;
    for (let c = 0; c < this.channels; c++) {
      const delta = bMean[c] - mean[c];
      const dn = delta / n;
      const dn2 = dn * dn;
      const am2 = m2[c];
      const am3 = m3[c];
      m4[c] += bM4[c] + delta * dn2 * dn * na * nb * (na * na - na * nb + nb * nb) + 6 * dn2 * (na * na * bM2[c] + nb * nb * am2) + 4 * dn * (na * bM3[c] - nb * am3);
      m3[c] += bM3[c] + delta * dn2 * na * nb * (na - nb) + 3 * dn * (na * bM2[c] - nb * am2);
      m2[c] += bM2[c] + delta * dn * na * nb;
      mean[c] += dn * nb;
    }
    this.n = n;
  }

  private offerTop(source: RowSource, r: number, channel: number, value: number, norm: number): void {
    const a = Math.abs(value);
    if (this.top.length === TOP_TOKENS && a <= Math.abs(this.top[this.top.length - 1].value)) return;
    const b = Math.floor(r / source.seqLen);
    const position = r % source.seqLen;
    this.top.push({ sample: source.samples[b], position, token: source.tokens[b][position], channel, value, norm });
    this.top.sort((p, q) => Math.abs(q.value) - Math.abs(p.value));
    if (this.top.length > TOP_TOKENS) this.top.length = TOP_TOKENS;
  }

  /** The tokens with the largest |x| seen, largest first. */
  topTokens(): OutlierToken[] {
    return [...this.top];
  }

  variance(): Float64Array {
    return this.m2.map((m) => (this.n > 0 ? m / this.n : 0));
  }

  /** Excess kurtosis per channel, n·m4/m2² − 3 (0 where the variance is 0). */
  kurtosis(): Float64Array {
    return this.m4.map((m, c) => (this.m2[c] > 0 ? (this.n * m) / (this.m2[c] * this.m2[c]) - 3 : 0));
  }
}

export function histBin(a: number): number {
  if (!(a >= 2 ** HIST_MIN_EXP)) return 0;
  const b = Math.floor((Math.log2(a) - HIST_MIN_EXP) * BINS_PER_OCTAVE) + 1;
  return b >= HIST_BINS ? HIST_BINS - 1 : b;
}
