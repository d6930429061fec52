import type { Command } from "commander";
import { OnnxModel } from "../engine/onnx/model";
import { loadModelData } from "../engine/calib/model-data";
import { quantizeModel } from "../engine/quant/quantize";
import { DEFAULT_CONFIG, type QuantConfig } from "../engine/quant/config";
import { exportQuantized, layerReport, type ExportFormat } from "../engine/export/export";
import { UsageError } from "../engine/errors";
import { smoothingReport } from "../engine/export/smoothing";
import { actQuantReport } from "../engine/export/act-qdq";
import type { QuantizedModel } from "../engine/quant/quantize";
import { indexLinears } from "../engine/onnx/linear";
import { layerPlan, readPlan } from "../engine/quant/plan";
import { progress, progressDone } from "./format";
import { withInterrupt } from "./interrupt";
import { checkOutput, externalFiles } from "./outputs";
import { parseCount, parseSize } from "./options";
import path from "node:path";
import { spillFor } from "../engine/spill";

interface QuantizeFlags {
  method: string;
  bits: string;
  group: string;
  sym?: boolean;
  actOrder?: boolean;
  actOrderGroups?: string;
  groupParams?: string;
  percdamp: string;
  format: string;
  data?: string;
  plan?: string;
  samples?: string;
  seqLen?: string;
  sequential?: boolean;
  includeLmHead?: boolean;
  clip?: boolean;
  maxMemory?: string;
  threads?: string;
  alpha?: string;
  awqLoss?: string;
  actBits?: string;
  output: string;
  json?: boolean;
  force?: boolean;
  seed?: string;
  rotation?: string;
  rotationTries?: string;
  refine?: string;
  rescale?: boolean;
  quipScale?: string;
  rho?: string;
}

