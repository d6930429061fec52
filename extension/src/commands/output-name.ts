// Where a quantized model goes: next to the input, never over it, with a name that says what it
// is (model.gptq-w4g128.onnx). Pure: the file-system check is passed in.
import path from "node:path";
import type { QuantizeRecipe } from "./settings";

/** The report the exporter writes beside a model: OUT.onnx → OUT.quantlens.json. */
export function reportPathFor(modelPath: string): string {
  return modelPath.replace(/\.onnx$/i, "") + ".quantlens.json";
}

/** Every file a quantization writes for output `out`: the model, its external data (when large), the report. */
export function outputFiles(out: string): string[] {
  return [out, `${out}.data`, reportPathFor(out)];
}

/** "gptq-w4g128", "rtn-w8", "awq-w4g64-act8-qdq"; a plan: "plan-4.25b". */
export function recipeTag(r: QuantizeRecipe): string {
  const fmt = r.format === "matmulnbits" ? "" : `-${r.format}`;
  if (r.plan) return `plan-${r.plan.budget}b${fmt}`;
  const c = r.config;
  const group = c.group ? `g${c.group}` : "";
  const act = c.actBits ? `-act${c.actBits}` : "";
  const order = c.actOrder ? "-ao" : "";
  return `${c.method}-w${c.bits}${group}${act}${order}${fmt}`;
}

/** The preferred output path for `modelPath` quantized with tag `tag`: model.onnx → model.<tag>.onnx. */
export function preferredOutput(modelPath: string, tag: string): string {
  const dir = path.dirname(modelPath);
  const base = path.basename(modelPath).replace(/\.onnx$/i, "");
  return path.join(dir, `${base}.${tag}.onnx`);
}

/** Whether any file the output would write already exists (so the user must be asked). */
export function outputTaken(out: string, exists: (p: string) => boolean): boolean {
  return outputFiles(out).some(exists);
}

/**
 * The first free variant of `preferred`: model.gptq-w4g128.onnx, then model.gptq-w4g128-2.onnx,
 * -3, … A name is free when none of its files exist; `avoid` (the input model) is never returned.
 */
export function freeOutput(preferred: string, exists: (p: string) => boolean, avoid?: string): string {
  const stem = preferred.replace(/\.onnx$/i, "");
  const same = (a: string, b: string) => path.resolve(a) === path.resolve(b);
  for (let i = 1; i < 10_000; i++) {
    const candidate = i === 1 ? `${stem}.onnx` : `${stem}-${i}.onnx`;
    if (avoid && same(candidate, avoid)) continue;
    if (!outputTaken(candidate, exists)) return candidate;
  }
  throw new Error(`no free output name next to ${preferred}`);
}
