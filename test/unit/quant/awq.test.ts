import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Xoshiro128 } from "../../fixtures/generator/random";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import type { TokenData } from "../../../extension/src/engine/calib/data";
import { dequantized, quantizeModel, type QuantizedModel } from "../../../extension/src/engine/quant/quantize";
import { readWeightOutIn, toStoredLayout } from "../../../extension/src/engine/quant/layer-weights";
import { calibrateWithProbes } from "../../../extension/src/engine/calib/runner";
import { replaceInitializers } from "../../../extension/src/engine/calib/taps";
import { DEFAULT_CONFIG, type QuantConfig } from "../../../extension/src/engine/quant/config";
import {
  AWQ_DEFAULTS,
  awqClipSearch,
  awqModuleScaleSearch,
  awqScaleSearch,
  awqScales,
  moduleOutput,
  type ScaleSearchResult,
  quadraticError,
  smoothedQuantError,
  smoothedHessian,
  type WeightMatrix,
  type WeightSpec,
  unsmoothed,
} from "../../../extension/src/engine/quant/awq";
import { exportQuantized } from "../../../extension/src/engine/export/export";
import { GraphEditor } from "../../../extension/src/engine/export/graph-edit";
import { applySmoothing, planSmoothingFold } from "../../../extension/src/engine/export/smoothing";
import { create } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import { DataType } from "../../../extension/src/engine/onnx/dtype";
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  TensorProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
} from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { rtnDequantizeSync, rtnQuantizeSync } from "../../../extension/src/engine/kernels/quant";
import { ChannelStats } from "../../../extension/src/engine/calib/channel-stats";
import { loadRefCases, maxAbsDiff, rawActivations, runLogits } from "../../helpers/ort";
import { STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";

// ---- a generated layer set: one input X with activation outlier channels ------------------------

/** Deterministic N(0, 1) numbers (the fixtures' seeded generator). */
function gaussian(seed: number): () => number {
  const r = new Xoshiro128(seed);
  return () => r.normal();
}

const C = 64;
const N = 512;
const OUTLIERS = [3, 17, 40, 41];
const spec: WeightSpec = { bits: 4, symmetric: false, group: 32 };

/** X [N × C] with a few channels 25× larger (the AWQ picture), its H = (2/N) XᵀX and s_x. */
function activations(seed: number) {
  const g = gaussian(seed);
  const x = new Float64Array(N * C);
  for (let t = 0; t < N; t++) for (let j = 0; j < C; j++) x[t * C + j] = g() * (OUTLIERS.includes(j) ? 25 : 1);
  const h = new Float64Array(C * C);
  for (let t = 0; t < N; t++) for (let a = 0; a < C; a++) for (let b = 0; b < C; b++) h[a * C + b] += (2 / N) * x[t * C + a] * x[t * C + b];
  const sx = new Float64Array(C);
  for (let t = 0; t < N; t++) for (let j = 0; j < C; j++) sx[j] += Math.abs(x[t * C + j]) / N;
  return { x, h, sx };
}

function weights(rows: number, seed: number): WeightMatrix {
  const g = gaussian(seed);
  return { w: Float32Array.from({ length: rows * C }, () => g() * 0.1), rows, cols: C };
}

/** ‖X ΔWᵀ‖² computed from the activations themselves (the independent reference). */
function outputError(x: Float64Array, dw: Float32Array, rows: number): number {
  let s = 0;
  for (let t = 0; t < N; t++) {
    for (let r = 0; r < rows; r++) {
      let y = 0;
      for (let j = 0; j < C; j++) y += x[t * C + j] * dw[r * C + j];
      s += y * y;
    }
  }
  return s;
}

function rtnError(m: WeightMatrix): Float32Array {
  const dq = rtnDequantizeSync(rtnQuantizeSync(m.w, m.rows, C, spec), m.rows, C, spec.group);
  return dq.map((v, i) => v - m.w[i]);
}

describe("AWQ scale and clipping search on a generated layer set with activation outliers", () => {
  const { x, h, sx } = activations(7);
  const layers = [weights(48, 1), weights(32, 2), weights(96, 3)];

  it("calibration streams s_x = mean|x| per channel across batches, skipping non-finite values", async () => {
    const stats = new ChannelStats(C);
    await stats.update(Float32Array.from(x.subarray(0, 200 * C)), 200);
    await stats.update(Float32Array.from(x.subarray(200 * C)), N - 200);
    const got = stats.absMean();
    for (let j = 0; j < C; j++) expect(got[j]).toBeCloseTo(sx[j], 4);
    const t = new ChannelStats(2);
    await t.update(Float32Array.from([1, -2, NaN, 4]), 2);
    expect([...t.absSum]).toEqual([1, 6]);
  });

  it("s = s_x^α normalised so that max·min = 1, and α = 0 gives s = 1", () => {
    const s = awqScales(sx, 0.5);
    const max = Math.max(...s);
    const min = Math.min(...s);
    expect(max * min).toBeCloseTo(1, 5);
    const ratio = Math.sqrt(sx[3]) / Math.sqrt(sx[0]);
    expect(s[3] / s[0]).toBeCloseTo(ratio, 4);
    expect([...awqScales(sx, 0)].every((v) => v === 1)).toBe(true);
  });

  it("measures the output error exactly through H: tr(ΔW H ΔWᵀ) = (2/N)‖X ΔWᵀ‖²", async () => {
    const m = layers[0];
    const dw = await smoothedQuantError(m, awqScales(sx, 0.5), spec);
    const viaH = await quadraticError(dw, Float32Array.from(h), m.rows, C);
    expect(viaH).toBeCloseTo((2 / N) * outputError(x, dw, m.rows), 1);
    expect(Math.abs(viaH / ((2 / N) * outputError(x, dw, m.rows)) - 1)).toBeLessThan(1e-4);
  });

  it("the search's α = 0 candidate is RTN's error, and AWQ beats RTN on every layer (scales + clipping)", async () => {
    const found = await awqScaleSearch(layers, sx, h, spec, AWQ_DEFAULTS);
    expect(found.candidates).toHaveLength(20);
    expect(found.candidates[0].alpha).toBe(0);
    expect(found.candidates.map((c) => c.alpha)[19]).toBeCloseTo(0.95, 10);
    let rtnSum = 0;
    const rtnPerLayer: number[] = [];
    for (const m of layers) {
      const e = (2 / N) * outputError(x, rtnError(m), m.rows);
      rtnPerLayer.push(e);
      rtnSum += e;
    }
    expect(found.candidates[0].loss / rtnSum).toBeCloseTo(1, 4);
    expect(found.alpha).toBeGreaterThan(0);
    expect(found.loss).toBe(Math.min(...found.candidates.map((c) => c.loss)));

    // Clipping on the smoothed weights with the smoothed input's Hessian, then the error of
    // Q(clip(W·diag s))·diag(s)⁻¹ against W, from the activations.
    const s = found.scale;
    const hs = smoothedHessian(h, s);
    for (const [i, m] of layers.entries()) {
      const ws = { ...m, w: m.w.map((v, k) => v * s[k % C]) };
      const clipped = await awqClipSearch(ws, hs, spec, AWQ_DEFAULTS);
      expect(clipped.shrink.some((p) => p < 1)).toBe(true);
      const dq = rtnDequantizeSync(rtnQuantizeSync(clipped.w, m.rows, C, spec), m.rows, C, spec.group);
      const dw = dq.map((v, k) => v / s[k % C] - m.w[k]);
      const awq = (2 / N) * outputError(x, dw, m.rows);
      expect(awq, `layer ${i}`).toBeLessThan(rtnPerLayer[i]);
    }
    // With outliers this strong, smoothing is a large win overall.
    expect(found.loss).toBeLessThan(0.7 * rtnSum);
  });

  it("the clipping search never raises a group's own output error e_gᵀH_gg e_g over no clipping", async () => {
    const m = weights(16, 9);
    // One weight outlier per row: clipping it pays off for the other 31 weights of its group.
    for (let r = 0; r < m.rows; r++) m.w[r * C + ((r * 5) % C)] *= 12;
    const hf = Float32Array.from(h);
    const { w, shrink } = await awqClipSearch(m, hf, spec, AWQ_DEFAULTS);
    const plain = rtnError(m);
    const dq = rtnDequantizeSync(rtnQuantizeSync(w, m.rows, C, spec), m.rows, C, spec.group);
    const clipped = dq.map((v, k) => v - m.w[k]);
    const groupErr = (e: Float32Array, r: number, g: number) => {
      let s = 0;
      for (let a = g * 32; a < g * 32 + 32; a++) for (let b = g * 32; b < g * 32 + 32; b++) s += e[r * C + a] * h[a * C + b] * e[r * C + b];
      return s;
    };
    let improved = 0;
    for (let r = 0; r < m.rows; r++) {
      for (let g = 0; g < 2; g++) {
        expect(groupErr(clipped, r, g)).toBeLessThanOrEqual(groupErr(plain, r, g) * (1 + 1e-5) + 1e-9);
        if (shrink[r * 2 + g] < 1) improved++;
      }
    }
    expect(improved).toBeGreaterThan(0);
    // Shrink factors are on AWQ's grid 1 − i/20, i < 10.
    for (const p of shrink) expect(Math.round((1 - p) * 20) / 20).toBeCloseTo(1 - p, 5);
    expect(Math.min(...shrink)).toBeGreaterThanOrEqual(0.55 - 1e-6);
  });
});

// ---- stories260K --------------------------------------------------------------------------------

describe("AWQ on stories260K", () => {
  let dir: string;
  let cleanup: () => void;
  let model: OnnxModel;
  let data: TokenData;
  let awq: QuantizedModel;
  const config: QuantConfig = { ...DEFAULT_CONFIG, method: "awq", bits: 4, group: 32 };
  const ref = loadRefCases().find((c) => c.name === "b2_t64")!;

  beforeAll(async () => {
    ({ dir, cleanup } = tempDir());
    model = await OnnxModel.load(STORIES_MODEL);
    data = loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 16, seqLen: 128 });
    awq = await quantizeModel(model, config, { data });
  }, 60_000);
  afterAll(() => {
    model?.close();
    cleanup?.();
  });

  it("smooths every input, folding into the norms and up_proj where exact, an explicit Mul for o_proj", () => {
    expect(awq.layers).toHaveLength(35);
    expect(awq.smoothing).toHaveLength(20);
    const kinds = awq.smoothing!.map((s) => `${s.fold.kind}${s.fold.kind === "linear" ? `:${s.fold.layer.split("/").at(-2)}` : ""}`);
    expect(kinds.slice(0, 4)).toEqual(["norm", "mul", "norm", "linear:up_proj"]);
    for (const s of awq.smoothing!) {
      expect(s.scale.every((v) => v > 0 && Number.isFinite(v))).toBe(true);
      expect(s.alpha).toBeGreaterThanOrEqual(0);
    }
    // The codes are those of diag(r)·W·diag(s); unsmoothed() maps them back next to W.
    for (const lq of awq.layers) {
      const w = readWeightOutIn(model, lq.layer);
      const dq = dequantized(lq);
      const back = unsmoothed(lq, dq);
      const err = (a: Float32Array) => a.reduce((t, v, i) => t + (v - w[i]) ** 2, 0);
      const energy = w.reduce((t, v) => t + v * v, 0);
      expect(err(back) / energy, lq.layer.name).toBeLessThan(0.05);
      expect(err(back), lq.layer.name).toBeLessThan(err(dq));
    }
    // Σ proxy loss below RTN's at the same setting (measured in the original coordinates).
    const sum = (k: "proxyLoss" | "proxyLossRtn") => awq.layers.reduce((a, l) => a + l[k]!, 0);
    expect(sum("proxyLoss")).toBeLessThan(0.95 * sum("proxyLossRtn"));
  });

  it("module loss (AWQ's code): each α's loss is the attention output's squared error, measured independently on the whole model", async () => {
    const small = loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 4, seqLen: 48 });
    const index = indexLinears(model);
    const qkv = index.layers.filter((l) => l.block === 1 && ["q", "k", "v"].includes(l.role));
    const o = index.layers.find((l) => l.block === 1 && l.role === "o")!;
    const spec: WeightSpec = { bits: 3, symmetric: false, group: 32 };
    let found: ScaleSearchResult | undefined;
    let sx: Float32Array | undefined;
    await calibrateWithProbes(
      model,
      small,
      [qkv[0].input],
      async (results, probe) => {
        if (probe?.block !== 1) return;
        expect(moduleOutput(index, qkv, probe)).toEqual({ role: "o", output: o.output });
        expect(moduleOutput(index, [o], probe)).toBeNull(); // o_proj: its own output, which H gives exactly
        sx = Float32Array.from(results[0].stats.absMean());
        const layers = qkv.map((l) => ({ m: { w: readWeightOutIn(model, l), rows: l.out, cols: l.in }, weight: l.weight, toModel: (w: Float32Array) => toStoredLayout(l, w) }));
        found = await awqModuleScaleSearch(layers, sx, spec, { grid: 5 }, probe, o.output);
      },
      { batchSize: 2 },
    );
    expect(found!.candidates.map((c) => c.alpha)).toEqual([0, 0.2, 0.4, 0.6, 0.8]);
    const losses = found!.candidates.map((c) => c.loss);
    expect(found!.loss).toBe(Math.min(...losses));
    expect(Math.max(...losses)).toBeGreaterThan(Math.min(...losses) * 1.01);
    // Independently: the whole fp model and the model with Q(W·diag s)·diag(s)⁻¹ in q/k/v, one sequence at a time.
    const outputs = async (overrides: Map<string, Float32Array>) => {
      const m = { proto: { ...model.proto, graph: { ...model.graph, initializer: replaceInitializers(model.graph.initializer, overrides) } } } as OnnxModel;
      return (await rawActivations(m, [o.output], small.sequences)).get(o.output)!;
    };
    const fp = await outputs(new Map());
    for (const c of [found!.candidates[0], found!.candidates[3]]) {
      const s = awqScales(sx!, c.alpha);
      const overrides = new Map<string, Float32Array>();
      for (const l of qkv) {
        const w = readWeightOutIn(model, l);
        const e = await smoothedQuantError({ w, rows: l.out, cols: l.in }, s, spec);
        overrides.set(l.weight, toStoredLayout(l, e.map((v, i) => v + w[i])));
      }
      const q = await outputs(overrides);
      let loss = 0;
      for (let k = 0; k < fp.length; k++) for (let i = 0; i < fp[k].length; i++) loss += (q[k][i] - fp[k][i]) ** 2;
      expect(Math.abs(loss - c.loss) / loss, `α = ${c.alpha}`).toBeLessThan(1e-5);
    }
  });

  it("--awq-loss module quantizes every layer, measuring q/k/v on the attention output and gate/up on the MLP output", async () => {
    const small = loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 4, seqLen: 32 });
    const log: string[] = [];
    const m = await quantizeModel(model, { ...config, awqLoss: "module" }, { data: small, onProgress: (msg) => log.push(msg) });
    expect(m.layers).toHaveLength(35);
    expect(m.smoothing).toHaveLength(20);
    expect(log.filter((l) => l.includes("(loss on o's output)"))).toHaveLength(5);
    expect(log.filter((l) => l.includes("(loss on down's output)"))).toHaveLength(5);
    const sum = (k: "proxyLoss" | "proxyLossRtn") => m.layers.reduce((a, l) => a + l[k]!, 0);
    expect(sum("proxyLoss")).toBeLessThan(sum("proxyLossRtn"));
  });

  it("α = 0 without clipping reproduces RTN's codes exactly", async () => {
    const small = loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 4, seqLen: 32 });
    const a0 = await quantizeModel(model, { ...config, alpha: 0, awqClip: false }, { data: small });
    const rtn = await quantizeModel(model, { ...config, method: "rtn" });
    expect(a0.smoothing).toEqual([]);
    for (const [i, l] of a0.layers.entries()) {
      expect(Buffer.from(l.codes).equals(Buffer.from(rtn.layers[i].codes)), l.layer.name).toBe(true);
      expect(l.scales).toEqual(rtn.layers[i].scales);
      expect(l.zeros).toEqual(rtn.layers[i].zeros);
      expect(l.proxyLoss).toBeCloseTo(l.proxyLossRtn!, 8);
    }
  });

  it("folding is exact: the fp model with only the smoothing applied gives the original logits", async () => {
    const g = new GraphEditor(model.graph);
    applySmoothing(g, model, indexLinears(model), awq.smoothing!, new Set());
    g.prune();
    const out = path.join(dir, "smoothed-fp.onnx");
    await saveModel({ ...model.proto, graph: g.build() }, out, { source: model });
    const smoothed = await OnnxModel.load(out);
    const ops = smoothed.graph.node.filter((n) => n.opType === "Mul").length;
    expect(ops).toBe(model.graph.node.filter((n) => n.opType === "Mul").length + 5); // one Mul per o_proj
    smoothed.close();
    const logits = await runLogits(out, ref.ids, ref.shape);
    expect(maxAbsDiff(logits, ref.logits)).toBeLessThanOrEqual(1e-4);
    // …and the weights really changed.
    expect(fs.statSync(out).size).toBeGreaterThan(0);
  });

  it("matmulnbits W4 g32 matches the fake export (≤ 1e-3) and the report records the smoothing", async () => {
    const fake = path.join(dir, "awq-fake.onnx");
    const nbits = path.join(dir, "awq-nbits.onnx");
    await exportQuantized(model, awq, fake, "fake");
    const r = await exportQuantized(model, awq, nbits, "matmulnbits");
    expect(r.layers.every((l) => l.form === "matmulnbits")).toBe(true);
    const a = await runLogits(fake, ref.ids, ref.shape);
    const b = await runLogits(nbits, ref.ids, ref.shape);
    expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-3);
    // Quantized: different from fp, but not broken.
    const d = maxAbsDiff(a, ref.logits);
    expect(d).toBeGreaterThan(1e-2);
    expect(d).toBeLessThan(20);
    const report = JSON.parse(fs.readFileSync(r.report, "utf8"));
    expect(report.smoothing).toHaveLength(20);
    expect(report.smoothing[0]).toMatchObject({ fold: "norm", layers: awq.smoothing![0].layers });
    expect(report.layers[0].method).toBe("awq");
    // The source model is untouched and the fold wrote copies of the norm weights.
    const exported = await OnnxModel.load(nbits);
    expect(exported.graph.initializer.some((t) => t.name === "model.layers.0.input_layernorm.weight_smoothed")).toBe(true);
    exported.close();
  });
});

