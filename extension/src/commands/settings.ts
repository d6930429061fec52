// The `quantlens.*` settings, read and validated without `vscode` (the glue passes a getter), and
// the mapping from those settings (the one-click preset) to the engine's QuantConfig.
import { DEFAULT_CONFIG, METHODS, type QuantConfig } from "../engine/quant/config";
import { FORMATS, type ExportFormat } from "../engine/export/export";
import type { ExecutionProvider } from "../engine/calib/session";
import { UsageError } from "../engine/errors";
import { parseSize } from "../cli/options";

export const SECTION = "quantlens";

export interface QuantLensSettings {
  method: QuantConfig["method"];
  bits: QuantConfig["bits"];
  /** Input channels per scale; 0 = one scale per output channel. */
  group: number;
  format: ExportFormat;
  /** Calibration data file ("" = look next to the model, then ask). */
  calibrationFile: string;
  /** Calibration documents to use. */
  samples: number;
  executionProvider: ExecutionProvider;
  /** onnxruntime intra-op threads (0 = onnxruntime's choice). */
  threads: number;
  /** Memory budget for calibration statistics in bytes (undefined = half the machine). */
  maxMemory: number | undefined;
  /** Settings the user set (the rest are defaults): method-specific defaults apply only to those not set. */
  explicit?: ReadonlySet<string>;
}

/** The defaults package.json declares; keep the two in step (a unit test compares them). */
export const DEFAULT_SETTINGS: QuantLensSettings = {
  method: DEFAULT_CONFIG.method,
  bits: DEFAULT_CONFIG.bits,
  group: DEFAULT_CONFIG.group,
  format: "matmulnbits",
  calibrationFile: "",
  samples: 128,
  executionProvider: "auto",
  threads: 0,
  maxMemory: undefined,
};

const BITS = [2, 3, 4, 8] as const;
const PROVIDERS: readonly ExecutionProvider[] = ["auto", "cpu", "cuda"];

/**
 * Read every setting through `get(key)` (`key` without the `quantlens.` prefix; undefined = not
 * set). A bad value is a UsageError that names each offending setting and what it accepts:
 * quantizing with something other than what the user asked for would be worse than stopping.
 */
export function readSettings(get: (key: string) => unknown): QuantLensSettings {
  const problems: string[] = [];
  const bad = (key: string, value: unknown, accepts: string) => problems.push(`${SECTION}.${key} must be ${accepts}, not ${JSON.stringify(value)}`);
  const s: QuantLensSettings = { ...DEFAULT_SETTINGS };

  const method = get("method");
  if (method !== undefined) {
    if (typeof method === "string" && (METHODS as readonly string[]).includes(method)) s.method = method as QuantLensSettings["method"];
    else bad("method", method, `one of ${METHODS.join(", ")}`);
  }
  const bits = get("bits");
  if (bits !== undefined) {
    if ((BITS as readonly unknown[]).includes(bits)) s.bits = bits as QuantLensSettings["bits"];
    else bad("bits", bits, "2, 3, 4 or 8");
  }
  const group = get("group");
  if (group !== undefined) {
    if (typeof group === "number" && Number.isInteger(group) && group >= 0) s.group = group;
    else bad("group", group, "0 (one scale per output channel) or a positive integer");
  }
  const format = get("format");
  if (format !== undefined) {
    if (typeof format === "string" && (FORMATS as readonly string[]).includes(format)) s.format = format as ExportFormat;
    else bad("format", format, `one of ${FORMATS.join(", ")}`);
  }
  const calib = get("calibrationFile");
  if (calib !== undefined) {
    if (typeof calib === "string") s.calibrationFile = calib.trim();
    else bad("calibrationFile", calib, "a file path");
  }
  const samples = get("samples");
  if (samples !== undefined) {
    if (typeof samples === "number" && Number.isInteger(samples) && samples >= 1) s.samples = samples;
    else bad("samples", samples, "a positive integer");
  }
  const ep = get("executionProvider");
  if (ep !== undefined) {
    if (typeof ep === "string" && (PROVIDERS as readonly string[]).includes(ep)) s.executionProvider = ep as ExecutionProvider;
    else bad("executionProvider", ep, `one of ${PROVIDERS.join(", ")}`);
  }
  const threads = get("threads");
  if (threads !== undefined) {
    if (typeof threads === "number" && Number.isInteger(threads) && threads >= 0) s.threads = threads;
    else bad("threads", threads, "0 (automatic) or a positive integer");
  }
  const maxMemory = get("maxMemory");
  if (maxMemory !== undefined && maxMemory !== "") {
    try {
      if (typeof maxMemory !== "string") throw new UsageError("not a string");
      const bytes = parseSize(`${SECTION}.maxMemory`, maxMemory);
      if (!bytes) throw new UsageError("zero");
      s.maxMemory = bytes;
    } catch {
      bad("maxMemory", maxMemory, 'a size such as "512M" or "4G" (empty = half the machine)');
    }
  }
  if (problems.length) throw new UsageError(`${problems.join("; ")}. Fix it in Settings → Extensions → QuantLens.`);
  s.explicit = new Set(["method", "bits", "group", "format", "calibrationFile", "samples", "executionProvider", "threads", "maxMemory"].filter((k) => get(k) !== undefined));
  return s;
}

