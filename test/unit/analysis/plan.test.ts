import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";
import { layerPlan, readPlan, validatePlan, writePlan, type PlanFile } from "../../../extension/src/engine/quant/plan";
import { quantizeModel } from "../../../extension/src/engine/quant/quantize";
import { DEFAULT_CONFIG } from "../../../extension/src/engine/quant/config";
import { quantizationReport } from "../../../extension/src/engine/report/quantization";
import { reportJson, validateReport } from "../../../extension/src/engine/report/write";
import { buildCli, quantlens } from "../../helpers/cli";
import { listDir, STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";

beforeAll(buildCli);
let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

const CALIB = path.join(STORIES, "calib.jsonl");

/** A mixed plan over stories260K: every setting kind, one layer left out (stays float). */
async function mixedPlan(): Promise<{ plan: PlanFile; omitted: string }> {
  const model = await OnnxModel.load(STORIES_MODEL);
  try {
    const layers = indexLinears(model).layers.filter((l) => l.role !== "lm_head");
    const omitted = layers[3].name;
    const settings = [
      { method: "rtn", bits: 8, group: 32 },
      { method: "gptq", bits: 2, group: 64 },
      { method: "gptq", bits: 3, group: 0 },
      { method: "rtn", bits: 4, group: 0 },
    ] as const;
    return {
      omitted,
      plan: {
        format: "quantlens-plan",
        version: 1,
        model: "model.onnx",
        budget: 4,
        avg_bits: 3.9,
        layers: layers.filter((l) => l.name !== omitted).map((l, i) => ({ name: l.name, ...settings[i % settings.length] })),
      },
    };
  } finally {
    model.close();
  }
}

describe("plan JSON", () => {
  it("round-trips through writePlan/readPlan", async () => {
    const { plan } = await mixedPlan();
    const file = path.join(dir, "plan.json");
    await writePlan(file, plan);
    expect(readPlan(file)).toEqual(plan);
    expect(listDir(dir)).toEqual(["plan.json"]); // no temp file left
  });

  it("validation names the field or layer at fault", async () => {
    const { plan } = await mixedPlan();
    expect(() => validatePlan({ ...plan, format: "other" }, "p.json")).toThrow(/p\.json: format: expected "quantlens-plan"/);
    expect(() => validatePlan({ ...plan, version: 2 }, "p.json")).toThrow(/version: this QuantLens reads plan version 1/);
    const bad = structuredClone(plan);
    (bad.layers[1] as { bits: number }).bits = 5;
    expect(() => validatePlan(bad, "p.json")).toThrow(new RegExp(`layers\\[1\\] \\('${bad.layers[1].name.replace(/[/.]/g, "\\$&")}'\\)\\.bits: expected one of 2, 3, 4, 8, got 5`));
    const dup = structuredClone(plan);
    dup.layers.push(dup.layers[0]);
    expect(() => validatePlan(dup, "p.json")).toThrow(/is listed twice/);
    const model = await OnnxModel.load(STORIES_MODEL);
    try {
      const layers = indexLinears(model).layers;
      const unknown = structuredClone(plan);
      unknown.layers[2].name = "/no/such/MatMul";
      expect(() => layerPlan(unknown, layers, "p.json")).toThrow(/p\.json: layers\[2\]: layer '\/no\/such\/MatMul' is not a linear layer of this model/);
      const wide = structuredClone(plan);
      wide.layers[0].group = 256;
      expect(() => layerPlan(wide, layers, "p.json")).toThrow(/group 256 is larger than its 64 inputs/);
    } finally {
      model.close();
    }
  });

  it("quantizeModel follows the plan layer by layer", async () => {
    const { plan, omitted } = await mixedPlan();
    const model = await OnnxModel.load(STORIES_MODEL);
    try {
      const { loadModelData } = await import("../../../extension/src/engine/calib/model-data");
      const data = loadModelData(model, CALIB, { samples: 4, seqLen: 64 });
      const q = await quantizeModel(model, { ...DEFAULT_CONFIG, method: "rtn" }, { data, plan: layerPlan(plan, indexLinears(model).layers) });
      expect(q.layers.map((l) => ({ name: l.layer.name, method: l.method, bits: l.bits, group: l.group }))).toEqual(plan.layers);
      expect(q.kept.find((k) => k.name === omitted)?.reason).toMatch(/not in the plan/);
      for (const l of q.layers) if (l.method === "gptq") expect(l.proxyLoss!).toBeLessThanOrEqual(l.proxyLossRtn! * (1 + 1e-6));
      // The quantize run as a report: the layers table carries each layer's planned bits.
      const report = validateReport(JSON.parse(reportJson(quantizationReport(model, q, { output: "q.onnx", format: "fake", plan: "plan.json" }))));
      expect(report.layers.filter((l) => l.bits !== null).map((l) => ({ name: l.name, method: l.method, bits: l.bits, group: l.group }))).toEqual(plan.layers);
      const s = report.quantization!;
      for (const l of s.layers) expect(l.proxy_loss_rtn! + 1e-9).toBeGreaterThanOrEqual(l.method === "gptq" ? l.proxy_loss! : 0);
      const params = q.layers.reduce((a, l) => a + l.layer.in * l.layer.out, 0);
      expect(s.avg_bits).toBeCloseTo(q.layers.reduce((a, l) => a + l.layer.in * l.layer.out * (l.bits + (Math.ceil(l.layer.in / (l.group || l.layer.in)) * (16 + l.bits)) / l.layer.in), 0) / params, 9);
    } finally {
      model.close();
    }
  });

  it("round-trips through `quantize --plan` (CLI): each layer quantized as planned", async () => {
    const { plan, omitted } = await mixedPlan();
    const file = path.join(dir, "plan.json");
    await writePlan(file, plan);
    const out = path.join(dir, "q.onnx");
    const r = quantlens("quantize", STORIES_MODEL, "--plan", file, "--data", CALIB, "--samples", "4", "--seq-len", "64", "--format", "fake", "-o", out, "--json");
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.layers.map((l: { name: string; method: string; bits: number; group: number }) => ({ name: l.name, method: l.method, bits: l.bits, group: l.group }))).toEqual(plan.layers);
    expect(j.kept.map((k: { name: string }) => k.name)).toContain(omitted);
    expect(fs.existsSync(out)).toBe(true);

    // A plan naming a layer the model lacks: exit 1 naming the plan file and the layer.
    const bad = structuredClone(plan);
    bad.layers[0].name = "/missing/MatMul";
    fs.writeFileSync(file, JSON.stringify(bad));
    const r2 = quantlens("quantize", STORIES_MODEL, "--plan", file, "--data", CALIB, "--format", "fake", "-o", path.join(dir, "q2.onnx"));
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain("plan.json: layers[0]: layer '/missing/MatMul' is not a linear layer");

    // GPTQ layers in the plan need calibration data.
    await writePlan(file, plan);
    const r3 = quantlens("quantize", STORIES_MODEL, "--plan", file, "--format", "fake", "-o", path.join(dir, "q3.onnx"));
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain("the plan has GPTQ layers, which need calibration data (--data FILE)");
  });
});
