import type { Command } from "commander";
import { OnnxModel } from "../engine/onnx/model";
import { indexLinears, requireLinears } from "../engine/onnx/linear";
import { loadModelData } from "../engine/calib/model-data";
import { analyzeModel } from "../engine/analysis/analyze";
import type { Setting } from "../engine/analysis/fake-quant";
import { decodeF32, type Bits, type QuantLensReport } from "../engine/report/schema";
import { writeReport } from "../engine/report/write";
import { UsageError } from "../engine/errors";
import { num, progress, progressDone, table } from "./format";
import { withInterrupt } from "./interrupt";
import { checkOutput, externalFiles } from "./outputs";
import { addRunOptions, parseCount, parseRunFlags, type RunFlags } from "./options";
import { VERSION } from "./version";

/** `--method rtn,gptq --bits 3,4 --group 128` → the settings grid. */
export function parseSettings(methods: string, bits: string, group: string): Setting[] {
  const ms = methods.split(",").map((m) => m.trim());
  for (const m of ms) if (m !== "rtn" && m !== "gptq") throw new UsageError(`--method must list rtn and/or gptq (comma-separated), not '${m}'`);
  const bs = bits.split(",").map((b) => b.trim());
  for (const b of bs) if (!["2", "3", "4", "8"].includes(b)) throw new UsageError(`--bits must list 2, 3, 4 or 8 (comma-separated), not '${b}'`);
  if (!/^\d+$/.test(group)) throw new UsageError(`--group must be 0 (per channel) or a positive integer, not '${group}'`);
  const out: Setting[] = [];
  for (const method of ms) for (const b of bs) out.push({ method: method as Setting["method"], bits: Number(b) as Bits, group: Number(group) });
  return out;
}

interface AnalyzeFlags extends RunFlags {
  data: string;
  output?: string;
  eval?: string;
  evalSamples?: string;
  method: string;
  bits: string;
  group: string;
  tokens?: string[];
  seed: string;
  rotation: string;
  rotationTries: string;
  force?: boolean;
  json?: boolean;
}

export function registerAnalyze(program: Command): void {
  const cmd = program
    .command("analyze")
    .description("Why does it lose accuracy? Outliers, incoherence, Hessian spectra, proxy losses, error propagation (and sensitivity with --eval)")
    .argument("<model>", "path to a .onnx file (never modified)")
    .requiredOption("--data <file>", "calibration data: .jsonl ({text} or {input_ids}), .json (id arrays) or .txt")
    .option("-o, --output <report>", "write the report JSON (what the QuantLens panels read)")
    .option("--eval <file>", "held-out data: adds measured sensitivity by role and by layer")
    .option("--eval-samples <n>", "held-out sequences for the sensitivity runs", "32")
    .option("--method <m>", "setting for error propagation and sensitivity: rtn or gptq", "rtn")
    .option("--bits <n>", "its bits: 2, 3, 4 or 8", "4")
    .option("--group <n>", "its group size (0 = per channel; groups ≥ a layer's inputs are per channel)", "128")
    .option("--tokens <tensor...>", "tensors to give a tokens × channels heatmap (default: the strongest outlier's)")
    .option("--seed <n>", "QuIP base seed for the rotation (as quantize --method quip)", "0")
    .option("--rotation <kind>", "QuIP rotation kind: kron, hadamard or auto", "kron")
    .option("--rotation-tries <n>", "QuIP draws of U and V per input tensor, the most incoherent kept (as quantize --method quip)", "16")
    .option("--force", "replace the report if it exists")
    .option("--json", "print one JSON object on stdout");
  addRunOptions(cmd)
    .action(async (modelPath: string, f: AnalyzeFlags) => {
      const opts = parseRunFlags(f);
      const [setting] = parseSettings(f.method, f.bits, f.group);
      if (!["kron", "hadamard", "auto"].includes(f.rotation)) throw new UsageError(`--rotation must be kron, hadamard or auto, not '${f.rotation}'`);
      if (!/^\d+$/.test(f.seed) || Number(f.seed) > 0xffffffff) throw new UsageError(`--seed must be an integer in [0, 2^32), not '${f.seed}'`);
      if (!/^\d+$/.test(f.rotationTries) || !(Number(f.rotationTries) >= 1 && Number(f.rotationTries) <= 256)) throw new UsageError(`--rotation-tries must be an integer in 1..256, not '${f.rotationTries}'`);
      const model = await OnnxModel.load(modelPath);
      try {
        if (f.output) checkOutput(f.output, { force: f.force, inputs: [modelPath, f.data, f.eval, ...externalFiles(model)] });
        requireLinears(model, indexLinears(model));
        const data = loadModelData(model, f.data, opts.data);
        const evalData = f.eval ? loadModelData(model, f.eval, { samples: parseCount("--eval-samples", f.evalSamples), forEval: true }) : undefined;
        for (const note of [...data.notes, ...(evalData?.notes ?? [])]) process.stderr.write(`quantlens: note: ${note}\n`);
        const t0 = performance.now();
        const report = await withInterrupt((signal) =>
          analyzeModel(model, {
            data,
            evalData,
            percdamp: opts.percdamp,
            quipSeed: Number(f.seed),
            quipRotation: f.rotation as "kron" | "hadamard" | "auto",
            quipRotationTries: Number(f.rotationTries),
            propagation: setting,
            sensitivity: [setting],
            tokenHeatmaps: f.tokens ?? "auto",
            calib: opts.calib,
            signal,
            onProgress: (m) => progress(`analyze: ${m}`),
            generator: `quantlens ${VERSION}`,
          }),
        );
        const written = f.output ? await writeReport(f.output, report) : null;
        progressDone();
        const seconds = (performance.now() - t0) / 1000;
        if (f.json) process.stdout.write(`${JSON.stringify(analyzeJson(report, written, seconds))}\n`);
        else process.stdout.write(analyzeText(report, written, seconds));
      } finally {
        model.close();
      }
    });
}

