/**
 * fwht: the orthonormal fast Walsh–Hadamard transform of every row of X [4096 × 4096] in place
 * (QuIP incoherence processing), through fwhtSync (kernel and pool, no thread hop).
 *
 * Flops: n·log2(n) adds/subtracts per row (the butterflies; the final × 1/√n is not counted).
 * Bytes: 8 per element (each row read and written once from memory; the log2 n stages run in L1).
 * Also reported: the scalar path (bit-identical results), and the seeded random-Hadamard
 * transform (signs, then the same FWHT) through randomOrthogonalTransform.
 */
import { fwhtSync, native, randomOrthogonalTransform, setThreads } from "../../../extension/src/engine/kernels/index";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchResult } from "../harness";

export const fwhtCase: BenchCase = {
  name: "fwht",
  description: "orthonormal FWHT of each row, X [4096 × 4096] float32 in place (AVX2 butterflies)",
  needsNative: true,
  async run(ctx) {
    const n = 4096;
    const rows = ctx.quick ? 512 : 4096;
    const x = gaussianF32(rows * n, 3);
    const logn = Math.log2(n);
    const results: BenchResult[] = [];
    const k = native();
    const variants: { threads: number; simd: "auto" | "scalar"; op: "fwht" | "random_hadamard" }[] = [
      { threads: ctx.threads, simd: "auto", op: "fwht" },
      { threads: 1, simd: "auto", op: "fwht" },
      { threads: ctx.threads, simd: "scalar", op: "fwht" },
      { threads: ctx.threads, simd: "auto", op: "random_hadamard" },
    ];
    const rht = randomOrthogonalTransform({ n, seed: 1, kind: "hadamard" });
    try {
      for (const v of variants) {
        setThreads(v.threads);
        k?.setSimd(v.simd);
        ctx.log(`${v.op} ${rows}×${n} threads=${v.threads} simd=${v.simd}`);
        const t = await ctx.time(() => (v.op === "fwht" ? fwhtSync(x, rows, n) : rht.applySync(x, rows)), { warmup: 1 });
        const gflops = (rows * n * logn) / t.median / 1e9;
        const gbps = (8 * rows * n) / t.median / 1e9;
        results.push({
          name: "fwht",
          op: v.op,
          shape: [rows, n],
          threads: v.threads,
          simd: v.simd,
          seconds: sig(t.median),
          gflops: sig(gflops),
          flops_per_row: n * logn,
          gbps: sig(gbps),
          ratio_to_memcpy: sig(ctx.ratioToMemcpy(gbps, v.threads), 3),
        });
      }
    } finally {
      k?.setSimd("auto");
      setThreads(0);
    }
    return results;
  },
};