/** What one quantization run needs: the engine's config and the export format. */
export interface QuantizeRecipe {
  config: QuantConfig;
  format: ExportFormat;
  /** "Auto plan": per-layer method/bits/group chosen under an average bits-per-weight budget. */
  plan?: { budget: number };
}

/**
 * The engine config for a method at bits/group. SmoothQuant is W8A8 with symmetric weights; its
 * weights default to 8-bit per output channel where the caller did not choose (`chosen`), as the
 * CLI does.
 */
export function methodConfig(method: QuantConfig["method"], bits: QuantConfig["bits"], group: number, chosen: { bits: boolean; group: boolean } = { bits: true, group: true }): QuantConfig {
  if (method === "smoothquant") {
    return { ...DEFAULT_CONFIG, method, bits: chosen.bits ? bits : 8, group: chosen.group ? group : 0, symmetric: true };
  }
  return { ...DEFAULT_CONFIG, method, bits, group };
}

/** The one-click preset: DEFAULT_CONFIG with the method/bits/group the settings choose. */
export function presetRecipe(s: QuantLensSettings): QuantizeRecipe {
  const chosen = { bits: s.explicit?.has("bits") ?? true, group: s.explicit?.has("group") ?? true };
  return { config: methodConfig(s.method, s.bits, s.group, chosen), format: s.format };
}

/** A short human name of a recipe: "GPTQ W4 g128 → MatMulNBits". */
export function describeRecipe(r: QuantizeRecipe): string {
  const fmt = { matmulnbits: "MatMulNBits", qdq: "QDQ", fake: "fake-quant" }[r.format] ?? r.format;
  if (r.plan) return `auto plan ≤ ${r.plan.budget} bits/weight → ${fmt}`;
  const name = { gptq: "GPTQ", rtn: "RTN", awq: "AWQ", smoothquant: "SmoothQuant", quip: "QuIP" }[r.config.method] ?? r.config.method;
  const act = r.config.actBits || r.config.method === "smoothquant" ? "A8" : "";
  return `${name} W${r.config.bits}${act} ${r.config.group ? `g${r.config.group}` : "per-channel"}${r.config.actOrder ? " act-order" : ""} → ${fmt}`;
}

/** Whether a method needs calibration data (all but RTN do; RTN uses it for its proxy loss only). */
export function needsCalibration(method: string, plan = false): boolean {
  return plan || method !== "rtn";
}

/** Engine calibration options from the settings. */
export function calibOptions(s: QuantLensSettings): { executionProvider: ExecutionProvider; threads?: number; maxMemory?: number } {
  return { executionProvider: s.executionProvider, ...(s.threads ? { threads: s.threads } : {}), ...(s.maxMemory ? { maxMemory: s.maxMemory } : {}) };
}
