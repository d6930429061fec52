/**
 * Report → panel data (pure, host side): turns a `QuantLensReport` (engine/report/schema.ts,
 * snake_case, base64 F32 blobs) into the protocol's panel data (camelCase, ArrayBuffers ready to
 * post). No `vscode`, no I/O, so it is unit-tested in Node.
 */
import type {
  BitLayer,
  BitPlan,
  BitsData,
  CompareData,
  EvalSummary,
  HeatmapData,
  HeatmapRow,
  IncoherenceInfo,
  LayerInfo,
  OverviewData,
  ReportData,
  RoleName,
  SensitivityData,
  SensitivityEntry,
  SpectrumData,
  TokenHeatmapResult,
} from "../protocol";
import { bitsPerWeight } from "../protocol";
import {
  decodeF32,
  type F32Blob,
  type LayerRow,
  type PlanSection,
  type QuantLensReport,
  type SensitivityRow,
  type TokenHeatmap,
} from "../engine/report/schema";

export interface PanelOptions {
  /** The host can run the model on calibration data (tokens × channels on request). */
  canRequestTokens?: boolean;
  /** The host can re-run the bit allocation (the report has a proxy table). */
  canReplan?: boolean;
  /**
   * Per-input-channel max|W_ij| of a layer ([in]) when the report lacks `weights[].col_absmax`
   * (e.g. read from the model by the host); null when unknown.
   */
  weightColumns?: (layer: string) => Float32Array | null;
}

/** Budget slider step, in average bits per weight. */
export const BUDGET_STEP = 0.05;

const ANALYZE_HINT = "run “QuantLens: Analyze” (quantlens analyze MODEL --data FILE)";

export function reportToPanels(report: QuantLensReport, opts: PanelOptions = {}): ReportData {
  const overview = reportToOverview(report);
  const heatmap = reportToHeatmap(report, opts);
  const spectrum = reportToSpectrum(report);
  const bits = reportToBits(report, opts);
  const sensitivity = reportToSensitivity(report);
  const missing: ReportData["missing"] = {};
  if (!heatmap) missing.heatmap = `No activation statistics in this report: ${ANALYZE_HINT} with calibration data.`;
  if (!spectrum) missing.spectrum = `No Hessian spectra or incoherence in this report: ${ANALYZE_HINT} with calibration data.`;
  if (!bits) missing.bits = "No bit assignment in this report: quantize the model, or run “quantlens plan MODEL --data FILE --budget BITS”.";
  if (!sensitivity) missing.sensitivity = "No sensitivity or error propagation in this report: run “quantlens sensitivity MODEL --data FILE --eval FILE”.";
  return { overview, heatmap, spectrum, bits, sensitivity, missing };
}

export function reportToCompare(a: { label: string; report: QuantLensReport }, b: { label: string; report: QuantLensReport }): CompareData {
  const side = (s: { label: string; report: QuantLensReport }) => {
    const plan = bitPlanOf(s.report);
    return { label: s.label, overview: reportToOverview(s.report), sizeBytes: plan ? plan.sizeBytes : null };
  };
  return { a: side(a), b: side(b) };
}

function baseName(file: string): string {
  const parts = file.split(/[\\/]/);
  return parts[parts.length - 1] || file;
}

export function reportToOverview(r: QuantLensReport): OverviewData {
  const sqnr = new Map((r.propagation?.layers ?? []).map((l) => [l.layer, l.sqnr_db]));
  const layers: LayerInfo[] = r.layers.map((l) => ({
    name: l.name,
    role: l.role,
    block: l.block,
    in: l.in,
    out: l.out,
    dtype: l.dtype,
    input: l.input,
    method: l.method,
    bits: l.bits,
    group: l.group,
    proxyLoss: l.proxy_loss,
    // Without an activations section nothing was counted: unknown, not zero.
    outliers: r.activations ? l.outlier_count : null,
    sensitivity: l.sensitivity,
    muW: l.mu_w,
    muH: l.mu_h,
    sqnrDb: sqnr.get(l.name) ?? null,
  }));
  const q = r.quantization;
  const e = q?.eval;
  const evalSummary: EvalSummary | null = e
    ? { tokens: e.tokens, klMean: e.kl_mean, klP99: e.kl_p99, klMax: e.kl_max, top1: e.top1, pplFp: e.ppl_fp, pplQuant: e.ppl_quant }
    : null;
  return {
    model: {
      file: r.model.file,
      title: baseName(r.model.file),
      blocks: r.model.blocks,
      linears: r.model.linears,
      linearParams: r.model.linear_params,
      created: r.created,
      generator: r.generator,
      calibration: r.calibration ? { data: r.calibration.data, tokens: r.calibration.tokens, sequences: r.calibration.sequences } : null,
      notes: [...r.notes],
    },
    layers,
    quantization: q
      ? { method: q.method, bits: q.bits, group: q.group, format: q.format, output: q.output, avgBits: q.avg_bits, seconds: q.seconds }
      : null,
    eval: evalSummary,
  };
}

