import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { quantizeSummary, runQuantizeJob } from "../../../extension/src/commands/quantize-job";
import { methodConfig } from "../../../extension/src/commands/settings";
import { reportPathFor } from "../../../extension/src/commands/output-name";
import { CancelledError, UsageError } from "../../../extension/src/engine/errors";
import { loadReport } from "../../../extension/src/views/report-load";
import { reportToCompare, reportToPanels } from "../../../extension/src/views/report-to-panels";
import { inspectToReport } from "../../../extension/src/views/report-load";
import { inspectModel } from "../../../extension/src/engine/inspect";
import { ort } from "../../../extension/src/engine/calib/session";
import { modelTree } from "../../../extension/src/views/model-source";
import { listDir, STORIES, tempDir } from "../../helpers/paths";

// A copy of the demo model folder (model, tokenizer, config, calibration text): the job writes
// next to the model, and the fixture folder must stay clean.
let dir: string;
let cleanup: () => void;
let model: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir("quantlens-job-"));
  for (const f of ["model.onnx", "tokenizer.json", "config.json", "calib.jsonl"]) fs.copyFileSync(path.join(STORIES, f), path.join(dir, f));
  model = path.join(dir, "model.onnx");
});
afterEach(() => cleanup());

const before = ["calib.jsonl", "config.json", "model.onnx", "tokenizer.json"];

