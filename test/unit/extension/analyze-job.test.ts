import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { presetBudget, runAnalyzeJob } from "../../../extension/src/commands/analyze-job";
import { CancelledError } from "../../../extension/src/engine/errors";
import { bitsPerWeight } from "../../../extension/src/engine/analysis/fake-quant";
import { loadReport } from "../../../extension/src/views/report-load";
import { reportToPanels } from "../../../extension/src/views/report-to-panels";
import { replanner } from "../../../extension/src/views/replan";
import { modelTree } from "../../../extension/src/views/model-source";
import { inspectLayer, layerDetailMarkdown } from "../../../extension/src/views/layer-detail";
import { runQuantizeJob } from "../../../extension/src/commands/quantize-job";
import { methodConfig } from "../../../extension/src/commands/settings";
import { tokenHeatmapForReport } from "../../../extension/src/views/token-request";
import { decodeF32 } from "../../../extension/src/engine/report/schema";
import { listDir, STORIES, tempDir } from "../../helpers/paths";

let dir: string;
let cleanup: () => void;
let model: string;
const before = ["calib.jsonl", "config.json", "model.onnx", "tokenizer.json"];
beforeAll(() => {
  ({ dir, cleanup } = tempDir("quantlens-analyze-"));
  for (const f of before) fs.copyFileSync(path.join(STORIES, f), path.join(dir, f));
  model = path.join(dir, "model.onnx");
});
afterAll(() => cleanup());

describe("preset budget", () => {
  it("is the size-weighted bits per weight of the uniform preset (lm_head aside), rounded up", () => {
    const layers = [
      { in: 64, out: 64, role: "q" },
      { in: 172, out: 64, role: "down" },
      { in: 64, out: 512, role: "lm_head" },
    ];
    const exact = (bitsPerWeight(4, 128, 64) * 64 * 64 + bitsPerWeight(4, 128, 172) * 172 * 64) / (64 * 64 + 172 * 64);
    const b = presetBudget(layers, 4, 128);
    expect(b).toBeGreaterThanOrEqual(exact);
    expect(b - exact).toBeLessThan(0.01);
  });
});