/** A blob's values as a fresh ArrayBuffer (exactly 4·length bytes). */
function f32Buffer(blob: F32Blob): ArrayBuffer {
  return decodeF32(blob).buffer as ArrayBuffer;
}

/**
 * Per-input-channel max_i |W_ij| of a layer: the report's `weights[].col_absmax` ([in]; analyses
 * since it was added write it), else what the host can read, else null.
 */
function columnAbsmax(r: QuantLensReport, layer: string, opts: PanelOptions): Float32Array | null {
  const w = r.weights?.find((x) => x.layer === layer);
  if (w?.col_absmax) return decodeF32(w.col_absmax);
  return opts.weightColumns?.(layer) ?? null;
}

export function reportToHeatmap(r: QuantLensReport, opts: PanelOptions = {}): HeatmapData | null {
  const h = r.heatmap;
  if (!h || h.rows.length === 0) return null;
  const acts = new Map((r.activations ?? []).map((a) => [a.tensor, a]));
  const values = decodeF32(h.values);
  if (values.length !== h.rows.length * h.width) {
    throw new RangeError(`report heatmap: ${values.length} values for ${h.rows.length} rows × width ${h.width}`);
  }
  const rows: HeatmapRow[] = h.rows.map((row) => {
    const a = acts.get(row.tensor);
    const layers = a ? a.layers : r.layers.filter((l) => l.input === row.tensor).map((l) => l.name);
    const roles = a ? a.roles : r.layers.filter((l) => l.input === row.tensor).map((l) => l.role);
    return { tensor: row.tensor, kind: row.kind, block: row.block, channels: row.channels, layers, roles, outliers: a ? a.outliers.map((o) => o.channel) : [] };
  });
  // W column absmax per row: max over the layers reading the row's tensor; all rows or none.
  let w: Float32Array | null = new Float32Array(values.length).fill(NaN);
  for (let i = 0; i < rows.length && w; i++) {
    const cols = rows[i].layers.map((l) => columnAbsmax(r, l, opts));
    if (cols.length === 0 || cols.some((c) => c === null || c.length !== rows[i].channels)) {
      w = null;
      break;
    }
    for (let c = 0; c < rows[i].channels; c++) {
      let m = 0;
      for (const col of cols as Float32Array[]) m = Math.max(m, Math.abs(col[c]));
      w[i * h.width + c] = m;
    }
  }
  return {
    rows,
    width: h.width,
    xAbsmax: values.buffer as ArrayBuffer,
    wAbsmax: w ? (w.buffer as ArrayBuffer) : null,
    rule: { zThreshold: h.rule.z_threshold, minRatio: h.rule.min_ratio },
    tokens: r.calibration?.tokens ?? 0,
    canRequestTokens: Boolean(opts.canRequestTokens),
    samples: r.calibration?.sequences ?? 0,
    defaultAlpha: 0.5,
  };
}

export function tokenHeatmapToResult(t: TokenHeatmap): TokenHeatmapResult {
  const values = decodeF32(t.values);
  if (values.length !== t.tokens * t.channels) {
    throw new RangeError(`token heatmap of ${t.tensor}: ${values.length} values for ${t.tokens} tokens × ${t.channels} channels`);
  }
  return {
    tensor: t.tensor,
    sample: t.sample,
    tokens: t.tokens,
    channels: t.channels,
    values: values.buffer as ArrayBuffer,
    tokenText: t.token_text ? [...t.token_text] : t.token_ids.map((id) => `#${id}`),
  };
}

