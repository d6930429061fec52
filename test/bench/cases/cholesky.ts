/**
 * cholesky and gptq_inverse on an SPD matrix (G·Gᵀ/n + 0.1·I) at n = 4096, through the engine
 * (`cholesky()`, `gptqInverseCholeskyUpper()`: worker thread, NaN/Inf scan). The input is restored
 * before each run, outside the timing.
 *
 * Flops (the algorithms' own counts, multiply and add each 1):
 *   cholesky      n³/3   (recursive: the work is in sgemm/SYRK calls)
 *   gptq_inverse  2n³/3  (J·H·J = L̃·L̃ᵀ: n³/3, then L̃⁻¹: n³/3; see core/cholesky.h)
 * `torch_route_gflops` counts 4n³/3 for gptq_inverse instead: what torch's
 * cholesky → cholesky_inverse → cholesky would spend for the same U.
 * `max_event_loop_stall_ms` as in sgemm.ts.
 */
import { cholesky, gptqInverseCholeskyUpper, sgemm } from "../../../extension/src/engine/kernels/index";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchContext, type BenchResult } from "../harness";
import { ratio, repsFor, timeWithSetup } from "./sgemm";

async function spd(n: number): Promise<Float32Array> {
  const g = gaussianF32(n * n, 5);
  const a = new Float32Array(n * n);
  await sgemm({ transA: false, transB: true, m: n, n, k: n, alpha: 1 / n, a: g, b: g, beta: 0, c: a });
  for (let i = 0; i < n; i++) {
    a[i * n + i] += 0.1;
    for (let j = i + 1; j < n; j++) a[i * n + j] = a[j * n + i];
  }
  return a;
}

function sizes(ctx: BenchContext): number[] {
  return ctx.quick ? [1024] : [4096];
}

export const choleskyCase: BenchCase = {
  name: "cholesky",
  description: "in-place lower Cholesky, fp32, recursive blocked (SYRK/GEMM on the sgemm kernel)",
  needsNative: true,
  async run(ctx) {
    const results: BenchResult[] = [];
    for (const n of sizes(ctx)) {
      const a = await spd(n);
      const work = new Float32Array(n * n);
      ctx.log(`cholesky n=${n} threads=${ctx.threads}`);
      const flops = (n * n * n) / 3;
      const t = await timeWithSetup(() => work.set(a), () => cholesky(work, n), repsFor(ctx, flops / 100e9));
      const gflops = flops / t.median / 1e9;
      results.push({
        name: "cholesky",
        shape: [n, n],
        threads: ctx.threads,
        seconds: sig(t.median),
        gflops: sig(gflops),
        ratio_to_peak: ratio(ctx, gflops),
        max_event_loop_stall_ms: sig(t.stallMs, 3),
      });
    }
    return results;
  },
};

export const gptqInverseCase: BenchCase = {
  name: "gptq_inverse",
  description: "GPTQ's factor: upper Cholesky of H⁻¹ without forming H⁻¹ (Cholesky + triangular inverse)",
  needsNative: true,
  async run(ctx) {
    const results: BenchResult[] = [];
    for (const n of sizes(ctx)) {
      const h = await spd(n);
      const work = new Float32Array(n * n);
      ctx.log(`gptq_inverse n=${n} threads=${ctx.threads}`);
      const flops = (2 * n * n * n) / 3;
      const t = await timeWithSetup(() => work.set(h), () => gptqInverseCholeskyUpper(work, n), repsFor(ctx, flops / 100e9));
      const gflops = flops / t.median / 1e9;
      results.push({
        name: "gptq_inverse",
        shape: [n, n],
        threads: ctx.threads,
        seconds: sig(t.median),
        gflops: sig(gflops),
        ratio_to_peak: ratio(ctx, gflops),
        torch_route_gflops: sig((2 * flops) / t.median / 1e9),
        max_event_loop_stall_ms: sig(t.stallMs, 3),
      });
    }
    return results;
  },
};
