// One quantization run as the extension drives it: load, calibrate + quantize, export next to the
// model, and on cancellation remove whatever it wrote. No `vscode` here: the glue supplies the
// AbortSignal, progress and log callbacks, and tests drive it directly.
import fs from "node:fs";
import path from "node:path";
import { spillFor, type Spill } from "../engine/spill";
import { OnnxModel } from "../engine/onnx/model";
import { indexLinears } from "../engine/onnx/linear";
import { loadModelData } from "../engine/calib/model-data";
import { quantizeModel } from "../engine/quant/quantize";
import { exportQuantized, type ExportResult } from "../engine/export/export";
import { CancelledError, UsageError } from "../engine/errors";
import type { ExecutionProvider } from "../engine/calib/session";
import { buildPlans } from "../engine/analysis/plan-pipeline";
import { layerPlan, type PlanFile } from "../engine/quant/plan";
import type { Bits, PlanSection } from "../engine/report/schema";
import type { TokenData } from "../engine/calib/data";
import { outputFiles } from "./output-name";
import { AUTO_ANALYZE_MAX_PARAMS, reusableAnalysis, SENSITIVITY_SEQ_LEN, SENSITIVITY_SEQUENCES, writeQuantizeReport } from "./quantize-report";
import { JobProgress, type ProgressStep } from "./job-progress";
import { describeRecipe, needsCalibration, type QuantizeRecipe } from "./settings";

export interface QuantizeJob {
  model: string;
  /** Output .onnx (a report goes beside it); the caller made sure it may be written. */
  out: string;
  recipe: QuantizeRecipe;
  /** Calibration data file, or null (RTN only). */
  data: string | null;
  /** Held-out data for the report's sensitivity (else calibration documents beyond `samples`). */
  evalData?: string | null;
  /**
   * The report beside the output: "full" (default) adds the source model's analysis
   * (quantize-report.ts) so every report panel has data; "quantization" keeps the exporter's.
   */
  report?: "full" | "quantization";
  samples: number;
  calib: { executionProvider?: ExecutionProvider; threads?: number; maxMemory?: number };
  signal?: AbortSignal;
  /** `fraction` in [0, 1] of the whole job when known. */
  onProgress?: (message: string, fraction?: number) => void;
  log?: (line: string) => void;
}

export interface QuantizeJobResult {
  output: string;
  report: string;
  layers: number;
  kept: number;
  /** Layers left in float and why. */
  keptLayers: { name: string; reason: string }[];
  seconds: number;
  /** Σ proxy loss and RTN's at the same settings (null without calibration). */
  proxyLoss: number | null;
  proxyLossRtn: number | null;
  notes: string[];
  exported: ExportResult;
}

export async function runQuantizeJob(job: QuantizeJob): Promise<QuantizeJobResult> {
  const log = job.log ?? (() => undefined);
  const progress = job.onProgress ?? (() => undefined);
  const { config, format } = job.recipe;
  if (!job.data && needsCalibration(config.method, !!job.recipe.plan)) {
    throw new UsageError(`${job.recipe.plan ? "An auto plan" : config.method.toUpperCase()} needs calibration data; choose a calibration file`);
  }
  const startedAt = Date.now();
  const t0 = performance.now();
  log(`Quantizing ${job.model} with ${describeRecipe(job.recipe)}${job.data ? `, calibration ${job.data} (${job.samples} samples)` : ""} → ${job.out}`);
  const show = (step: ProgressStep | undefined) => {
    if (step) progress(step.message, step.fraction);
  };
  progress("loading the model", 0);
  const model = await OnnxModel.load(job.model);
  // Large models: codes and packed weights wait in a scratch file beside the output (spill.ts).
  let spill: Spill | undefined;
  try {
    spill = spillFor(model.weightBytes, path.dirname(path.resolve(job.out)));
    const data = job.data ? loadModelData(model, job.data, { samples: job.samples }) : undefined;
    for (const note of data?.notes ?? []) log(`note: ${note}`);
    const index = indexLinears(model);
    let total = index.layers.filter((l) => config.includeLmHead || l.role !== "lm_head").length;
    const full = (job.report ?? "full") === "full";
    // The report's analysis runs here (quantize-report.ts) unless a fresh one is reused or the model is too big.
    const analyses = full && data && !reusableAnalysis(model.file) && index.layers.reduce((s, l) => s + l.in * l.out, 0) <= AUTO_ANALYZE_MAX_PARAMS;
    const floatLinears = index.layers.filter((l) => ["float32", "float16", "bfloat16"].includes(l.dtype));
    const jobShape = {
      analysisTaps: analyses ? new Set(floatLinears.map((l) => l.input)).size : 0,
      analysisLayers: analyses ? floatLinears.length : 0,
      sequences: data ? data.sequences.length : null,
      tokens: data ? data.tokens : null,
    };
    let plan: PlanFile | undefined;
    let planSection: PlanSection | undefined;
    if (job.recipe.plan && data) {
      // Proxy losses for every choice, measured sensitivities, then the knapsack (plan-pipeline.ts).
      progress(`planning under ${job.recipe.plan.budget} bits per weight`, 0.02);
      // Sensitivity is measured on held-out data (bounded: a few short sequences), not on all the calibration text.
      const run = await buildPlans(model, { data, evalData: heldOutData(model, job), budgets: [job.recipe.plan.budget], ...planGrid(format), calib: job.calib, signal: job.signal, onProgress: (m) => (log(`plan: ${m}`), progress(`plan: ${m}`)) });
      plan = run.plans[0].plan;
      planSection = run.plans[0].section;
      total = plan.layers.length;
      log(`plan: ${plan.layers.length} layers, ${plan.avg_bits.toFixed(3)} bits per weight on average (budget ${plan.budget})`);
    }
    const shape = new JobProgress({ ...jobShape, layers: total });
    // Calibration (when the method uses data) runs before the first layer is quantized.
    show(data && !plan ? shape.calibrating() : undefined);
    const q = await quantizeModel(model, plan ? { ...config, method: "rtn" } : config, {
      data,
      plan: plan ? layerPlan(plan, index.layers, "auto plan") : undefined,
      signal: job.signal,
      calib: job.calib,
      spill,
      onProgress: (m) => {
        // One "<method> <layer>" message per layer; calibration messages in between.
        log(m);
        show(shape.quantize(m));
      },
    });
    if (job.signal?.aborted) throw new CancelledError("quantization");
    show(shape.export(format, path.basename(job.out)));
    const exported = await exportQuantized(model, q, job.out, format, plan ? { plan } : {});
    // A cancel that arrived while writing still leaves nothing behind.
    if (job.signal?.aborted) throw new CancelledError("quantization");
    for (const n of exported.notes) log(`note: ${n}`);
    if (full) {
      progress(analyses ? "analysing the fp model for the report" : "writing the report", analyses ? 0.32 : 0.95);
      await writeQuantizeReport({
        model,
        q,
        exported,
        format,
        data,
        heldOut: heldOutData(model, job),
        calib: job.calib,
        seconds: (performance.now() - t0) / 1000,
        plan: planSection,
        signal: job.signal,
        onProgress: (m) => {
          log(`report: ${m}`);
          show(shape.analysis(m));
        },
      });
      if (job.signal?.aborted) throw new CancelledError("quantization");
    }
    const withLoss = q.layers.filter((l) => l.proxyLoss !== null);
    const result: QuantizeJobResult = {
      output: exported.output,
      report: exported.report,
      layers: q.layers.length,
      kept: q.kept.length,
      keptLayers: q.kept,
      seconds: (performance.now() - t0) / 1000,
      proxyLoss: withLoss.length ? withLoss.reduce((s, l) => s + (l.proxyLoss ?? 0), 0) : null,
      proxyLossRtn: withLoss.length ? withLoss.reduce((s, l) => s + (l.proxyLossRtn ?? 0), 0) : null,
      notes: exported.notes,
      exported,
    };
    log(
      `Quantized ${result.layers} layers (${result.kept} kept in float) in ${result.seconds.toFixed(2)} s` +
        (result.proxyLoss !== null ? `; proxy loss Σ ${result.proxyLoss.toPrecision(4)} (RTN ${result.proxyLossRtn!.toPrecision(4)})` : "") +
        `; wrote ${result.output} and ${result.report}`,
    );
    progress("done", 1);
    return result;
  } catch (e) {
    if (job.signal?.aborted || e instanceof CancelledError) {
      removeWritten(job.out, startedAt);
      throw e instanceof CancelledError ? e : new CancelledError("quantization");
    }
    throw e;
  } finally {
    spill?.close();
    model.close();
  }
}