export function reportToSpectrum(r: QuantLensReport): SpectrumData | null {
  const spectra = (r.spectra ?? []).map((s) => ({
    tensor: s.tensor,
    block: s.block,
    roles: [...s.roles] as RoleName[],
    layers: r.layers.filter((l) => l.input === s.tensor).map((l) => l.name),
    n: s.n,
    eigenvalues: f32Buffer(s.eigenvalues),
    trace: s.trace,
    conditionNumber: s.condition_number,
    conditionNumberDamped: s.condition_number_damped,
    effectiveRank: s.effective_rank,
    damp: s.damp,
    percdamp: s.percdamp,
    deadInputs: s.dead_inputs,
  }));
  const incoherence: IncoherenceInfo[] = (r.incoherence ?? []).map((i) => ({
    layer: i.layer,
    muW: i.mu_w,
    muH: i.mu_h,
    muWRotated: i.mu_w_rotated,
    muHRotated: i.mu_h_rotated,
    rotationKind: i.rotation.kind,
    histBefore: { lo: i.hist_before.lo, hi: i.hist_before.hi, counts: [...i.hist_before.counts] },
    histAfter: { lo: i.hist_after.lo, hi: i.hist_after.hi, counts: [...i.hist_after.counts] },
  }));
  if (spectra.length === 0 && incoherence.length === 0) return null;
  return { spectra, incoherence };
}

function dtypeBytes(dtype: string): number {
  const d = dtype.toLowerCase();
  if (d.includes("16")) return 2;
  if (d.includes("64")) return 8;
  return 4;
}

function bitLayer(l: LayerRow, method: string, bits: number, group: number, proxyLoss: number | null, bpw?: number): BitLayer {
  return {
    name: l.name,
    role: l.role,
    block: l.block,
    params: l.in * l.out,
    method,
    bits,
    group,
    bitsPerWeight: bpw ?? bitsPerWeight(bits, group, l.in),
    proxyLoss,
  };
}

function summarize(budget: number, predicted: number | null, layers: BitLayer[]): BitPlan {
  let params = 0;
  let bits = 0;
  for (const l of layers) {
    params += l.params;
    bits += l.params * l.bitsPerWeight;
  }
  return { budget, avgBits: params > 0 ? bits / params : 0, predicted, sizeBytes: bits / 8, layers };
}

/** A plan section (from the report, or from a re-plan in the host) as the panel's BitPlan. */
export function planSectionToBitPlan(section: PlanSection, layers: readonly LayerRow[]): BitPlan {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const out: BitLayer[] = [];
  for (const p of section.layers) {
    const l = byName.get(p.name);
    if (!l) throw new RangeError(`plan layer "${p.name}" is not a layer of the report`);
    out.push(bitLayer(l, p.method, p.bits, p.group, p.proxy_loss, p.bits_per_weight));
  }
  return summarize(section.plan.budget, section.predicted, out);
}

/**
 * The layers a re-plan assigns bits to: those the report's quantize run quantized (layers it kept
 * in float, lm_head by default, stay out), else those its plan covered, else every layer but
 * lm_head (the quantizer's default). The Bits panel shows the same set before and after a re-plan.
 */
export function replanLayers(r: QuantLensReport): Set<string> {
  if (r.quantization && r.quantization.layers.length > 0) return new Set(r.quantization.layers.map((l) => l.name));
  if (r.plan && r.plan.layers.length > 0) return new Set(r.plan.layers.map((l) => l.name));
  return new Set(r.layers.filter((l) => l.role !== "lm_head").map((l) => l.name));
}