describe("quantize job (what the Quantize command runs)", () => {
  it("GPTQ W4 g32 → MatMulNBits beside the model, a report the panels read, and a model onnxruntime runs", async () => {
    const out = path.join(dir, "model.gptq-w4g32.onnx");
    const messages: string[] = [];
    const fractions: number[] = [];
    const r = await runQuantizeJob({
      model,
      out,
      recipe: { config: methodConfig("gptq", 4, 32), format: "matmulnbits" },
      data: path.join(dir, "calib.jsonl"),
      samples: 8,
      calib: { executionProvider: "cpu" },
      onProgress: (m, f) => {
        messages.push(m);
        if (f !== undefined) fractions.push(f);
      },
    });
    expect(r.output).toBe(out);
    expect(r.report).toBe(reportPathFor(out));
    expect(listDir(dir)).toEqual([...before, "model.gptq-w4g32.onnx", "model.gptq-w4g32.quantlens.json"].sort());
    expect(r.layers).toBe(35); // every layer but lm_head
    expect(r.kept).toBe(1);
    expect(r.proxyLoss!).toBeLessThan(r.proxyLossRtn!);
    // Progress only moves forward and ends at 1.
    expect(fractions.every((f, i) => i === 0 || f >= fractions[i - 1])).toBe(true);
    expect(fractions[fractions.length - 1]).toBe(1);
    // Each stage named, with counts: 35 layers quantized, then exported, then the analysis.
    expect(messages.filter((m) => /^quantizing layer \d+\/35 \(GPTQ\): block \d \w+_proj$/.test(m))).toHaveLength(35);
    expect(messages).toContain("exporting MatMulNBits → model.gptq-w4g32.onnx");
    expect(messages.some((m) => /^analysing: sensitivity \d+\/\d+ \(/.test(m))).toBe(true);
    expect(messages.some((m) => /^analysing: incoherence and proxy losses, layer 36\/36/.test(m))).toBe(true);
    expect(messages.filter((m) => /loading the model/.test(m))).toHaveLength(1);

    // The input is untouched; the output runs.
    expect(fs.readFileSync(model).equals(fs.readFileSync(path.join(STORIES, "model.onnx")))).toBe(true);
    const o = ort();
    const session = await o.InferenceSession.create(out);
    const ids = new o.Tensor("int64", BigInt64Array.from([1n, 403n, 407n]), [1, 3]);
    const feeds: Record<string, InstanceType<typeof o.Tensor>> = { [session.inputNames[0]]: ids };
    for (const name of session.inputNames.slice(1)) {
      if (name.includes("attention_mask")) feeds[name] = new o.Tensor("int64", BigInt64Array.from([1n, 1n, 1n]), [1, 3]);
      if (name.includes("position_ids")) feeds[name] = new o.Tensor("int64", BigInt64Array.from([0n, 1n, 2n]), [1, 3]);
    }
    const res = await session.run(feeds);
    const logits = res[session.outputNames[0]].data as Float32Array;
    expect(logits.length).toBe(3 * 512);
    expect(logits.every(Number.isFinite)).toBe(true);
    await session.release();

    // The report beside it: a full quantlens-report (analysis + this quantization) for every panel.
    const report = await loadReport(r.report);
    expect(JSON.parse(fs.readFileSync(r.report, "utf8")).format).toBe("quantlens-report");
    expect(report.sections).toEqual(expect.arrayContaining(["activations", "heatmap", "spectra", "proxy", "sensitivity", "propagation", "quantization"]));
    expect(report.sections).not.toContain("plan");
    expect(report.quantization!.layers).toHaveLength(35);
    expect(report.quantization).toMatchObject({ method: "gptq", bits: 4, group: 32, format: "matmulnbits", output: out });
    expect(report.layers).toHaveLength(36);
    const rows = report.layers.filter((l) => l.bits !== null);
    expect(rows).toHaveLength(35);
    for (const l of rows) expect([l.method, l.bits, l.group]).toEqual(["gptq", 4, 32]);
    // Normalised proxy losses, GPTQ below RTN on every layer.
    for (const l of report.quantization!.layers) {
      expect(l.proxy_loss!).toBeGreaterThan(0);
      expect(l.proxy_loss!).toBeLessThanOrEqual(l.proxy_loss_rtn! * (1 + 1e-6));
    }
    // Sensitivity and propagation at the quantization's own setting, on held-out documents 8..15.
    expect(report.sensitivity!.rows.every((x) => x.method === "gptq" && x.bits === 4 && x.group === 32)).toBe(true);
    expect(report.sensitivity!.eval.sequences).toBe(8);
    expect(new Set(report.sensitivity!.rows.filter((x) => x.by === "role").map((x) => x.target))).toEqual(new Set(["q", "k", "v", "o", "gate", "up", "down"]));
    expect(report.propagation).toMatchObject({ method: "gptq", bits: 4, group: 32 });
    // fp vs quantized on the held-out documents, measured after writing.
    const ev = report.quantization!.eval!;
    expect(ev.tokens).toBeGreaterThan(500);
    expect(ev.top1).toBeGreaterThan(0.7);
    expect(ev.kl_mean).toBeGreaterThan(0);
    expect(ev.kl_mean).toBeLessThan(0.3);
    expect(ev.ppl_quant).toBeGreaterThan(1);
    const panels = reportToPanels(report);
    expect(panels.missing).toEqual({});
    expect(panels.overview.eval).toMatchObject({ tokens: ev.tokens, top1: ev.top1 });
    expect(panels.bits!.plan.layers).toHaveLength(35);
    expect(panels.bits!.plan.layers.every((l) => l.bits === 4 && l.group === 32)).toBe(true);
    // 4 bits + ceil(in/32)·(16 + 4)/in per weight: 2 groups of 32 for 64 inputs, 6 for 172 (the last 12 wide).
    const want = (() => {
      let bits = 0;
      let params = 0;
      for (const l of report.layers.filter((x) => x.role !== "lm_head")) {
        bits += l.in * l.out * (4 + (Math.ceil(l.in / 32) * 20) / l.in);
        params += l.in * l.out;
      }
      return bits / params;
    })();
    expect(want).toBeGreaterThan(4 + 20 / 32); // the ragged 172-input layers cost more than 20/32
    expect(panels.bits!.plan.avgBits).toBeCloseTo(want, 10);
    expect(report.quantization!.avg_bits).toBeCloseTo(want, 10);

    // Compare With…: the fp model (inspected on the spot, no report yet) against the quantized report.
    const fpSide = inspectToReport(await inspectModel(model, { noStats: true }), model);
    const cmp = reportToCompare({ label: "model.onnx", report: fpSide }, { label: "model.gptq-w4g32", report });
    expect(cmp.a.overview.layers.map((l) => l.name)).toEqual(cmp.b.overview.layers.map((l) => l.name));
    expect(cmp.a.overview.layers.every((l) => l.bits === null)).toBe(true);
    expect(cmp.b.overview.layers.filter((l) => l.bits === 4)).toHaveLength(35);

    // The tree under the quantized model: every layer (from its report), 35 of them at W4 g32.
    const tree = await modelTree(out);
    expect(tree.report).toBe(r.report);
    const nodes = tree.blocks.flatMap((b) => b.layers);
    expect(nodes).toHaveLength(36);
    expect(nodes.filter((n) => n.figures?.bits === 4 && n.figures.group === 32)).toHaveLength(35);
    expect(tree.description).toMatch(/^36 layers · 5 blocks · 35 quantized, 1 float · W4/);

    // The fp model has no report of its own: the quantization's analysis gives its outlier and
    // sensitivity figures, never the quantized model's bits or losses.
    const fpTree = await modelTree(model);
    expect(fpTree.report).toBe(r.report);
    const fpNodes = fpTree.blocks.flatMap((b) => b.layers);
    expect(fpNodes).toHaveLength(36);
    expect(fpNodes.every((n) => n.figures?.bits === null && n.figures.proxyLoss === null)).toBe(true);
    const withOutliers = report.layers.filter((l) => l.outlier_count > 0).map((l) => l.name);
    expect(withOutliers.length).toBeGreaterThan(0); // stories260K: lm_head reads a norm output with outlier channels
    expect(fpNodes.filter((n) => n.badge === "outliers").map((n) => n.name)).toEqual(withOutliers);
    expect(fpNodes.filter((n) => n.figures?.sensitivity !== null).length).toBe(35);
  }, 120_000);

  it("cancelled mid-way: CancelledError and no output files", async () => {
    const abort = new AbortController();
    let layers = 0;
    const job = runQuantizeJob({
      model,
      out: path.join(dir, "model.rtn-w4g32.onnx"),
      recipe: { config: methodConfig("rtn", 4, 32), format: "matmulnbits" },
      data: null,
      samples: 8,
      calib: {},
      signal: abort.signal,
      onProgress: (m) => {
        if (m.startsWith("quantizing layer ") && ++layers === 5) abort.abort();
      },
    });
    await expect(job).rejects.toBeInstanceOf(CancelledError);
    expect(layers).toBeGreaterThanOrEqual(5);
    expect(listDir(dir)).toEqual(before);
  });

  it("cancelled while the model is being written: the files it wrote are removed", async () => {
    const abort = new AbortController();
    const job = runQuantizeJob({
      model,
      out: path.join(dir, "model.rtn-w8.onnx"),
      recipe: { config: methodConfig("rtn", 8, 0), format: "qdq" },
      data: null,
      samples: 8,
      calib: {},
      report: "quantization",
      signal: abort.signal,
      onProgress: (m) => {
        if (m.startsWith("exporting")) abort.abort();
      },
    });
    await expect(job).rejects.toBeInstanceOf(CancelledError);
    expect(listDir(dir)).toEqual(before);
  });

  it("cancelled while the report's analysis runs: the model already written is removed too", async () => {
    const abort = new AbortController();
    const job = runQuantizeJob({
      model,
      out: path.join(dir, "model.rtn-w4g32.onnx"),
      recipe: { config: methodConfig("rtn", 4, 32), format: "matmulnbits" },
      data: path.join(dir, "calib.jsonl"),
      samples: 4,
      calib: { executionProvider: "cpu" },
      signal: abort.signal,
      onProgress: (m) => {
        if (m.startsWith("analysing")) abort.abort();
      },
    });
    await expect(job).rejects.toBeInstanceOf(CancelledError);
    expect(listDir(dir)).toEqual(before);
  });

  it("an existing output the user chose to replace is kept when the run is cancelled before writing", async () => {
    const out = path.join(dir, "model.rtn-w4g32.onnx");
    fs.writeFileSync(out, "old");
    fs.utimesSync(out, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const abort = new AbortController();
    abort.abort();
    await expect(
      runQuantizeJob({ model, out, recipe: { config: methodConfig("rtn", 4, 32), format: "matmulnbits" }, data: null, samples: 8, calib: {}, signal: abort.signal }),
    ).rejects.toBeInstanceOf(CancelledError);
    expect(fs.readFileSync(out, "utf8")).toBe("old");
  });

  it("the default preset (g128) on a 64-wide model: the narrow layers take one group per row, only lm_head stays float", async () => {
    const recipe = { config: methodConfig("rtn", 4, 128), format: "matmulnbits" as const };
    const r = await runQuantizeJob({ model, out: path.join(dir, "model.rtn-w4g128.onnx"), recipe, data: null, samples: 8, calib: {}, report: "quantization" });
    expect(r.layers).toBe(35);
    expect(r.kept).toBe(1);
    expect(r.keptLayers.map((k) => k.name)).toEqual(["/lm_head/MatMul"]);
    const text = quantizeSummary(r, recipe);
    expect(text).toMatch(/^QuantLens: wrote model\.rtn-w4g128\.onnx — 35 layers RTN W4 g128 → MatMulNBits in [\d.]+ s/);
    expect(text).not.toContain("wider than");
    expect(text).toContain("; 1 kept in float (see the report)"); // lm_head
    const gptq = { config: methodConfig("gptq", 4, 128), format: "matmulnbits" as const };
    expect(quantizeSummary({ ...r, kept: 0, keptLayers: [], proxyLoss: 1, proxyLossRtn: 4, notes: ["n"] }, gptq)).toMatch(/proxy loss 25% of RTN's; n$/);
    // RTN against itself says nothing.
    expect(quantizeSummary({ ...r, kept: 0, keptLayers: [], proxyLoss: 4, proxyLossRtn: 4, notes: [] }, recipe)).not.toContain("of RTN's");
  });

  it("GPTQ without data is a user error before anything is read", async () => {
    await expect(
      runQuantizeJob({ model, out: path.join(dir, "x.onnx"), recipe: { config: methodConfig("gptq", 4, 32), format: "fake" }, data: null, samples: 8, calib: {} }),
    ).rejects.toThrow(UsageError);
    expect(listDir(dir)).toEqual(before);
  });
});
