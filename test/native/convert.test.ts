/**
 * fp16 / bf16 <-> fp32: native output must equal the TypeScript references bit for bit, on the
 * SIMD path (F16C/AVX2 here) and on the scalar path, for every 16-bit pattern and for the float
 * inputs where rounding can go wrong.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { NativeKernels } from "../../extension/src/engine/kernels/binding";
import {
  bf16ToF32Ref,
  f16ToF32Ref,
  f32ToBf16Ref,
  f32ToF16Ref,
  halfBitsToFloat,
} from "../../extension/src/engine/kernels/reference";
import { hex, NATIVE_DISABLED, randomBits, requireNative } from "./helpers";

const k = requireNative();
const PATHS = ["auto", "scalar"] as const;

const ALL_16 = Uint16Array.from({ length: 65536 }, (_, i) => i);

/**
 * bf16 -> fp32 of a signalling NaN: the addon keeps the bits (the high half, as
 * `bf16BitsToFloat` documents), but the reference returns its float through a JS number and V8
 * quiets a signalling NaN on that path in some compiler tiers and not others (seen both ways in
 * one run). So for NaN outputs the reference may differ in the quiet bit (0x00400000) alone.
 */
function sameUpToQuietBit(native: number, ref: number): boolean {
  const isNaN32 = (x: number) => (x & 0x7fffffff) > 0x7f800000;
  return native === ref || (isNaN32(native) && isNaN32(ref) && (native | 0x00400000) === (ref | 0x00400000));
}

/** Index and values of the first differing element, or undefined. */
function firstDiff(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  digits: number,
  input?: ArrayLike<number>,
  same: (x: number, y: number) => boolean = (x, y) => x === y,
): string | undefined {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) {
    if (!same(a[i], b[i])) {
      const at = input ? ` (input ${hex(input[i], digits === 4 ? 8 : 4)})` : "";
      return `[${i}]${at}: native ${hex(a[i], digits)} vs reference ${hex(b[i], digits)}`;
    }
  }
  return undefined;
}

function halfToFloatNative(native: NativeKernels, kind: "f16_to_f32" | "bf16_to_f32", src: Uint16Array): Uint32Array {
  const dst = new Float32Array(src.length);
  native.convert(kind, src, dst);
  return new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
}

function floatToHalfNative(native: NativeKernels, kind: "f32_to_f16" | "f32_to_bf16", bits: Uint32Array): Uint16Array {
  const dst = new Uint16Array(bits.length);
  native.convert(kind, new Float32Array(bits.buffer, bits.byteOffset, bits.length), dst);
  return dst;
}

function halfToFloatRef(kind: "f16_to_f32" | "bf16_to_f32", src: Uint16Array): Uint32Array {
  const dst = new Float32Array(src.length);
  (kind === "f16_to_f32" ? f16ToF32Ref : bf16ToF32Ref)(src, dst);
  return new Uint32Array(dst.buffer);
}

