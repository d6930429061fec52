/**
 * sgemm: C[m×n] = op(A)·op(B) (alpha 1, beta 0) at 1024, 2048, 4096, NN and NT (B transposed:
 * what `x·Wᵀ` with a row-major weight is), through the engine's `sgemm()` (a Promise: the worker
 * thread, the NaN/Inf scan of the inputs and the thread hop are part of what is timed).
 *
 * Flops: 2·m·n·k (one multiply and one add per term). `ratio_to_peak` divides by the measured
 * all-thread fp32 FMA peak. `max_event_loop_stall_ms` is the longest gap seen by a
 * setInterval(1 ms) probe on the JS thread while the timed calls ran (~1 ms means it never
 * stalled).
 *
 * Also exports the timing helpers the hessian and cholesky cases share.
 */
import { sgemm } from "../../../extension/src/engine/kernels/index";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchContext, type BenchResult } from "../harness";

/** The longest interval between ticks of a 1 ms timer while `run` is pending. */
export class StallProbe {
  private last = 0;
  private timer: NodeJS.Timeout | undefined;
  worstMs = 0;

  start(): void {
    this.last = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      this.worstMs = Math.max(this.worstMs, now - this.last);
      this.last = now;
    }, 1);
  }

  stop(): void {
    clearInterval(this.timer);
    this.worstMs = Math.max(this.worstMs, performance.now() - this.last);
  }
}

export interface NativeTiming {
  median: number;
  min: number;
  runs: number;
  stallMs: number;
}

/**
 * Median wall time of `run` after `setup` (untimed: e.g. restoring an input a kernel overwrites),
 * with a stall probe around the timed calls only.
 */
export async function timeWithSetup(
  setup: () => void,
  run: () => Promise<unknown>,
  reps: number,
  warmup = 1,
): Promise<NativeTiming> {
  for (let i = 0; i < warmup; i++) {
    setup();
    await run();
  }
  const samples: number[] = [];
  let stallMs = 0;
  for (let i = 0; i < reps; i++) {
    setup();
    const probe = new StallProbe();
    probe.start();
    const t0 = performance.now();
    await run();
    samples.push((performance.now() - t0) / 1000);
    probe.stop();
    stallMs = Math.max(stallMs, probe.worstMs);
  }
  samples.sort((a, b) => a - b);
  const mid = samples.length >> 1;
  const median = samples.length % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
  return { median, min: samples[0], runs: samples.length, stallMs };
}

/** Fewer repetitions for the multi-second shapes (the median of 3 is steady there). */
export function repsFor(ctx: BenchContext, seconds: number): number {
  return ctx.quick ? 3 : seconds > 0.3 ? 3 : 7;
}

export function ratio(ctx: BenchContext, gflops: number): number | undefined {
  const r = ctx.ratioToPeak(gflops, ctx.threads);
  return r === undefined ? undefined : sig(r, 3);
}

export const sgemmCase: BenchCase = {
  name: "sgemm",
  description: "C = op(A)·op(B), fp32, blocked 6×16 AVX2/FMA micro-kernel, multithreaded (NN and NT)",
  needsNative: true,
  async run(ctx) {
    const sizes = ctx.quick ? [256, 512] : [1024, 2048, 4096];
    const results: BenchResult[] = [];
    for (const n of sizes) {
      const a = gaussianF32(n * n, 1);
      const b = gaussianF32(n * n, 2);
      const c = new Float32Array(n * n);
      for (const transB of [false, true]) {
        const label = transB ? "NT" : "NN";
        ctx.log(`sgemm ${n}×${n}×${n} ${label} threads=${ctx.threads}`);
        const call = () => sgemm({ transA: false, transB, m: n, n, k: n, alpha: 1, a, b, beta: 0, c });
        const flops = 2 * n * n * n;
        const t = await timeWithSetup(() => {}, call, repsFor(ctx, flops / 150e9));
        const gflops = flops / t.median / 1e9;
        results.push({
          name: "sgemm",
          shape: [n, n, n],
          trans: label,
          threads: ctx.threads,
          seconds: sig(t.median),
          gflops: sig(gflops),
          ratio_to_peak: ratio(ctx, gflops),
          best_gflops: sig(flops / t.min / 1e9),
          max_event_loop_stall_ms: sig(t.stallMs, 3),
        });
      }
    }
    return results;
  },
};
