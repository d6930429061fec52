import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { calibrate } from "../../../extension/src/engine/calib/runner";
import type { TokenData } from "../../../extension/src/engine/calib/data";
import { activationRows, heatmapOf, outlierChannels, outlierThreshold, persistentOutliers } from "../../../extension/src/engine/analysis/outliers";
import { countOutlierTokens, tokenHeatmap } from "../../../extension/src/engine/analysis/activation-scan";
import { decodeF32 } from "../../../extension/src/engine/report/schema";
import { buildLlama, saveFixture, type ActivationOutlier } from "../../fixtures/generator";
import { tempDir } from "../../helpers/paths";
import { rawActivations } from "../../helpers/ort";

/**
 * A generated 4-block Llama with function-preserving activation outliers injected into known
 * channels of known blocks (the RMSNorm weight scaled, the readers' rows divided): exactly those
 * channels must be flagged, in exactly those activations.
 */
const INJECTED: ActivationOutlier[] = [
  { layer: 1, norm: "input", channel: 5, factor: 40 },
  { layer: 2, norm: "input", channel: 5, factor: 40 },
  { layer: 3, norm: "input", channel: 5, factor: 30 },
  { layer: 2, norm: "post_attention", channel: 17, factor: 50 },
  { layer: 2, norm: "post_attention", channel: 40, factor: 25 },
];

function randomData(vocab: number, sequences: number, len: number, seed = 1): TokenData {
  let s = seed;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % vocab);
  const seqs = Array.from({ length: sequences }, () => [1, ...Array.from({ length: len - 1 }, next)]);
  return { file: "random-tokens", sequences: seqs, notes: [], tokens: sequences * len };
}

let dir: { dir: string; cleanup: () => void };
let model: OnnxModel;
const data = randomData(256, 6, 48);

beforeAll(async () => {
  dir = tempDir();
  const file = path.join(dir.dir, "outliers.onnx");
  await saveFixture(buildLlama({ hidden: 64, ffn: 96, layers: 4, heads: 4, kvHeads: 2, vocab: 256, seed: 3, activationOutliers: INJECTED }), file);
  model = await OnnxModel.load(file);
});
afterAll(() => {
  model.close();
  dir.cleanup();
});

describe("activation outliers on a generated model with injected outlier channels", () => {
  it("flags exactly the injected channels in exactly the injected blocks, counts their tokens, and finds persistence", async () => {
    const c = await calibrate(model, data, { hessian: false });
    const taps = c.taps.map((t) => ({ tap: t.tap, stats: t.stats }));
    const wanted = new Map(taps.map(({ tap, stats }) => [tap.tensor, { channels: outlierChannels(stats.absmax).map((o) => o.channel), threshold: outlierThreshold(stats.absmax) }]));
    const counts = await countOutlierTokens(model, data, wanted);
    const rows = activationRows(taps, undefined, counts);

    const expected = new Map<string, number[]>();
    for (const o of INJECTED) {
      const kind = o.norm === "input" ? "attn_in" : "mlp_in";
      const key = `${o.layer}:${kind}`;
      expected.set(key, [...(expected.get(key) ?? []), o.channel].sort((a, b) => a - b));
    }
    expect(rows).toHaveLength(4 * 4 + 1); // attn_in, attn_out, mlp_in, mlp_hidden per block + head_in
    for (const r of rows) {
      const flagged = r.outliers.map((o) => o.channel).sort((a, b) => a - b);
      expect(flagged, `${r.tensor} (${r.kind}, block ${r.block})`).toEqual(expected.get(`${r.block}:${r.kind}`) ?? []);
    }

    // Token counts against an independent plain onnxruntime run.
    const raw = await rawActivations(model, rows.filter((r) => r.outliers.length).map((r) => r.tensor), data.sequences);
    for (const r of rows.filter((x) => x.outliers.length)) {
      const xs = raw.get(r.tensor)!;
      for (const o of r.outliers) {
        let n = 0;
        for (const x of xs) for (let t = 0; t < x.length / r.channels; t++) if (Math.abs(x[t * r.channels + o.channel]) > r.outlier_threshold) n++;
        expect(o.tokens, `${r.tensor} channel ${o.channel}`).toBe(n);
        expect(o.tokens!).toBeGreaterThan(0);
        expect(o.token_fraction).toBeCloseTo(n / data.tokens, 12);
        expect(o.ratio).toBeGreaterThan(4);
      }
    }

    // Channel 5 persists through the attention inputs of blocks 1–3; 17 and 40 appear in one block only.
    const p = persistentOutliers(rows);
    expect(p.map((x) => x.channel)).toEqual([5]);
    expect(p[0].blocks).toEqual([1, 2, 3]);

    // Heatmap rows are the activations' absmax, NaN-padded to the widest (96 = ffn).
    const h = heatmapOf(rows);
    expect(h.width).toBe(96);
    const values = decodeF32(h.values);
    for (const [i, r] of rows.entries()) {
      const absmax = taps[i].stats.absmax;
      for (let ch = 0; ch < h.width; ch++) {
        if (ch < r.channels) expect(values[i * h.width + ch]).toBe(absmax[ch]);
        else expect(values[i * h.width + ch]).toBeNaN();
      }
    }
  });

  it("gives the tokens × channels heatmap of one activation on request", async () => {
    const tensor = (await calibrate(model, { ...data, sequences: data.sequences.slice(0, 1) }, { hessian: false })).taps.find((t) => t.tap.block === 2 && t.tap.roles.includes("gate"))!.tap.tensor;
    const th = await tokenHeatmap(model, data, tensor, 2);
    const raw = (await rawActivations(model, [tensor], [data.sequences[2]])).get(tensor)![0];
    expect(th.tokens).toBe(48);
    expect(th.channels).toBe(64);
    expect(th.token_ids).toEqual(data.sequences[2]);
    const v = decodeF32(th.values);
    let maxDiff = 0;
    for (let i = 0; i < raw.length; i++) maxDiff = Math.max(maxDiff, Math.abs(v[i] - raw[i]));
    expect(maxDiff).toBeLessThan(1e-4);
    // The injected channels dominate every token's row there.
    let top17 = 0;
    for (let t = 0; t < th.tokens; t++) {
      const row = Array.from(v.subarray(t * 64, t * 64 + 64), Math.abs);
      if (row.indexOf(Math.max(...row)) === 17) top17++;
    }
    expect(top17).toBeGreaterThan(th.tokens / 2);
  });
});

