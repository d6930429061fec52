// The heatmap panel's "tokens × channels" request: one calibration sequence of the report's
// calibration data through the report's model, one activation tapped. Runs the model (the glue
// checks workspace trust first). No `vscode` here.
import fs from "node:fs";
import { OnnxModel } from "../engine/onnx/model";
import { loadModelData } from "../engine/calib/model-data";
import { tokenHeatmap } from "../engine/analysis/activation-scan";
import type { ExecutionProvider } from "../engine/calib/session";
import type { QuantLensReport } from "../engine/report/schema";
import { UsageError } from "../engine/errors";
import type { TokenHeatmapResult } from "../protocol/heatmap";
import { tokenHeatmapToResult } from "./report-to-panels";

export async function tokenHeatmapForReport(
  report: QuantLensReport,
  tensor: string,
  sample: number,
  opts: { samples: number; executionProvider?: ExecutionProvider; threads?: number },
): Promise<TokenHeatmapResult> {
  const calib = report.calibration?.data;
  if (!calib || !fs.existsSync(calib)) throw new UsageError(`the report's calibration data ${calib ? `(${calib}) is not there any more` : "is not recorded"}`);
  if (!report.activations?.some((a) => a.tensor === tensor)) throw new UsageError(`'${tensor}' is not an activation of this report`);
  const model = await OnnxModel.load(report.model.file);
  try {
    // The same documents, in the same order, as the calibration the report describes.
    const data = loadModelData(model, calib, { samples: Math.max(opts.samples, sample + 1) });
    const t = await tokenHeatmap(model, data, tensor, sample, { executionProvider: opts.executionProvider, threads: opts.threads });
    return tokenHeatmapToResult(t);
  } finally {
    model.close();
  }
}
