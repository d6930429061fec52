import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import { calibrate, calibrateWithProbes, type CalibrationResult } from "../../../extension/src/engine/calib/runner";
import { planStages } from "../../../extension/src/engine/calib/staged";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";
import { calibrateToFile, readStatsFile } from "../../../extension/src/engine/calib/stats-file";
import { outlierChannels } from "../../../extension/src/engine/analysis/outliers";
import { buildLlama, saveFixture } from "../../fixtures/generator";
import { listDir, STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";
import { rawActivations } from "../../helpers/ort";

const CALIB = path.join(STORIES, "calib.jsonl");
const SAMPLES = 12;


function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / (den || 1);
}

describe("calibration on stories260K", () => {
  let model: OnnxModel;
  let result: CalibrationResult;
  let sequences: number[][];

  beforeAll(async () => {
    model = await OnnxModel.load(STORIES_MODEL);
    const data = loadModelData(model, CALIB, { samples: SAMPLES });
    sequences = data.sequences;
    result = await calibrate(model, data, { batchSize: 4 });
  });
  afterAll(() => model.close());

  it("taps one tensor per distinct linear input: 4 per block + lm_head's", () => {
    expect(result.taps).toHaveLength(21);
    const qkv = result.taps.find((t) => t.tap.roles.join() === "q,k,v" && t.tap.block === 2)!;
    expect(qkv.tap.layers).toEqual(["q", "k", "v"].map((r) => `/model/layers.2/self_attn/${r}_proj/MatMul`));
    expect(result.taps.find((t) => t.tap.roles.join() === "gate,up" && t.tap.block === 0)!.tap.channels).toBe(64);
    expect(result.taps.find((t) => t.tap.roles.join() === "down" && t.tap.block === 4)!.tap.channels).toBe(172);
    expect(result.tokens).toBe(sequences.reduce((s, q) => s + q.length, 0));
  });

  it("per-channel statistics and Hessians equal an independent computation to 1e-5", async () => {
    const tensors = result.taps.map((t) => t.tap.tensor);
    const raw = await rawActivations(model, tensors, sequences);
    for (const r of result.taps) {
      const C = r.tap.channels;
      const xs = raw.get(r.tap.tensor)!;
      const N = xs.reduce((s, x) => s + x.length / C, 0);
      expect(r.stats.n).toBe(N);
      const mean = new Float64Array(C);
      const absmax = new Float64Array(C);
      const h = new Float64Array(C * C);
      for (const x of xs) {
        for (let row = 0; row < x.length / C; row++) {
          for (let i = 0; i < C; i++) {
            const v = x[row * C + i];
            mean[i] += v / N;
            absmax[i] = Math.max(absmax[i], Math.abs(v));
            for (let j = 0; j < C; j++) h[i * C + j] += (2 / N) * v * x[row * C + j];
          }
        }
      }
      const m2 = new Float64Array(C);
      const m4 = new Float64Array(C);
      for (const x of xs) {
        for (let row = 0; row < x.length / C; row++) {
          for (let i = 0; i < C; i++) {
            const d = x[row * C + i] - mean[i];
            m2[i] += d * d;
            m4[i] += d ** 4;
          }
        }
      }
      const variance = m2.map((v) => v / N);
      const kurt = m4.map((v, i) => (N * v) / (m2[i] * m2[i]) - 3);
      expect(relErr(r.stats.absmax, absmax), `${r.tap.tensor} absmax`).toBeLessThan(1e-5);
      expect(relErr(r.stats.mean, mean), `${r.tap.tensor} mean`).toBeLessThan(1e-5);
      expect(relErr(r.stats.variance(), variance), `${r.tap.tensor} variance`).toBeLessThan(1e-5);
      expect(relErr(r.stats.kurtosis(), kurt), `${r.tap.tensor} kurtosis`).toBeLessThan(1e-5);
      expect(relErr(r.hessian!, h), `${r.tap.tensor} hessian`).toBeLessThan(1e-5);
    }
  });

  it("Hessians are symmetric and positive semi-definite", () => {
    for (const r of result.taps) {
      const C = r.tap.channels;
      const H = r.hessian!;
      for (let i = 0; i < C; i++) for (let j = 0; j < i; j++) expect(H[i * C + j]).toBe(H[j * C + i]);
      // Cholesky of H + ε·I succeeds for a PSD H (ε relative to its trace).
      let tr = 0;
      for (let i = 0; i < C; i++) tr += H[i * C + i];
      const A = Float64Array.from(H);
      for (let i = 0; i < C; i++) A[i * C + i] += 1e-9 * tr;
      for (let j = 0; j < C; j++) {
        let d = A[j * C + j];
        for (let k = 0; k < j; k++) d -= A[j * C + k] ** 2;
        expect(d, `${r.tap.tensor} pivot ${j}`).toBeGreaterThan(0);
        A[j * C + j] = Math.sqrt(d);
        for (let i = j + 1; i < C; i++) {
          let s = A[i * C + j];
          for (let k = 0; k < j; k++) s -= A[i * C + k] * A[j * C + k];
          A[i * C + j] = s / A[j * C + j];
        }
      }
    }
  });

  it("block by block: one stage per block plus the head, the same activations as whole-model passes", async () => {
    const data = loadModelData(model, CALIB, { samples: 4 });
    const plan = planStages(model, indexLinears(model))!;
    expect(plan.stages.map((s) => s.block)).toEqual([0, 1, 2, 3, 4, null]);
    // Between blocks only the residual stream (the last Add and down_proj's output) and the shared
    // rotary/mask tensors cross a cut; constants do not.
    for (const s of plan.stages.slice(1, 5)) {
      expect(s.inputs.sort()).toEqual([`/model/layers.${s.index - 1}/Add_output_0`, `/model/layers.${s.index - 1}/mlp/down_proj/MatMul_output_0`, "/model/mask/LessOrEqual_output_0", "/model/rotary_emb/Cos_output_0", "/model/rotary_emb/Sin_output_0"]);
    }
    const staged = await calibrate(model, data, { batchSize: 2, staged: true });
    const whole = await calibrate(model, data, { batchSize: 2, staged: false });
    expect(staged.passes).toBe(6);
    expect(whole.passes).toBe(1);
    expect(staged.taps.map((t) => t.tap.tensor)).toEqual(whole.taps.map((t) => t.tap.tensor));
    for (let i = 0; i < whole.taps.length; i++) {
      // Constants are made again in each stage, so onnxruntime folds and fuses as in the whole
      // model: bit-identical activations.
      expect(staged.taps[i].stats.absmax).toEqual(whole.taps[i].stats.absmax);
      expect(staged.taps[i].hessian).toEqual(whole.taps[i].hessian);
    }
  });

  it("gives the same numbers when the memory budget forces one pass per tap", async () => {
    const data = loadModelData(model, CALIB, { samples: 4 });
    const one = await calibrate(model, data, { batchSize: 2 });
    const many = await calibrate(model, data, { batchSize: 2, maxMemory: model.weightBytes * 2 + 3_500_000 });
    expect(many.passes).toBeGreaterThan(1);
    expect(many.taps.map((t) => t.tap.tensor)).toEqual(one.taps.map((t) => t.tap.tensor));
    for (let i = 0; i < one.taps.length; i++) {
      expect(many.taps[i].stats.absmax).toEqual(one.taps[i].stats.absmax);
      expect(many.taps[i].hessian).toEqual(one.taps[i].hessian);
    }
    await expect(calibrate(model, data, { maxMemory: model.weightBytes * 2 + 1000 })).rejects.toThrow(/--max-memory .* is too small/);
    await expect(calibrate(model, data, { staged: true, maxMemory: 1000 })).rejects.toThrow(/--max-memory .* is too small/);
  });

  it("sequential mode: replaced weights change what comes after them, not before", async () => {
    const data = loadModelData(model, CALIB, { samples: 2 });
    const base = await calibrate(model, data, { hessian: false });
    const w = model.readFloat32("model.layers.1.self_attn.o_proj.weight").map((v) => v * 0.5);
    const seq = await calibrate(model, data, { hessian: false, weightOverrides: new Map([["model.layers.1.self_attn.o_proj.weight", w]]) });
    const byTensor = (r: CalibrationResult, block: number, role: string) => r.taps.find((t) => t.tap.block === block && t.tap.roles[0] === role)!.stats.absmax;
    expect(byTensor(seq, 1, "o")).toEqual(byTensor(base, 1, "o")); // o_proj's own input is upstream
    expect(byTensor(seq, 0, "down")).toEqual(byTensor(base, 0, "down"));
    expect(byTensor(seq, 1, "gate")).not.toEqual(byTensor(base, 1, "gate"));
    expect(byTensor(seq, 3, "q")).not.toEqual(byTensor(base, 3, "q"));
  });

  it("probes: each block re-runs on its fp inputs with weights replaced, and the forward stays fp", async () => {
    const data = loadModelData(model, CALIB, { samples: 4 });
    const index = indexLinears(model);
    const whole = await calibrate(model, data, { batchSize: 2, staged: false });
    const seen: { block: number | null; tensors: string[] }[] = [];
    const probed = await calibrateWithProbes(
      model,
      data,
      whole.taps.map((t) => t.tap.tensor),
      async (results, probe) => {
        expect(probe).not.toBeNull();
        seen.push({ block: probe!.block, tensors: results.map((r) => r.tap.tensor) });
        if (probe!.block !== 1) return;
        // The tap of o_proj's input, read again through the probe with the fp weights: the same values.
        const o = index.layers.find((l) => l.block === 1 && l.role === "o")!;
        const v = index.layers.find((l) => l.block === 1 && l.role === "v")!;
        const tapped = results.find((r) => r.tap.tensor === o.input)!.stats.absmax;
        const absmax = async (overrides: Map<string, Float32Array>) => {
          const m = new Float32Array(o.in);
          let batches = 0;
          await probe!.run(overrides, [o.input], (_b, t) => {
            batches++;
            const x = t[o.input].data as Float32Array;
            for (let i = 0; i < x.length; i++) m[i % o.in] = Math.max(m[i % o.in], Math.abs(x[i]));
          });
          expect(batches).toBeGreaterThan(1);
          return m;
        };
        const fp = await absmax(new Map());
        for (let j = 0; j < o.in; j++) expect(fp[j]).toBeCloseTo(tapped[j], 5);
        // v_proj zeroed: attention mixes zero values, so o_proj reads zeros.
        const zeros = await absmax(new Map([[v.weight, new Float32Array(v.in * v.out)]]));
        expect(Math.max(...zeros)).toBe(0);
        // A tensor of another block is refused, by name.
        await expect(probe!.run(new Map(), ["/model/layers.3/mlp/down_proj/MatMul_output_0"], () => undefined)).rejects.toThrow(/does not compute '\/model\/layers.3/);
      },
      { batchSize: 2 },
    );
    expect(seen.map((s) => s.block)).toEqual([0, 1, 2, 3, 4, null]);
    // What the later blocks were calibrated on is the fp model's, probes notwithstanding.
    expect(probed.taps.map((t) => t.tap.tensor)).toEqual(whole.taps.map((t) => t.tap.tensor));
    for (let i = 0; i < whole.taps.length; i++) expect(probed.taps[i].stats.absmax).toEqual(whole.taps[i].stats.absmax);
    // A budget that splits each block's taps over several runs: the same numbers, one onStage per block.
    const blocks: (number | null)[] = [];
    const split = await calibrateWithProbes(model, data, whole.taps.map((t) => t.tap.tensor), async (_r, probe) => void blocks.push(probe!.block), { batchSize: 2, maxMemory: 6_000_000 });
    expect(blocks).toEqual([0, 1, 2, 3, 4, null]);
    expect(split.passes).toBeGreaterThan(probed.passes);
    for (let i = 0; i < whole.taps.length; i++) {
      expect(split.taps[i].tap.tensor).toBe(whole.taps[i].tap.tensor);
      expect(split.taps[i].stats.absmax).toEqual(whole.taps[i].stats.absmax);
    }
  });
});

describe("stats file", () => {
  it("round-trips through safetensors and appears only when complete", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const model = await OnnxModel.load(STORIES_MODEL);
      const data = loadModelData(model, CALIB, { samples: 3 });
      const out = path.join(dir, "stats.safetensors");
      const result = await calibrateToFile(model, data, out, {});
      expect(listDir(dir)).toEqual(["stats.safetensors"]);
      const stats = readStatsFile(out);
      expect(stats.header).toMatchObject({ format: "quantlens-calib", version: 1, tokens: data.tokens, sequences: 3 });
      expect(stats.header.taps).toHaveLength(21);
      const mem = await calibrate(model, data, {});
      for (const r of mem.taps) {
        const t = stats.tap(r.tap.tensor);
        expect(t.absmax).toEqual(r.stats.absmax);
        expect(t.mean).toEqual(r.stats.mean);
        expect(Array.from(t.hessian()!)).toEqual(Array.from(Float32Array.from(r.hessian!)));
        expect(t.tokenNorms).toHaveLength(data.tokens);
        expect(t.topTokens[0]).toEqual(r.stats.topTokens()[0]);
      }
      expect(result.taps.every((r) => r.hessian === null)).toBe(true); // handed to the file, not kept
      stats.close();

      const abort = new AbortController();
      const cancelled = calibrateToFile(model, data, path.join(dir, "cancelled.safetensors"), {
        signal: abort.signal,
        onProgress: () => abort.abort(),
      });
      await expect(cancelled).rejects.toThrow(/cancelled/);
      expect(listDir(dir)).toEqual(["stats.safetensors"]);
    } finally {
      cleanup();
    }
  });
});

