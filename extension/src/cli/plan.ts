import path from "node:path";
import type { Command } from "commander";
import { OnnxModel } from "../engine/onnx/model";
import { indexLinears, requireLinears } from "../engine/onnx/linear";
import { loadModelData } from "../engine/calib/model-data";
import { buildPlans } from "../engine/analysis/plan-pipeline";
import { layerRows } from "../engine/analysis/analyze";
import { writePlan } from "../engine/quant/plan";
import { newReport, setSection, writeReport } from "../engine/report/write";
import { UsageError } from "../engine/errors";
import { num, progress, progressDone, table } from "./format";
import { withInterrupt } from "./interrupt";
import { checkOutput, externalFiles } from "./outputs";
import { addRunOptions, parseCount, parseRunFlags, type RunFlags } from "./options";
import { parseSettings } from "./analyze";
import { VERSION } from "./version";

interface PlanFlags extends RunFlags {
  data: string;
  budget: string;
  output?: string;
  eval?: string;
  report?: string;
  measure?: boolean;
  reference: string;
  evalSamples?: string;
  force?: boolean;
  json?: boolean;
}

export function registerPlan(program: Command): void {
  const cmd = program
    .command("plan")
    .description("Choose per-layer bits (2/3/4/8), group size and method (rtn/gptq) under an average bits-per-weight budget")
    .argument("<model>", "path to a .onnx file (never modified)")
    .requiredOption("--data <file>", "calibration data (Hessians, proxy losses)")
    .requiredOption("--budget <bits>", "average bits per weight, scale/zero overhead included (e.g. 3.5)")
    .option("-o, --output <plan>", "write the plan JSON (run it with quantize --plan)")
    .option("--eval <file>", "held-out data for the sensitivity measurement (default: the calibration data)")
    .option("--report <file>", "also write a report JSON with the plan and its Pareto curve")
    .option("--measure", "measure the plan's mean KL and that of uniform settings of about the same size")
    .option("--reference <m:bits:group>", "setting(s) at which each layer's sensitivity is measured, comma-separated", "rtn:3:0")
    .option("--eval-samples <n>", "sequences for the sensitivity measurement", "32")
    .option("--force", "replace the outputs if they exist")
    .option("--json", "print one JSON object on stdout");
  addRunOptions(cmd)
    .action(async (modelPath: string, f: PlanFlags) => {
      const budget = Number(f.budget);
      if (!/^\d+(\.\d+)?$/.test(f.budget.trim()) || !(budget > 0)) throw new UsageError(`--budget must be a positive number of bits per weight, not '${f.budget}'`);
      const opts = parseRunFlags(f);
      const reference = f.reference.split(",").flatMap((r) => {
        const [m, b, g] = r.split(":");
        if (!m || !b || g === undefined) throw new UsageError(`--reference must look like rtn:3:0 (method:bits:group), not '${r}'`);
        return parseSettings(m, b, g);
      });
      const model = await OnnxModel.load(modelPath);
      try {
        const inputs = [modelPath, f.data, f.eval, ...externalFiles(model)];
        if (f.output) checkOutput(f.output, { force: f.force, inputs });
        if (f.report) checkOutput(f.report, { force: f.force, inputs });
        const index = indexLinears(model);
        requireLinears(model, index);
        const data = loadModelData(model, f.data, opts.data);
        const evalData = f.eval ? loadModelData(model, f.eval, { samples: parseCount("--eval-samples", f.evalSamples), forEval: true }) : { ...data, sequences: data.sequences.slice(0, parseCount("--eval-samples", f.evalSamples) ?? 32) };
        for (const note of [...data.notes, ...(f.eval ? evalData.notes : [])]) process.stderr.write(`quantlens: note: ${note}\n`);
        const t0 = performance.now();
        const run = await withInterrupt((signal) =>
          buildPlans(model, {
            data,
            evalData,
            budgets: [budget],
            reference,
            percdamp: opts.percdamp,
            measure: !!f.measure,
            calib: opts.calib,
            signal,
            onProgress: (m) => progress(`plan: ${m}`),
          }),
        );
        const { plan, section } = run.plans[0];
        const written = f.output ? await writePlan(f.output, plan) : null;
        let reportFile: string | null = null;
        if (f.report) {
          const report = newReport({ file: model.file, blocks: index.blocks, linears: index.layers.length, linear_params: index.layers.reduce((s, l) => s + l.in * l.out, 0) }, `quantlens ${VERSION}`);
          setSection(report, "plan", section);
          report.layers = layerRows(index, report);
          reportFile = await writeReport(f.report, report);
        }
        progressDone();
        const seconds = (performance.now() - t0) / 1000;
        if (f.json) {
          process.stdout.write(
            `${JSON.stringify({
              budget: plan.budget,
              avg_bits: plan.avg_bits,
              layers: plan.layers,
              output: written,
              report: reportFile,
              predicted: section.predicted,
              pareto: section.pareto,
              comparisons: section.comparisons ?? null,
              sensitivity: run.sensitivity.map((s) => ({ layer: s.layer, kl_mean: s.kl_mean, proxy_loss: s.proxy, coefficient: s.coefficient, method: s.setting.method, bits: s.setting.bits, group: s.setting.group })),
              timings: run.timings,
              seconds,
            })}\n`,
          );
        } else {
          const counts = new Map<string, number>();
          for (const l of plan.layers) counts.set(`${l.method} W${l.bits} ${l.group ? `g${l.group}` : "per-ch"}`, (counts.get(`${l.method} W${l.bits} ${l.group ? `g${l.group}` : "per-ch"}`) ?? 0) + 1);
          process.stdout.write(
            [
              table(
                ["layer", "method", "bits", "group", "bits/weight", "predicted KL"],
                section.layers.map((l) => [l.name, l.method, l.bits, l.group || "per-ch", l.bits_per_weight.toFixed(3), num(l.predicted)]),
                ["left", "left", "right", "right", "right", "right"],
              ),
              `Plan for ${budget} bits per weight: ${plan.avg_bits.toFixed(3)} achieved, predicted KL ${num(section.predicted)} (${[...counts].map(([k, v]) => `${v}× ${k}`).join(", ")})`,
              ...(section.comparisons ?? []).map(
                (c) => `Measured: plan KL ${num(c.plan_kl_mean)} at ${c.plan_avg_bits.toFixed(3)} bits vs uniform ${c.uniform.method} W${c.uniform.bits} ${c.uniform.group ? `g${c.uniform.group}` : "per-ch"} KL ${num(c.uniform.kl_mean)} at ${c.uniform.avg_bits.toFixed(3)} bits`,
              ),
              ...(written ? [`Wrote ${written}; run it with: quantlens quantize ${path.basename(modelPath)} --plan ${path.basename(written)} --data ${path.basename(f.data)} -o OUT.onnx`] : []),
              ...(reportFile ? [`Wrote ${reportFile}`] : []),
              "",
            ].join("\n"),
          );
        }
      } finally {
        model.close();
      }
    });
}
