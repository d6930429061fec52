/**
 * eigen: symmetric eigendecomposition of Hessian-sized matrices (kernels/eigen.ts →
 * core/eigen.h), eigenvalues alone and with eigenvectors. Timed through the Promise API (what
 * the engine calls: argument checks, the thread hop and output allocation included).
 *
 * Input: a Gaussian (Wigner) symmetric matrix in float64 — the slow case for divide and conquer,
 * whose deflation makes real Hessian spectra (clusters of tiny eigenvalues) cheaper.
 *
 * Flops (LAPACK dsyevd's nominal counts, stated so GFLOP/s compare across sizes):
 *   values:  4/3·n³  (Householder tridiagonalization; the O(n²) QL iteration is not counted)
 *   vectors: 4/3·n³ + 4/3·n³ (divide and conquer without deflation) + 2·n³ (back-transformation)
 * With vectors, the one-stage tridiagonalization's symmetric matrix-vector products (half of its
 * flops) are bound by memory bandwidth, not by the FMA units. `ratio_to_peak` divides by the measured fp32 FMA peak,
 * as every case does; AVX2 fp64 peaks at half of it (`ratio_to_fp64_peak`).
 *
 * Eigenvalues alone from n = 2048 go through a band (two-stage); the count stays 4/3·n³ (the
 * bulge chasing adds ~6·b·n², b = 64). n = 11008 (a LLaMA-7B down_proj Hessian, ~40 s on 2
 * cores) runs only in a full run that names this case: `npm run bench -- --only eigen`.
 */
import { setThreads, symmetricEigen } from "../../../extension/src/engine/kernels/index";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchResult } from "../harness";

interface Shape {
  n: number;
  vectors: boolean;
  threads: number[];
  reps: number;
  warmup: number;
}

const flopsOf = (n: number, vectors: boolean) => (vectors ? (4 / 3 + 4 / 3 + 2) * n ** 3 : (4 / 3) * n ** 3);

/** True when the command line names this case with --only (11008 is too long for a plain run). */
function namedExplicitly(name: string): boolean {
  const argv = process.argv;
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i] === "--only" ? argv[i + 1] : argv[i].startsWith("--only=") ? argv[i].slice(7) : undefined;
    if (value?.split(",").includes(name)) return true;
  }
  return false;
}

/** A symmetric n×n float64 matrix with N(0, 1) entries (both triangles). */
function wigner(n: number, seed: number): Float64Array {
  const g = gaussianF32((n * (n + 1)) / 2, seed);
  const a = new Float64Array(n * n);
  let t = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      a[i * n + j] = g[t];
      a[j * n + i] = g[t++];
    }
  }
  return a;
}

export const eigenCase: BenchCase = {
  name: "eigen",
  description: "symmetric eigendecomposition, fp64 (values: 4/3·n³; with vectors: 14/3·n³ nominal)",
  needsNative: true,
  async run(ctx) {
    const shapes: Shape[] = ctx.quick
      ? [
          { n: 1024, vectors: false, threads: [ctx.threads], reps: 3, warmup: 1 },
          { n: 1024, vectors: true, threads: [ctx.threads], reps: 3, warmup: 1 },
          { n: 4096, vectors: false, threads: [ctx.threads], reps: 1, warmup: 0 },
        ]
      : [
          { n: 1024, vectors: false, threads: [ctx.threads, 1], reps: 5, warmup: 1 },
          { n: 1024, vectors: true, threads: [ctx.threads, 1], reps: 5, warmup: 1 },
          { n: 4096, vectors: false, threads: [ctx.threads], reps: 3, warmup: 0 },
          { n: 4096, vectors: true, threads: [ctx.threads], reps: 3, warmup: 0 },
        ];
    if (!ctx.quick && namedExplicitly("eigen")) {
      shapes.push({ n: 11008, vectors: false, threads: [ctx.threads], reps: 1, warmup: 0 });
    }
    const results: BenchResult[] = [];
    try {
      let matrix: { n: number; a: Float64Array } = { n: 0, a: new Float64Array(0) };
      for (const shape of shapes) {
        const { n, vectors } = shape;
        if (matrix.n !== n) matrix = { n, a: wigner(n, n) };
        const a = matrix.a;
        for (const threads of shape.threads) {
          setThreads(threads);
          ctx.log(`eigen n=${n} ${vectors ? "values+vectors" : "values"} threads=${threads}`);
          const t = await ctx.time(() => symmetricEigen(a, n, { vectors }), { reps: shape.reps, warmup: shape.warmup });
          const flops = flopsOf(n, vectors);
          const gflops = flops / t.median / 1e9;
          const ratio = ctx.ratioToPeak(gflops, threads);
          results.push({
            name: "eigen",
            shape: [n, n],
            vectors,
            threads,
            matrix: "gaussian symmetric, float64",
            seconds: sig(t.median),
            gflops: sig(gflops),
            flops: sig(flops),
            flop_count: vectors ? "14/3·n³" : "4/3·n³",
            ratio_to_peak: ratio === undefined ? undefined : sig(ratio, 3),
            ratio_to_fp64_peak: ratio === undefined ? undefined : sig(2 * ratio, 3),
          });
        }
      }
    } finally {
      setThreads(0);
    }
    return results;
  },
};