/** The bit assignment a report describes: its plan, else its quantize run, else its layer rows. */
export function bitPlanOf(r: QuantLensReport): BitPlan | null {
  if (r.plan) return planSectionToBitPlan(r.plan, r.layers);
  const byName = new Map(r.layers.map((l) => [l.name, l]));
  if (r.quantization && r.quantization.layers.length > 0) {
    const layers = r.quantization.layers.flatMap((q) => {
      const l = byName.get(q.name);
      return l ? [bitLayer(l, q.method, q.bits, q.group, q.proxy_loss)] : [];
    });
    const plan = summarize(r.quantization.avg_bits, null, layers);
    return { ...plan, budget: plan.avgBits };
  }
  let layers = r.layers.filter((l) => l.bits !== null).map((l) => bitLayer(l, l.method ?? "rtn", l.bits as number, l.group ?? 0, l.proxy_loss));
  if (layers.length === 0 && r.proxy && r.proxy.rows.length > 0) {
    // An analysis-only report: the uniform baseline its proxy table describes (RTN W4 g128 when
    // measured, else the table's first setting), as the starting point for re-planning. A group
    // as wide as a layer is its per-channel (group 0) row, as the table stores it.
    const rows = r.proxy.rows;
    const ref = rows.find((p) => p.method === "rtn" && p.bits === 4 && p.group === 128) ?? rows[0];
    const planned: BitLayer[] = [];
    const names = replanLayers(r);
    for (const l of r.layers) {
      if (!names.has(l.name)) continue;
      const g = ref.group > 0 && ref.group < l.in ? ref.group : 0;
      const p = rows.find((x) => x.layer === l.name && x.method === ref.method && x.bits === ref.bits && x.group === g);
      if (p) planned.push(bitLayer(l, p.method, p.bits, p.group, p.proxy_loss));
    }
    layers = planned;
  }
  if (layers.length === 0) return null;
  const plan = summarize(0, null, layers);
  return { ...plan, budget: plan.avgBits };
}

export function reportToBits(r: QuantLensReport, opts: PanelOptions = {}): BitsData | null {
  const plan = bitPlanOf(r);
  if (!plan) return null;
  const byName = new Map(r.layers.map((l) => [l.name, l]));
  let fp = 0;
  for (const l of plan.layers) fp += l.params * dtypeBytes(byName.get(l.name)?.dtype ?? "float32");
  const pareto = (r.plan?.pareto ?? []).map((p) => ({ avgBits: p.avg_bits, predicted: p.predicted, klMean: p.kl_mean ?? null }));
  // Slider range: the achievable frontier when known, else 2-bit…8-bit at the plan's groups.
  const floorTo = (v: number) => Math.floor(v / BUDGET_STEP) * BUDGET_STEP;
  const ceilTo = (v: number) => Math.ceil(v / BUDGET_STEP) * BUDGET_STEP;
  const lo = pareto.length ? Math.min(...pareto.map((p) => p.avgBits)) : Math.min(2.25, plan.avgBits);
  const hi = pareto.length ? Math.max(...pareto.map((p) => p.avgBits)) : Math.max(8.25, plan.avgBits);
  return {
    plan,
    fpSizeBytes: fp,
    budgetMin: Number(ceilTo(lo - 1e-9).toFixed(2)),
    budgetMax: Number(floorTo(hi + 1e-9).toFixed(2)),
    budgetStep: BUDGET_STEP,
    pareto,
    canReplan: Boolean(opts.canReplan && r.proxy),
  };
}

function sensitivityEntry(s: SensitivityRow): SensitivityEntry {
  return {
    target: s.target,
    by: s.by,
    layers: [...s.layers],
    method: s.method,
    bits: s.bits,
    group: s.group,
    klMean: s.kl_mean,
    klP99: s.kl_p99,
    top1: s.top1,
    rank: s.rank,
  };
}

export function reportToSensitivity(r: QuantLensReport): SensitivityData | null {
  const rows = r.sensitivity?.rows ?? [];
  const p = r.propagation;
  if (rows.length === 0 && !p) return null;
  return {
    byRole: rows.filter((s) => s.by === "role").map(sensitivityEntry),
    byLayer: rows.filter((s) => s.by === "layer").map(sensitivityEntry),
    propagation: p
      ? {
          method: p.method,
          bits: p.bits,
          group: p.group,
          tokens: p.tokens,
          klMean: p.kl_mean,
          layers: p.layers.map((l) => ({ layer: l.layer, block: l.block, role: l.role, sqnrDb: l.sqnr_db, localSqnrDb: l.local_sqnr_db })),
          blocks: p.blocks.map((b) => ({ block: b.block, tensor: b.tensor, relError: b.rel_error })),
        }
      : null,
  };
}