describe("outlier channels", () => {
  it("injected activation outliers top the absmax ranking and are flagged", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, "outliers.onnx");
      const channels = [5, 17, 40];
      await saveFixture(
        buildLlama({
          hidden: 64, ffn: 172, layers: 2, heads: 8, kvHeads: 4, vocab: 512,
          activationOutliers: channels.map((channel, i) => ({ layer: 1, norm: "input" as const, channel, factor: 30 + 10 * i })),
        }),
        file,
      );
      fs.copyFileSync(path.join(STORIES, "tokenizer.json"), path.join(dir, "tokenizer.json"));
      fs.copyFileSync(path.join(STORIES, "tokenizer_config.json"), path.join(dir, "tokenizer_config.json"));
      const model = await OnnxModel.load(file);
      const result = await calibrate(model, loadModelData(model, CALIB, { samples: 4, seqLen: 64 }), { hessian: false });
      const qkv1 = result.taps.find((t) => t.tap.block === 1 && t.tap.roles[0] === "q")!;
      const ranking = Array.from(qkv1.stats.absmax.keys()).sort((a, b) => qkv1.stats.absmax[b] - qkv1.stats.absmax[a]);
      expect(ranking.slice(0, 3).sort((a, b) => a - b)).toEqual(channels);
      expect(outlierChannels(qkv1.stats.absmax).map((o) => o.channel).sort((a, b) => a - b)).toEqual(channels);
      const qkv0 = result.taps.find((t) => t.tap.block === 0 && t.tap.roles[0] === "q")!;
      expect(outlierChannels(qkv0.stats.absmax)).toEqual([]); // the plain block has none
      expect(qkv1.stats.topTokens()[0].channel).toBe(40); // the ×50 channel carries the peak
    } finally {
      cleanup();
    }
  });
});
