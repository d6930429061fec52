/**
 * calib_overhead: what tapping costs. Steady-state tokens/s of a full calibration (every linear
 * input tapped, per-channel statistics, Hessians) against plain onnxruntime inference of the same
 * model on the same batches, the setup time (tapped session creation, first batch) and the
 * process's peak RSS. Target (issue 4): taps cost ≤ 30% of inference
 * throughput, i.e. `throughput_ratio` ≥ 0.7.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { calibrate } from "../../../extension/src/engine/calib/runner";
import { createSession } from "../../../extension/src/engine/calib/session";
import { buildFeeds } from "../../../extension/src/engine/calib/runner";
import { equalLengthBatches, type TokenData } from "../../../extension/src/engine/calib/data";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import { buildLlama, saveFixture } from "../../fixtures/generator";
import { sig, type BenchCase, type BenchResult } from "../harness";
import { STORIES, STORIES_MODEL } from "../../helpers/paths";

async function plainTokensPerSecond(model: OnnxModel, data: TokenData, batchSize: number): Promise<number> {
  const runner = await createSession(model, model.proto, { executionProvider: "cpu" });
  const inits = new Set(model.graph.initializer.map((t) => t.name));
  const batches = equalLengthBatches(data.sequences, batchSize);
  const outputs = model.graph.output.map((o) => o.name);
  try {
    await runner.session.run(buildFeeds(model.graph.input, inits, batches[0]), outputs); // warm-up
    const t0 = performance.now();
    for (const b of batches) await runner.session.run(buildFeeds(model.graph.input, inits, b), outputs);
    return data.tokens / ((performance.now() - t0) / 1000);
  } finally {
    await runner.release();
  }
}

/** Steady-state calibration tokens/s: from the end of the first batch to the end of the last. */
async function calibTokensPerSecond(model: OnnxModel, data: TokenData, batchSize: number) {
  const t0 = performance.now();
  let tFirst = 0;
  let tokensFirst = 0;
  let tLast = 0;
  const r = await calibrate(model, data, {
    batchSize,
    executionProvider: "cpu",
    onProgress: (p) => {
      if (!tFirst) {
        tFirst = performance.now();
        tokensFirst = p.tokens;
      }
      tLast = performance.now();
    },
  });
  return { rate: (data.tokens - tokensFirst) / ((tLast - tFirst) / 1000), setup: (tFirst - t0) / 1000, seconds: (performance.now() - t0) / 1000, r };
}

async function measure(label: string, model: OnnxModel, data: TokenData, batchSize: number): Promise<BenchResult> {
  await calibrate(model, { ...data, sequences: data.sequences.slice(0, 1), tokens: data.sequences[0].length }, { batchSize }); // warm-up
  // Plain and tapped runs alternate twice and each keeps its best: on a shared machine a burst of
  // other work then slows one run, not the ratio. Session creation and the first batch are
  // reported apart as setup_seconds.
  const plainRates: number[] = [];
  const runs: Awaited<ReturnType<typeof calibTokensPerSecond>>[] = [];
  for (let round = 0; round < 2; round++) {
    plainRates.push(await plainTokensPerSecond(model, data, batchSize));
    runs.push(await calibTokensPerSecond(model, data, batchSize));
  }
  const plain = Math.max(...plainRates);
  const best = runs.reduce((a, b) => (b.rate > a.rate ? b : a));
  const calib = best.rate;
  const r = best.r;
  return {
    name: "calib_overhead",
    model: label,
    shape: [data.sequences.length, Math.max(...data.sequences.map((s) => s.length))],
    seconds: sig(best.seconds),
    setup_seconds: sig(best.setup),
    tokens: data.tokens,
    taps: r.taps.length,
    plain_tokens_per_s: sig(plain),
    calib_tokens_per_s: sig(calib),
    throughput_ratio: sig(calib / plain, 3),
    peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

export const calibOverheadCase: BenchCase = {
  name: "calib_overhead",
  description: "calibration (taps + stats + Hessians) tokens/s vs plain inference",
  needsNative: false,
  async run(ctx) {
    const results: BenchResult[] = [];
    const stories = await OnnxModel.load(STORIES_MODEL);
    const data = loadModelData(stories, path.join(STORIES, "calib.jsonl"), { samples: ctx.quick ? 16 : 64, seqLen: 256 });
    ctx.log(`calib_overhead: stories260K, ${data.tokens} tokens`);
    results.push(await measure("stories260K", stories, data, 8));
    stories.close();

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "quantlens-bench-"));
    try {
      const hidden = ctx.quick ? 1024 : 2048;
      const file = path.join(dir, "model.onnx");
      await saveFixture(buildLlama({ hidden, ffn: Math.round((hidden * 8) / 3 / 64) * 64, layers: 2, heads: 16, kvHeads: 4, vocab: 4096 }), file);
      const model = await OnnxModel.load(file);
      // Random token ids: throughput does not depend on the text.
      let seed = 1;
      const sequences = Array.from({ length: ctx.quick ? 16 : 48 }, () =>
        Array.from({ length: 128 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) % 4095) + 1),
      );
      const synthetic: TokenData = { file, sequences, notes: [], tokens: sequences.length * 128 };
      ctx.log(`calib_overhead: generated hidden ${hidden}, ${synthetic.tokens} tokens`);
      results.push(await measure(`generated-h${hidden}`, model, synthetic, 4));
      model.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    return results;
  },
};
