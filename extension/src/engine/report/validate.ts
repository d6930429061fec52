import { BadDataError } from "../errors";
import { decodeF32, REPORT_FORMAT, REPORT_VERSION, type QuantLensReport, type ReportSection } from "./schema";

/**
 * Check that a parsed JSON value is a `quantlens-report` v1 (schema.ts). Errors name the file and
 * the field path (`layers[3].bits: expected a number or null, got "4"`). Structural: every
 * required key, its type, blob lengths against their stated shapes; not the numbers' meaning.
 */
export function validateReport(value: unknown, file = "report"): QuantLensReport {
  const v = new Checker(file);
  const r = v.obj(value, "");
  if (r.format !== REPORT_FORMAT) v.fail("format", `expected "${REPORT_FORMAT}", got ${show(r.format)}; is this a QuantLens report?`);
  if (r.version !== REPORT_VERSION) v.fail("version", `this QuantLens reads report version ${REPORT_VERSION}, the file is version ${show(r.version)}`);
  v.str(r.created, "created");
  v.str(r.generator, "generator");
  const m = v.obj(r.model, "model");
  v.str(m.file, "model.file");
  for (const k of ["blocks", "linears", "linear_params"]) v.int(m[k], `model.${k}`);
  const sections = v.arr(r.sections, "sections");
  sections.forEach((s, i) => v.oneOf(s, SECTIONS, `sections[${i}]`));
  for (const s of sections as ReportSection[]) if (r[s] === undefined) v.fail(`sections`, `lists '${s}' but the report has no '${s}' key`);
  if (r.calibration !== null) {
    const c = v.obj(r.calibration, "calibration");
    v.str(c.data, "calibration.data");
    v.int(c.tokens, "calibration.tokens");
    v.int(c.sequences, "calibration.sequences");
    v.num(c.seconds, "calibration.seconds");
  }
  v.arr(r.layers, "layers").forEach((x, i) => {
    const p = `layers[${i}]`;
    const l = v.obj(x, p);
    v.str(l.name, `${p}.name`);
    v.str(l.role, `${p}.role`);
    v.intOrNull(l.block, `${p}.block`);
    v.int(l.in, `${p}.in`);
    v.int(l.out, `${p}.out`);
    v.str(l.input, `${p}.input`);
    for (const k of ["bits", "group", "proxy_loss", "sensitivity", "mu_w", "mu_h"]) v.numOrNull(l[k], `${p}.${k}`);
    v.int(l.outlier_count, `${p}.outlier_count`);
  });
  if (r.activations !== undefined) {
    v.arr(r.activations, "activations").forEach((x, i) => {
      const p = `activations[${i}]`;
      const a = v.obj(x, p);
      v.str(a.tensor, `${p}.tensor`);
      const C = v.int(a.channels, `${p}.channels`);
      for (const k of ["absmax", "mean", "kurtosis"]) v.blob(a[k], `${p}.${k}`, C);
      v.arr(a.outliers, `${p}.outliers`).forEach((o, j) => {
        const q = v.obj(o, `${p}.outliers[${j}]`);
        const ch = v.int(q.channel, `${p}.outliers[${j}].channel`);
        if (ch >= C) v.fail(`${p}.outliers[${j}].channel`, `${ch} is not below channels ${C}`);
        v.num(q.ratio, `${p}.outliers[${j}].ratio`);
      });
    });
  }
  if (r.heatmap !== undefined) {
    const h = v.obj(r.heatmap, "heatmap");
    const rows = v.arr(h.rows, "heatmap.rows");
    const width = v.int(h.width, "heatmap.width");
    rows.forEach((x, i) => {
      const row = v.obj(x, `heatmap.rows[${i}]`);
      v.str(row.tensor, `heatmap.rows[${i}].tensor`);
      if (v.int(row.channels, `heatmap.rows[${i}].channels`) > width) v.fail(`heatmap.rows[${i}].channels`, `exceeds heatmap.width ${width}`);
    });
    v.blob(h.values, "heatmap.values", rows.length * width);
  }
  if (r.token_heatmaps !== undefined) {
    v.arr(r.token_heatmaps, "token_heatmaps").forEach((x, i) => {
      const p = `token_heatmaps[${i}]`;
      const t = v.obj(x, p);
      v.str(t.tensor, `${p}.tensor`);
      const n = v.int(t.tokens, `${p}.tokens`);
      v.blob(t.values, `${p}.values`, n * v.int(t.channels, `${p}.channels`));
      if (v.arr(t.token_ids, `${p}.token_ids`).length !== n) v.fail(`${p}.token_ids`, `has ${(t.token_ids as unknown[]).length} ids for ${n} tokens`);
    });
  }
  if (r.persistence !== undefined) {
    v.arr(r.persistence, "persistence").forEach((x, i) => {
      const o = v.obj(x, `persistence[${i}]`);
      v.int(o.channel, `persistence[${i}].channel`);
      v.arr(o.blocks, `persistence[${i}].blocks`).forEach((b, j) => v.int(b, `persistence[${i}].blocks[${j}]`));
    });
  }
  if (r.weights !== undefined) {
    v.arr(r.weights, "weights").forEach((x, i) => {
      const w = v.obj(x, `weights[${i}]`);
      v.str(w.layer, `weights[${i}].layer`);
      for (const k of ["absmax", "std", "kurtosis"]) v.num(w[k], `weights[${i}].${k}`);
      const len = v.blob(w.row_absmax, `weights[${i}].row_absmax`);
      v.blob(w.row_std, `weights[${i}].row_std`, len);
      v.blob(w.row_kurtosis, `weights[${i}].row_kurtosis`, len);
      if (w.col_absmax !== undefined) {
        const cols = v.blob(w.col_absmax, `weights[${i}].col_absmax`);
        const layer = Array.isArray(r.layers) ? (r.layers as { name?: unknown; in?: unknown }[]).find((l) => l && l.name === w.layer) : undefined;
        if (layer && typeof layer.in === "number" && cols !== layer.in) v.fail(`weights[${i}].col_absmax`, `${cols} values for layer ${String(w.layer)} with ${layer.in} inputs`);
      }
    });
  }
  if (r.incoherence !== undefined) {
    v.arr(r.incoherence, "incoherence").forEach((x, i) => {
      const p = `incoherence[${i}]`;
      const c = v.obj(x, p);
      v.str(c.layer, `${p}.layer`);
      v.num(c.mu_w, `${p}.mu_w`);
      v.num(c.mu_w_rotated, `${p}.mu_w_rotated`);
      v.numOrNull(c.mu_h, `${p}.mu_h`);
      v.numOrNull(c.mu_h_rotated, `${p}.mu_h_rotated`);
      v.hist(c.hist_before, `${p}.hist_before`);
      v.hist(c.hist_after, `${p}.hist_after`);
    });
  }
  if (r.spectra !== undefined) {
    v.arr(r.spectra, "spectra").forEach((x, i) => {
      const p = `spectra[${i}]`;
      const s = v.obj(x, p);
      v.str(s.tensor, `${p}.tensor`);
      v.blob(s.eigenvalues, `${p}.eigenvalues`, v.int(s.n, `${p}.n`));
      v.numOrNull(s.condition_number, `${p}.condition_number`);
      for (const k of ["trace", "effective_rank", "ldl_trace_ratio", "damp", "percdamp"]) v.num(s[k], `${p}.${k}`);
    });
  }
  if (r.proxy !== undefined) {
    const t = v.obj(r.proxy, "proxy");
    v.arr(t.rows, "proxy.rows").forEach((x, i) => {
      const row = v.obj(x, `proxy.rows[${i}]`);
      v.str(row.layer, `proxy.rows[${i}].layer`);
      v.str(row.method, `proxy.rows[${i}].method`);
      v.int(row.bits, `proxy.rows[${i}].bits`);
      v.int(row.group, `proxy.rows[${i}].group`);
      v.num(row.proxy_loss, `proxy.rows[${i}].proxy_loss`);
    });
  }
  if (r.sensitivity !== undefined) {
    const s = v.obj(r.sensitivity, "sensitivity");
    v.arr(s.rows, "sensitivity.rows").forEach((x, i) => {
      const p = `sensitivity.rows[${i}]`;
      const row = v.obj(x, p);
      v.str(row.target, `${p}.target`);
      v.oneOf(row.by, ["role", "layer"], `${p}.by`);
      v.int(row.bits, `${p}.bits`);
      v.num(row.kl_mean, `${p}.kl_mean`);
      v.num(row.top1, `${p}.top1`);
    });
  }
  if (r.propagation !== undefined) {
    const s = v.obj(r.propagation, "propagation");
    v.arr(s.layers, "propagation.layers").forEach((x, i) => {
      const row = v.obj(x, `propagation.layers[${i}]`);
      v.str(row.layer, `propagation.layers[${i}].layer`);
      v.numOrNull(row.sqnr_db, `propagation.layers[${i}].sqnr_db`);
    });
    v.arr(s.blocks, "propagation.blocks").forEach((x, i) => {
      const row = v.obj(x, `propagation.blocks[${i}]`);
      v.int(row.block, `propagation.blocks[${i}].block`);
      v.num(row.rel_error, `propagation.blocks[${i}].rel_error`);
    });
  }
  if (r.plan !== undefined) {
    const s = v.obj(r.plan, "plan");
    const plan = v.obj(s.plan, "plan.plan");
    if (plan.format !== "quantlens-plan") v.fail("plan.plan.format", `expected "quantlens-plan", got ${show(plan.format)}`);
    v.arr(plan.layers, "plan.plan.layers");
    v.arr(s.pareto, "plan.pareto").forEach((x, i) => {
      const pt = v.obj(x, `plan.pareto[${i}]`);
      v.num(pt.avg_bits, `plan.pareto[${i}].avg_bits`);
      v.num(pt.predicted, `plan.pareto[${i}].predicted`);
    });
  }
  if (r.quantization !== undefined) {
    const q = v.obj(r.quantization, "quantization");
    v.str(q.method, "quantization.method");
    v.arr(q.layers, "quantization.layers").forEach((x, i) => {
      const row = v.obj(x, `quantization.layers[${i}]`);
      v.str(row.name, `quantization.layers[${i}].name`);
      v.int(row.bits, `quantization.layers[${i}].bits`);
      v.int(row.group, `quantization.layers[${i}].group`);
      v.numOrNull(row.proxy_loss, `quantization.layers[${i}].proxy_loss`);
    });
  }
  v.arr(r.notes, "notes").forEach((n, i) => v.str(n, `notes[${i}]`));
  return value as QuantLensReport;
}

