import type { Command } from "commander";
import { OnnxModel } from "../engine/onnx/model";
import { indexLinears, requireLinears } from "../engine/onnx/linear";
import { loadModelData } from "../engine/calib/model-data";
import { runSensitivity } from "../engine/analysis/sensitivity";
import { UsageError } from "../engine/errors";
import { num, progress, progressDone, table } from "./format";
import { withInterrupt } from "./interrupt";
import { addRunOptions, parseCount, parseRunFlags, type RunFlags } from "./options";
import { parseSettings } from "./analyze";

interface SensitivityFlags extends RunFlags {
  data: string;
  eval: string;
  by: string;
  method: string;
  bits: string;
  group: string;
  evalSamples?: string;
  json?: boolean;
}

export function registerSensitivity(program: Command): void {
  const cmd = program
    .command("sensitivity")
    .description("Quantize one role (all blocks) or one layer at a time and measure KL to fp and top-1 agreement on held-out tokens")
    .argument("<model>", "path to a .onnx file (never modified)")
    .requiredOption("--data <file>", "calibration data (Hessians for GPTQ)")
    .requiredOption("--eval <file>", "held-out data: .json id arrays (BOS + story), .jsonl or .txt")
    .option("--by <what>", "role or layer", "role")
    .option("--method <m>", "rtn, gptq or both (comma-separated)", "rtn,gptq")
    .option("--bits <n>", "bit widths, comma-separated (2, 3, 4, 8)", "3,4")
    .option("--group <n>", "inputs per scale (0 = per channel; groups ≥ a layer's inputs are per channel)", "128")
    .option("--eval-samples <n>", "held-out sequences to evaluate on", "64")
    .option("--json", "print one JSON object on stdout");
  addRunOptions(cmd)
    .action(async (modelPath: string, f: SensitivityFlags) => {
      if (f.by !== "role" && f.by !== "layer") throw new UsageError(`--by must be role or layer, not '${f.by}'`);
      const opts = parseRunFlags(f);
      const settings = parseSettings(f.method, f.bits, f.group);
      const model = await OnnxModel.load(modelPath);
      try {
        requireLinears(model, indexLinears(model));
        const data = loadModelData(model, f.data, opts.data);
        const evalData = loadModelData(model, f.eval, { samples: parseCount("--eval-samples", f.evalSamples), forEval: true });
        for (const note of [...data.notes, ...evalData.notes]) process.stderr.write(`quantlens: note: ${note}\n`);
        const t0 = performance.now();
        const s = await withInterrupt((signal) =>
          runSensitivity(model, {
            data,
            evalData,
            by: f.by as "role" | "layer",
            settings,
            percdamp: opts.percdamp,
            calib: opts.calib,
            signal,
            onProgress: (m) => progress(`sensitivity: ${m}`),
          }),
        );
        progressDone();
        const seconds = (performance.now() - t0) / 1000;
        const rows = s.rows.map((r) => ({ target: r.target, by: r.by, bits: r.bits, method: r.method, group: r.group, kl_mean: r.kl_mean, kl_p99: r.kl_p99, top1: r.top1, rank: r.rank, layers: r.layers, seconds: r.seconds }));
        if (f.json) {
          process.stdout.write(
            `${JSON.stringify({ rows, tokens: s.eval.tokens, sequences: s.eval.sequences, seconds, fp_seconds: s.fp_seconds, seconds_per_variant: s.seconds_per_variant, calibration_seconds: s.calibration_seconds })}\n`,
          );
        } else {
          const sorted = [...rows].sort((a, b) => a.method.localeCompare(b.method) || a.bits - b.bits || a.rank - b.rank);
          process.stdout.write(
            [
              table(
                ["rank", f.by, "method", "bits", "group", "mean KL", "p99 KL", "top-1"],
                sorted.map((r) => [r.rank, r.target, r.method, r.bits, r.group || "per-ch", num(r.kl_mean), num(r.kl_p99), `${(100 * r.top1).toFixed(2)}%`]),
                ["right", "left", "left", "right", "right", "right", "right", "right"],
              ),
              `${s.eval.tokens} held-out tokens; fp logits cached in ${s.fp_seconds.toFixed(2)} s, ${s.seconds_per_variant.toFixed(2)} s per variant, ${seconds.toFixed(1)} s in all`,
              "",
            ].join("\n"),
          );
        }
      } finally {
        model.close();
      }
    });
}
