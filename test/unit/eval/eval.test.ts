import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import { evaluate } from "../../../extension/src/engine/eval/eval";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";
import { percentile, sequenceMetrics } from "../../../extension/src/engine/eval/metrics";
import { ROOT, STORIES_MODEL, tempDir } from "../../helpers/paths";

const SHARED_EVAL = path.resolve(ROOT, "../shared/models/eval/eval_tokens.json");

describe("next-token metrics", () => {
  it("KL is 0 for identical logits and matches the closed form for two classes", () => {
    const a = Float32Array.from([2, 0, 0, 1]); // two positions, V = 2
    expect(sequenceMetrics(a, a, [0, 1], 2).map((m) => m.kl)).toEqual([0, 0]);
    const b = Float32Array.from([0, 0, 0, 1]);
    const [m] = sequenceMetrics(a, b, [0, 1], 2);
    const p = 1 / (1 + Math.exp(-2)); // softmax([2, 0])[0]
    const want = p * Math.log(p / 0.5) + (1 - p) * Math.log((1 - p) / 0.5);
    expect(m.kl).toBeCloseTo(want, 12);
    expect(m.nllFp).toBeCloseTo(-Math.log(p), 12);
    expect(m.nllQuant).toBeCloseTo(Math.log(2), 12);
    expect(m.top1).toBe(true); // a tie takes the first index: both argmax 0
    const [flipped] = sequenceMetrics(a, Float32Array.from([0, 3, 0, 1]), [0, 1], 2);
    expect(flipped.top1).toBe(false);
  });

  it("percentile interpolates order statistics", () => {
    const v = Float64Array.from({ length: 101 }, (_, i) => 100 - i);
    expect(percentile(v, 99)).toBe(99);
    expect(percentile(v, 50)).toBe(50);
    expect(percentile(Float64Array.from([1, 2]), 50)).toBe(1.5);
  });
});

describe("evaluate on stories260K", () => {
  it("a perturbed model: KL > 0, top-1 < 1, and each model's perplexity equals its own plain run", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const fp = await OnnxModel.load(STORIES_MODEL);
      const proto = structuredClone(fp.proto);
      const head = proto.graph!.initializer.find((t) => t.name === "lm_head.weight")!;
      const w = new Float32Array(head.rawData.slice().buffer);
      for (let i = 0; i < w.length; i += 7) w[i] *= 0.5;
      head.rawData = new Uint8Array(w.buffer);
      const file = path.join(dir, "perturbed.onnx");
      await saveModel(proto, file, { source: fp });
      const q = await OnnxModel.load(file);
      const data = loadModelData(fp, path.join(ROOT, "test/fixtures/stories260K/calib.jsonl"), { samples: 6, forEval: true });
      const r = await evaluate(fp, q, data);
      expect(r.kl_mean).toBeGreaterThan(1e-3);
      expect(r.kl_max).toBeGreaterThanOrEqual(r.kl_p99);
      expect(r.kl_p99).toBeGreaterThanOrEqual(r.kl_mean);
      expect(r.top1).toBeLessThan(1);
      expect(r.top1).toBeGreaterThan(0.5);
      const alone = await evaluate(q, null, data);
      expect(alone.ppl_fp).toBeCloseTo(r.ppl_quant, 10);
      expect(r.tokens).toBe(data.tokens - data.sequences.length);
    } finally {
      cleanup();
    }
  });

  it("per-layer SQNR: layers before a scaled weight see no error; that layer's output is 40 dB (y·1.01)", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const fp = await OnnxModel.load(STORIES_MODEL);
      const layers = indexLinears(fp).layers;
      // The down_proj of block 2: y_q = 1.01·y_fp exactly there, so SQNR = 10·log10(1/0.01²) = 40 dB.
      const target = layers.find((l) => l.block === 2 && l.role === "down")!;
      const proto = structuredClone(fp.proto);
      const t = proto.graph!.initializer.find((x) => x.name === target.weight)!;
      const w = new Float32Array(t.rawData.slice().buffer);
      for (let i = 0; i < w.length; i++) w[i] *= 1.01;
      t.rawData = new Uint8Array(w.buffer);
      const file = path.join(dir, "scaled.onnx");
      await saveModel(proto, file, { source: fp });
      const q = await OnnxModel.load(file);
      const data = loadModelData(fp, path.join(ROOT, "test/fixtures/stories260K/calib.jsonl"), { samples: 3, forEval: true });
      const r = await evaluate(fp, q, data, { perLayer: true });
      const rows = r.layers!;
      expect(rows.length).toBe(layers.filter((l) => l.output !== "logits").length);
      for (const row of rows) {
        const l = layers.find((x) => x.name === row.layer)!;
        if (l.nodeIndex < target.nodeIndex) expect(row.sqnr_db, row.layer).toBeNull();
      }
      expect(rows.find((x) => x.layer === target.name)!.sqnr_db).toBeCloseTo(40, 3);
      // Later layers carry the error: finite SQNR.
      const later = rows.filter((x) => layers.find((l) => l.name === x.layer)!.nodeIndex > target.nodeIndex);
      expect(later.length).toBeGreaterThan(0);
      for (const row of later) expect(Number.isFinite(row.sqnr_db)).toBe(true);
    } finally {
      cleanup();
    }
  });

  it.skipIf(!fs.existsSync(SHARED_EVAL))("reproduces the README's fp32 perplexity 4.470 on eval_tokens.json (needs ../shared)", async () => {
    const fp = await OnnxModel.load(STORIES_MODEL);
    const data = loadModelData(fp, SHARED_EVAL, { forEval: true });
    const r = await evaluate(fp, null, data);
    expect(r.tokens).toBe(295_770);
    expect(r.ppl_fp).toBeCloseTo(4.470, 3);
    expect(r.nll_fp).toBeCloseTo(1.4974, 4);
  }, 300_000);
});
