/**
 * index_model: what opening a model costs before any analysis — decode + validate
 * (`OnnxModel.load`), linear-layer discovery (`indexLinears`), and the full `inspect` pass that
 * also streams every weight through the moments kernel. The model is a generated Llama with
 * real LLM layer sizes in fp16 with external data (weights read by offset, converted to fp32).
 *
 * Reported: seconds for each stage, and the weight throughput of inspect (GB of stored weights
 * per second) against memcpy.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildLlama, saveFixture, type LlamaFixtureConfig } from "../../fixtures/generator";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";
import { inspectModel } from "../../../extension/src/engine/inspect";
import { sig, type BenchCase, type BenchResult } from "../harness";

export const indexModelCase: BenchCase = {
  name: "index_model",
  description: "load + index + inspect a generated Llama (fp16, external data)",
  needsNative: false,
  async run(ctx) {
    const config: LlamaFixtureConfig = ctx.quick
      ? { hidden: 1024, ffn: 2816, layers: 2, heads: 16, kvHeads: 4, vocab: 8192, weightDtype: "float16" }
      : { hidden: 4096, ffn: 11008, layers: 2, heads: 32, kvHeads: 8, vocab: 32000, weightDtype: "float16" };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "quantlens-bench-"));
    try {
      const file = path.join(dir, "model.onnx");
      ctx.log(`index_model: generating hidden ${config.hidden}, ffn ${config.ffn}, ${config.layers} layers, vocab ${config.vocab}`);
      await saveFixture(buildLlama(config), file, { externalData: true });
      const weightBytes = fs.statSync(`${file}.data`).size;
      const load = await ctx.time(async () => (await OnnxModel.load(file)).close(), { reps: 5 });
      const model = await OnnxModel.load(file);
      const index = await ctx.time(() => indexLinears(model), { reps: 5 });
      const layers = indexLinears(model).layers.length;
      model.close();
      const inspect = await ctx.time(() => inspectModel(file), { reps: ctx.quick ? 2 : 3 });
      const gbps = weightBytes / inspect.median / 1e9;
      const result: BenchResult = {
        name: "index_model",
        shape: [config.hidden, config.ffn, config.layers, config.vocab],
        seconds: sig(load.median + index.median),
        load_seconds: sig(load.median),
        index_seconds: sig(index.median),
        inspect_seconds: sig(inspect.median),
        linear_layers: layers,
        weight_bytes: weightBytes,
        gbps: sig(gbps),
        ratio_to_memcpy: sig(ctx.ratioToMemcpy(gbps, ctx.threads), 3),
      };
      return [result];
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