function floatToHalfRef(kind: "f32_to_f16" | "f32_to_bf16", bits: Uint32Array): Uint16Array {
  const dst = new Uint16Array(bits.length);
  (kind === "f32_to_f16" ? f32ToF16Ref : f32ToBf16Ref)(new Float32Array(bits.buffer, bits.byteOffset, bits.length), dst);
  return dst;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(v: number): number {
  f32[0] = v;
  return u32[0];
}

/**
 * Float inputs where fp32 -> fp16/bf16 rounding is delicate: every fp16 value, its float
 * neighbours, the midpoints between consecutive fp16 values (ties) and their neighbours;
 * overflow and underflow thresholds; float subnormals; infinities; NaNs with payloads.
 */
function edgeFloats(): Uint32Array {
  const out: number[] = [];
  const push = (bits: number) => {
    for (const d of [-1, 0, 1]) out.push((bits + d) >>> 0);
  };
  for (let h = 0; h < 0x7c00; h++) {
    for (const sign of [0, 0x8000]) {
      const v = halfBitsToFloat(h | sign);
      push(bitsOf(v));
      const next = halfBitsToFloat((h + 1) | sign); // h = 0x7bff: next is ±Inf, midpoint 65520
      push(bitsOf((v + next) / 2)); // exact in fp32: one more bit than fp16
    }
  }
  for (const v of [65504, 65519, 65519.996, 65520, 65536, 2 ** -24, 2 ** -25, 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25, 3.4e38]) {
    push(bitsOf(v));
    push(bitsOf(-v));
  }
  for (const bits of [
    0x00000000, 0x80000000, 0x00000001, 0x007fffff, 0x00800000, 0x80000001, 0x7f7fffff, 0xff7fffff, 0x7f800000,
    0xff800000, 0x7f800001, 0x7fbfffff, 0x7fc00000, 0x7fc00001, 0x7fffffff, 0xffc00000, 0xff800001, 0xffffffff,
    0x3f808000, 0x3f818000, 0x3f80ffff, 0x3f817fff, 0x477fefff, 0x477ff000, 0x477ff001, 0x7f7f8000, 0x7f7f7fff,
  ]) {
    out.push(bits);
  }
  return Uint32Array.from(out);
}

describe.skipIf(NATIVE_DISABLED)("native fp16/bf16 conversions", () => {
  const native = k!;
  afterEach(() => {
    native.setSimd("auto");
  });

  describe.each(PATHS)("%s path", (path) => {
    it.each(["f16_to_f32", "bf16_to_f32"] as const)("%s: all 65536 patterns bit-identical", (kind) => {
      native.setSimd(path);
      const same = kind === "bf16_to_f32" ? sameUpToQuietBit : undefined;
      expect(firstDiff(halfToFloatNative(native, kind, ALL_16), halfToFloatRef(kind, ALL_16), 8, ALL_16, same)).toBeUndefined();
    });

    it.each(["f32_to_f16", "f32_to_bf16"] as const)("%s: edge floats bit-identical", (kind) => {
      native.setSimd(path);
      const bits = edgeFloats();
      expect(firstDiff(floatToHalfNative(native, kind, bits), floatToHalfRef(kind, bits), 4, bits)).toBeUndefined();
    });

    it.each(["f32_to_f16", "f32_to_bf16"] as const)("%s: 2^20 random bit patterns bit-identical", (kind) => {
      native.setSimd(path);
      const bits = randomBits(1 << 20, kind === "f32_to_f16" ? 1 : 2);
      expect(firstDiff(floatToHalfNative(native, kind, bits), floatToHalfRef(kind, bits), 4, bits)).toBeUndefined();
    });

    it.each(["f32_to_f16", "f32_to_bf16"] as const)("%s: a pattern every 4093 over all 2^32", (kind) => {
      native.setSimd(path);
      const bits = Uint32Array.from({ length: Math.ceil(2 ** 32 / 4093) }, (_, i) => (i * 4093) >>> 0);
      expect(firstDiff(floatToHalfNative(native, kind, bits), floatToHalfRef(kind, bits), 4, bits)).toBeUndefined();
    });
  });

  it("pins the NaN and subnormal policy (independent of how V8 treats NaN bits)", () => {
    const h = halfToFloatNative(native, "f16_to_f32", Uint16Array.of(0x0001, 0x03ff, 0x0400, 0x8001, 0x7bff, 0x7c00, 0xfc00, 0x7c01, 0xfe00, 0x8000));
    expect(Array.from(h, (v) => hex(v, 8))).toEqual(
      [0x33800000, 0x387fc000, 0x38800000, 0xb3800000, 0x477fe000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7fc00000, 0x80000000].map((v) => hex(v, 8)),
    );
    const b = halfToFloatNative(native, "bf16_to_f32", Uint16Array.of(0x7f81, 0xff81, 0x7fc1, 0x0001, 0x7f80));
    expect(Array.from(b, (v) => hex(v, 8))).toEqual([0x7f810000, 0xff810000, 0x7fc10000, 0x00010000, 0x7f800000].map((v) => hex(v, 8)));
    // Every bf16 pattern is exactly the high half, on both paths.
    for (const path of PATHS) {
      native.setSimd(path);
      const all = halfToFloatNative(native, "bf16_to_f32", ALL_16);
      for (let i = 0; i < 65536; i++) if (all[i] !== i << 16 >>> 0) throw new Error(`${path}: ${hex(i, 4)} -> ${hex(all[i], 8)}`);
    }
    const toHalf = floatToHalfNative(native, "f32_to_f16", Uint32Array.of(0x7f800001, 0xffc12345, 0x33000000, 0x33000001, 0x477ff000, 0x477fefff));
    expect(Array.from(toHalf, (v) => hex(v, 4))).toEqual([0x7e00, 0xfe00, 0x0000, 0x0001, 0x7c00, 0x7bff].map((v) => hex(v, 4)));
    const toBf = floatToHalfNative(native, "f32_to_bf16", Uint32Array.of(0x7f800001, 0xff812345, 0x3f808000, 0x3f818000, 0x7f7fffff));
    expect(Array.from(toBf, (v) => hex(v, 4))).toEqual([0x7fc0, 0xffc1, 0x3f80, 0x3f82, 0x7f80].map((v) => hex(v, 4)));
  });

  it("round trips: fp16 -> fp32 -> fp16 and bf16 -> fp32 -> bf16 keep every non-NaN pattern", () => {
    for (const [up, down, isNaN] of [
      ["f16_to_f32", "f32_to_f16", (h: number) => (h & 0x7fff) > 0x7c00],
      ["bf16_to_f32", "f32_to_bf16", (h: number) => (h & 0x7fff) > 0x7f80],
    ] as const) {
      const f = new Float32Array(65536);
      native.convert(up, ALL_16, f);
      const back = new Uint16Array(65536);
      native.convert(down, f, back);
      for (let h = 0; h < 65536; h++) if (!isNaN(h) && back[h] !== h) throw new Error(`${up}/${down}: ${hex(h, 4)} -> ${hex(back[h], 4)}`);
    }
  });

  it("unaligned subarrays and every tail length match the reference", () => {
    const src16 = Uint16Array.from(randomBits(4200, 3), (v) => v & 0xffff);
    const src32 = randomBits(4200, 4);
    for (let offset = 0; offset < 9; offset++) {
      for (const len of [0, 1, 5, 7, 8, 9, 15, 16, 17, 31, 33, 4000 + offset]) {
        const h = src16.subarray(offset, offset + len);
        const b = src32.subarray(offset, offset + len);
        for (const kind of ["f16_to_f32", "bf16_to_f32"] as const) {
          expect(firstDiff(halfToFloatNative(native, kind, h), halfToFloatRef(kind, h), 8, h, sameUpToQuietBit)).toBeUndefined();
        }
        for (const kind of ["f32_to_f16", "f32_to_bf16"] as const) {
          expect(firstDiff(floatToHalfNative(native, kind, b), floatToHalfRef(kind, b), 4)).toBeUndefined();
        }
      }
    }
  });

  it("large arrays (threaded blocks) and convertAsync give the same bits", async () => {
    const n = 3_000_017;
    const half = Uint16Array.from(randomBits(n, 5), (v) => v & 0xffff);
    const bits = randomBits(n, 6);
    for (const kind of ["f16_to_f32", "bf16_to_f32"] as const) {
      const expected = halfToFloatRef(kind, half);
      const sync = halfToFloatNative(native, kind, half);
      expect(firstDiff(sync, expected, 8, half, sameUpToQuietBit)).toBeUndefined();
      const dst = new Float32Array(n);
      await native.convertAsync(kind, half, dst);
      expect(firstDiff(new Uint32Array(dst.buffer), sync, 8)).toBeUndefined();
    }
    for (const kind of ["f32_to_f16", "f32_to_bf16"] as const) {
      const expected = floatToHalfRef(kind, bits);
      expect(firstDiff(floatToHalfNative(native, kind, bits), expected, 4)).toBeUndefined();
      const dst = new Uint16Array(n);
      await native.convertAsync(kind, new Float32Array(bits.buffer), dst);
      expect(firstDiff(dst, expected, 4)).toBeUndefined();
    }
  });

  it("rejects bad arguments with errors naming them", () => {
    const h = new Uint16Array(4);
    const f = new Float32Array(4);
    const convert = native.convert as (...args: unknown[]) => void;
    expect(() => convert("f16_to_f64", h, f)).toThrow(/argument 'kind' must be one of/);
    expect(() => convert("f16_to_f32", f, f)).toThrow(TypeError);
    expect(() => convert("f16_to_f32", f, f)).toThrow(/'src' must be a Uint16Array, got a Float32Array/);
    expect(() => convert("f16_to_f32", h, new Float64Array(4))).toThrow(/'dst' must be a Float32Array, got a Float64Array/);
    expect(() => convert("f32_to_f16", f, new Uint16Array(3))).toThrow(/'dst' has length 3, src has 4/);
    const shared = new ArrayBuffer(24);
    expect(() => convert("f16_to_f32", new Uint16Array(shared, 0, 4), new Float32Array(shared, 4, 4))).toThrow(/overlaps src/);
    expect(() => convert("f16_to_f32", new Uint16Array(shared, 0, 4), new Float32Array(shared, 8, 4))).not.toThrow();
    expect(() => convert()).toThrow(/'kind' must be a string, got undefined/);
  });
});

