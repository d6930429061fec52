/**
 * fp16/bf16 <-> fp32 conversion over a tensor (what loading fp16/bf16 weights costs).
 * No arithmetic to count: reported as memory traffic (bytes read + bytes written per element:
 * 2 + 4) against memcpy on the same number of threads (`ratio_to_memcpy`).
 */
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
} from "../../../extension/src/engine/kernels/index";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchContext, type BenchResult } from "../harness";

type Conversion = "f16_to_f32" | "bf16_to_f32" | "f32_to_f16" | "f32_to_bf16";

const DESCRIPTIONS: Record<Conversion, string> = {
  f16_to_f32: "fp16 bits -> float32 (F16C where available)",
  bf16_to_f32: "bfloat16 bits -> float32",
  f32_to_f16: "float32 -> fp16 bits, round to nearest even",
  f32_to_bf16: "float32 -> bfloat16 bits, round to nearest even",
};

/** A prepared call: source and destination allocated once, outside the timing. */
function prepare(kind: Conversion, n: number): () => unknown {
  const floats = gaussianF32(n, 11, 0, 2);
  const half = new Uint16Array(n);
  const out16 = new Uint16Array(n);
  const out32 = new Float32Array(n);
  switch (kind) {
    case "f16_to_f32":
      f32ToF16(floats, half);
      return () => f16ToF32(half, out32);
    case "bf16_to_f32":
      f32ToBf16(floats, half);
      return () => bf16ToF32(half, out32);
    case "f32_to_f16":
      return () => f32ToF16(floats, out16);
    case "f32_to_bf16":
      return () => f32ToBf16(floats, out16);
  }
}

function conversionCase(kind: Conversion): BenchCase {
  return {
    name: kind,
    description: DESCRIPTIONS[kind],
    needsNative: true,
    async run(ctx: BenchContext): Promise<BenchResult[]> {
      // Full: 2^25 elements (128 MiB of fp32), a large weight's worth, far past the caches.
      const n = ctx.quick ? 1_000_000 : 1 << 25;
      ctx.log(`${kind} n=${n} threads=${ctx.threads}`);
      const t = await ctx.time(prepare(kind, n), { warmup: 2 });
      const gbps = (6 * n) / t.median / 1e9;
      return [
        {
          name: kind,
          shape: [n],
          threads: ctx.threads,
          seconds: sig(t.median),
          elements_per_s: sig(n / t.median),
          gbps: sig(gbps),
          bytes_per_element: 6,
          ratio_to_memcpy: sig(ctx.ratioToMemcpy(gbps, ctx.threads), 3),
        },
      ];
    },
  };
}

export const conversionCases: BenchCase[] = (["f16_to_f32", "bf16_to_f32", "f32_to_f16", "f32_to_bf16"] as const).map(
  conversionCase,
);
