import { describe, expect, it } from "vitest";
import { HessianAccumulator, hessianBufferRows } from "../../../extension/src/engine/calib/hessian";
import { BadDataError } from "../../../extension/src/engine/errors";
import { Xoshiro128 } from "../../fixtures/generator/random";

/** (2/N) Σ xᵀx in float64, straight from the definition. */
function direct(batches: Float32Array[], C: number): Float64Array {
  const h = new Float64Array(C * C);
  let n = 0;
  for (const x of batches) {
    const rows = x.length / C;
    n += rows;
    for (let r = 0; r < rows; r++) for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) h[i * C + j] += x[r * C + i] * x[r * C + j];
  }
  return h.map((v) => (2 * v) / n);
}

describe("HessianAccumulator", () => {
  const C = 37;
  const rng = new Xoshiro128(11);
  // Uneven batches (the last ones shorter), one wider than the buffer.
  const sizes = [5, 5, 5, 3, 19, 1, 2];
  const batches = sizes.map((rows) => Float32Array.from({ length: rows * C }, () => rng.normal() * (1 + rng.nextBelow(3))));

  it.each([1, 4, 7, 16, 1000])("gathers rows %i at a time and gives (2/N)·Σ xᵀx", async (bufferRows) => {
    const acc = new HessianAccumulator(C, "t", bufferRows);
    for (const x of batches) await acc.add(x, x.length / C);
    // Rows still gathered are not counted until they reach the kernel.
    expect(acc.n).toBeLessThanOrEqual(40);
    const h = await acc.finish();
    expect(acc.n).toBe(40);
    const ref = direct(batches, C);
    let scale = 0;
    for (const v of ref) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < h.length; i++) expect(Math.abs(h[i] - ref[i])).toBeLessThanOrEqual(1e-6 * scale);
    for (let i = 0; i < C; i++) for (let j = 0; j < i; j++) expect(h[i * C + j]).toBe(h[j * C + i]);
  });

  it("buffers at most 4096 rows and 64 MiB, and not at all up to 1024 inputs", () => {
    expect(hessianBufferRows(64)).toBe(1);
    expect(hessianBufferRows(1024)).toBe(1);
    expect(hessianBufferRows(2048)).toBe(4096);
    expect(hessianBufferRows(11008) * 11008 * 4).toBeLessThanOrEqual(64 * 2 ** 20);
    expect(hessianBufferRows(1 << 20)).toBe(256);
  });

  it("NaN in gathered rows is reported with the tensor's name when they are flushed", async () => {
    const acc = new HessianAccumulator(3, "model/x", 4);
    await acc.add(Float32Array.from([1, 2, 3, 4, Number.NaN, 6]), 2);
    await expect(acc.finish()).rejects.toBeInstanceOf(BadDataError);
    const acc2 = new HessianAccumulator(3, "model/x", 4);
    await acc2.add(Float32Array.from([1, 2, 3]), 1);
    await expect(acc2.add(Float32Array.from([1, 2, 3, 4, Number.NaN, 6, 7, 8, 9]), 3)).rejects.toThrow(/model\/x/);
  });
});
