// Where the tree and the inspector get a model's layers and figures: the report beside the model
// (`model.quantlens.json`) when there is one, the model's own index otherwise. No `vscode` here.
import fs from "node:fs";
import path from "node:path";
import { BadDataError } from "../engine/errors";
import { indexLinears } from "../engine/onnx/linear";
import { OnnxModel } from "../engine/onnx/model";
import { reportPathFor } from "../commands/output-name";
import { buildModelTree, type ModelTree, type TreeLayerInput } from "./tree-model";

/** Parse a report file as JSON (either report shape); errors name the file. */
export function readJsonReport(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new BadDataError(file, `cannot read the report: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BadDataError(file, `not a QuantLens report (not JSON: ${(e as Error).message})`, { cause: e });
  }
}

/** The report beside a model, if it exists. */
export function reportBeside(modelPath: string): string | null {
  const file = reportPathFor(modelPath);
  return fs.existsSync(file) ? file : null;
}

/** The model's linear layers from its index (the proto is decoded; weights are not read). */
export async function indexedLayers(modelPath: string): Promise<TreeLayerInput[]> {
  const model = await OnnxModel.load(modelPath);
  try {
    return indexLinears(model).layers.map((l) => ({ name: l.name, role: l.role, block: l.block, in: l.in, out: l.out, dtype: l.dtype }));
  } finally {
    model.close();
  }
}

/**
 * The tree under a model. The layer list comes from the model itself (a report may be stale or
 * describe another file), except for a quantized model described by its own report; the figures
 * come from the report beside it. An unreadable
 * report is reported through `onReportProblem` and the tree shows the model without figures.
 */
export async function modelTree(modelPath: string, onReportProblem?: (message: string) => void): Promise<ModelTree> {
  const layers = await indexedLayers(modelPath);
  let file = reportBeside(modelPath);
  let report: unknown = null;
  if (file) {
    try {
      report = readJsonReport(file);
    } catch (e) {
      onReportProblem?.((e as Error).message);
    }
  } else {
    const sibling = analysisFromQuantization(modelPath);
    if (sibling) ({ file, report } = sibling);
  }
  // A quantized model (MatMulNBits) has few float linears left to index: the report written with
  // it (its quantization.output is this file) lists every layer.
  const r = report as { format?: string; layers?: TreeLayerInput[]; quantization?: { output?: string } } | null;
  if (r?.format === "quantlens-report" && Array.isArray(r.layers) && (r.quantization?.output === modelPath || !layers.length)) {
    return buildModelTree(modelPath, r.layers.map((l) => ({ name: l.name, role: l.role, block: l.block, in: l.in, out: l.out, dtype: l.dtype })), report, file);
  }
  return buildModelTree(modelPath, layers, report, file);
}

/**
 * No report beside an fp model, but a quantization of it beside it (model.gptq-w4g128.quantlens.json,
 * whose `model.file` is this model): its analysis describes this model too. Only the figures that
 * are about the fp model are kept (outliers, sensitivity); bits and proxy loss belong to the
 * quantized model. The newest such report wins.
 */
export function analysisFromQuantization(modelPath: string): { file: string; report: unknown } | null {
  const dir = path.dirname(modelPath);
  let best: { file: string; mtime: number; value: { layers: Record<string, unknown>[] } } | null = null;
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith(".quantlens.json"));
  } catch {
    return null;
  }
  for (const n of names) {
    const file = path.join(dir, n);
    try {
      const mtime = fs.statSync(file).mtimeMs;
      if (best && mtime <= best.mtime) continue;
      const value = JSON.parse(fs.readFileSync(file, "utf8"));
      if (value?.format === "quantlens-report" && value.model?.file === modelPath && Array.isArray(value.layers) && value.activations) best = { file, mtime, value };
    } catch {
      continue;
    }
  }
  if (!best) return null;
  const layers = best.value.layers.map((l) => ({ ...l, method: null, bits: null, group: null, proxy_loss: null }));
  return { file: best.file, report: { ...best.value, layers, quantization: undefined } };
}
