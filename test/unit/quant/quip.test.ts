import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import { calibrate } from "../../../extension/src/engine/calib/runner";
import type { TokenData } from "../../../extension/src/engine/calib/data";
import { quantizeModel, dequantized } from "../../../extension/src/engine/quant/quantize";
import { DEFAULT_CONFIG, checkConfig, type QuantConfig } from "../../../extension/src/engine/quant/config";
import { readWeightOutIn } from "../../../extension/src/engine/quant/layer-weights";
import { proxyLoss } from "../../../extension/src/engine/quant/proxy";
import {
  chooseQuipRotations,
  dequantizeGrid,
  hessianIncoherence,
  ldlqFixedGrid,
  quadForm,
  quipQuantizeLayer,
  quipRescale,
  quipRotationSpecs,
  quipRotations,
  quipSeed,
  quipSettings,
  rotateHessian,
  rotateWeight,
  unrotateWeight,
  weightIncoherence,
  type QuipLayerId,
  type QuipSettings,
} from "../../../extension/src/engine/quant/quip";
import { gptqQuantize } from "../../../extension/src/engine/kernels/gptq";
import { symmetricEigen } from "../../../extension/src/engine/kernels/eigen";
import { randomOrthogonalTransform } from "../../../extension/src/engine/kernels/transforms";
import { exportQuantized } from "../../../extension/src/engine/export/export";
import { transformSubgraph } from "../../../extension/src/engine/export/rotation";
import { GraphProtoSchema, ModelProtoSchema, TensorProto_DataType as DT } from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { tensorValue } from "../../fixtures/generator";
import { loadRefCases, maxAbsDiff, runLogits } from "../../helpers/ort";
import { Xoshiro128 } from "../../fixtures/generator/random";
import { STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";

/** Deterministic Gaussian stream (the fixtures' seeded generator). */
function rng(seed: number) {
  const r = new Xoshiro128(seed);
  return () => r.normal();
}

/** A layer with heavy weight outliers and outlier input channels (what incoherence processing is for). */
function outlierLayer(rows: number, cols: number, seed: number) {
  const g = rng(seed);
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) w[i] = 0.02 * g();
  for (let k = 0; k < Math.floor(w.length / 200); k++) {
    const i = Math.floor(((g() * 1e6) % 1 + 1) % 1 * w.length);
    w[i] = (g() > 0 ? 1 : -1) * (0.5 + Math.abs(g()) * 0.5); // ~25–50σ
  }
  const N = 4 * cols;
  const x = new Float64Array(N * cols);
  for (let i = 0; i < x.length; i++) x[i] = g();
  for (const c of [3, 17, cols - 5]) for (let t = 0; t < N; t++) x[t * cols + c] *= 30;
  const h = new Float64Array(cols * cols);
  for (let t = 0; t < N; t++) {
    for (let i = 0; i < cols; i++) {
      const xi = x[t * cols + i];
      for (let j = 0; j < cols; j++) h[i * cols + j] += (2 / N) * xi * x[t * cols + j];
    }
  }
  return { w, h };
}

const settings = (over: Partial<QuipSettings> = {}): QuipSettings => ({ ...quipSettings({ ...DEFAULT_CONFIG, method: "quip" }), ...over });
const id = (rows: number, cols: number, name = "/l/MatMul", input = "x"): QuipLayerId => ({ name, input, in: cols, out: rows });

function orthoError(n: number, seed: number, kind: "kron" | "hadamard" | "auto", probe: number[]): number {
  // Rows e_i through T: the Gram matrix of T's columns i (probed) must be the identity.
  const T = randomOrthogonalTransform({ n, seed, kind });
  const x = new Float32Array(probe.length * n);
  probe.forEach((i, r) => (x[r * n + i] = 1));
  T.applySync(x, probe.length);
  let err = 0;
  for (let a = 0; a < probe.length; a++) {
    for (let b = 0; b < probe.length; b++) {
      let d = 0;
      for (let k = 0; k < n; k++) d += x[a * n + k] * x[b * n + k];
      err = Math.max(err, Math.abs(d - (a === b ? 1 : 0)));
    }
  }
  return err;
}

