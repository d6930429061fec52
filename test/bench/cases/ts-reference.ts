/**
 * ts_reference_speedup: the native kernels against the TypeScript references they fall back to
 * (`reference.ts`), same input, same machine: `speedup = reference_seconds / seconds`.
 * Native runs with all its threads and SIMD; the reference is single-threaded JavaScript.
 */
import { f16ToF32, f32ToF16, momentsSync } from "../../../extension/src/engine/kernels/index";
import { f16ToF32Ref, momentsRef } from "../../../extension/src/engine/kernels/reference";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchContext, type BenchResult } from "../harness";

interface Pair {
  kernel: string;
  native: () => unknown;
  reference: () => unknown;
}

function pairs(n: number): Pair[] {
  const x = gaussianF32(n, 3, 0, 1);
  const half = f32ToF16(x);
  const out = new Float32Array(n);
  return [
    { kernel: "moments", native: () => momentsSync(x), reference: () => momentsRef(x) },
    { kernel: "f16_to_f32", native: () => f16ToF32(half, out), reference: () => f16ToF32Ref(half, out) },
  ];
}

export const tsReferenceSpeedup: BenchCase = {
  name: "ts_reference_speedup",
  description: "native kernels vs the TypeScript references (moments, f16_to_f32)",
  needsNative: true,
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    const n = ctx.quick ? 1_000_000 : 10_000_000;
    const results: BenchResult[] = [];
    for (const p of pairs(n)) {
      ctx.log(`ts_reference_speedup ${p.kernel} n=${n}`);
      const native = await ctx.time(p.native, { warmup: 2 });
      // The reference is 10-100x slower: fewer runs, but warmed up so the JIT has optimised it.
      const reference = await ctx.time(p.reference, { warmup: 1, reps: ctx.quick ? 3 : 5 });
      results.push({
        name: "ts_reference_speedup",
        kernel: p.kernel,
        shape: [n],
        threads: ctx.threads,
        seconds: sig(native.median),
        reference_seconds: sig(reference.median),
        speedup: sig(reference.median / native.median, 3),
      });
    }
    return results;
  },
};
