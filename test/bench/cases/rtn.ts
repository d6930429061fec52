/**
 * rtn: round-to-nearest quantization of a layer, W [4096 × 11008] (out × in, a LLaMA-7B
 * up/gate projection transposed), 4-bit asymmetric, groups of 128 (ragged: 11008 = 86·128),
 * through rtnQuantizeSync: min/max per group, then codes with IEEE divisions (AVX2).
 *
 * Reported: elements/s, and GB/s counting 4 bytes read + 1 byte written per weight (scales and
 * zeros are 1/16 of that and left out). Also the scalar path, one thread, and MSE clipping
 * (GPTQ's grid 100 / maxshrink 0.8 / norm 2.4: 80 candidate ranges per group) on 64 rows.
 */
import { GPTQ_CLIP, native, rtnQuantizeSync, setThreads } from "../../../extension/src/engine/kernels/index";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchResult } from "../harness";

export const rtnCase: BenchCase = {
  name: "rtn",
  description: "RTN W4 g128 asymmetric, W [4096 × 11008] float32 → codes + scales/zeros",
  needsNative: true,
  async run(ctx) {
    const cols = 11008;
    const rows = ctx.quick ? 512 : 4096;
    const W = gaussianF32(rows * cols, 5, 0, 0.02);
    const k = native();
    const results: BenchResult[] = [];
    const variants = [
      { threads: ctx.threads, simd: "auto" as const, rows, clip: false },
      { threads: 1, simd: "auto" as const, rows, clip: false },
      { threads: ctx.threads, simd: "scalar" as const, rows, clip: false },
      { threads: ctx.threads, simd: "auto" as const, rows: 64, clip: true },
    ];
    try {
      for (const v of variants) {
        setThreads(v.threads);
        k?.setSimd(v.simd);
        const w = W.subarray(0, v.rows * cols);
        ctx.log(`rtn ${v.rows}×${cols} W4 g128 threads=${v.threads} simd=${v.simd} clip=${v.clip}`);
        const config = { bits: 4 as const, symmetric: false, group: 128, clip: v.clip ? GPTQ_CLIP : null };
        const t = await ctx.time(() => rtnQuantizeSync(w, v.rows, cols, config), { warmup: 1, reps: v.clip ? 3 : undefined });
        const elements = v.rows * cols;
        const gbps = (5 * elements) / t.median / 1e9;
        results.push({
          name: "rtn",
          shape: [v.rows, cols],
          bits: 4,
          group: 128,
          clip: v.clip ? "mse grid 100, maxShrink 0.8, norm 2.4" : "min/max",
          threads: v.threads,
          simd: v.simd,
          seconds: sig(t.median),
          elements_per_s: sig(elements / t.median),
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
