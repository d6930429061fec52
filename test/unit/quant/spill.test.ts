import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { quantizeModel, type QuantizedModel } from "../../../extension/src/engine/quant/quantize";
import { DEFAULT_CONFIG, type QuantConfig } from "../../../extension/src/engine/quant/config";
import { exportQuantized, type ExportFormat } from "../../../extension/src/engine/export/export";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import { Spill, spillFor, SPILL_WEIGHT_BYTES } from "../../../extension/src/engine/spill";
import { Xoshiro128 } from "../../fixtures/generator/random";
import { STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";

let dir: string;
let cleanup: () => void;
let model: OnnxModel;

beforeAll(async () => {
  ({ dir, cleanup } = tempDir());
  model = await OnnxModel.load(STORIES_MODEL);
});
afterAll(() => {
  model?.close();
  cleanup?.();
});

describe("Spill scratch file", () => {
  it("gives back exactly what was put, leaves no file in the folder, and refuses reads after close", () => {
    const folder = fs.mkdtempSync(path.join(dir, "spill-"));
    const spill = new Spill(folder);
    const rng = new Xoshiro128(3);
    const arrays = [1, 0, 70_000, 13].map((n) => Uint8Array.from({ length: n }, () => rng.nextBelow(256)));
    const refs = arrays.map((a) => spill.put(a));
    // A view into a larger buffer is stored as the view, not the whole buffer.
    const big = new Float32Array([1, 2, 3, 4, 5]);
    const view = spill.put(big.subarray(1, 3));
    expect(view.length).toBe(8);
    expect(spill.bytes).toBe(70_014 + 8);
    arrays.forEach((a, i) => expect(spill.get(refs[i])).toEqual(a));
    expect(new Float32Array(spill.get(view).buffer)).toEqual(new Float32Array([2, 3]));
    if (process.platform !== "win32") expect(fs.readdirSync(folder)).toEqual([]);
    spill.close();
    spill.close();
    expect(fs.readdirSync(folder)).toEqual([]);
    expect(() => spill.get(refs[0])).toThrow();
  });

  it("spills only large models unless forced", () => {
    expect(spillFor(SPILL_WEIGHT_BYTES - 1, dir, {})).toBeUndefined();
    const s = spillFor(SPILL_WEIGHT_BYTES, dir, {});
    expect(s).toBeInstanceOf(Spill);
    s!.close();
    expect(spillFor(SPILL_WEIGHT_BYTES * 4, dir, { QUANTLENS_SPILL: "0" })).toBeUndefined();
    const forced = spillFor(10, path.join(dir, "not-made-yet"), { QUANTLENS_SPILL: "1" });
    expect(forced).toBeInstanceOf(Spill);
    forced!.close();
    expect(fs.existsSync(path.join(dir, "not-made-yet"))).toBe(false);
  });
});

describe("quantize + export through a spill", () => {
  const cases: { config: QuantConfig; format: ExportFormat; data: boolean }[] = [
    { config: { ...DEFAULT_CONFIG, method: "rtn", bits: 4, group: 32 }, format: "matmulnbits", data: false },
    { config: { ...DEFAULT_CONFIG, method: "rtn", bits: 3, group: 32 }, format: "fake", data: false },
    { config: { ...DEFAULT_CONFIG, method: "gptq", bits: 4, group: 32, sequential: true }, format: "qdq", data: true },
    { config: { ...DEFAULT_CONFIG, method: "awq", bits: 4, group: 32 }, format: "matmulnbits", data: true },
  ];
  for (const c of cases) {
    it(`${c.config.method} W${c.config.bits} → ${c.format}: the same files and codes as without, the codes out of memory`, async () => {
      const data = c.data ? loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 4 }) : undefined;
      const plain = await quantizeModel(model, c.config, { data });
      const outA = path.join(dir, `plain-${c.config.method}-${c.format}.onnx`);
      await exportQuantized(model, plain, outA, c.format);
      const folder = fs.mkdtempSync(path.join(dir, "spilled-"));
      const spill = new Spill(folder);
      let spilled: QuantizedModel;
      try {
        spilled = await quantizeModel(model, c.config, { data, spill });
        expect(spilled.spill).toBe(spill);
        // Codes live in the file: a getter, not an array held by the result.
        for (const lq of spilled.layers) expect(Object.getOwnPropertyDescriptor(lq, "codes")?.get).toBeTypeOf("function");
        expect(spill.bytes).toBeGreaterThanOrEqual(spilled.layers.reduce((s, l) => s + l.layer.in * l.layer.out, 0));
        spilled.layers.forEach((lq, i) => expect(lq.codes).toEqual(plain.layers[i].codes));
        const before = spill.bytes;
        const outB = path.join(folder, `spilled.onnx`);
        await exportQuantized(model, spilled, outB, c.format);
        // The export's weights went through the spill too (all but the smallest tensors).
        expect(spill.bytes).toBeGreaterThan(before);
        expect(fs.readFileSync(outB)).toEqual(fs.readFileSync(outA));
        expect(fs.existsSync(`${outB}.data`)).toBe(fs.existsSync(`${outA}.data`));
        // Only the outputs in the folder: the scratch file is already unlinked.
        if (process.platform !== "win32") expect(fs.readdirSync(folder).sort()).toEqual(["spilled.onnx", "spilled.quantlens.json"]);
      } finally {
        spill.close();
      }
    });
  }
});
