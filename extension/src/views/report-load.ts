// Reports for the panels, whatever produced them: a `quantlens-report` as it is (validated), the
// exporter's per-layer report (`format_version: 1`, written beside a quantized model) lifted into
// a `quantlens-report` with a `quantization` section, and a plain `inspect` (no report yet) as a
// report with the layer table only. No `vscode` here.
import fs from "node:fs";
import { newReport, setSection } from "../engine/report/write";
import { validateReport } from "../engine/report/validate";
import { REPORT_FORMAT, type LayerRow, type QuantizationSection, type QuantLensReport } from "../engine/report/schema";
import type { InspectResult } from "../engine/inspect";
import { BadDataError } from "../engine/errors";
import { VERSION } from "../cli/version";
import { indexedLayers, readJsonReport } from "./model-source";
import type { TreeLayerInput } from "./tree-model";
import { bitsPerWeight } from "../protocol/bits";

const GENERATOR = `quantlens ${VERSION}`;

/** Bits per weight with scale/zero overhead, as the bits panel counts it (protocol/bits.ts). */
export const bitsPerWeightOf = bitsPerWeight;

function blankRow(l: TreeLayerInput & { input?: string }): LayerRow {
  return {
    name: l.name,
    role: l.role as LayerRow["role"],
    block: l.block,
    in: l.in,
    out: l.out,
    dtype: l.dtype ?? "float32",
    input: l.input ?? "",
    method: null,
    bits: null,
    group: null,
    proxy_loss: null,
    outlier_count: 0,
    sensitivity: null,
    mu_w: null,
    mu_h: null,
  };
}

const NO_CALIBRATION_NOTE = "Layer table from the model alone: activation outliers, proxy loss, spectra and sensitivity need calibration data — run “QuantLens: Analyze”.";

/** A report holding only the layer table of an inspected model. */
export function inspectToReport(r: InspectResult, modelFile: string): QuantLensReport {
  const report = newReport({ file: modelFile, blocks: r.blocks, linears: r.linears.length, linear_params: r.totals.linear_params }, GENERATOR);
  report.layers = r.linears.map((l) => blankRow(l));
  report.notes.push(NO_CALIBRATION_NOTE);
  return report;
}

interface ExportLayer {
  name: string;
  role?: string;
  block?: number | null;
  in?: number;
  out?: number;
  method?: string;
  bits: number;
  group: number;
  proxy_loss?: number | null;
  rel_proxy_loss?: number | null;
  proxy_loss_rtn?: number | null;
  damp?: number;
  dead_columns?: number;
  seconds?: number;
  form?: string;
  note?: string;
}

/**
 * The exporter's report lifted into a `quantlens-report`. The layer table comes from the source
 * model when it is still there (every layer, with dtype and input), else from the report's own
 * rows. `proxy_loss` in LayerRow is the normalised loss (the exporter's `rel_proxy_loss`).
 */
export async function exportReportToReport(value: Record<string, unknown>, file: string): Promise<QuantLensReport> {
  const layersIn = Array.isArray(value.layers) ? (value.layers as ExportLayer[]) : null;
  if (!layersIn) throw new BadDataError(file, "not a QuantLens report: no 'layers' list");
  const cfg = (value.config ?? {}) as { method?: string; bits?: number; group?: number };
  const modelFile = typeof value.model === "string" ? value.model : file;
  let base: (TreeLayerInput & { input?: string })[];
  try {
    base = fs.existsSync(modelFile) ? await indexedLayers(modelFile) : [];
  } catch {
    base = [];
  }
  const byName = new Map(layersIn.map((l) => [l.name, l]));
  if (!base.length) {
    base = layersIn.map((l) => ({ name: l.name, role: l.role ?? "other", block: l.block ?? null, in: l.in ?? 0, out: l.out ?? 0 }));
  }
  const rows = base.map((b) => {
    const row = blankRow(b);
    const q = byName.get(b.name);
    if (q) {
      row.method = (q.method ?? cfg.method ?? null) as LayerRow["method"];
      row.bits = q.bits;
      row.group = q.group;
      row.proxy_loss = q.rel_proxy_loss ?? null;
    }
    return row;
  });
  const blocks = new Set(rows.map((r) => r.block).filter((b) => b !== null)).size;
  const report = newReport({ file: modelFile, blocks, linears: rows.length, linear_params: rows.reduce((s, r) => s + r.in * r.out, 0) }, GENERATOR);
  report.layers = rows;
  const calib = value.calibration as { tokens?: number; seconds?: number } | null | undefined;
  if (calib && typeof calib.tokens === "number") report.calibration = { data: "", tokens: calib.tokens, sequences: 0, seconds: calib.seconds ?? 0, provider: "" };
  let weighted = 0;
  let params = 0;
  for (const r of rows) {
    if (r.bits === null || r.group === null) continue;
    weighted += bitsPerWeightOf(r.bits, r.group, r.in) * r.in * r.out;
    params += r.in * r.out;
  }
  const section: QuantizationSection = {
    method: cfg.method ?? layersIn[0]?.method ?? "?",
    bits: cfg.bits ?? layersIn[0]?.bits ?? 0,
    group: cfg.group ?? layersIn[0]?.group ?? 0,
    format: typeof value.format === "string" ? value.format : "?",
    output: typeof value.output === "string" ? value.output : file,
    seconds: typeof value.seconds === "number" ? value.seconds : 0,
    avg_bits: params ? weighted / params : 0,
    plan: null,
    layers: layersIn.map((l) => ({
      name: l.name,
      method: l.method ?? cfg.method ?? "?",
      bits: l.bits,
      group: l.group,
      proxy_loss: l.rel_proxy_loss ?? null,
      proxy_loss_rtn: l.proxy_loss && l.rel_proxy_loss && l.proxy_loss_rtn != null ? (l.proxy_loss_rtn * l.rel_proxy_loss) / l.proxy_loss : null,
      damp: l.damp ?? null,
      dead_columns: l.dead_columns ?? null,
      seconds: l.seconds ?? 0,
    })),
    kept: Array.isArray(value.kept) ? (value.kept as { name: string; reason: string }[]) : [],
  };
  setSection(report, "quantization", section);
  if (Array.isArray(value.notes)) report.notes.push(...(value.notes as unknown[]).filter((n): n is string => typeof n === "string"));
  if (!report.calibration) report.notes.push(NO_CALIBRATION_NOTE);
  return validateReport(JSON.parse(JSON.stringify(report)), file);
}

/** Read any QuantLens report file as a `quantlens-report` (errors name the file and field). */
export async function loadReport(file: string): Promise<QuantLensReport> {
  const value = readJsonReport(file);
  if (value && typeof value === "object" && (value as { format?: unknown }).format === REPORT_FORMAT) return validateReport(value, file);
  if (value && typeof value === "object" && (value as { format_version?: unknown }).format_version === 1) return exportReportToReport(value as Record<string, unknown>, file);
  throw new BadDataError(file, `not a QuantLens report (expected "format": "${REPORT_FORMAT}")`);
}