/** The notification announcing a finished quantization (what was written, how good, what stayed float and why). */
export function quantizeSummary(r: Pick<QuantizeJobResult, "output" | "layers" | "seconds" | "proxyLoss" | "proxyLossRtn" | "kept" | "keptLayers" | "notes">, recipe: QuantizeRecipe): string {
  const parts = [`QuantLens: wrote ${path.basename(r.output)} — ${r.layers} layers ${describeRecipe(recipe)} in ${r.seconds.toFixed(1)} s`];
  // Against RTN only where the method is not RTN itself (100% says nothing).
  if (recipe.config.method !== "rtn" && r.proxyLoss !== null && r.proxyLossRtn) parts.push(`proxy loss ${((100 * r.proxyLoss) / r.proxyLossRtn).toFixed(0)}% of RTN's`);
  if (r.kept > 0) parts.push(`${r.kept} kept in float (see the report)`);
  parts.push(...r.notes);
  return parts.join("; ");
}

/**
 * The choices an auto plan may make for a format, so every layer is written in that format:
 * MatMulNBits runs 2/4/8 bits in blocks of 16–256 (no per-channel); QDQ writes every setting
 * (2–4 bits as blocked int4/uint4 at opset 21, 8-bit per channel or blocked) as fake-quant does.
 */
export function planGrid(format: string): { bits?: Bits[]; groups?: number[] } {
  if (format === "matmulnbits") return { bits: [2, 4, 8], groups: [32, 64, 128] };
  return {};
}

/**
 * Held-out sequences for the report's sensitivity: the eval file when given, else calibration
 * documents after the first `samples` (never the ones calibration used); undefined when none.
 */
function heldOutData(model: OnnxModel, job: QuantizeJob): TokenData | undefined {
  const seqLen = SENSITIVITY_SEQ_LEN + 1; // + 1: the last token is only a target
  if (job.evalData) return loadModelData(model, job.evalData, { forEval: true, samples: SENSITIVITY_SEQUENCES, seqLen });
  if (!job.data) return undefined;
  const all = loadModelData(model, job.data, { forEval: true, samples: job.samples + SENSITIVITY_SEQUENCES, seqLen });
  const sequences = all.sequences.slice(job.samples);
  if (!sequences.length) return undefined;
  return { file: all.file, sequences, notes: [], tokens: sequences.reduce((n, x) => n + x.length, 0) };
}

/** Remove the output files this run wrote (modified since it started); older files are left alone. */
function removeWritten(out: string, startedAt: number): void {
  for (const f of outputFiles(out)) {
    let st: fs.Stats;
    try {
      st = fs.statSync(f);
    } catch {
      continue;
    }
    // 1 s of slack for file systems with coarse timestamps.
    if (st.mtimeMs >= startedAt - 1000) fs.rmSync(f, { force: true });
  }
}
