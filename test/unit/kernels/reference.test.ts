import { describe, expect, it } from "vitest";
import {
  bf16BitsToFloat,
  emptyMoments,
  floatToBf16Bits,
  floatToHalfBits,
  halfBitsToFloat,
  mergeMoments,
  momentsExcessKurtosis,
  momentsRef,
  momentsStd,
} from "../../../extension/src/engine/kernels/reference";

describe("fp16 reference conversion", () => {
  it("decodes landmark bit patterns", () => {
    expect(halfBitsToFloat(0x3c00)).toBe(1);
    expect(halfBitsToFloat(0xc000)).toBe(-2);
    expect(halfBitsToFloat(0x7bff)).toBe(65504);
    expect(halfBitsToFloat(0x0001)).toBe(2 ** -24);
    expect(halfBitsToFloat(0x0400)).toBe(2 ** -14);
    expect(halfBitsToFloat(0x7c00)).toBe(Infinity);
    expect(halfBitsToFloat(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(halfBitsToFloat(0x7e00))).toBe(true);
    expect(Object.is(halfBitsToFloat(0x8000), -0)).toBe(true);
  });

  it("float → half → float is the identity on every finite half", () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = halfBitsToFloat(h);
      if (Number.isNaN(f)) continue;
      expect(floatToHalfBits(f)).toBe(h);
    }
  });

  it("rounds to nearest even, overflows to infinity, underflows to zero", () => {
    expect(floatToHalfBits(1 + 2 ** -11)).toBe(0x3c00); // tie → even (down)
    expect(floatToHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(floatToHalfBits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above the tie
    expect(floatToHalfBits(65520)).toBe(0x7c00); // rounds past the max half
    expect(floatToHalfBits(65519)).toBe(0x7bff);
    expect(floatToHalfBits(2 ** -25)).toBe(0x0000); // tie with zero → even
    expect(floatToHalfBits(2 ** -25 + 2 ** -35)).toBe(0x0001);
    expect(floatToHalfBits(3 * 2 ** -25)).toBe(0x0002); // subnormal tie → even
    expect(floatToHalfBits(NaN) & 0x7c00).toBe(0x7c00);
    expect(floatToHalfBits(NaN) & 0x3ff).not.toBe(0);
  });
});

describe("bf16 reference conversion", () => {
  it("round-trips every non-NaN bf16 and rounds ties to even", () => {
    for (let b = 0; b < 0x10000; b++) {
      const f = bf16BitsToFloat(b);
      if (Number.isNaN(f)) continue;
      expect(floatToBf16Bits(f)).toBe(b);
    }
    expect(floatToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(floatToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(Number.isNaN(bf16BitsToFloat(floatToBf16Bits(NaN)))).toBe(true);
  });
});

describe("moments", () => {
  function direct(x: number[]) {
    const n = x.length;
    const mean = x.reduce((a, b) => a + b, 0) / n;
    const c = (p: number) => x.reduce((a, b) => a + (b - mean) ** p, 0);
    return { mean, m2: c(2), m3: c(3), m4: c(4) };
  }

  it("merging chunk moments equals one pass over the whole (Pébay)", () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 10 - 3;
    const x = Float32Array.from({ length: 10_001 }, () => rnd() ** 3);
    let m = emptyMoments();
    let start = 0;
    for (const size of [1, 7, 1000, 3333, 5660]) {
      m = mergeMoments(m, momentsRef(x.subarray(start, start + size)));
      start += size;
    }
    expect(start).toBe(x.length);
    const f = direct(Array.from(x));
    expect(m.n).toBe(10_001);
    expect(m.mean).toBeCloseTo(f.mean, 10);
    expect(m.m2 / f.m2).toBeCloseTo(1, 10);
    expect(m.m3 / f.m3).toBeCloseTo(1, 8);
    expect(m.m4 / f.m4).toBeCloseTo(1, 10);
  });

  it("gives std and excess kurtosis of known distributions; skips non-finite values", () => {
    const uniform = Float32Array.from({ length: 100_000 }, (_, i) => (i + 0.5) / 100_000);
    const m = momentsRef(uniform);
    expect(momentsStd(m)).toBeCloseTo(Math.sqrt(1 / 12), 5);
    expect(momentsExcessKurtosis(m)).toBeCloseTo(-1.2, 4);
    const withBad = momentsRef(Float32Array.from([1, NaN, 3, Infinity, -Infinity]));
    expect(withBad).toMatchObject({ n: 2, mean: 2, nonFinite: 3, absmax: 3, min: 1, max: 3 });
  });
});