describe("QuIP rotations", () => {
  it.each([
    [64, "kron"],
    [172, "kron"],
    [172, "auto"],
    [4096, "kron"],
    [4096, "hadamard"],
    [11008, "auto"],
  ] as const)("n = %i (%s) is orthogonal: ‖QᵀQ − I‖ small", (n, kind) => {
    const probe = n <= 172 ? Array.from({ length: n }, (_, i) => i) : [0, 1, 63, 64, 1000, n - 1];
    expect(orthoError(n, quipSeed(7, `V:${n}`), kind, probe)).toBeLessThan(1e-5);
  });

  it("follows the documented seed convention: V per input tensor, U per layer, reproducible", () => {
    const q = { name: "/model/layers.0/self_attn/q_proj/MatMul", input: "h0", in: 64, out: 64 };
    const k = { ...q, name: "/model/layers.0/self_attn/k_proj/MatMul" };
    const a = quipRotationSpecs(q, 5);
    const b = quipRotationSpecs(k, 5);
    expect(a.v).toEqual(b.v); // q/k/v share V
    expect(a.u.seed).not.toBe(b.u.seed);
    expect(quipRotationSpecs(q, 5)).toEqual(a);
    expect(quipRotationSpecs(q, 6).v.seed).not.toBe(a.v.seed);
    expect(a.v.kind).toBe("kron");
    expect(quipRotationSpecs(q, 5, "hadamard").v.kind).toBe("hadamard");
    expect(quipRotationSpecs({ ...q, in: 172 }, 5, "hadamard").v.kind).toBe("auto"); // 172 is not 2^k
    // The transforms quipRotations returns are the ones the quantizer records.
    const t = quipRotations(q, 5);
    expect(t.v.seed).toBe(a.v.seed);
    expect(() => quipSeed(-1, "x")).toThrow(/seed/);
  });

  it("undo(process(W)) = W without quantization, with rescaling", () => {
    const { w, h } = outlierLayer(96, 172, 1);
    const { u, v } = quipRotations(id(96, 172), 3);
    const d = quipRescale(w, 96, 172, h);
    const back = unrotateWeight(rotateWeight(w, 96, 172, u, v, d), 96, 172, u, v, d);
    let max = 0;
    for (let i = 0; i < w.length; i++) max = Math.max(max, Math.abs(back[i] - w[i]));
    expect(max).toBeLessThanOrEqual(1e-5);
    // and processing changed it
    expect(maxAbsDiff(rotateWeight(w, 96, 172, u, v, d), w)).toBeGreaterThan(1e-2);
  });

  it("the paper's rescaling D̃ minimises tr(D⁻¹HD⁻¹)·‖WD‖²_F", () => {
    const { w, h } = outlierLayer(32, 64, 2);
    const n = 64;
    const objective = (d: Float32Array) => {
      let tr = 0;
      let fro = 0;
      for (let j = 0; j < n; j++) tr += h[j * n + j] / (d[j] * d[j]);
      for (let r = 0; r < 32; r++) for (let j = 0; j < n; j++) fro += (w[r * n + j] * d[j]) ** 2;
      return tr * fro;
    };
    const d = quipRescale(w, 32, n, h);
    const best = objective(d);
    const g = rng(9);
    for (let t = 0; t < 20; t++) {
      const p = Float32Array.from(d, (x) => x * Math.exp(0.2 * g()));
      expect(objective(p)).toBeGreaterThanOrEqual(best * (1 - 1e-6));
    }
    expect(objective(new Float32Array(n).fill(1))).toBeGreaterThan(best);
  });

  it("incoherence μ_W and μ_H fall after processing on a layer with heavy outliers", async () => {
    const { w, h } = outlierLayer(128, 256, 3);
    const { u, v } = quipRotations(id(128, 256), 0);
    const muW = weightIncoherence(w, 128, 256);
    const muH = await hessianIncoherence(h, 256);
    const muWr = weightIncoherence(rotateWeight(w, 128, 256, u, v, null), 128, 256);
    const muHr = await hessianIncoherence(rotateHessian(h, 256, v, null), 256);
    expect(muWr).toBeLessThan(muW / 3);
    expect(muHr).toBeLessThan(muH / 2);
    // Independent check of μ_W's definition on a known matrix: one spike in zeros → √(mn).
    const spike = new Float32Array(12);
    spike[5] = 3;
    expect(weightIncoherence(spike, 3, 4)).toBeCloseTo(Math.sqrt(12), 6);
  });
});

