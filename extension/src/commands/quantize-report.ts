// The report the one-click Quantize leaves beside its output: a full `quantlens-report` (so the
// report panels all have data) = the source model's analysis + a `quantization` section for what
// was just written. The analysis is reused when a fresh one sits beside the source model, run
// here (with the same calibration data) when the model is small enough for that to take seconds,
// and otherwise left out with a note pointing at Analyze. No `vscode` here.
import fs from "node:fs";
import { OnnxModel } from "../engine/onnx/model";
import { evaluate } from "../engine/eval/eval";
import { indexLinears } from "../engine/onnx/linear";
import type { TokenData } from "../engine/calib/data";
import type { ExecutionProvider } from "../engine/calib/session";
import { analyzeModel, layerRows } from "../engine/analysis/analyze";
import type { Setting } from "../engine/analysis/fake-quant";
import type { QuantizedModel } from "../engine/quant/quantize";
import type { ExportResult } from "../engine/export/export";
import { newReport, setSection, writeReport } from "../engine/report/write";
import { validateReport } from "../engine/report/validate";
import { REPORT_FORMAT, type PlanSection, type QuantizationSection, type QuantLensReport } from "../engine/report/schema";
import { VERSION } from "../cli/version";
import { bitsPerWeight } from "../protocol/bits";
import { reportPathFor } from "./output-name";

/** Above this many linear weights the one-click Quantize does not run the full analysis itself. */
export const AUTO_ANALYZE_MAX_PARAMS = 100_000_000;
/**
 * Held-out data the one-click report measures sensitivity on: 8 sequences of up to 128 tokens.
 * Every layer and role is one fake-quantized pass over them (42 passes for stories260K), so this
 * keeps the one click at seconds; "Analyze" with an eval file measures on more.
 */
export const SENSITIVITY_SEQUENCES = 8;
export const SENSITIVITY_SEQ_LEN = 128;
/**
 * Calibration sequences the one-click report's error propagation runs (fp and quantized, every
 * linear output tapped): 4 (≈1,400 stories260K tokens) give per-layer SQNR to a few tenths of a
 * dB; "Analyze" uses 16.
 */
export const ONE_CLICK_PROPAGATION_SAMPLES = 4;

export interface QuantizeReportInput {
  model: OnnxModel;
  q: QuantizedModel;
  exported: ExportResult;
  format: string;
  /** Calibration data (as used by the quantization) and held-out data for sensitivity, if any. */
  data: TokenData | undefined;
  heldOut: TokenData | undefined;
  calib: { executionProvider?: ExecutionProvider; threads?: number; maxMemory?: number };
  seconds: number;
  /** The auto plan the quantization followed, if any (it becomes the report's plan section). */
  plan?: PlanSection;
  /** Sequences for error propagation (default ONE_CLICK_PROPAGATION_SAMPLES). */
  propagationSamples?: number;
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
}

/** A fresh analysis report of `modelFile` beside it (newer than the model), else null. */
export function reusableAnalysis(modelFile: string): QuantLensReport | null {
  const file = reportPathFor(modelFile);
  try {
    if (fs.statSync(file).mtimeMs < fs.statSync(modelFile).mtimeMs) return null;
    const value = JSON.parse(fs.readFileSync(file, "utf8"));
    if (value?.format !== REPORT_FORMAT || value.quantization) return null;
    const r = validateReport(value, file);
    return r.model.file === modelFile ? r : null;
  } catch {
    return null;
  }
}

/** The `quantization` section for a quantize run (normalised proxy losses, schema size accounting). */
export function quantizationSection(q: QuantizedModel, exported: ExportResult, format: string, seconds: number, plan?: PlanSection): QuantizationSection {
  let weighted = 0;
  let params = 0;
  for (const lq of q.layers) {
    const n = lq.layer.in * lq.layer.out;
    weighted += bitsPerWeight(lq.bits, lq.group, lq.layer.in) * n;
    params += n;
  }
  const norm = (lq: QuantizedModel["layers"][number], x: number | null) => (x === null || lq.proxyLoss === null || lq.relProxyLoss === null || lq.proxyLoss === 0 ? null : (x * lq.relProxyLoss) / lq.proxyLoss);
  // An auto plan mixes settings: the section names the plan; its layers say what each got.
  const bitsUsed = q.layers.map((l) => l.bits);
  return {
    method: plan ? "plan" : q.config.method,
    bits: plan ? Math.max(0, ...bitsUsed) : q.config.bits,
    group: plan ? 0 : q.config.group,
    format,
    output: exported.output,
    seconds,
    avg_bits: params ? weighted / params : 0,
    plan: plan ? `auto plan, budget ${plan.plan.budget} bits per weight` : null,
    layers: q.layers.map((lq) => ({
      name: lq.layer.name,
      method: lq.method,
      bits: lq.bits,
      group: lq.group,
      proxy_loss: lq.relProxyLoss,
      proxy_loss_rtn: norm(lq, lq.proxyLossRtn),
      damp: lq.damp ?? null,
      dead_columns: lq.deadColumns ?? null,
      seconds: lq.seconds,
    })),
    kept: q.kept,
  };
}

