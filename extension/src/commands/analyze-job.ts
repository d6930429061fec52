// One "Analyze" run as the extension drives it: every analysis (engine/analysis/analyze.ts) on
// the calibration data, sensitivity when held-out data is found, a bit plan at the preset's size
// from what was measured, and the report written beside the model (model.quantlens.json). Nothing
// is written when cancelled. No `vscode` here.
import { OnnxModel } from "../engine/onnx/model";
import { indexLinears } from "../engine/onnx/linear";
import { loadModelData } from "../engine/calib/model-data";
import { analyzeModel, layerRows } from "../engine/analysis/analyze";
import { bitsPerWeight } from "../engine/analysis/fake-quant";
import { setSection, writeReport } from "../engine/report/write";
import type { QuantLensReport } from "../engine/report/schema";
import type { Bits } from "../engine/report/schema";
import { CancelledError } from "../engine/errors";
import type { ExecutionProvider } from "../engine/calib/session";
import { VERSION } from "../cli/version";
import { canReplan, planSectionFor } from "../views/replan";
import { JobProgress } from "./job-progress";
import { reportPathFor } from "./output-name";

export interface AnalyzeJob {
  model: string;
  data: string;
  /** Held-out data for sensitivity (by role and by layer); null = skip it. */
  evalData: string | null;
  samples: number;
  /** Preset bits/group: the bit plan is made at its average bits per weight. */
  preset: { bits: number; group: number };
  calib: { executionProvider?: ExecutionProvider; threads?: number; maxMemory?: number };
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
  log?: (line: string) => void;
}

export interface AnalyzeJobResult {
  report: string;
  seconds: number;
  sections: QuantLensReport["sections"];
  notes: string[];
}

/** Average bits per weight of uniform `bits`/`group` over the float layers (lm_head aside), overhead included. */
export function presetBudget(layers: { in: number; out: number; role: string }[], bits: number, group: number): number {
  let bitsTotal = 0;
  let params = 0;
  for (const l of layers) {
    if (l.role === "lm_head") continue;
    bitsTotal += bitsPerWeight(bits as Bits, group, l.in) * l.in * l.out;
    params += l.in * l.out;
  }
  // Two decimals, rounded up: the uniform preset itself must fit the budget.
  return params ? Math.ceil((bitsTotal / params) * 100 - 1e-9) / 100 : bits;
}

export async function runAnalyzeJob(job: AnalyzeJob): Promise<AnalyzeJobResult> {
  const log = job.log ?? (() => undefined);
  const t0 = performance.now();
  log(`Analyzing ${job.model} with ${job.data}${job.evalData ? ` (sensitivity on ${job.evalData})` : " (no held-out data: no sensitivity)"}`);
  const model = await OnnxModel.load(job.model);
  try {
    const data = loadModelData(model, job.data, { samples: job.samples });
    const evalData = job.evalData ? loadModelData(model, job.evalData, { forEval: true }) : undefined;
    for (const note of [...data.notes, ...(evalData?.notes ?? [])]) log(`note: ${note}`);
    // The notification says what is happening ("analysing: sensitivity 3/42 (…)"); the log keeps the engine's lines.
    const floats = indexLinears(model).layers.filter((l) => ["float32", "float16", "bfloat16"].includes(l.dtype));
    const narrator = new JobProgress({ layers: 0, analysisTaps: new Set(floats.map((l) => l.input)).size, analysisLayers: floats.length, sequences: data.sequences.length, tokens: data.tokens });
    const report = await analyzeModel(model, {
      data,
      evalData,
      calib: job.calib,
      signal: job.signal,
      generator: `quantlens ${VERSION}`,
      onProgress: (m) => {
        log(m);
        job.onProgress?.(narrator.analysis(m)?.message ?? m);
      },
    });
    if (job.signal?.aborted) throw new CancelledError("analysis");
    if (!report.plan && canReplan(report)) {
      const index = indexLinears(model);
      const budget = presetBudget(index.layers, job.preset.bits, job.preset.group);
      try {
        setSection(report, "plan", planSectionFor(report, budget));
        report.layers = layerRows(index, report);
        report.notes.push(`Bit plan at ${budget} bits per weight (the Quantize preset's size, W${job.preset.bits} g${job.preset.group || "per-channel"}); move the budget slider to re-plan.`);
      } catch (e) {
        report.notes.push(`No bit plan: ${(e as Error).message}`);
      }
    }
    const file = await writeReport(reportPathFor(job.model), report);
    const seconds = (performance.now() - t0) / 1000;
    log(`Analysis done in ${seconds.toFixed(1)} s: ${report.sections.join(", ")}; wrote ${file}`);
    return { report: file, seconds, sections: report.sections, notes: report.notes };
  } finally {
    model.close();
  }
}
