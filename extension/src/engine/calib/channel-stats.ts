import { channelBatchOut, channelBatchStats, HIST_BINS, type ChannelBatchOut } from "../kernels/channel-stats";

/**
 * Streaming statistics of one tapped activation X [rows × C] (rows = tokens), updated batch by
 * batch so no run holds all activations:
 * - per input channel: absmax, mean, variance and excess kurtosis (two passes per batch in
 *   float64, batches merged with Pébay's pairwise formulas — Welford generalised to m3, m4);
 * - a histogram of log2|x| with a fixed, data-independent range (mergeable, stable across runs);
 * - per-token L2 norms and the tokens carrying the largest |x|.
 */

export { HIST_BINS, HIST_MIN_EXP, HIST_MAX_EXP, BINS_PER_OCTAVE, histBin, histBinEdge } from "../kernels/channel-stats";

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
  /** Σ|x| per channel over the finite values seen (AWQ's activation magnitude is absSum / n). */
  readonly absSum: Float64Array;
  readonly hist = new Float64Array(HIST_BINS);
  readonly tokenNorms: number[] = [];
  nonFinite = 0;
  private top: OutlierToken[] = [];
  /** Batch outputs, reused; absmax and hist alias the running ones. */
  private out: ChannelBatchOut | undefined;

  constructor(readonly channels: number) {
    const C = channels;
    this.mean = new Float64Array(C);
    this.m2 = new Float64Array(C);
    this.m3 = new Float64Array(C);
    this.m4 = new Float64Array(C);
    this.absmax = new Float32Array(C);
    this.absSum = new Float64Array(C);
  }

  /** Add a batch X [rows × C] (row-major). Non-finite values are counted and skipped. */
  async update(x: Float32Array, rows: number, source?: RowSource, signal?: AbortSignal): Promise<void> {
    if (rows === 0) return;
    if (!this.out || this.out.rowNorm.length < rows) this.out = { ...channelBatchOut(rows, this.channels), absmax: this.absmax, absSum: this.absSum, hist: this.hist };
    const out = this.out;
    this.nonFinite += await channelBatchStats(x, rows, this.channels, out, { signal });
    for (let r = 0; r < rows; r++) {
      const norm = out.rowNorm[r];
      this.tokenNorms.push(norm);
      if (source) this.offerTop(source, r, out.rowPeakChannel[r], out.rowPeak[r], norm);
    }
    this.merge(rows, out);
  }

  /** Mean |x| per channel (AWQ's s_x). */
  absMean(): Float64Array {
    return this.absSum.map((s) => (this.n > 0 ? s / this.n : 0));
  }

  /** Pébay's pairwise update of (n, mean, m2, m3, m4) with the batch's, channel by channel. */
  private merge(nb: number, batch: ChannelBatchOut): void {
    const na = this.n;
    const n = na + nb;
    const { mean, m2, m3, m4 } = this;
    const { mean: bMean, m2: bM2, m3: bM3, m4: bM4 } = batch;
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