// ---- fold planning on hand-built graphs -------------------------------------------------------

describe("smoothing folds on small graphs (LayerNormalization, scalar Mul, shared readers)", () => {
  const D = 16;
  let dir: string;
  let cleanup: () => void;
  beforeAll(() => ({ dir, cleanup } = tempDir()));
  afterAll(() => cleanup());

  const g = gaussian(5);
  const rand = (n: number, scale = 1) => Float32Array.from({ length: n }, () => g() * scale);
  const tensor = (name: string, dims: number[], v: Float32Array) =>
    create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: DataType.FLOAT, rawData: new Uint8Array(v.buffer.slice(0)) });
  const node = (opType: string, input: string[], output: string, attribute: AttributeProto[] = []) =>
    create(NodeProtoSchema, { name: `${opType}_${output}`, opType, input, output: [output], attribute });
  const io = (name: string, last = D) =>
    create(ValueInfoProtoSchema, {
      name,
      type: { value: { case: "tensorType", value: { elemType: DataType.FLOAT, shape: { dim: [2n, 3n, BigInt(last)].map((v) => ({ value: { case: "dimValue" as const, value: v } })) } } } },
    });

  /** x → front → n → MatMul(W1), MatMul(W2) [+ Add(n, x) when `residual`]. */
  async function build(name: string, front: "layernorm" | "scalar", residual: boolean): Promise<OnnxModel> {
    const inits = [tensor("w1", [D, 8], rand(D * 8, 0.3)), tensor("w2", [D, 12], rand(D * 12, 0.3))];
    const nodes = [];
    if (front === "layernorm") {
      inits.push(tensor("gamma", [D], rand(D).map((v) => 1 + 0.3 * v)), tensor("beta", [D], rand(D, 0.1)));
      nodes.push(node("LayerNormalization", ["x", "gamma", "beta"], "n", [create(AttributeProtoSchema, { name: "axis", type: AttributeProto_AttributeType.INT, i: -1n })]));
    } else {
      inits.push(tensor("k", [], Float32Array.of(1.7)));
      nodes.push(node("Mul", ["x", "k"], "n"));
    }
    nodes.push(node("MatMul", ["n", "w1"], "y1"), node("MatMul", ["n", "w2"], "y2"));
    const outputs = [io("y1", 8), io("y2", 12)];
    if (residual) {
      nodes.push(node("Add", ["n", "x"], "r"));
      outputs.push(io("r"));
    }
    const proto = create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [{ domain: "", version: 17n }],
      graph: { name, node: nodes, initializer: inits, input: [io("x")], output: outputs },
    });
    const file = path.join(dir, `${name}.onnx`);
    await saveModel(proto, file);
    return OnnxModel.load(file);
  }

  async function outputsOf(file: string, x: Float32Array): Promise<Float32Array[]> {
    const session = await ort.InferenceSession.create(file);
    try {
      const out = await session.run({ x: new ort.Tensor("float32", x, [2, 3, D]) });
      return session.outputNames.map((n) => out[n].data as Float32Array);
    } finally {
      await session.release();
    }
  }

  it.each([
    ["layernorm", false, "norm"],
    ["scalar", false, "norm"],
    ["layernorm", true, "mul"],
  ] as const)("%s (residual reader: %s) → %s fold, exact in fp", async (front, residual, kind) => {
    const model = await build(`${front}-${residual}`, front, residual);
    try {
      const index = indexLinears(model);
      expect(index.layers).toHaveLength(2);
      const fold = planSmoothingFold(model, index, "n", index.layers, new Set());
      expect(fold.kind).toBe(kind);
      if (fold.kind === "norm") expect(fold.initializers).toEqual(front === "layernorm" ? ["gamma", "beta"] : ["k"]);
      const s = rand(D).map((v) => Math.exp(v));
      const ge = new GraphEditor(model.graph);
      applySmoothing(ge, model, index, [{ tensor: "n", scale: s, layers: index.layers.map((l) => l.name), fold }], new Set());
      ge.prune();
      const out = path.join(dir, `${front}-${residual}-smoothed.onnx`);
      await saveModel({ ...model.proto, graph: ge.build() }, out, { source: model });
      const x = rand(2 * 3 * D);
      const a = await outputsOf(model.file, x);
      const b = await outputsOf(out, x);
      for (let i = 0; i < a.length; i++) expect(maxAbsDiff(a[i], b[i])).toBeLessThanOrEqual(1e-5);
      // The smoothing did something: the weights were rescaled.
      const smoothed = await OnnxModel.load(out);
      expect(maxAbsDiff(smoothed.readFloat32("w1"), model.readFloat32("w1"))).toBeGreaterThan(1e-3);
      smoothed.close();
    } finally {
      model.close();
    }
  });
});
