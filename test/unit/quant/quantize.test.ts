import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { quantizeModel } from "../../../extension/src/engine/quant/quantize";
import { DEFAULT_CONFIG } from "../../../extension/src/engine/quant/config";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import type { TokenData } from "../../../extension/src/engine/calib/data";
import { STORIES, STORIES_MODEL } from "../../helpers/paths";

let model: OnnxModel;
let data: TokenData;
beforeAll(async () => {
  model = await OnnxModel.load(STORIES_MODEL);
  data = loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 16, seqLen: 256 });
});
afterAll(() => model.close());

describe("GPTQ pass on stories260K", () => {
  it.each([
    ["W4 g32", { bits: 4, group: 32 }],
    ["W4 g32 act-order", { bits: 4, group: 32, actOrder: true }],
    ["W3 per-channel act-order", { bits: 3, group: 0, actOrder: true }],
    ["W2 g32 sym", { bits: 2, group: 32, symmetric: true }],
  ] as const)("%s: proxy loss ≤ RTN's on every layer", async (_label, config) => {
    const q = await quantizeModel(model, { ...DEFAULT_CONFIG, method: "gptq", ...config }, { data });
    expect(q.layers).toHaveLength(35);
    for (const l of q.layers) {
      expect(l.proxyLoss, l.layer.name).not.toBeNull();
      expect(l.proxyLoss!, l.layer.name).toBeLessThanOrEqual(l.proxyLossRtn! * (1 + 1e-6));
      expect(l.relProxyLoss!).toBeGreaterThan(0);
    }
    const sum = (k: "proxyLoss" | "proxyLossRtn") => q.layers.reduce((s, l) => s + l[k]!, 0);
    expect(sum("proxyLoss")).toBeLessThan(0.9 * sum("proxyLossRtn"));
    expect(q.calibration?.tokens).toBe(data.tokens);
  });

  it("--clip (per-row range search on the proxy loss): every layer at or below plain GPTQ on the same Hessians", async () => {
    const cfg = { ...DEFAULT_CONFIG, method: "gptq" as const, bits: 3 as const, group: 0, actOrder: true };
    const plain = await quantizeModel(model, cfg, { data });
    const clip = await quantizeModel(model, { ...cfg, clip: true }, { data });
    expect(clip.layers).toHaveLength(35);
    let a = 0;
    let b = 0;
    let clipped = 0;
    let rows = 0;
    for (let i = 0; i < clip.layers.length; i++) {
      const name = clip.layers[i].layer.name;
      expect(clip.layers[i].proxyLoss!, name).toBeLessThanOrEqual(plain.layers[i].proxyLoss! * (1 + 1e-4));
      expect(clip.layers[i].proxyLossRtn, name).toBe(plain.layers[i].proxyLossRtn);
      expect(plain.layers[i].clip, name).toBeUndefined();
      const c = clip.layers[i].clip!;
      expect(c.minShrink).toBeGreaterThanOrEqual(0.5);
      expect(c.meanShrink).toBeGreaterThanOrEqual(c.minShrink);
      expect(c.meanShrink).toBeLessThanOrEqual(1);
      clipped += c.rowsClipped;
      rows += clip.layers[i].layer.out;
      a += clip.layers[i].proxyLoss!;
      b += plain.layers[i].proxyLoss!;
    }
    console.log(`stories260K W3 per-channel act-order: proxy-loss sum ${b.toFixed(3)} → ${a.toFixed(3)} with --clip; ${clipped}/${rows} rows clipped`);
    expect(clipped).toBeGreaterThan(rows / 2);
    expect(a).toBeLessThan(0.9 * b);
  });

  it("RTN with calibration data reports the same proxy loss GPTQ computes for RTN", async () => {
    const cfg = { ...DEFAULT_CONFIG, bits: 4 as const, group: 32 };
    const rtn = await quantizeModel(model, { ...cfg, method: "rtn" }, { data });
    const gptq = await quantizeModel(model, { ...cfg, method: "gptq" }, { data });
    for (let i = 0; i < rtn.layers.length; i++) {
      expect(rtn.layers[i].proxyLoss! / gptq.layers[i].proxyLossRtn!).toBeCloseTo(1, 3);
    }
  });

  it("sequential mode is true-sequential: each input tensor calibrated through every earlier quantized layer", async () => {
    const config = { ...DEFAULT_CONFIG, method: "gptq" as const, bits: 4 as const, group: 32 };
    const q = await quantizeModel(model, { ...config, sequential: true }, { data });
    const once = await quantizeModel(model, config, { data });
    expect(q.layers).toHaveLength(35);
    // Block by block: one run of the block per distinct input (q/k/v, o, gate/up, down) in each
    // of the 5 blocks, plus one run of blocks 0–3 with all their layers quantized to feed the next.
    expect(q.calibration?.passes).toBe(24);
    for (const l of q.layers) expect(l.proxyLoss!).toBeLessThanOrEqual(l.proxyLossRtn! * (1 + 1e-6));
    const by = (r: typeof q, name: string) => r.layers.find((l) => l.layer.name === name)!;
    // Block 0's q/k/v read the fp model's input: the same Hessian, the same result as one pass.
    for (const n of ["q_proj", "k_proj", "v_proj"]) {
      const name = `/model/layers.0/self_attn/${n}/MatMul`;
      expect(by(q, name).proxyLossRtn).toBeCloseTo(by(once, name).proxyLossRtn!, 10);
    }
    // o_proj of block 0 already sees quantized q/k/v: its Hessian (so RTN's loss on it) differs.
    const o = "/model/layers.0/self_attn/o_proj/MatMul";
    expect(Math.abs(by(q, o).proxyLossRtn! - by(once, o).proxyLossRtn!)).toBeGreaterThan(1e-6 * by(once, o).proxyLossRtn!);
    // Re-running only the block being quantized gives exactly what one whole-model pass per
    // input tensor gives (20 passes of the whole model).
    const whole = await quantizeModel(model, { ...config, sequential: true }, { data, calib: { staged: false } });
    expect(whole.calibration?.passes).toBe(20);
    q.layers.forEach((l, i) => {
      expect(l.codes, l.layer.name).toEqual(whole.layers[i].codes);
      expect(l.proxyLoss).toBe(whole.layers[i].proxyLoss);
    });
  });

  it("GPTQ without data is a clear error", async () => {
    await expect(quantizeModel(model, { ...DEFAULT_CONFIG, method: "gptq" })).rejects.toThrow(/GPTQ needs calibration data/);
  });
});
