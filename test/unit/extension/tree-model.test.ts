import { describe, expect, it } from "vitest";
import { buildModelTree, figuresFromReport, formatLoss, plural, shortLayerName, type TreeLayerInput } from "../../../extension/src/views/tree-model";
import { newReport } from "../../../extension/src/engine/report/write";
import type { LayerRow } from "../../../extension/src/engine/report/schema";

const L = (block: number | null, role: string, name: string, inF = 64, outF = 64): TreeLayerInput => ({ name, role, block, in: inF, out: outF, dtype: "float32" });
const layers: TreeLayerInput[] = [
  L(1, "q", "/model/layers.1/self_attn/q_proj/MatMul"),
  L(0, "q", "/model/layers.0/self_attn/q_proj/MatMul"),
  L(0, "down", "/model/layers.0/mlp/down_proj/MatMul", 172, 64),
  L(null, "lm_head", "/lm_head/MatMul", 64, 512),
];

function row(l: TreeLayerInput, extra: Partial<LayerRow>): LayerRow {
  return { name: l.name, role: l.role as LayerRow["role"], block: l.block, in: l.in, out: l.out, dtype: "float32", input: "x", method: null, bits: null, group: null, proxy_loss: null, outlier_count: 0, sensitivity: null, mu_w: null, mu_h: null, ...extra };
}

describe("model tree", () => {
  it("short names drop the op and the path", () => {
    expect(shortLayerName("/model/layers.0/self_attn/q_proj/MatMul")).toBe("q_proj");
    expect(shortLayerName("/lm_head/MatMul")).toBe("lm_head");
    expect(shortLayerName("model.layers.3.mlp.up_proj.MatMul_1")).toBe("up_proj");
    expect(shortLayerName("fc")).toBe("fc");
  });

  it("blocks ascending, layers in graph order within a block, layers outside blocks last", () => {
    const t = buildModelTree("/m/model.onnx", layers);
    expect(t.blocks.map((b) => b.label)).toEqual(["block 0", "block 1", "other layers"]);
    expect(t.blocks[0].layers.map((l) => l.label)).toEqual(["q_proj", "down_proj"]);
    expect(t.description).toBe("4 layers · 2 blocks");
    expect(t.report).toBeNull();
    const down = t.blocks[0].layers[1];
    // The role is said only where the name does not say it.
    expect(buildModelTree("/m/a.onnx", [L(0, "v", "/MatMul_3", 64, 32)]).blocks[0].layers[0].description).toBe("v · 32 out × 64 in");
    expect(down).toMatchObject({ description: "64 out × 172 in", badge: "float", model: "/m/model.onnx", name: "/model/layers.0/mlp/down_proj/MatMul" });
  });

  it("figures from a quantlens-report: bits, proxy loss, outliers and sensitivity badges", () => {
    const r = newReport({ file: "/m/model.onnx", blocks: 2, linears: 4, linear_params: 0 }, "test");
    r.layers = [
      row(layers[1], { method: "gptq", bits: 4, group: 32, proxy_loss: 0.0123, outlier_count: 3, sensitivity: 0.002 }),
      row(layers[2], { method: "gptq", bits: 3, group: 0, proxy_loss: 0.2 }),
      row(layers[0], { method: "gptq", bits: 4, group: 32, proxy_loss: 1.5e-5 }),
      row(layers[3], {}),
    ];
    r.activations = []; // outlier counts mean something only where activations were analysed
    const t = buildModelTree("/m/model.onnx", layers, r, "/m/model.quantlens.json");
    expect(t.report).toBe("/m/model.quantlens.json");
    const [q0, down] = t.blocks[0].layers;
    expect(q0.description).toBe("64 out × 64 in · W4 g32 · loss 0.012 · KL 2.0e-3 · ⚠ 3 outliers");
    expect(q0.badge).toBe("outliers");
    expect(q0.tooltip).toContain("sensitivity (mean KL, this layer alone quantized): 0.00200");
    expect(down.description).toBe("64 out × 172 in · W3 per-ch · loss 0.200");
    expect(down.badge).toBe("quantized");
    expect(t.blocks[1].layers[0].description).toBe("64 out × 64 in · W4 g32 · loss 1.5e-5");
    expect(t.blocks[0].description).toBe("W3/W4 · max loss 0.200 · ⚠ outliers in 1 layer");
    expect(t.blocks[2].layers[0].badge).toBe("float");
    expect(t.description).toBe("4 layers · 2 blocks · 3 quantized, 1 float · W3/W4 · max loss 0.200 · ⚠ outliers in 1 layer");
  });

  it("figures from the exporter's report: quantized layers, and kept layers marked float with why", () => {
    const exported = {
      format_version: 1,
      layers: [{ name: layers[1].name, method: "rtn", bits: 8, group: 0, proxy_loss: 12.5, rel_proxy_loss: 0.001 }],
      kept: [{ name: layers[3].name, reason: "lm_head stays in float" }],
    };
    const f = figuresFromReport(exported);
    expect(f.get(layers[1].name)).toMatchObject({ bits: 8, group: 0, proxyLoss: 0.001, method: "rtn" });
    const t = buildModelTree("/m/q.onnx", layers, exported, "/m/q.quantlens.json");
    expect(t.blocks[0].layers[0].description).toBe("64 out × 64 in · W8 per-ch · loss 1.0e-3");
    expect(t.blocks[2].layers[0].description).toBe("512 out × 64 in · float");
    expect(t.blocks[2].layers[0].tooltip).toContain("kept in float: lm_head stays in float");
  });

  it("an unknown or broken report gives no figures (and no crash)", () => {
    for (const bad of [null, 3, "x", { layers: "no" }, { format: "quantlens-report", layers: [null, { name: 5 }] }]) {
      expect(figuresFromReport(bad).size).toBe(0);
      expect(buildModelTree("/m/x.onnx", layers, bad, "/m/x.quantlens.json").report).toBeNull();
    }
  });

  it("loss formatting", () => {
    expect(formatLoss(0)).toBe("0");
    expect(formatLoss(0.5)).toBe("0.500");
    expect(formatLoss(12.345)).toBe("12.35");
    expect(formatLoss(0.00012)).toBe("1.2e-4");
  });

  it("outlier counts need an activation section; singular and plural counts", () => {
    const r = newReport({ file: "/m/model.onnx", blocks: 1, linears: 1, linear_params: 0 }, "test");
    const one = [layers[1]];
    r.layers = [row(one[0], { outlier_count: 0 })];
    // An inspect-only report: nothing was counted, so nothing is claimed.
    expect(figuresFromReport(r).get(one[0].name)!.outliers).toBeNull();
    r.activations = [];
    expect(figuresFromReport(r).get(one[0].name)!.outliers).toBe(0);
    const t = buildModelTree("/m/model.onnx", one, r, "/m/model.quantlens.json");
    expect(t.description).toBe("1 layer · 1 block");
    expect(t.blocks[0].tooltip.split("\n")[0]).toBe("1 linear layer");
    expect(plural(2, "block")).toBe("2 blocks");
    expect(buildModelTree("/m/model.onnx", layers).blocks[0].tooltip.split("\n")[0]).toBe("2 linear layers");
  });
});
