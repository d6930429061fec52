import type { ChannelBatchOut } from "./binding";
import { expectArray, native, throwIfAborted, withCancel, type KernelCallOptions } from "./index";
import { channelBatchStatsRef, HIST_BINS } from "./reference-channel-stats";

export type { ChannelBatchOut } from "./binding";
export { HIST_BINS, HIST_MIN_EXP, HIST_MAX_EXP, BINS_PER_OCTAVE, histBin, histBinEdge } from "./reference-channel-stats";

/** Fresh output arrays for a batch of `rows` × `channels` (absmax and hist start at zero). */
export function channelBatchOut(rows: number, channels: number): ChannelBatchOut {
  return {
    mean: new Float64Array(channels),
    m2: new Float64Array(channels),
    m3: new Float64Array(channels),
    m4: new Float64Array(channels),
    absmax: new Float32Array(channels),
    absSum: new Float64Array(channels),
    hist: new Float64Array(HIST_BINS),
    rowNorm: new Float32Array(rows),
    rowPeak: new Float32Array(rows),
    rowPeakChannel: new Int32Array(rows),
  };
}

/**
 * Statistics of one batch X [rows × C] of a tapped activation: per-channel batch mean and central
 * sums m2..m4, running absmax and log2|x| histogram, per-row L2 norm and peak. Returns the count
 * of non-finite values skipped. Native on a worker thread, else the TypeScript reference.
 */
export async function channelBatchStats(
  x: Float32Array,
  rows: number,
  channels: number,
  out: ChannelBatchOut,
  options: KernelCallOptions = {},
): Promise<number> {
  expectArray("channelBatchStats", "x", x, Float32Array);
  if (!Number.isInteger(rows) || !Number.isInteger(channels) || channels < 1 || rows < 0 || rows * channels !== x.length) {
    throw new RangeError(`channelBatchStats(): x has ${x.length} values, not rows ${rows} × channels ${channels}`);
  }
  if (out.mean.length !== channels || out.absmax.length !== channels || out.absSum?.length !== channels || out.rowNorm.length < rows || out.hist.length !== HIST_BINS) {
    throw new RangeError("channelBatchStats(): out arrays do not match rows/channels (use channelBatchOut)");
  }
  throwIfAborted(options.signal, "channelBatchStats");
  const k = native();
  if (!k) return channelBatchStatsRef(x, rows, channels, out);
  const o = rows === out.rowNorm.length ? out : { ...out, rowNorm: out.rowNorm.subarray(0, rows), rowPeak: out.rowPeak.subarray(0, rows), rowPeakChannel: out.rowPeakChannel.subarray(0, rows) };
  return withCancel(k, options.signal, "channelBatchStats", (token) => k.channelBatchStats(x, rows, channels, o, token));
}
