import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import type { TokenData } from "../../../extension/src/engine/calib/data";
import { quantizeModel, type QuantizedModel } from "../../../extension/src/engine/quant/quantize";
import { DEFAULT_CONFIG, type QuantConfig } from "../../../extension/src/engine/quant/config";
import { smoothQuantScales } from "../../../extension/src/engine/quant/smoothquant";
import { exportQuantized, type ExportFormat } from "../../../extension/src/engine/export/export";
import { GraphEditor } from "../../../extension/src/engine/export/graph-edit";
import { applySmoothing } from "../../../extension/src/engine/export/smoothing";
import { actQuantOf } from "../../../extension/src/engine/export/act-qdq";
import { evaluate } from "../../../extension/src/engine/eval/eval";
import { buildLlama, saveFixture } from "../../fixtures/generator";
import { loadRefCases, maxAbsDiff, runLogits } from "../../helpers/ort";
import { buildCli, quantlens } from "../../helpers/cli";
import { STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";

/** W8A8: 8-bit symmetric per-output-channel weights, static int8 activations. */
const W8A8: QuantConfig = { ...DEFAULT_CONFIG, method: "rtn", bits: 8, group: 0, symmetric: true, actBits: 8 };
const SQ: QuantConfig = { ...W8A8, method: "smoothquant", actBits: undefined };

let dir: string;
let cleanup: () => void;
beforeAll(() => {
  ({ dir, cleanup } = tempDir());
});
afterAll(() => cleanup());

async function exported(model: OnnxModel, q: QuantizedModel, name: string, format: ExportFormat = "fake"): Promise<string> {
  const out = path.join(dir, `${name}.onnx`);
  await exportQuantized(model, q, out, format);
  return out;
}

/** The fp model with only the smoothing applied (consumer weights × s, 1/s folded). */
async function smoothedFp(model: OnnxModel, q: QuantizedModel, name: string): Promise<string> {
  const g = new GraphEditor(model.graph);
  applySmoothing(g, model, indexLinears(model), q.smoothing!, new Set());
  g.prune();
  const out = path.join(dir, `${name}.onnx`);
  await saveModel({ ...model.proto, graph: g.build() }, out, { source: model });
  return out;
}

async function klOf(fp: OnnxModel, file: string, data: TokenData): Promise<number> {
  const m = await OnnxModel.load(file);
  try {
    return (await evaluate(fp, m, data, { threads: 1 })).kl_mean;
  } finally {
    m.close();
  }
}

describe("SmoothQuant scales and activation quantizers", () => {
  it("s_j = max|X_j|^α / max_layers max|W_{:,j}|^(1−α), clamped at 1e-5", () => {
    const act = [4, 1, 0.25, 0];
    const a = { w: Float32Array.from([1, -2, 0.5, 0, 0.5, 1, -1, 0]), rows: 2, cols: 4 };
    const b = { w: Float32Array.from([-3, 0.5, 0.25, 0]), rows: 1, cols: 4 };
    const s = smoothQuantScales(act, [a, b], 0.5);
    expect(s[0]).toBeCloseTo(Math.sqrt(4) / Math.sqrt(3), 6);
    expect(s[1]).toBeCloseTo(1 / Math.sqrt(2), 6);
    expect(s[2]).toBeCloseTo(Math.sqrt(0.25) / 1, 6);
    expect(s[3]).toBeCloseTo(1e-5, 10); // 0 / 1e-5^0.5 → the clamp
    const s8 = smoothQuantScales(act, [a, b], 0.8);
    expect(s8[0]).toBeCloseTo(4 ** 0.8 / 3 ** 0.2, 5);
  });

  it("the per-tensor int8 scale is max_j absmax_j / s_j over 127", () => {
    const q = actQuantOf("x", ["l"], [2, 10, 1], [1, 5, 0.25]);
    expect(q.absmax).toBe(4);
    expect(q.scale).toBeCloseTo(4 / 127, 7);
    expect(actQuantOf("x", ["l"], [0, 0]).scale).toBeCloseTo(1 / 127, 7);
  });
});

describe("SmoothQuant on a generated model with injected activation outliers", () => {
  let model: OnnxModel;
  let calib: TokenData;
  let held: TokenData;
  const ids = (seed: number, n: number, len: number) => {
    let s = seed;
    return Array.from({ length: n }, () =>
      Array.from({ length: len }, () => {
        s = (s * 1103515245 + 12345) % 2147483648;
        return s % 256;
      }),
    );
  };
  beforeAll(async () => {
    const proto = buildLlama({
      hidden: 64, ffn: 128, layers: 2, heads: 8, kvHeads: 4, vocab: 256, seed: 3,
      activationOutliers: [
        { layer: 0, norm: "input", channel: 5, factor: 60 },
        { layer: 0, norm: "post_attention", channel: 33, factor: 60 },
        { layer: 1, norm: "input", channel: 12, factor: 60 },
        { layer: 1, norm: "post_attention", channel: 50, factor: 60 },
      ],
    });
    const file = path.join(dir, "outliers.onnx");
    await saveFixture(proto, file);
    model = await OnnxModel.load(file);
    const mk = (sequences: number[][], name: string): TokenData => ({ file: name, sequences, notes: [], tokens: sequences.reduce((a, s) => a + s.length, 0) });
    calib = mk(ids(1, 8, 48), "calib");
    held = mk(ids(2, 8, 48), "held-out");
  });
  afterAll(() => model?.close());

  it("smoothing folds exactly into the RMSNorm weights, and W8A8 with SmoothQuant has lower KL than plain W8A8", async () => {
    const sq = await quantizeModel(model, SQ, { data: calib });
    const plain = await quantizeModel(model, W8A8, { data: calib });
    expect(sq.smoothing!.map((s) => s.fold.kind)).toEqual(["norm", "norm", "linear", "norm", "norm", "linear"]);
    expect(sq.actQuant).toHaveLength(8);
    // The outlier channel is the one divided down the most.
    expect(sq.smoothing![0].scale[5]).toBe(Math.max(...sq.smoothing![0].scale));
    expect(sq.actQuant![0].absmax).toBeLessThan(plain.actQuant![0].absmax / 4);

    const ref = ids(9, 1, 24)[0];
    const fpLogits = await runLogits(model.file, ref, [1, ref.length]);
    const smoothLogits = await runLogits(await smoothedFp(model, sq, "outliers-smoothed"), ref, [1, ref.length]);
    expect(maxAbsDiff(fpLogits, smoothLogits)).toBeLessThanOrEqual(1e-4);

    const klSq = await klOf(model, await exported(model, sq, "outliers-sq"), held);
    const klPlain = await klOf(model, await exported(model, plain, "outliers-w8a8"), held);
    expect(klSq).toBeLessThan(0.5 * klPlain);
  });
});

describe("SmoothQuant on stories260K", () => {
  let model: OnnxModel;
  let calib: TokenData;
  let held: TokenData;
  let sq: QuantizedModel;
  let plain: QuantizedModel;
  const ref = loadRefCases().find((c) => c.name === "b2_t64")!;

  beforeAll(async () => {
    model = await OnnxModel.load(STORIES_MODEL);
    const all = loadModelData(model, path.join(STORIES, "calib.jsonl"), { seqLen: 256 });
    // Calibrate on the first 32 documents; evaluate on 16 of the rest (held out).
    calib = { ...all, sequences: all.sequences.slice(0, 32) };
    held = { ...all, sequences: all.sequences.slice(100, 116) };
    sq = await quantizeModel(model, SQ, { data: calib });
    plain = await quantizeModel(model, W8A8, { data: calib });
  }, 60_000);
  afterAll(() => model?.close());

  it("smooths the norm-fed inputs (q/k/v, gate/up) and down_proj through up_proj's rows, folded exactly", async () => {
    expect(sq.smoothing).toHaveLength(15);
    expect(sq.smoothing!.slice(0, 3).map((s) => `${s.fold.kind}${s.fold.kind === "linear" ? `:${s.fold.layer.split("/").at(-2)}` : ""}`)).toEqual(["norm", "norm", "linear:up_proj"]);
    expect(sq.smoothing!.every((s) => s.alpha === 0.5)).toBe(true);
    expect(sq.actQuant).toHaveLength(20);
    expect(sq.layers.every((l) => l.bits === 8 && l.group === 0 && l.symmetric && l.method === "smoothquant")).toBe(true);
    const logits = await runLogits(await smoothedFp(model, sq, "stories-smoothed"), ref.ids, ref.shape);
    expect(maxAbsDiff(logits, ref.logits)).toBeLessThanOrEqual(1e-4);
  });

  it("W8A8 with SmoothQuant has lower mean KL to fp than plain W8A8 on held-out text", async () => {
    const klSq = await klOf(model, await exported(model, sq, "stories-sq"), held);
    const klPlain = await klOf(model, await exported(model, plain, "stories-w8a8"), held);
    expect(klSq).toBeGreaterThan(0);
    // down_proj's input dominates W8A8's error on this model; smoothing it halves the KL.
    expect(klSq).toBeLessThan(0.75 * klPlain);
  });

  it("the reference scope (norm-fed inputs only) smooths 10 inputs and still folds exactly", async () => {
    const small = { ...calib, sequences: calib.sequences.slice(0, 8) };
    const normOnly = await quantizeModel(model, { ...SQ, smoothScope: "norm", alpha: 0.8 }, { data: small });
    expect(normOnly.smoothing).toHaveLength(10);
    expect(normOnly.smoothing!.every((s) => s.fold.kind === "norm" && s.alpha === 0.8)).toBe(true);
    const logits = await runLogits(await smoothedFp(model, normOnly, "stories-smoothed-norm"), ref.ids, ref.shape);
    expect(maxAbsDiff(logits, ref.logits)).toBeLessThanOrEqual(1e-4);
  });

  it("qdq export (int8 weights, activation Q/DQ) matches the fake export ≤ 1e-3, for SmoothQuant and plain W8A8", async () => {
    for (const [name, q] of [["sq", sq], ["w8a8", plain]] as const) {
      const fake = await exported(model, q, `${name}-fake2`, "fake");
      const qdq = await exported(model, q, `${name}-qdq`, "qdq");
      const a = await runLogits(fake, ref.ids, ref.shape);
      const b = await runLogits(qdq, ref.ids, ref.shape);
      expect(maxAbsDiff(a, b), name).toBeLessThanOrEqual(1e-3);
      expect(maxAbsDiff(a, ref.logits), name).toBeGreaterThan(1e-3);
      const m = await OnnxModel.load(qdq);
      const ops = m.graph.node.map((n) => n.opType);
      m.close();
      // One activation quantizer per distinct layer input (q/k/v and gate/up share theirs).
      expect(ops.filter((o) => o === "QuantizeLinear")).toHaveLength(20);
      expect(ops.filter((o) => o === "DequantizeLinear")).toHaveLength(20 + 35);
      const report = JSON.parse(fs.readFileSync(qdq.replace(/\.onnx$/, ".quantlens.json"), "utf8"));
      expect(report.act_quant).toHaveLength(20);
      expect(report.act_quant[0].scale).toBeCloseTo(report.act_quant[0].absmax / 127, 6);
    }
  });
});

describe("quantlens quantize --method smoothquant / --act-bits / --alpha", () => {
  beforeAll(() => buildCli());

  it("smoothquant defaults to W8 per-channel symmetric weights with int8 activations", () => {
    const out = path.join(dir, "cli-sq.onnx");
    const r = quantlens("quantize", STORIES_MODEL, "--method", "smoothquant", "--alpha", "0.6", "--data", path.join(STORIES, "calib.jsonl"), "--samples", "8", "--seq-len", "64", "--format", "qdq", "-o", out, "--json");
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.layers.every((l: { bits: number; group: number; method: string; form: string }) => l.bits === 8 && l.group === 0 && l.method === "smoothquant" && l.form === "qdq")).toBe(true);
    expect(j.smoothing).toHaveLength(15);
    expect(j.act_quant).toHaveLength(20);
    const report = JSON.parse(fs.readFileSync(j.report, "utf8"));
    expect(report.config).toMatchObject({ symmetric: true, alpha: 0.6 });
    expect(report.smoothing[0]).toMatchObject({ fold: "norm", alpha: 0.6 });
    expect(report.act_quant).toHaveLength(20);
  });

  it("rejects a bad --alpha or --act-bits (exit 1, naming the flag), and --act-bits without data", () => {
    const out = path.join(dir, "cli-bad.onnx");
    const data = ["--data", path.join(STORIES, "calib.jsonl"), "--samples", "2"];
    const a = quantlens("quantize", STORIES_MODEL, "--method", "smoothquant", "--alpha", "1.5", ...data, "-o", out);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/--alpha must be a number in \[0, 1\], not '1\.5'/);
    const b = quantlens("quantize", STORIES_MODEL, "--method", "rtn", "--act-bits", "4", ...data, "-o", out);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/--act-bits must be 8/);
    const c = quantlens("quantize", STORIES_MODEL, "--method", "rtn", "--bits", "8", "--act-bits", "8", "-o", out);
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/--act-bits 8 needs calibration data/);
    expect(fs.existsSync(out)).toBe(false);
  });
});