/** The `--json` object: DESIGN.md's keys (outliers, incoherence, spectra) and more. */
export function analyzeJson(r: QuantLensReport, report: string | null, seconds: number): Record<string, unknown> {
  return {
    report,
    seconds,
    tokens: r.calibration?.tokens ?? 0,
    outliers: (r.activations ?? []).map((a) => ({ tensor: a.tensor, kind: a.kind, block: a.block, channels: a.outliers.map((o) => o.channel), ratios: a.outliers.map((o) => o.ratio), tokens: a.outliers.map((o) => o.tokens) })),
    persistence: r.persistence ?? [],
    incoherence: (r.incoherence ?? []).map((i) => ({ layer: i.layer, mu_w: i.mu_w, mu_h: i.mu_h, mu_w_rotated: i.mu_w_rotated, mu_h_rotated: i.mu_h_rotated })),
    spectra: (r.spectra ?? []).map((s) => ({
      tensor: s.tensor,
      eigenvalues: Array.from(decodeF32(s.eigenvalues)),
      condition_number: s.condition_number,
      effective_rank: s.effective_rank,
      ldl_trace_ratio: s.ldl_trace_ratio,
      damp: s.damp,
    })),
    proxy: r.proxy?.rows ?? [],
    propagation: r.propagation ?? null,
    sensitivity: r.sensitivity?.rows ?? [],
    layers: r.layers,
    notes: r.notes,
  };
}

function analyzeText(r: QuantLensReport, report: string | null, seconds: number): string {
  const out: string[] = [];
  out.push(`Analysed ${r.model.linears} linear layers in ${seconds.toFixed(1)} s on ${r.calibration?.tokens ?? 0} calibration tokens`);
  const flagged = (r.activations ?? []).filter((a) => a.outliers.length);
  out.push(
    flagged.length
      ? table(
          ["activation", "block", "outlier channels (ratio to median absmax)"],
          flagged.map((a) => [a.tensor, a.block ?? "-", a.outliers.slice(0, 6).map((o) => `${o.channel} (${o.ratio.toFixed(1)}×)`).join(" ") + (a.outliers.length > 6 ? " …" : "")]),
        )
      : "No outlier channels (MAD rule) in any activation.",
  );
  for (const p of r.persistence ?? []) out.push(`channel ${p.channel} is an outlier in blocks ${p.blocks.join(", ")}`);
  out.push(
    table(
      ["layer", "μ_W", "μ_W rot", "μ_H", "μ_H rot", "proxy W4"],
      (r.incoherence ?? []).map((i) => [i.layer, num(i.mu_w), num(i.mu_w_rotated), num(i.mu_h), num(i.mu_h_rotated), num(r.layers.find((l) => l.name === i.layer)?.proxy_loss)]),
      ["left", "right", "right", "right", "right", "right"],
    ),
  );
  if (r.propagation) {
    out.push(`Error propagation (${r.propagation.method} W${r.propagation.bits}): residual-stream relative error after each block ${r.propagation.blocks.map((b) => b.rel_error.toFixed(3)).join(" → ")}; logits KL ${num(r.propagation.kl_mean)}`);
  }
  if (r.sensitivity) {
    const roles = r.sensitivity.rows.filter((x) => x.by === "role").sort((a, b) => a.rank - b.rank);
    out.push(`Sensitivity by role (mean KL): ${roles.map((x) => `${x.target} ${num(x.kl_mean)}`).join(", ")}`);
  }
  if (report) out.push(`Wrote ${report}`);
  out.push("");
  return out.join("\n");
}
