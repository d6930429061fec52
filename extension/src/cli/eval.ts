import path from "node:path";
import type { Command } from "commander";
import { OnnxModel } from "../engine/onnx/model";
import { loadModelData } from "../engine/calib/model-data";
import { evaluate } from "../engine/eval/eval";
import { progress, progressDone } from "./format";
import { withInterrupt } from "./interrupt";
import { parseCount, parseEp } from "./options";

interface EvalFlags {
  eval: string;
  samples?: string;
  threads?: string;
  ep: string;
  json?: boolean;
  perLayer?: boolean;
}

export function registerEval(program: Command): void {
  program
    .command("eval")
    .description("Compare a quantized model with its fp original: KL divergence, top-1 agreement, perplexity of both")
    .argument("<fp>", "the original .onnx model")
    .argument("<quant>", "the quantized .onnx model (or the same file: a plain perplexity run)")
    .requiredOption("--eval <file>", "held-out text: .json id arrays (BOS + story), .jsonl or .txt")
    .option("--samples <n>", "evaluate at most N sequences")
    .option("--threads <n>", "onnxruntime intra-op threads")
    .option("--ep <provider>", "execution provider: auto, cpu or cuda", "auto")
    .option("--per-layer", "also report each linear layer's output SQNR (fp vs quantized, same tokens)")
    .option("--json", "print one JSON object on stdout")
    .action(async (fpPath: string, quantPath: string, flags: EvalFlags) => {
      const ep = parseEp(flags.ep);
      const fp = await OnnxModel.load(fpPath);
      const same = path.resolve(fpPath) === path.resolve(quantPath);
      const quant = same ? null : await OnnxModel.load(quantPath);
      try {
        const data = loadModelData(fp, flags.eval, { samples: parseCount("--samples", flags.samples), forEval: true });
        for (const note of data.notes) process.stderr.write(`quantlens: note: ${note}\n`);
        const r = await withInterrupt((signal) =>
          evaluate(fp, quant, data, {
            executionProvider: ep,
            threads: parseCount("--threads", flags.threads),
            signal,
            perLayer: flags.perLayer ?? false,
            onProgress: (done, total) => progress(`eval: ${done}/${total} sequences`),
          }),
        );
        progressDone();
        if (flags.json) process.stdout.write(`${JSON.stringify(r)}\n`);
        else {
          process.stdout.write(
            [
              `${r.tokens} predicted tokens in ${r.sequences} sequences (${r.seconds.toFixed(1)} s, ${r.provider})`,
              `perplexity: fp ${r.ppl_fp.toFixed(4)}, quantized ${r.ppl_quant.toFixed(4)}`,
              `KL(fp‖quant) nats: mean ${r.kl_mean.toPrecision(4)}, p99 ${r.kl_p99.toPrecision(4)}, max ${r.kl_max.toPrecision(4)}`,
              `top-1 agreement: ${(100 * r.top1).toFixed(2)}%`,
              ...(r.layers ? ["per-layer output SQNR (dB; error introduced + carried in):", ...r.layers.map((l) => `  ${l.layer.padEnd(40)} ${l.role.padEnd(8)} ${l.sqnr_db === null ? "exact" : l.sqnr_db.toFixed(2)}`)] : []),
              "",
            ].join("\n"),
          );
        }
      } finally {
        fp.close();
        quant?.close();
      }
    });
}
