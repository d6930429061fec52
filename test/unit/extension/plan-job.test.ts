import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planGrid, runQuantizeJob } from "../../../extension/src/commands/quantize-job";
import { recipeFromAnswers } from "../../../extension/src/commands/picks";
import { recipeTag } from "../../../extension/src/commands/output-name";
import { bitsPerWeight } from "../../../extension/src/engine/analysis/fake-quant";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { STORIES, tempDir } from "../../helpers/paths";

let dir: string;
let cleanup: () => void;
beforeAll(() => {
  ({ dir, cleanup } = tempDir("quantlens-plan-"));
  for (const f of ["model.onnx", "tokenizer.json", "config.json", "calib.jsonl"]) fs.copyFileSync(path.join(STORIES, f), path.join(dir, f));
});
afterAll(() => cleanup());

describe("Quantize… → auto plan under N bits", () => {
  it("plans only what the format can write", () => {
    expect(planGrid("matmulnbits")).toEqual({ bits: [2, 4, 8], groups: [32, 64, 128] });
    expect(planGrid("qdq")).toEqual({}); // blocked int4/int8 DequantizeLinear: the whole grid
    expect(planGrid("fake")).toEqual({});
  });

  it("3.5 bits per weight → MatMulNBits: every layer in the format, the average within the budget", async () => {
    const recipe = recipeFromAnswers({ method: "gptq", bits: 4, group: 128, format: "matmulnbits", plan: 3.5 });
    const out = path.join(dir, `model.${recipeTag(recipe)}.onnx`);
    expect(path.basename(out)).toBe("model.plan-3.5b.onnx");
    const r = await runQuantizeJob({ model: path.join(dir, "model.onnx"), out, recipe, data: path.join(dir, "calib.jsonl"), samples: 8, calib: { executionProvider: "cpu" }, report: "quantization" });
    expect(r.notes).toEqual([]); // no layer fell back to fake-quant
    expect(r.exported.layers.every((l) => l.form === "matmulnbits")).toBe(true);
    const body = JSON.parse(fs.readFileSync(r.report, "utf8"));
    expect(body.plan.budget).toBe(3.5);
    const layers = body.layers as { name: string; bits: number; group: number; in: number; out: number }[];
    expect(layers).toHaveLength(35);
    let bits = 0;
    let params = 0;
    for (const l of layers) {
      expect([2, 4, 8]).toContain(l.bits);
      expect([32, 64, 128]).toContain(l.group);
      expect(l.group).toBeLessThan(l.in);
      // What the plan chose is what was written.
      expect(body.plan.layers.find((p: { name: string }) => p.name === l.name)).toMatchObject({ bits: l.bits, group: l.group });
      bits += bitsPerWeight(l.bits, l.group, l.in) * l.in * l.out;
      params += l.in * l.out;
    }
    expect(bits / params).toBeLessThanOrEqual(3.5 + 1e-9);
    expect(new Set(layers.map((l) => l.bits)).size).toBeGreaterThan(1); // a real mix, not uniform
    const m = await OnnxModel.load(out);
    try {
      expect(m.graph.node.filter((n) => n.opType === "MatMulNBits")).toHaveLength(35);
    } finally {
      m.close();
    }
  }, 90_000);
});
