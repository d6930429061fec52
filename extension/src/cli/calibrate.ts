import fs from "node:fs";
import type { Command } from "commander";
import { OnnxModel } from "../engine/onnx/model";
import { loadModelData } from "../engine/calib/model-data";
import { calibrateToFile } from "../engine/calib/stats-file";
import { outlierChannels } from "../engine/analysis/outliers";
import { bytes, progress, progressDone } from "./format";
import { withInterrupt } from "./interrupt";
import { checkOutput, externalFiles } from "./outputs";
import { assertFiniteWeights, indexLinears, requireLinears } from "../engine/onnx/linear";
import { parseCount, parseEp, parseSize } from "./options";

interface CalibrateFlags {
  data: string;
  output: string;
  samples?: string;
  seqLen?: string;
  batchSize?: string;
  maxMemory?: string;
  threads?: string;
  ep: string;
  hessian: boolean;
  json?: boolean;
  force?: boolean;
}

export function registerCalibrate(program: Command): void {
  program
    .command("calibrate")
    .description("Run calibration data through the model and save per-channel activation statistics and Hessians")
    .argument("<model>", "path to a .onnx file")
    .requiredOption("--data <file>", "calibration data: .jsonl ({text} or {input_ids}), .json (id arrays) or .txt")
    .requiredOption("-o, --output <stats>", "stats file to write (safetensors)")
    .option("--samples <n>", "use at most N documents (default: all)")
    .option("--seq-len <l>", "truncate each document to L tokens (default: the model's context)")
    .option("--batch-size <b>", "sequences per onnxruntime run", "8")
    .option("--max-memory <size>", "memory budget for the statistics, e.g. 4G, 512M (default: half the machine)")
    .option("--threads <n>", "onnxruntime intra-op threads (default: all cores)")
    .option("--ep <provider>", "execution provider: auto, cpu or cuda", "auto")
    .option("--no-hessian", "skip the Hessians (statistics only)")
    .option("--json", "print one JSON object on stdout")
    .option("--force", "replace the stats file if it exists")
    .action(async (modelPath: string, flags: CalibrateFlags) => {
      const ep = parseEp(flags.ep);
      const model = await OnnxModel.load(modelPath);
      try {
        checkOutput(flags.output, { force: flags.force, inputs: [modelPath, flags.data, ...externalFiles(model)] });
        const index = indexLinears(model);
        requireLinears(model, index);
        assertFiniteWeights(model, index.layers);
        const data = loadModelData(model, flags.data, {
          samples: parseCount("--samples", flags.samples),
          seqLen: parseCount("--seq-len", flags.seqLen),
        });
        for (const note of data.notes) process.stderr.write(`quantlens: note: ${note}\n`);
        const result = await withInterrupt((signal) =>
          calibrateToFile(model, data, flags.output, {
            batchSize: parseCount("--batch-size", flags.batchSize),
            maxMemory: parseSize("--max-memory", flags.maxMemory),
            threads: parseCount("--threads", flags.threads),
            executionProvider: ep,
            hessian: flags.hessian,
            signal,
            onProgress: (p) =>
              progress(`calibrate: pass ${p.pass + 1}/${p.passes}, ${p.tokens}/${p.totalTokens} tokens`),
          }),
        );
        progressDone();
        const tensors = result.taps.map((r) => ({
          name: r.tap.tensor,
          channels: r.tap.channels,
          layers: r.tap.layers,
          roles: r.tap.roles,
          block: r.tap.block,
          hessian: flags.hessian,
          outlier_channels: outlierChannels(r.stats.absmax).map((o) => o.channel),
          absmax: Math.max(...r.stats.absmax),
        }));
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({ output: flags.output, tokens: result.tokens, sequences: result.sequences, seconds: result.seconds, passes: result.passes, provider: result.provider, notes: result.notes, tensors })}\n`,
          );
        } else {
          const lines = [
            `Calibrated ${result.tokens} tokens (${result.sequences} sequences) in ${result.seconds.toFixed(2)} s, ${result.passes} pass${result.passes > 1 ? "es" : ""} on ${result.provider}`,
            ...tensors.map(
              (t) =>
                `  ${t.name}  [${t.roles.join(",")}${t.block !== null ? ` @${t.block}` : ""}] ${t.channels} ch, absmax ${t.absmax.toPrecision(3)}` +
                (t.outlier_channels.length ? `, outlier channels ${t.outlier_channels.slice(0, 8).join(" ")}${t.outlier_channels.length > 8 ? " …" : ""}` : ""),
            ),
            `Wrote ${flags.output} (${bytes(fs.statSync(flags.output).size)})`,
          ];
          process.stdout.write(`${lines.join("\n")}\n`);
        }
      } finally {
        model.close();
      }
    });
}