describe("QuIP quantization of one layer", () => {
  it("fixed-grid LDLQ reproduces the GPTQ kernel on the kernel's own grid", async () => {
    const { w, h } = outlierLayer(48, 96, 4);
    const hd = Float32Array.from(h);
    let mean = 0;
    for (let j = 0; j < 96; j++) mean += hd[j * 96 + j] / 96;
    for (let j = 0; j < 96; j++) hd[j * 96 + j] += 0.01 * mean;
    const k = await gptqQuantize({ w, rows: 48, cols: 96, h: hd, bits: 3, group: 0, symmetric: false, percdamp: 0, blockSize: 32 });
    const mine = await ldlqFixedGrid(w, 48, 96, hd, { bits: 3, group: 0, scales: k.scales, zeros: k.zeros }, { blockSize: 16 });
    let same = 0;
    for (let i = 0; i < k.codes.length; i++) same += k.codes[i] === mine.codes[i] ? 1 : 0;
    expect(same / k.codes.length).toBeGreaterThan(0.995);
  });

  it("reports the proxy loss in the original space, equal to the processed space's (rotation invariance)", async () => {
    const { w, h } = outlierLayer(64, 172, 5);
    const layer = id(64, 172);
    const r = await quipQuantizeLayer(w, layer, h, settings({ bits: 3 }));
    const { u, v } = quipRotations(layer, 0);
    const wp = rotateWeight(w, 64, 172, u, v, r.rotation.rescale);
    const hp = rotateHessian(h, 172, v, r.rotation.rescale);
    const grid = { bits: 3, group: r.group, scales: r.scales, zeros: r.zeros };
    const q = dequantizeGrid(r.codes, 64, 172, grid);
    const e = new Float32Array(wp.length);
    for (let i = 0; i < e.length; i++) e[i] = wp[i] - q[i];
    const rotated = await quadForm(e, hp, 64, 172);
    const back = unrotateWeight(q, 64, 172, u, v, r.rotation.rescale);
    const original = (await proxyLoss(w, back, h, 64, 172)).loss;
    expect(r.proxyLoss).toBeCloseTo(original, 6);
    expect(Math.abs(rotated - original) / original).toBeLessThan(1e-3);
    expect(r.proxyLoss).toBeLessThan(r.proxyLossRtn); // LDLQ beats nearest rounding on the same grid
  });

  it.each([2, 3] as const)("beats LDLQ without incoherence at %i bits on heavy-outlier layers (same scale granularity)", async (bits) => {
    for (const seed of [11]) {
      const { w, h } = outlierLayer(128, 256, seed);
      const quip = await quipQuantizeLayer(w, id(128, 256), h, settings({ bits, quipScale: "group", group: 0 }));
      const plain = await gptqQuantize({ w, rows: 128, cols: 256, h: Float32Array.from(h), bits, group: 0, symmetric: false, percdamp: 0.01 });
      console.log(`W${bits} heavy-outlier layer: QuIP per-row ${quip.proxyLoss.toPrecision(4)} vs LDLQ per-row ${plain.proxyLoss.toPrecision(4)}`);
      expect(quip.proxyLoss).toBeLessThan(plain.proxyLoss);
      // The paper's per-tensor scale against LDLQ with a per-tensor grid on the raw weights.
      const tensor = await quipQuantizeLayer(w, id(128, 256), h, settings({ bits }));
      const gridRaw = rawTensorGrid(w, bits);
      const hd = Float32Array.from(h);
      let mean = 0;
      for (let j = 0; j < 256; j++) mean += hd[j * 256 + j] / 256;
      for (let j = 0; j < 256; j++) hd[j * 256 + j] += 0.01 * mean;
      const raw = await ldlqFixedGrid(w, 128, 256, hd, gridRaw);
      const rawLoss = (await proxyLoss(w, dequantizeGrid(raw.codes, 128, 256, gridRaw), h, 128, 256)).loss;
      console.log(`W${bits} heavy-outlier layer: QuIP per-tensor ${tensor.proxyLoss.toPrecision(4)} vs LDLQ per-tensor ${rawLoss.toPrecision(4)}`);
      expect(tensor.proxyLoss).toBeLessThan(rawLoss);
    }
  });

  it("greedy passes never increase the proxy loss", async () => {
    for (const [bits, scale] of [[2, "tensor"], [3, "group"], [4, "tensor"]] as const) {
      const { w, h } = outlierLayer(64, 128, 20 + bits);
      const base = await quipQuantizeLayer(w, id(64, 128), h, settings({ bits, quipScale: scale, group: 0 }));
      const refined = await quipQuantizeLayer(w, id(64, 128), h, settings({ bits, quipScale: scale, group: 0, quipRefine: 3 }));
      for (let p = 1; p < refined.passLosses.length; p++) expect(refined.passLosses[p]).toBeLessThanOrEqual(refined.passLosses[p - 1]);
      expect(refined.proxyLoss).toBeLessThanOrEqual(base.proxyLoss * (1 + 1e-5));
      expect(refined.passLosses[0]).toBeCloseTo(base.passLosses[0], 3);
    }
  });
});

