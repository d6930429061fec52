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
  let file: string | null = null;
  let report: unknown = null;
  try {
    const found = reportForModel(modelPath);
    if (found) ({ file, report } = found);
  } catch (e) {
    onReportProblem?.((e as Error).message);
  }
  // A quantized model (MatMulNBits) has few float linears left to index: the report written with
  // it (its quantization.output is this file) lists every layer.
  const r = report as { format?: string; layers?: TreeLayerInput[]; quantization?: { output?: string } } | null;
  if (r?.format === "quantlens-report" && Array.isArray(r.layers) && (samePath(r.quantization?.output, modelPath) || !layers.length)) {
    return buildModelTree(modelPath, r.layers.map((l) => ({ name: l.name, role: l.role, block: l.block, in: l.in, out: l.out, dtype: l.dtype })), report, file);
  }
  return buildModelTree(modelPath, layers, report, file);
}

function samePath(a: unknown, b: string): boolean {
  return typeof a === "string" && a !== "" && path.resolve(a) === path.resolve(b);
}

/**
 * The report that describes a model: the newest of the report beside it (`model.quantlens.json`)
 * and the reports in its folder whose source model (`model.file`) is this file — a quantization of
 * it (model.gptq-w4g128.quantlens.json) carries the fp model's whole analysis. From a quantization
 * of another output only the figures about the source model are kept (outliers, sensitivity, the
 * analyses); bits and proxy loss belong to the quantized model and are dropped. An unreadable
 * report beside the model throws (the file is named); unreadable others are skipped.
 */
export function reportForModel(modelPath: string): { file: string; report: unknown } | null {
  const beside = reportBeside(modelPath);
  let best: { file: string; mtime: number; value: unknown } | null = null;
  if (beside) best = { file: beside, mtime: fs.statSync(beside).mtimeMs, value: readJsonReport(beside) };
  const dir = path.dirname(modelPath);
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith(".quantlens.json"));
  } catch {
    names = [];
  }
  for (const n of names) {
    const file = path.join(dir, n);
    if (file === beside) continue;
    try {
      const mtime = fs.statSync(file).mtimeMs;
      if (best && mtime <= best.mtime) continue;
      const value = JSON.parse(fs.readFileSync(file, "utf8"));
      if (value?.format === "quantlens-report" && samePath(value.model?.file, modelPath) && Array.isArray(value.layers)) best = { file, mtime, value };
    } catch {
      continue;
    }
  }
  if (!best) return null;
  const v = best.value as { format?: string; layers?: Record<string, unknown>[]; quantization?: { output?: string } } | null;
  if (best.file !== beside && v?.format === "quantlens-report" && v.quantization && !samePath(v.quantization.output, modelPath) && Array.isArray(v.layers)) {
    const layers = v.layers.map((l) => ({ ...l, method: null, bits: null, group: null, proxy_loss: null }));
    const sections = Array.isArray((v as { sections?: unknown }).sections) ? ((v as { sections: string[] }).sections).filter((x) => x !== "quantization") : undefined;
    return { file: best.file, report: { ...v, layers, quantization: undefined, ...(sections ? { sections } : {}) } };
  }
  return { file: best.file, report: best.value };
}