const SECTIONS: ReportSection[] = [
  "activations",
  "heatmap",
  "token_heatmaps",
  "persistence",
  "weights",
  "incoherence",
  "spectra",
  "proxy",
  "sensitivity",
  "propagation",
  "plan",
  "quantization",
];

function show(x: unknown): string {
  const s = JSON.stringify(x);
  return s === undefined ? "nothing" : s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

type Obj = Record<string, unknown>;

/** Field-path checks that throw BadDataError naming the file and field. */
export class Checker {
  constructor(readonly file: string) {}
  fail(path: string, detail: string): never {
    throw new BadDataError(this.file, `${path || "(top level)"}: ${detail}`);
  }
  obj(x: unknown, path: string): Obj {
    if (typeof x !== "object" || x === null || Array.isArray(x)) this.fail(path, `expected an object, got ${show(x)}`);
    return x as Obj;
  }
  arr(x: unknown, path: string): unknown[] {
    if (!Array.isArray(x)) this.fail(path, `expected an array, got ${show(x)}`);
    return x;
  }
  str(x: unknown, path: string): string {
    if (typeof x !== "string") this.fail(path, `expected a string, got ${show(x)}`);
    return x;
  }
  num(x: unknown, path: string): number {
    if (typeof x !== "number" || Number.isNaN(x)) this.fail(path, `expected a number, got ${show(x)}`);
    return x;
  }
  int(x: unknown, path: string): number {
    if (typeof x !== "number" || !Number.isInteger(x) || x < 0) this.fail(path, `expected a non-negative integer, got ${show(x)}`);
    return x;
  }
  numOrNull(x: unknown, path: string): number | null {
    if (x === null) return null;
    if (typeof x !== "number" || Number.isNaN(x)) this.fail(path, `expected a number or null, got ${show(x)}`);
    return x;
  }
  intOrNull(x: unknown, path: string): number | null {
    return x === null ? null : this.int(x, path);
  }
  oneOf<T>(x: unknown, allowed: readonly T[], path: string): T {
    if (!allowed.includes(x as T)) this.fail(path, `expected one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${show(x)}`);
    return x as T;
  }
  /** An F32Blob whose data decodes to `length` floats (when given); returns its length. */
  blob(x: unknown, path: string, length?: number): number {
    const b = this.obj(x, path);
    if (b.encoding !== "f32le-base64") this.fail(`${path}.encoding`, `expected "f32le-base64", got ${show(b.encoding)}`);
    const n = this.int(b.length, `${path}.length`);
    this.str(b.data, `${path}.data`);
    if (length !== undefined && n !== length) this.fail(`${path}.length`, `is ${n}, expected ${length} from the stated shape`);
    try {
      decodeF32(b as never);
    } catch (e) {
      this.fail(`${path}.data`, (e as Error).message);
    }
    return n;
  }
  hist(x: unknown, path: string): void {
    const h = this.obj(x, path);
    this.num(h.lo, `${path}.lo`);
    this.num(h.hi, `${path}.hi`);
    this.arr(h.counts, `${path}.counts`).forEach((c, i) => this.num(c, `${path}.counts[${i}]`));
  }
}
