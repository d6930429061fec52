import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { BadDataError } from "../errors";
import { REPORT_FORMAT, REPORT_VERSION, type QuantLensReport, type ReportSection } from "./schema";
import { validateReport } from "./validate";

export { validateReport } from "./validate";

/** JSON has no NaN/Infinity: they become null (the schema's "no value"). */
function finiteOrNull(_key: string, value: unknown): unknown {
  return typeof value === "number" && !Number.isFinite(value) ? null : value;
}

/** The report as JSON text, checked against the schema first (a bad report is never written). */
export function reportJson(report: QuantLensReport): string {
  const text = JSON.stringify(report, finiteOrNull);
  validateReport(JSON.parse(text), "report (about to be written)");
  return text;
}

/** Write a report atomically: a temp file beside the target, then rename over it. */
export async function writeReport(file: string, report: QuantLensReport): Promise<string> {
  const text = reportJson(report);
  const out = path.resolve(file);
  const tmp = `${out}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  try {
    await fs.promises.writeFile(tmp, text);
    await fs.promises.rename(tmp, out);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  return out;
}

/** Read and validate a report file. */
export function readReport(file: string): QuantLensReport {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new BadDataError(file, `cannot read the report: ${(e as Error).message}`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new BadDataError(file, `not JSON: ${(e as Error).message}`, { cause: e });
  }
  return validateReport(value, file);
}

/** An empty report for `model` (sections are added as they are computed). */
export function newReport(model: QuantLensReport["model"], generator: string): QuantLensReport {
  return { format: REPORT_FORMAT, version: REPORT_VERSION, created: new Date().toISOString(), generator, model, sections: [], calibration: null, layers: [], notes: [] };
}

const ORDER: ReportSection[] = ["activations", "heatmap", "token_heatmaps", "persistence", "weights", "incoherence", "spectra", "proxy", "sensitivity", "propagation", "plan", "quantization"];

/** Set a section and keep `sections` in schema order. */
export function setSection<K extends ReportSection>(report: QuantLensReport, key: K, value: NonNullable<QuantLensReport[K]>): void {
  (report as unknown as Record<string, unknown>)[key] = value;
  const present = new Set([...report.sections, key]);
  report.sections = ORDER.filter((s) => present.has(s));
}