/** LDLQ's per-tensor min/max grid on the raw weights (asymmetric, integer zero). */
function rawTensorGrid(w: Float32Array, bits: number) {
  let lo = 0;
  let hi = 0;
  for (const x of w) {
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  const maxq = (1 << bits) - 1;
  const scale = (hi - lo) / maxq;
  return { bits, group: 0, scales: new Float32Array(128).fill(scale), zeros: new Float32Array(128).fill(Math.round(-lo / scale)) };
}

describe("QuIP on stories260K", () => {
  let model: OnnxModel;
  let data: TokenData;
  let dir: string;
  let cleanup: () => void;
  beforeAll(async () => {
    model = await OnnxModel.load(STORIES_MODEL);
    data = loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 8 });
    ({ dir, cleanup } = tempDir());
  });
  afterAll(() => {
    model.close();
    cleanup();
  });

  it("μ_W and μ_H fall after processing on the real layers (μ_W not on every one: these are already fairly incoherent)", async () => {
    const layers = indexLinears(model).layers.filter((l) => l.role !== "lm_head");
    expect(layers).toHaveLength(35);
    const c = await calibrate(model, data, { tensors: [...new Set(layers.map((l) => l.input))] });
    const before: number[] = [];
    const after: number[] = [];
    const hBefore = new Map<string, number>(); // μ_H per input tensor (q/k/v share one H)
    const hAfter = new Map<string, number>();
    for (const l of layers) {
      const h = c.taps.find((t) => t.tap.tensor === l.input)!.hessian!;
      const w = readWeightOutIn(model, l);
      const { u, v } = quipRotations(l, 0);
      before.push(weightIncoherence(w, l.out, l.in));
      after.push(weightIncoherence(rotateWeight(w, l.out, l.in, u, v, null), l.out, l.in));
      if (!hBefore.has(l.input)) {
        hBefore.set(l.input, await hessianIncoherence(h, l.in));
        hAfter.set(l.input, await hessianIncoherence(rotateHessian(h, l.in, v, null), l.in));
      }
    }
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const hb = [...hBefore.values()];
    const ha = [...hAfter.values()];
    console.log(`stories260K μ_W mean ${mean(before).toFixed(2)} → ${mean(after).toFixed(2)}, max ${Math.max(...before).toFixed(2)} → ${Math.max(...after).toFixed(2)}, lower on ${after.filter((x, i) => x < before[i]).length}/35; μ_H mean ${mean(hb).toFixed(2)} → ${mean(ha).toFixed(2)}, max ${Math.max(...hb).toFixed(2)} → ${Math.max(...ha).toFixed(2)}, lower on ${ha.filter((x, i) => x < hb[i]).length}/${hb.length}`);
    expect(mean(after)).toBeLessThan(0.85 * mean(before));
    expect(Math.max(...after)).toBeLessThan(Math.max(...before));
    expect(after.filter((x, i) => x < before[i]).length).toBeGreaterThanOrEqual(28);
    expect(mean(ha)).toBeLessThan(0.85 * mean(hb));
    expect(Math.max(...ha)).toBeLessThan(Math.max(...hb));
    expect(ha.filter((x, i) => x < hb[i]).length).toBeGreaterThanOrEqual(hb.length - 2);
  });

  it("keeps the rotations chooseQuipRotations picks from --rotation-tries draws (one draw = the seed convention's)", async () => {
    const index = indexLinears(model);
    const layers = index.layers.filter((l) => l.role !== "lm_head");
    const inputs = [...new Set(layers.map((l) => l.input))];
    const c = await calibrate(model, data, { tensors: inputs });
    const config = checkConfig({ ...DEFAULT_CONFIG, method: "quip", bits: 4, group: 0, quipRotationTries: 4 });
    const q = await quantizeModel(model, config, { data });
    const one = await quantizeModel(model, { ...config, quipRotationTries: 1 }, { data });
    let moved = 0;
    for (const input of inputs) {
      const tl = layers.filter((l) => l.input === input);
      const h = c.taps.find((t) => t.tap.tensor === input)!.hessian!;
      const vectors = (await symmetricEigen(h, tl[0].in, { vectors: true })).vectors!;
      const ws = tl.map((l) => ({ id: l, w: readWeightOutIn(model, l) }));
      const chosen = await chooseQuipRotations(ws, vectors, 0, "kron", 4);
      const draw0 = await chooseQuipRotations(ws, vectors, 0, "kron", 1);
      const score = (x: typeof chosen) => x.muH! * Math.exp([...x.muW.values()].reduce((a, m) => a + Math.log(m), 0) / x.muW.size);
      // Draw 0 is among the candidates: the kept V is no worse unless draw 0 fails to lower μ_H.
      const muH0 = await hessianIncoherence(h, tl[0].in);
      if (draw0.muH! < muH0) {
        expect(chosen.muH!).toBeLessThan(muH0);
        expect(score(chosen)).toBeLessThanOrEqual(score(draw0) + 1e-12);
      }
      for (const l of tl) {
        const rot = q.layers.find((x) => x.layer.name === l.name)!.rotation!;
        expect(rot.v).toEqual(chosen.v);
        expect(rot.u).toEqual(chosen.u.get(l.name));
        expect(one.layers.find((x) => x.layer.name === l.name)!.rotation!.u).toEqual(quipRotationSpecs(l, 0).u);
        expect(one.layers.find((x) => x.layer.name === l.name)!.rotation!.v).toEqual(quipRotationSpecs(l, 0).v);
        if (chosen.drawV !== 0 || chosen.drawU.get(l.name) !== 0) moved++;
      }
    }
    expect(moved).toBeGreaterThan(0); // 4 draws do change some rotations
    await expect(quantizeModel(model, { ...config, quipRotationTries: 0 }, { data })).rejects.toThrow(/--rotation-tries/);
  }, 60000);

  const c = loadRefCases().find((x) => x.name === "b2_t64")!;
  it.each([
    ["W4 per-tensor (paper)", { bits: 4, group: 0 }, "matmulnbits"],
    ["W2 per-tensor (paper), hadamard, refine 1", { bits: 2, group: 0, quipRotation: "hadamard", quipRefine: 1 }, "matmulnbits"],
    ["W4 g32 asym, no rescale", { bits: 4, group: 32, quipScale: "group", quipRescale: false }, "matmulnbits"],
    ["W8 per-row", { bits: 8, group: 0, quipScale: "group" }, "qdq"],
    ["W4 g32 sym", { bits: 4, group: 32, quipScale: "group", symmetric: true }, "qdq"],
  ] as const)("%s exported as %s runs in onnxruntime and matches the fake export", async (label, over, format) => {
    const config: QuantConfig = checkConfig({ ...DEFAULT_CONFIG, method: "quip", ...over } as QuantConfig);
    const q = await quantizeModel(model, config, { data });
    expect(q.layers.length).toBe(35);
    expect(q.layers.every((l) => l.rotation && l.proxyLoss !== null)).toBe(true);
    const slug = label.replace(/\W+/g, "_");
    const fake = path.join(dir, `${slug}-fake.onnx`);
    const real = path.join(dir, `${slug}-${format}.onnx`);
    await exportQuantized(model, q, fake, "fake");
    const ex = await exportQuantized(model, q, real, format);
    expect(ex.layers.every((l) => l.form === format), JSON.stringify(ex.layers.find((l) => l.form !== format))).toBe(true);
    const a = await runLogits(fake, c.ids, c.shape);
    const b = await runLogits(real, c.ids, c.shape);
    expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-3);
    expect(maxAbsDiff(a, c.logits)).toBeGreaterThan(1e-3);
    const m = await OnnxModel.load(real);
    try {
      const ops = m.graph.node.map((n) => n.opType);
      expect(ops.filter((o) => o === (format === "matmulnbits" ? "MatMulNBits" : "DequantizeLinear"))).toHaveLength(35);
      // The fake export holds the original-space weights: dequantized() undoes the rotation.
      const fm = await OnnxModel.load(fake);
      const lq = q.layers[0];
      expect(maxAbsDiff(readWeightOutIn(fm, lq.layer), dequantized(lq))).toBeLessThan(1e-6);
      fm.close();
      if ("quipRescale" in over && over.quipRescale === false) {
        // q/k/v and gate/up share their input rotation: one input subgraph per distinct input tensor.
        const inputs = new Set(q.layers.map((l) => l.layer.input));
        const inputSubgraphs = new Set(m.graph.node.filter((n) => /\/quip_V\d+\//.test(n.name)).map((n) => n.name.replace(/\/quip_V(\d+)\/.*/, "$1")));
        expect(inputSubgraphs.size).toBe(inputs.size);
        expect(inputs.size).toBeLessThan(35);
      }
    } finally {
      m.close();
    }
  }, 60000);

  it("refuses to run without calibration data", async () => {
    await expect(quantizeModel(model, { ...DEFAULT_CONFIG, method: "quip" })).rejects.toThrow(/QuIP needs calibration data/);
    expect(() => checkConfig({ ...DEFAULT_CONFIG, method: "quip", quipRotation: "dct" as never })).toThrow(/--rotation/);
  });
});

