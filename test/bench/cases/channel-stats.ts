/**
 * channel_stats: the calibration engine's per-batch statistics of one tapped activation X
 * [rows × C] (per-channel mean and central sums m2..m4, absmax, Σ|x|, log2|x| histogram; per-row
 * norm and peak), timed through channelBatchStats as calibration calls it (a libuv worker thread
 * using the kernel pool). Issue 4: it was ~25% of onnxruntime inference time on a 2048-hidden
 * Llama.
 *
 * Bytes: 4 per element, X read once; the outputs (O(C + rows)) are not counted. `ratio_to_memcpy`
 * divides by memcpy traffic (read + write) on the same number of threads, so 1.0 would mean
 * reading X as fast as memcpy moves bytes. 512 rows × 5440 channels is 11 MB, which a large
 * last-level cache may hold between runs; the full run adds 2048 × 5440 (45 MB), past it.
 */
import { channelBatchOut, channelBatchStats } from "../../../extension/src/engine/kernels/channel-stats";
import { setThreads } from "../../../extension/src/engine/kernels/index";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchResult } from "../harness";

const BYTES_PER_ELEMENT = 4;

export const channelStatsCase: BenchCase = {
  name: "channel_stats",
  description: "per-channel moments/absmax/histogram + per-row norm/peak of an activation batch [rows × C]",
  needsNative: true,
  async run(ctx) {
    const shapes: [number, number][] = [
      [512, 2048],
      [512, 5440],
      ...(ctx.quick ? [] : ([[2048, 5440]] as [number, number][])),
    ];
    const results: BenchResult[] = [];
    try {
      for (const [rows, C] of shapes) {
        // Activation-like: a per-channel offset (some channels far from zero) plus noise.
        const x = gaussianF32(rows * C, rows + C, 0, 1);
        for (let i = 0; i < x.length; i++) x[i] += ((i % C) % 7) - 3;
        const out = channelBatchOut(rows, C);
        for (const threads of [ctx.threads, 1]) {
          setThreads(threads);
          ctx.log(`channel_stats rows=${rows} C=${C} threads=${threads}`);
          const t = await ctx.time(() => channelBatchStats(x, rows, C, out), { warmup: 2 });
          const gbps = (BYTES_PER_ELEMENT * rows * C) / t.median / 1e9;
          results.push({
            name: "channel_stats",
            shape: [rows, C],
            threads,
            seconds: sig(t.median),
            ms: sig(t.median * 1000),
            elements_per_s: sig((rows * C) / t.median),
            gbps: sig(gbps),
            ratio_to_memcpy: sig(ctx.ratioToMemcpy(gbps, threads), 3),
          });
        }
      }
    } finally {
      setThreads(0);
    }
    return results;
  },
};
