// The "Quantize…" quick picks as plain data (no `vscode`): which choices exist for the engine's
// methods and formats, and the recipe a set of answers makes.
import { METHODS, type QuantConfig } from "../engine/quant/config";
import { FORMATS, type ExportFormat } from "../engine/export/export";
import { UsageError } from "../engine/errors";
import { methodConfig, type QuantizeRecipe } from "./settings";

export interface Choice<T> {
  value: T;
  label: string;
  description?: string;
  detail?: string;
}

const METHOD_TEXT: Record<string, { label: string; detail: string }> = {
  gptq: { label: "GPTQ", detail: "Second-order rounding with the calibration Hessian (Frantar et al. 2022). Best default at 3–4 bits." },
  rtn: { label: "RTN", detail: "Round to nearest per group. No calibration needed (with data it reports the proxy loss)." },
  awq: { label: "AWQ", detail: "Activation-aware per-channel scaling searched on calibration data, then clipping (Lin et al. 2023)." },
  smoothquant: { label: "SmoothQuant", detail: "W8A8: migrates activation outliers into the weights, int8 weights and activations (Xiao et al. 2022)." },
  quip: { label: "QuIP", detail: "Incoherence processing (random orthogonal rotations) + LDLQ; strongest at 2 bits (Chee et al. 2023)." },
};

/** Methods this engine build supports, the configured one first. */
export function methodChoices(current: string): Choice<QuantConfig["method"]>[] {
  const list = [...METHODS].sort((a, b) => (a === current ? -1 : b === current ? 1 : 0));
  return list.map((m) => ({
    value: m,
    label: METHOD_TEXT[m]?.label ?? m,
    description: m === current ? "configured default" : undefined,
    detail: METHOD_TEXT[m]?.detail,
  }));
}

/** Bit widths for a method (SmoothQuant is W8A8 only). */
export function bitChoices(method: string, current: number): Choice<QuantConfig["bits"]>[] {
  const bits: QuantConfig["bits"][] = method === "smoothquant" ? [8] : [4, 3, 2, 8];
  const text: Record<number, string> = { 2: "extreme; expect a large loss without QuIP", 3: "aggressive", 4: "the usual sweet spot", 8: "near-lossless" };
  return bits.map((b) => ({ value: b, label: `${b}-bit`, description: `${text[b]}${b === current ? " · configured default" : ""}` }));
}

/**
 * Group sizes. `minIn` (the smallest layer input width) marks groups wider than some layers: the
 * engine quantizes those layers with one group per row (per output channel).
 */
export function groupChoices(current: number, minIn?: number): Choice<number>[] {
  return [32, 64, 128, 256, 0].map((g) => {
    const notes: string[] = [];
    if (g === current) notes.push("configured default");
    if (minIn !== undefined && g > minIn) notes.push(`layers with fewer than ${g} inputs: one scale per output channel`);
    return { value: g, label: g ? `group ${g}` : "per output channel", description: notes.join(" · ") || undefined };
  });
}

const FORMAT_TEXT: Record<ExportFormat, { label: string; detail: string }> = {
  matmulnbits: { label: "MatMulNBits", detail: "com.microsoft MatMulNBits (2/4/8 bits, block 16–256): small and fast in onnxruntime." },
  qdq: { label: "QDQ", detail: "DequantizeLinear → MatMul (int8 per channel): standard ONNX ops." },
  fake: { label: "Fake-quant", detail: "Dequantized float weights: any setting, for evaluating accuracy (no size saving)." },
};

export function formatChoices(current: string): Choice<ExportFormat>[] {
  const list = [...FORMATS].sort((a, b) => (a === current ? -1 : b === current ? 1 : 0));
  return list.map((f) => ({ value: f, label: FORMAT_TEXT[f].label, description: f === current ? "configured default" : undefined, detail: FORMAT_TEXT[f].detail }));
}

export interface RecipeAnswers {
  method: QuantConfig["method"];
  bits: QuantConfig["bits"];
  group: number;
  format: ExportFormat;
  /** "Auto plan": the average bits-per-weight budget (method/bits/group then come from the plan). */
  plan?: number;
}

/** The recipe from the answers (the rest of QuantConfig keeps the engine's defaults). */
export function recipeFromAnswers(a: RecipeAnswers): QuantizeRecipe {
  if (a.plan !== undefined) return { config: methodConfig("rtn", 4, 128), format: a.format, plan: { budget: parseBudget(String(a.plan)) } };
  return { config: methodConfig(a.method, a.bits, a.group), format: a.format };
}

/** The "auto plan" entry of the method pick. */
export const AUTO_PLAN_CHOICE: Choice<"plan"> = {
  value: "plan",
  label: "Auto plan under N bits…",
  detail: "Per-layer bits, group and method (RTN/GPTQ) chosen by measured sensitivity under an average bits-per-weight budget.",
};

/** The budget box's initial value: the preset's bits per weight (bits + (16 + bits)/group), two decimals. */
export function defaultBudget(bits: number, group: number): string {
  const g = group > 0 ? group : 4096;
  return (bits + (16 + bits) / g).toFixed(2);
}

/** Parse the "auto plan" budget box: average bits per weight, overhead included. */
export function parseBudget(text: string): number {
  const v = Number(text.trim());
  if (!text.trim() || !Number.isFinite(v) || v < 2 || v > 8.5) throw new UsageError(`the budget must be a number of average bits per weight between 2 and 8.5, not '${text}'`);
  return v;
}