export function registerQuantize(program: Command): void {
  program
    .command("quantize")
    .description("Quantize the linear layers (RTN, GPTQ, AWQ, SmoothQuant, QuIP) and export an ONNX model onnxruntime runs")
    .argument("<model>", "path to a .onnx file (never modified)")
    .option("--method <m>", "rtn, gptq, awq, smoothquant or quip", DEFAULT_CONFIG.method)
    .option("--bits <n>", "2, 3, 4 or 8", String(DEFAULT_CONFIG.bits))
    .option("--group <n>", "input channels per scale (32/64/128…; 0 = per output channel)", String(DEFAULT_CONFIG.group))
    .option("--sym", "symmetric (zero point fixed at 2^(bits-1))")
    .option("--act-order", "GPTQ: quantize inputs by decreasing Hessian diagonal (static groups)")
    .option("--act-order-groups <g>", "GPTQ --act-order with groups: static (default: runs of the original inputs) or permuted (runs of the act-order permutation, as gptq.py; exported behind a Gather of the input)")
    .option("--group-params <p>", "GPTQ groups: batch-start (default: scale/zero from the lazy batch's starting weights, as gptq.py) or updated (from the fully error-updated weights)")
    .option("--percdamp <x>", "GPTQ damping as a fraction of mean(diag H)", String(DEFAULT_CONFIG.percdamp))
    .option("--format <f>", "matmulnbits, qdq or fake", "matmulnbits")
    .option("--data <file>", "calibration data (required by GPTQ)")
    .option("--plan <file>", "per-layer method/bits/group from a plan (quantlens plan); replaces --method/--bits/--group; unlisted layers stay float")
    .option("--samples <n>", "calibration documents to use (default 128)")
    .option("--seq-len <l>", "truncate calibration documents to L tokens")
    .option("--sequential", "GPTQ/QuIP: calibrate each input tensor (q/k/v, o, gate/up, down; block after block) through every already-quantized layer")
    .option("--include-lm-head", "quantize lm_head too")
    .option("--alpha <a>", "SmoothQuant: migration strength in [0, 1] (default 0.5); AWQ: a fixed α of s = mean|x|^α instead of the grid search")
    .option("--awq-loss <l>", "AWQ: what the α search minimises for q/k/v and gate/up: layers (default: those layers' output error, exact through the Hessian) or module (the block's attention / MLP output, re-running the block per α, as AWQ's code)")
    .option("--act-bits <n>", "8: calibrated static int8 activations before every quantized layer (W8A8; smoothquant implies it)")
    .option("--clip", "clipping search — RTN: GPTQ's MSE grid per group; GPTQ/LDLQ: each row's range shrink chosen on that row's proxy loss after GPTQ (15 GPTQ runs per layer); QuIP: ρ, or with --quip-scale group as GPTQ")
    .option("--max-memory <size>", "memory budget for calibration statistics")
    .option("--threads <n>", "onnxruntime intra-op threads")
    .requiredOption("-o, --output <file>", "the quantized .onnx to write (a .quantlens.json report goes beside it)")
    .option("--json", "print one JSON object on stdout")
    .option("--force", "replace OUT if it exists")
    .option("--seed <n>", "QuIP: base seed of the random orthogonal U, V (default 0)")
    .option("--rotation <kind>", "QuIP: kron (the paper's, default), hadamard or auto")
    .option("--rotation-tries <n>", "QuIP: draws of U and V per input tensor, the most incoherent (least μ_H·μ_W) kept (default 16; 1 = one draw)")
    .option("--refine <n>", "QuIP: greedy coordinate-descent passes after LDLQ (default 0)")
    .option("--no-rescale", "QuIP: skip the diagonal rescaling D̃ = ⁴√(diag H / diag WᵀW)")
    .option("--quip-scale <s>", "QuIP: tensor (one scale ρ‖W‖_F/√(mn), the paper's; default) or group (--group/--sym scales, 0 = per row)")
    .option("--rho <x>", "QuIP: ρ of the per-tensor scale (default 2.4; --clip searches it)")
    .action(async (modelPath: string, f: QuantizeFlags, cmd: Command) => {
      // SmoothQuant is W8A8: unless given, its weights are 8-bit, per output channel, symmetric.
      if (f.method === "smoothquant") {
        if (cmd.getOptionValueSource("bits") === "default") f.bits = "8";
        if (cmd.getOptionValueSource("group") === "default") f.group = "0";
        if (f.sym === undefined) f.sym = true;
      }
      const bits = Number(f.bits);
      const group = Number(f.group);
      if (!/^\d+$/.test(f.group)) throw new UsageError(`--group must be 0 or a positive integer, not '${f.group}'`);
      const config: QuantConfig = {
        ...DEFAULT_CONFIG,
        method: f.method as QuantConfig["method"],
        bits: bits as QuantConfig["bits"],
        group,
        symmetric: !!f.sym,
        actOrder: !!f.actOrder,
        ...(f.actOrderGroups !== undefined ? { actOrderGroups: f.actOrderGroups as QuantConfig["actOrderGroups"] } : {}),
        ...(f.groupParams !== undefined ? { groupParams: f.groupParams as QuantConfig["groupParams"] } : {}),
        percdamp: Number(f.percdamp),
        sequential: !!f.sequential,
        includeLmHead: !!f.includeLmHead,
        clip: !!f.clip,
        ...(f.alpha !== undefined ? { alpha: parseAlpha(f.alpha) } : {}),
        ...(f.awqLoss !== undefined ? { awqLoss: f.awqLoss as QuantConfig["awqLoss"] } : {}),
        ...(f.actBits !== undefined ? { actBits: Number(f.actBits) as 8 } : {}),
        ...(f.seed !== undefined ? { quipSeed: parseQuipNumber("--seed", f.seed) } : {}),
        ...(f.rotation !== undefined ? { quipRotation: f.rotation as QuantConfig["quipRotation"] } : {}),
        ...(f.rotationTries !== undefined ? { quipRotationTries: parseQuipNumber("--rotation-tries", f.rotationTries) } : {}),
        ...(f.refine !== undefined ? { quipRefine: parseQuipNumber("--refine", f.refine) } : {}),
        ...(f.rescale === false ? { quipRescale: false } : {}),
        ...(f.quipScale !== undefined ? { quipScale: f.quipScale as QuantConfig["quipScale"] } : {}),
        ...(f.rho !== undefined ? { quipRho: parseQuipNumber("--rho", f.rho) } : {}),
      };
      const model = await OnnxModel.load(modelPath);
      try {
        checkOutput(f.output, {
          force: f.force,
          inputs: [modelPath, f.data, f.plan, ...externalFiles(model)],
          companions: [`${f.output.replace(/\.onnx$/i, "")}.quantlens.json`, `${f.output}.data`],
        });
        const data = f.data ? loadModelData(model, f.data, { samples: parseCount("--samples", f.samples) ?? 128, seqLen: parseCount("--seq-len", f.seqLen) }) : undefined;
        for (const note of data?.notes ?? []) process.stderr.write(`quantlens: note: ${note}\n`);
        // With a plan each layer's method/bits/group come from it; the base config only carries the rest.
        const plan = f.plan ? layerPlan(readPlan(f.plan), indexLinears(model).layers, f.plan) : undefined;
        if (plan) config.method = "rtn";
        const t0 = performance.now();
        const result = await withInterrupt(async (signal) => {
          const spill = spillFor(model.weightBytes, path.dirname(path.resolve(f.output)));
          try {
            const q = await quantizeModel(model, config, {
              data,
              plan,
              signal,
              spill,
              calib: { maxMemory: parseSize("--max-memory", f.maxMemory), threads: parseCount("--threads", f.threads) },
              onProgress: (m) => progress(`quantize: ${m}`),
            });
            return { q, exported: await exportQuantized(model, q, f.output, f.format as ExportFormat, {}, signal) };
          } finally {
            spill?.close();
          }
        });
        progressDone();
        const { q, exported } = result;
        const seconds = (performance.now() - t0) / 1000;
        for (const n of exported.notes) process.stderr.write(`quantlens: note: ${n}\n`);
        for (const l of q.layers) {
          if (l.dampRetries) process.stderr.write(`quantlens: note: ${l.layer.name}: H + λI did not factorize (singular Hessian: too few calibration tokens or dead inputs); damping raised ×10 ${l.dampRetries} time(s) to λ = ${l.damp?.toPrecision(3)}\n`);
        }
        const layers = q.layers.map((lq, i) => layerReport(lq, exported.layers[i].form, exported.layers[i].note));
        if (f.json) {
          process.stdout.write(`${JSON.stringify({ output: exported.output, report: exported.report, seconds, format: exported.format, layers, kept: q.kept, notes: exported.notes, ...(q.smoothing ? { smoothing: smoothingReport(q.smoothing) } : {}), ...(q.actQuant ? { act_quant: actQuantReport(q.actQuant) } : {}) })}\n`);
        } else {
          const total = q.layers.reduce((s, l) => s + (l.proxyLoss ?? 0), 0);
          const rtn = q.layers.reduce((s, l) => s + (l.proxyLossRtn ?? 0), 0);
          process.stdout.write(
            [
              `Quantized ${q.layers.length} layers (${config.method} W${config.bits} ${config.group ? `g${config.group}` : "per-channel"}${config.actOrder ? " act-order" : ""}) in ${seconds.toFixed(2)} s; ${q.kept.length} kept in float`,
              ...(q.layers[0]?.proxyLoss !== null ? [`proxy loss Σ tr((W−Q)H(W−Q)ᵀ): ${total.toPrecision(4)} (RTN at the same settings: ${rtn.toPrecision(4)})`] : []),
              ...smoothingSummary(q),
              `Wrote ${exported.output} (${exported.format}) and ${exported.report}`,
              "",
            ].join("\n"),
          );
        }
      } finally {
        model.close();
      }
    });
}

function parseQuipNumber(flag: string, v: string): number {
  const x = Number(v);
  if (v.trim() === "" || !Number.isFinite(x)) throw new UsageError(`${flag} must be a number, not '${v}'`);
  return x;
}

function parseAlpha(v: string): number {
  const a = Number(v);
  if (v.trim() === "" || !(a >= 0 && a <= 1)) throw new UsageError(`--alpha must be a number in [0, 1], not '${v}'`);
  return a;
}

/** Lines saying what AWQ/SmoothQuant smoothing and W8A8 activation quantization did. */
function smoothingSummary(q: QuantizedModel): string[] {
  const lines: string[] = [];
  if (q.smoothing?.length) {
    const count = (k: string) => q.smoothing!.filter((s) => s.fold.kind === k).length;
    lines.push(`smoothing on ${q.smoothing.length} inputs: ${count("norm")} folded into norms, ${count("linear")} into the previous linear, ${count("mul")} as an explicit Mul`);
  }
  if (q.actQuant?.length) lines.push(`activations: static int8 per tensor before ${q.actQuant.length} inputs (QuantizeLinear → DequantizeLinear)`);
  return lines;
}
