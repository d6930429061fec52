/**
 * ortho_apply: QuIP's seeded random orthogonal transform (kind "kron": a Kronecker product of
 * dense random orthogonal factors, each a chain of Householder reflectors applied in float64) on
 * every row of X [rows × n] in place, through randomOrthogonalTransform().applySync. The shapes
 * of a 7B model's inputs (4096 = 64⊗64, 11008) and stories260K's 172.
 *
 * Flops: per vector of a dense factor of size d, 2d² + 3d − 4 (each reflector I − v·vᵀ on the
 * last m = 2..d coordinates: a dot product and an update, 4m; then the d signs of D), counted over
 * the n/d vectors of each factor per row. They are float64 operations without FMA (every lane
 * rounds as the TypeScript reference does), so the ratio to the float32 FMA peak is at most 1/4.
 */
import { randomOrthogonalTransform, setThreads } from "../../../extension/src/engine/kernels/index";
import { orthoFactorsRef } from "../../../extension/src/engine/kernels/reference-transforms";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchResult } from "../harness";

export const orthoCase: BenchCase = {
  name: "ortho_apply",
  description: "QuIP random orthogonal transform (kron: dense Householder-chain factors, float64) of each row, in place",
  needsNative: true,
  async run(ctx) {
    const results: BenchResult[] = [];
    const shapes: { n: number; rows: number }[] = [
      { n: 4096, rows: ctx.quick ? 256 : 4096 },
      { n: 11008, rows: ctx.quick ? 128 : 1024 },
      { n: 172, rows: ctx.quick ? 4096 : 65536 },
    ];
    try {
      for (const { n, rows } of shapes) {
        const factors = orthoFactorsRef(n, 1, "kron");
        const sizes = factors.map((f) => f.size);
        const flopsPerRow = factors.reduce((s, f) => s + (f.kind === "dense" ? (n / f.size) * (2 * f.size * f.size + 3 * f.size - 4) : 0), 0);
        const t = randomOrthogonalTransform({ n, seed: 1, kind: "kron" });
        const x = gaussianF32(rows * n, 5);
        for (const threads of [ctx.threads, 1]) {
          setThreads(threads);
          ctx.log(`ortho_apply kron ${rows}×${n} (${sizes.join("⊗")}) threads=${threads}`);
          const m = await ctx.time(() => t.applySync(x, rows), { warmup: 1 });
          const gflops = (rows * flopsPerRow) / m.median / 1e9;
          results.push({
            name: "ortho_apply",
            kind: "kron",
            factors: sizes,
            shape: [rows, n],
            threads,
            seconds: sig(m.median),
            gflops: sig(gflops),
            ratio_to_peak: ctx.ratioToPeak(gflops, threads) !== undefined ? sig(ctx.ratioToPeak(gflops, threads)!, 3) : undefined,
          });
        }
      }
    } finally {
      setThreads(0);
    }
    return results;
  },
};
