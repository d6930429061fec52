/**
 * hessian_update: H [n×n] (float64) += Xᵀ·X for X [rows×n] float32 — the Hessian proxy GPTQ
 * accumulates over calibration tokens — through the engine's `hessianUpdate()` (worker thread,
 * NaN/Inf scan of X), in both of its forms: `lowerOnly` (what calibration's accumulator runs:
 * the lower triangle, H not scanned, one symmetrize at the end) and a standalone update (H
 * scanned, both triangles written).
 *
 * Flops: n²·rows, i.e. the symmetric half actually computed (n(n+1)/2 entries × rows multiply-adds
 * × 2 flops ≈ n²·rows), as a SYRK is counted. `ratio_to_peak` divides by the all-thread FMA peak;
 * `max_event_loop_stall_ms` as in sgemm.ts.
 */
import { hessianUpdate } from "../../../extension/src/engine/kernels/index";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchResult } from "../harness";
import { ratio, repsFor, timeWithSetup } from "./sgemm";

export const hessianCase: BenchCase = {
  name: "hessian_update",
  description: "H += XᵀX (SYRK: fp32 256-row products on the sgemm micro-kernel, float64 sums)",
  needsNative: true,
  async run(ctx) {
    const shapes = ctx.quick ? [{ rows: 2048, n: 1024 }] : [{ rows: 8192, n: 4096 }];
    const results: BenchResult[] = [];
    for (const { rows, n } of shapes) {
      const x = gaussianF32(rows * n, 3, 0, 1);
      const h = new Float64Array(n * n);
      ctx.log(`hessian_update X ${rows}×${n} threads=${ctx.threads}`);
      const flops = n * n * rows;
      for (const lowerOnly of [true, false]) {
        // H keeps accumulating across runs; the work per call is the same.
        const t = await timeWithSetup(() => {}, () => hessianUpdate(h, n, x, rows, { lowerOnly }), repsFor(ctx, flops / 150e9));
        const gflops = flops / t.median / 1e9;
        results.push({
          name: "hessian_update",
          variant: lowerOnly ? "accumulator (lower triangle)" : "standalone (both triangles, H scanned)",
          shape: [rows, n],
          threads: ctx.threads,
          seconds: sig(t.median),
          gflops: sig(gflops),
          ratio_to_peak: ratio(ctx, gflops),
          tokens_per_s: sig(rows / t.median),
          max_event_loop_stall_ms: sig(t.stallMs, 3),
        });
      }
    }
    return results;
  },
};
