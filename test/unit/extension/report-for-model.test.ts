import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { reportForModel } from "../../../extension/src/views/model-source";
import { buildModelTree } from "../../../extension/src/views/tree-model";
import { layerDetailMarkdown } from "../../../extension/src/views/layer-detail";
import { newReport, setSection } from "../../../extension/src/engine/report/write";
import { validateReport } from "../../../extension/src/engine/report/validate";
import type { LayerRow, QuantLensReport } from "../../../extension/src/engine/report/schema";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ql-report-for-model-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const model = path.join(dir, "model.onnx");
const layer = (name: string, extra: Partial<LayerRow> = {}): LayerRow => ({ name, role: "q", block: 0, in: 64, out: 32, dtype: "float32", input: "x", method: null, bits: null, group: null, proxy_loss: null, outlier_count: 2, sensitivity: 0.004, mu_w: null, mu_h: null, ...extra });

function quantReport(output: string, sensitivity: number): QuantLensReport {
  const r = newReport({ file: model, blocks: 1, linears: 1, linear_params: 2048 }, "test");
  r.layers = [layer("L", { method: "gptq", bits: 4, group: 32, proxy_loss: 0.01, sensitivity })];
  setSection(r, "activations", []);
  setSection(r, "quantization", {
    method: "gptq", bits: 4, group: 32, format: "matmulnbits", output, seconds: 1, avg_bits: 4.6, plan: null,
    layers: [{ name: "L", method: "gptq", bits: 4, group: 32, proxy_loss: 0.01, proxy_loss_rtn: 0.02, damp: null, dead_columns: null, seconds: 0 }],
    kept: [],
  });
  return r;
}

function write(file: string, value: unknown, mtime: number): void {
  fs.writeFileSync(file, JSON.stringify(value));
  fs.utimesSync(file, mtime, mtime);
}

describe("the report describing a model (tree, layer detail, inspector)", () => {
  it("none: null", () => {
    fs.writeFileSync(model, "not read");
    expect(reportForModel(model)).toBeNull();
  });

  it("a quantization's report of the fp model: its analysis, without the quantized model's bits and losses", () => {
    const qFile = path.join(dir, "model.gptq-w4g32.quantlens.json");
    write(qFile, quantReport(path.join(dir, "model.gptq-w4g32.onnx"), 0.004), 1000);
    // A report about another model in the same folder is not taken.
    const other = quantReport(path.join(dir, "other.q.onnx"), 9);
    other.model.file = path.join(dir, "other.onnx");
    write(path.join(dir, "other.q.quantlens.json"), other, 5000);
    const found = reportForModel(model)!;
    expect(found.file).toBe(qFile);
    const r = found.report as QuantLensReport;
    expect(r.quantization).toBeUndefined();
    expect(r.sections).not.toContain("quantization");
    expect(r.layers[0]).toMatchObject({ method: null, bits: null, group: null, proxy_loss: null, outlier_count: 2, sensitivity: 0.004 });
    expect(() => validateReport(JSON.parse(JSON.stringify(r)))).not.toThrow();
    // The tree and the layer detail show it.
    const t = buildModelTree(model, [{ name: "L", role: "q", block: 0, in: 64, out: 32 }], r, found.file);
    expect(t.report).toBe(qFile);
    expect(t.blocks[0].layers[0].description).toBe("q · 32 out × 64 in · KL 4.0e-3 · ⚠ 2 outliers");
    const md = layerDetailMarkdown(model, { name: "L" }, r, found.file);
    expect(md).toContain("From the report");
    expect(md).toContain(qFile);
    expect(md).not.toMatch(/quantized \| gptq/);
  });

  it("the newest wins: a later quantization over an older own analysis, and the other way round", () => {
    const own = newReport({ file: model, blocks: 1, linears: 1, linear_params: 2048 }, "test");
    own.layers = [layer("L", { sensitivity: 0.5 })];
    setSection(own, "activations", []);
    const ownFile = path.join(dir, "model.quantlens.json");
    write(ownFile, own, 500);
    expect(reportForModel(model)!.file).toBe(path.join(dir, "model.gptq-w4g32.quantlens.json"));
    const q2 = path.join(dir, "model.rtn-w8.quantlens.json");
    write(q2, quantReport(path.join(dir, "model.rtn-w8.onnx"), 0.007), 2000);
    expect(reportForModel(model)!.file).toBe(q2);
    expect((reportForModel(model)!.report as QuantLensReport).layers[0].sensitivity).toBe(0.007);
    write(ownFile, own, 3000);
    const found = reportForModel(model)!;
    expect(found.file).toBe(ownFile);
    expect((found.report as QuantLensReport).layers[0].sensitivity).toBe(0.5);
  });

  it("a quantized model keeps its own report, bits and all", () => {
    const out = path.join(dir, "model.gptq-w4g32.onnx");
    fs.writeFileSync(out, "not read");
    const found = reportForModel(out)!;
    expect(found.file).toBe(path.join(dir, "model.gptq-w4g32.quantlens.json"));
    expect((found.report as QuantLensReport).layers[0].bits).toBe(4);
    expect((found.report as QuantLensReport).quantization?.output).toBe(out);
  });

  it("an unreadable report beside the model is an error naming it", () => {
    const bad = path.join(dir, "broken.onnx");
    fs.writeFileSync(bad, "x");
    fs.writeFileSync(path.join(dir, "broken.quantlens.json"), "{ nope");
    expect(() => reportForModel(bad)).toThrow(/broken\.quantlens\.json/);
  });
});