/** Build and write the full report over the exporter's (same path). Returns the report written. */
export async function writeQuantizeReport(i: QuantizeReportInput): Promise<QuantLensReport> {
  const { model, q, exported } = i;
  const index = indexLinears(model);
  const linearParams = index.layers.reduce((s, l) => s + l.in * l.out, 0);
  let report = reusableAnalysis(model.file);
  const notes: string[] = [];
  if (report) {
    notes.push(`Analysis sections from ${reportPathFor(model.file)} (written ${report.created}).`);
    report.created = new Date().toISOString();
  } else if (i.data && linearParams <= AUTO_ANALYZE_MAX_PARAMS) {
    // The same setting for error propagation and sensitivity as the quantization (RTN/GPTQ; the
    // other methods' layers are measured at RTN with their bits and group).
    const c = q.config;
    const setting: Setting = { method: c.method === "gptq" ? "gptq" : "rtn", bits: c.bits, group: c.group };
    report = await analyzeModel(model, {
      data: i.data,
      evalData: i.heldOut,
      propagation: setting,
      propagationSamples: i.propagationSamples ?? ONE_CLICK_PROPAGATION_SAMPLES,
      sensitivity: [setting],
      calib: i.calib,
      signal: i.signal,
      generator: `quantlens ${VERSION}`,
      onProgress: i.onProgress,
    });
    if (!i.heldOut) notes.push("No held-out data (an eval* file next to the model, or calibration documents beyond quantlens.samples): sensitivity was not measured.");
  } else {
    report = newReport({ file: model.file, blocks: index.blocks, linears: index.layers.length, linear_params: linearParams }, `quantlens ${VERSION}`);
    notes.push(
      i.data
        ? `The model has ${linearParams.toLocaleString("en-US")} linear weights: run “QuantLens: Analyze” on it for the activation, Hessian and sensitivity panels.`
        : "Quantized without calibration data: run “QuantLens: Analyze” with calibration data for the activation, Hessian and sensitivity panels.",
    );
  }
  const section = quantizationSection(q, exported, i.format, i.seconds, i.plan);
  if (i.heldOut) {
    // fp vs this quantized model on the held-out tokens: what the overview and compare panels lead with.
    i.onProgress?.("fp vs quantized on held-out text");
    const quant = await OnnxModel.load(exported.output);
    try {
      const ev = await evaluate(model, quant, i.heldOut, { executionProvider: i.calib.executionProvider, threads: i.calib.threads, signal: i.signal });
      section.eval = { tokens: ev.tokens, kl_mean: ev.kl_mean, kl_p99: ev.kl_p99, kl_max: ev.kl_max, top1: ev.top1, ppl_fp: ev.ppl_fp, ppl_quant: ev.ppl_quant };
    } finally {
      quant.close();
    }
  }
  setSection(report, "quantization", section);
  // The plan of an analysis describes a suggestion, not this model: the quantization is what it
  // is. An auto plan the quantization followed is kept (the bits panel shows it and its curve).
  if (report.plan) {
    delete report.plan;
    report.sections = report.sections.filter((s) => s !== "plan");
  }
  if (i.plan) setSection(report, "plan", i.plan);
  report.layers = layerRows(index, report);
  if (!report.calibration && q.calibration && i.data) report.calibration = { data: i.data.file, tokens: q.calibration.tokens, sequences: i.data.sequences.length, seconds: q.calibration.seconds, provider: "" };
  report.notes.push(...notes, ...exported.notes);
  // Keep what the exporter recorded beyond the schema (smoothing vectors, activation scales).
  const extra = readExtras(exported.report);
  await writeReport(exported.report, Object.assign(report, extra));
  return report;
}

function readExtras(file: string): Record<string, unknown> {
  try {
    const legacy = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of ["smoothing", "act_quant"]) if (legacy[k] !== undefined) out[k] = legacy[k];
    return out;
  } catch {
    return {};
  }
}
