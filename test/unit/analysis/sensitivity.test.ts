import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { indexLinears, type LinearIndex, type LinearLayer } from "../../../extension/src/engine/onnx/linear";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import type { TokenData } from "../../../extension/src/engine/calib/data";
import { createSession } from "../../../extension/src/engine/calib/session";
import { buildFeeds } from "../../../extension/src/engine/calib/runner";
import { tappedProto } from "../../../extension/src/engine/calib/taps";
import { sequenceMetrics } from "../../../extension/src/engine/eval/metrics";
import { VariantSession } from "../../../extension/src/engine/analysis/variant-session";
import { FpReference, measureSensitivity, sensitivityTargets } from "../../../extension/src/engine/analysis/sensitivity";
import { WeightBank } from "../../../extension/src/engine/analysis/weight-bank";
import { errorPropagation, residualTensors } from "../../../extension/src/engine/analysis/propagation";
import type { Setting } from "../../../extension/src/engine/analysis/fake-quant";
import { STORIES, STORIES_MODEL } from "../../helpers/paths";

let model: OnnxModel;
let index: LinearIndex;
let layers: LinearLayer[];
let evalData: TokenData;
const W3: Setting = { method: "rtn", bits: 3, group: 0 };

beforeAll(async () => {
  model = await OnnxModel.load(STORIES_MODEL);
  index = indexLinears(model);
  layers = index.layers.filter((l) => l.role !== "lm_head");
  // Held-out-style sequences of different lengths (batched right-padded): calibration documents cut short.
  const d = loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 6, seqLen: 40 });
  const lens = [40, 33, 25, 40, 18, 31];
  evalData = { ...d, sequences: d.sequences.map((s, i) => s.slice(0, lens[i])) };
});
afterAll(() => model.close());

describe("sensitivity with one session and cached fp logits", () => {
  it("feeding replaced weights gives the logits of a model with those initializers replaced", async () => {
    const bank = new WeightBank(model, new Map(), null);
    const vs = layers.filter((l) => l.role === "v");
    const overrides = await bank.overrides(vs.map((layer) => ({ layer, setting: W3 })));
    const s = await VariantSession.open(model, { layers });
    const rebuilt = await createSession(model, tappedProto(model.proto, [], overrides));
    try {
      const ids = evalData.sequences[0];
      const a = (await s.run([ids], overrides, [s.logits]))[s.logits].data;
      const out = await rebuilt.session.run(buildFeeds(model.graph.input, new Set(model.graph.initializer.map((t) => t.name)), [ids]), [s.logits]);
      const b = out[s.logits].data as Float32Array;
      let d = 0;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
      expect(d).toBeLessThan(1e-4);
      // And without replacements it is the fp model (the quantized one differs).
      const fp = (await s.run([ids], new Map(), [s.logits]))[s.logits].data;
      let dq = 0;
      for (let i = 0; i < a.length; i++) dq = Math.max(dq, Math.abs(a[i] - fp[i]));
      expect(dq).toBeGreaterThan(1e-2);
    } finally {
      await rebuilt.release();
      await s.release();
    }
  });

  it("KL and top-1 against the cached fp logits equal eval/metrics on independent runs; roles are ranked", async () => {
    const s = await VariantSession.open(model, { layers });
    try {
      const ref = await FpReference.build(s, evalData);
      expect(ref.tokens).toBe(40 + 33 + 25 + 40 + 18 + 31 - 6);
      const bank = new WeightBank(model, new Map(), null);
      const targets = sensitivityTargets(layers, "role", [W3]);
      expect(targets.map((t) => t.target).sort()).toEqual(["down", "gate", "k", "o", "q", "up", "v"]);
      for (const t of targets) expect(t.layers).toHaveLength(5);
      const section = await measureSensitivity(s, ref, bank, targets, { file: evalData.file, sequences: 6 });
      expect(section.rows.map((r) => r.rank).sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
      const byRank = [...section.rows].sort((a, b) => a.rank - b.rank);
      for (let i = 1; i < byRank.length; i++) expect(byRank[i].kl_mean).toBeLessThanOrEqual(byRank[i - 1].kl_mean);

      // Independent check of one row: plain runs of both models, eval/metrics' KL.
      const row = section.rows.find((r) => r.target === "down")!;
      const overrides = await bank.overrides(layers.filter((l) => l.role === "down").map((layer) => ({ layer, setting: W3 })));
      const rebuilt = await createSession(model, tappedProto(model.proto, [], overrides));
      const plain = await createSession(model, model.proto);
      let kl = 0;
      let agree = 0;
      let n = 0;
      const init = new Set(model.graph.initializer.map((t) => t.name));
      for (const seq of evalData.sequences) {
        const inputs = seq.slice(0, -1);
        const p = (await plain.session.run(buildFeeds(model.graph.input, init, [inputs]), [s.logits]))[s.logits].data as Float32Array;
        const q = (await rebuilt.session.run(buildFeeds(model.graph.input, init, [inputs]), [s.logits]))[s.logits].data as Float32Array;
        for (const m of sequenceMetrics(p, q, seq.slice(1), 512)) {
          kl += m.kl;
          agree += m.top1 ? 1 : 0;
          n++;
        }
      }
      await rebuilt.release();
      await plain.release();
      expect(row.kl_mean / (kl / n)).toBeCloseTo(1, 3);
      expect(row.top1).toBeCloseTo(agree / n, 6);
      expect(row.kl_mean).toBeGreaterThan(0);
    } finally {
      await s.release();
    }
  });
});

describe("error propagation", () => {
  it("finds each block's residual stream and shows where error is introduced", async () => {
    const residual = residualTensors(index);
    expect(residual.map((r) => r.block)).toEqual([0, 1, 2, 3, 4]);
    expect(residual.map((r) => r.tensor)).toEqual([0, 1, 2, 3, 4].map((b) => `/model/layers.${b}/Add_1_output_0`));

    // Quantize block 2 only: no error before it, error from it on.
    const bank = new WeightBank(model, new Map(), null);
    const only2 = layers.filter((l) => l.block === 2);
    const p = await errorPropagation(model, index, only2, W3, bank, { ...evalData, sequences: evalData.sequences.slice(0, 3) });
    const rel = p.blocks.map((b) => b.rel_error);
    expect(rel[0]).toBe(0);
    expect(rel[1]).toBe(0);
    for (const r of rel.slice(2)) expect(r).toBeGreaterThan(1e-3);
    expect(p.kl_mean).toBeGreaterThan(0);
    for (const l of p.layers) expect(l.sqnr_db).toBeGreaterThan(0);

    // All layers at W3: the residual error grows with depth (error carried and added).
    const all = await errorPropagation(model, index, layers, W3, bank, { ...evalData, sequences: evalData.sequences.slice(0, 3) });
    expect(all.blocks[4].rel_error).toBeGreaterThan(all.blocks[0].rel_error);
    expect(all.kl_mean).toBeGreaterThan(p.kl_mean);
  });
});
