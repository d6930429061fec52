/**
 * moments: mean and central moments m2..m4 of a float32 tensor (what weight and activation
 * statistics use). Timed through momentsSync (the kernel and the thread pool, no thread hop).
 *
 * Flops: 8 per element, counted as pass 1: 1 add (Σx); pass 2: 1 sub, 1 mul, 1 add, 2 FMA
 * (d = x − mean, d², m2 += d², m3 += d²·d, m4 += d²·d²). Compares, min/max and conversions are
 * not counted. The kernel works in fp64 (4 lanes), so its own compute ceiling is half of the fp32
 * FMA peak `ratio_to_peak` divides by; at 10^7 elements it is bound by memory, which
 * `ratio_to_memcpy` shows (bytes: 4 per element, read once; the second pass hits L2; memcpy
 * measured with the same number of threads).
 */
import { momentsSync, setThreads } from "../../../extension/src/engine/kernels/index";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchResult } from "../harness";

const FLOPS_PER_ELEMENT = 8;
const BYTES_PER_ELEMENT = 4;

export const momentsCase: BenchCase = {
  name: "moments",
  description: "mean/m2/m3/m4/absmax of float32 data (fp64 accumulation; AVX2: one shifted pass per block)",
  needsNative: true,
  async run(ctx) {
    const shapes: { n: number; threads: number[] }[] = ctx.quick
      ? [{ n: 1_000_000, threads: [ctx.threads, 1] }]
      : [
          { n: 10_000_000, threads: [ctx.threads, 1] },
          { n: 1 << 18, threads: [ctx.threads, 1] }, // 1 MiB: cache-resident, compute-bound
        ];
    const results: BenchResult[] = [];
    try {
      for (const { n, threads: threadCounts } of shapes) {
        const x = gaussianF32(n, 7, 0.1, 1);
        for (const threads of threadCounts) {
          setThreads(threads);
          ctx.log(`moments n=${n} threads=${threads}`);
          const t = await ctx.time(() => momentsSync(x), { warmup: 2 });
          const gflops = (FLOPS_PER_ELEMENT * n) / t.median / 1e9;
          const gbps = (BYTES_PER_ELEMENT * n) / t.median / 1e9;
          results.push({
            name: "moments",
            shape: [n],
            threads,
            seconds: sig(t.median),
            elements_per_s: sig(n / t.median),
            gflops: sig(gflops),
            flops_per_element: FLOPS_PER_ELEMENT,
            ratio_to_peak: ratio(ctx.ratioToPeak(gflops, threads)),
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

function ratio(r: number | undefined): number | undefined {
  return r === undefined ? undefined : sig(r, 3);
}