describe("analyze job (what the Analyze command runs) on stories260K", () => {
  it("cancelled at once: CancelledError and no report", async () => {
    const abort = new AbortController();
    const job = runAnalyzeJob({ model, data: path.join(dir, "calib.jsonl"), evalData: null, samples: 4, preset: { bits: 4, group: 32 }, calib: { executionProvider: "cpu" }, signal: abort.signal, onProgress: () => abort.abort() });
    await expect(job).rejects.toBeInstanceOf(CancelledError);
    expect(listDir(dir)).toEqual(before);
  });

  it("writes model.quantlens.json with every section it can compute, a bit plan at the preset's size, and feeds the panels, tree and layer detail", async () => {
    const r = await runAnalyzeJob({ model, data: path.join(dir, "calib.jsonl"), evalData: null, samples: 4, preset: { bits: 4, group: 32 }, calib: { executionProvider: "cpu" } });
    expect(r.report).toBe(path.join(dir, "model.quantlens.json"));
    expect(listDir(dir)).toEqual([...before, "model.quantlens.json"].sort());
    expect(r.sections).toEqual(expect.arrayContaining(["activations", "heatmap", "spectra", "proxy", "propagation", "plan"]));
    expect(r.sections).not.toContain("sensitivity"); // no held-out data given

    const report = await loadReport(r.report);
    const plan = report.plan!;
    const budget = Number(/Bit plan at ([\d.]+)/.exec(r.notes.join("\n"))![1]);
    expect(plan.plan.budget).toBe(budget);
    expect(plan.plan.avg_bits).toBeLessThanOrEqual(budget + 1e-9);
    // The layer table shows the plan's choices.
    const byName = new Map(plan.plan.layers.map((l) => [l.name, l]));
    for (const row of report.layers.filter((l) => byName.has(l.name))) expect(row.bits).toBe(byName.get(row.name)!.bits);

    const panels = reportToPanels(report, { canReplan: true });
    expect(panels.heatmap!.rows.length).toBe(report.activations!.length);
    expect(panels.bits!.canReplan).toBe(true);
    // The slider: a smaller budget gives a smaller model and no less predicted error.
    const replan = replanner(report);
    const small = replan(3.2);
    const big = replan(6);
    expect(small.avgBits).toBeLessThanOrEqual(3.2 + 1e-9);
    expect(small.avgBits).toBeLessThan(big.avgBits);
    expect(small.predicted!).toBeGreaterThanOrEqual(big.predicted!);

    // Tokens × channels on request: one calibration sequence, bounded by the calibration-wide absmax.
    const act = report.activations![0];
    const th = await tokenHeatmapForReport(report, act.tensor, 1, { samples: 4, executionProvider: "cpu" });
    const x = new Float32Array(th.values);
    const absmax = decodeF32(act.absmax);
    expect(th).toMatchObject({ tensor: act.tensor, sample: 1, channels: act.channels });
    expect(x.length).toBe(th.tokens * th.channels);
    expect(th.tokens).toBeGreaterThan(10);
    for (let i = 0; i < x.length; i++) {
      const c = i % th.channels;
      expect(Math.abs(x[i])).toBeLessThanOrEqual(absmax[c] * (1 + 1e-5));
    }
    for (const t of report.token_heatmaps ?? []) {
      // The analysis's own token heatmap and the on-request one agree exactly.
      const again = await tokenHeatmapForReport(report, t.tensor, t.sample, { samples: 4, executionProvider: "cpu" });
      expect(Array.from(new Float32Array(again.values))).toEqual(Array.from(decodeF32(t.values)));
    }
    await expect(tokenHeatmapForReport(report, "nope", 0, { samples: 4 })).rejects.toThrow(/not an activation/);

    const tree = await modelTree(model);
    expect(tree.report).toBe(r.report);
    expect(tree.blocks.map((b) => b.label)).toEqual(["block 0", "block 1", "block 2", "block 3", "block 4", "other layers"]);
    expect(tree.blocks[0].layers).toHaveLength(7);
    const q0 = tree.blocks[0].layers[0];
    expect(q0.description).toMatch(/^64 out × 64 in · W\d/);

    const info = await inspectLayer(model, q0.name);
    expect(info.stats!.absmax).toBeGreaterThan(0);
    const md = layerDetailMarkdown(model, info, JSON.parse(fs.readFileSync(r.report, "utf8")), r.report);
    expect(md).toContain("## From the report");
    expect(md).toContain("## Hessian of its input");
    expect(md).toContain("64 × 64 (out × in): 64 inputs → 64 outputs, 4,096 weights");
  }, 120_000);

  it("a later Quantize reuses that analysis: its report = the analysis + the quantization, without the suggested plan", async () => {
    const analysis = await loadReport(path.join(dir, "model.quantlens.json"));
    const messages: string[] = [];
    const r = await runQuantizeJob({
      model,
      out: path.join(dir, "model.rtn-w3g32.onnx"),
      recipe: { config: methodConfig("rtn", 3, 32), format: "fake" },
      data: path.join(dir, "calib.jsonl"),
      samples: 4,
      calib: { executionProvider: "cpu" },
      onProgress: (m) => messages.push(m),
    });
    // Not analysed again.
    expect(messages.some((m) => m.startsWith("analysing"))).toBe(false);
    expect(messages).toContain("writing the report");
    const report = await loadReport(r.report);
    expect(report.notes.join("\n")).toContain(`Analysis sections from ${path.join(dir, "model.quantlens.json")}`);
    expect(report.sections).not.toContain("plan");
    expect(report.sections).toEqual(expect.arrayContaining(["heatmap", "spectra", "proxy", "quantization"]));
    expect(report.spectra).toEqual(analysis.spectra);
    expect(report.created > analysis.created).toBe(true);
    expect(report.quantization).toMatchObject({ method: "rtn", bits: 3, group: 32, format: "fake" });
    for (const l of report.layers.filter((x) => x.role !== "lm_head")) expect([l.bits, l.group]).toEqual([3, 32]);
  }, 60_000);
});