describe("rotation subgraphs", () => {
  it.each([
    [172, "kron", 0],
    [4096, "kron", 256],
    [4096, "hadamard", 256],
    [11008, "auto", 256],
    [64, "kron", 256],
  ] as const)("n = %i (%s) in onnxruntime equals the transform, forward with rescaling and inverse", async (n, kind, denseMax) => {
    const spec = { n, seed: 99, kind };
    const T = randomOrthogonalTransform(spec);
    const g = rng(n);
    const rows = 3;
    const x = Float32Array.from({ length: rows * n }, () => g());
    const d = Float32Array.from({ length: n }, () => Math.exp(0.3 * g()));
    for (const inverse of [false, true]) {
      const sub = transformSubgraph({ prefix: "t", input: "x", output: "y", spec, inverse, rescale: inverse ? null : d, denseMax });
      const bytes = toBinary(ModelProtoSchema, create(ModelProtoSchema, {
        irVersion: 8n,
        opsetImport: [{ domain: "", version: 17n }],
        graph: create(GraphProtoSchema, {
          name: "t",
          node: sub.nodes,
          initializer: sub.initializers,
          input: [tensorValue("x", DT.FLOAT, [1, rows, n])],
          output: [tensorValue("y", DT.FLOAT, [1, rows, n])],
        }),
      }));
      const s = await ort.InferenceSession.create(bytes);
      const y = (await s.run({ x: new ort.Tensor("float32", x, [1, rows, n]) })).y.data as Float32Array;
      await s.release();
      const want = Float32Array.from(x);
      if (!inverse) for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) want[r * n + j] /= d[j];
      T.applySync(want, rows, { inverse });
      expect(maxAbsDiff(y, want)).toBeLessThan(2e-5 * Math.sqrt(n / 64) + 1e-5);
      if (n > denseMax) expect(sub.nodes.some((nd) => nd.opType === "Reshape")).toBe(true);
    }
  });
});
