import { CancelledError, UsageError } from "../errors";
import { indexLinears, type LinearIndex, type LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { calibrate, type CalibrationOptions, type TapResult } from "../calib/runner";
import type { TokenData } from "../calib/data";
import { planTaps, type Tap } from "../calib/taps";
import { gptqQuantize } from "../kernels/gptq";
import { readWeightOutIn } from "../quant/layer-weights";
import { QUIP_DEFAULTS, type QuipRotationKind } from "../quant/quip";
import { encodeF32, type Bits, type IncoherenceRow, type LayerRow, type ProxyTable, type QuantLensReport, type SpectrumRow, type WeightRow } from "../report/schema";
import { newReport, setSection } from "../report/write";
import { countOutlierTokens, tokenHeatmap } from "./activation-scan";
import { effectiveGroup, type Setting } from "./fake-quant";
import { chosenQuipRotations, muH, muW, pairedHistograms, rotateEigenvectors, rotateWeight, type QuipRotation } from "./incoherence";
import { activationRows, DEFAULT_OUTLIER_RULE, heatmapOf, outlierChannels, outlierThreshold, persistentOutliers, type OutlierRule } from "./outliers";
import { errorPropagation } from "./propagation";
import { FpReference, measureSensitivity, sensitivityTargets } from "./sensitivity";
import { hessianSpectrum } from "./spectra";
import { VariantSession } from "./variant-session";
import { WeightBank } from "./weight-bank";
import { EIGEN_MAX_N_VECTORS } from "../kernels/eigen";

/** Layers the analyses quantize: float weights (lm_head included only where stated). */
export function floatLayers(index: LinearIndex, includeLmHead = false): LinearLayer[] {
  return index.layers.filter((l) => ["float32", "float16", "bfloat16"].includes(l.dtype) && (includeLmHead || l.role !== "lm_head"));
}

export const REFERENCE_SETTING: Setting = { method: "rtn", bits: 4, group: 128 };

export interface AnalyzeOptions {
  data: TokenData;
  /** Held-out data: when given, sensitivity by role and by layer at `sensitivity` settings. */
  evalData?: TokenData;
  percdamp?: number;
  /** QuIP's base seed, rotation kind and draws (the same as `quantize --method quip` uses). */
  quipSeed?: number;
  quipRotation?: QuipRotationKind;
  quipRotationTries?: number;
  /** Proxy-loss table grid (default 2/3/4/8 bits × groups 32/128/per-channel × rtn/gptq). */
  proxyBits?: Bits[];
  proxyGroups?: number[];
  /** Error propagation setting (default RTN W4 g128); null to skip. */
  propagation?: Setting | null;
  /** Calibration sequences the propagation runs use (default 16). */
  propagationSamples?: number;
  sensitivity?: Setting[];
  /** Tensors to give a tokens × channels heatmap (calibration sample `tokenSample`); "auto": the strongest outlier's. */
  tokenHeatmaps?: string[] | "auto";
  tokenSample?: number;
  decode?: (id: number) => string;
  rule?: OutlierRule;
  calib?: Pick<CalibrationOptions, "batchSize" | "maxMemory" | "threads" | "executionProvider">;
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
  generator?: string;
}

interface TapAnalysis {
  tap: Tap;
  result: TapResult;
}

/**
 * Every analysis of DESIGN.md step 4 into one report: activation statistics and outliers (with
 * token counts and persistence), heatmaps, weight statistics, QuIP incoherence before/after its
 * rotation, Hessian spectra, the proxy-loss table, error propagation and (with `evalData`)
 * measured sensitivity. One calibration run; each tap's Hessian is analysed as its pass ends
 * (and kept only when GPTQ settings will need it later).
 */
export async function analyzeModel(model: OnnxModel, opts: AnalyzeOptions): Promise<QuantLensReport> {
  const log = opts.onProgress ?? (() => undefined);
  const percdamp = opts.percdamp ?? 0.01;
  const rule = opts.rule ?? DEFAULT_OUTLIER_RULE;
  const index = indexLinears(model);
  const taps = planTaps(index);
  const report = newReport(
    { file: model.file, blocks: index.blocks, linears: index.layers.length, linear_params: index.layers.reduce((s, l) => s + l.in * l.out, 0) },
    opts.generator ?? "quantlens",
  );
  if (Array.isArray(opts.tokenHeatmaps)) {
    for (const t of opts.tokenHeatmaps) {
      if (!taps.some((x) => x.tensor === t)) throw new UsageError(`--tokens: '${t}' is not a tapped activation (a linear layer's input); these are: ${taps.map((x) => x.tensor).join(", ")}`);
    }
  }
  const layersByName = new Map(index.layers.map((l) => [l.name, l]));
  const tapOf = new Map<string, string>();
  for (const t of taps) for (const n of t.layers) tapOf.set(n, t.tensor);
  const propagation = opts.propagation === undefined ? REFERENCE_SETTING : opts.propagation;
  const sensSettings = opts.evalData ? (opts.sensitivity ?? [REFERENCE_SETTING]) : [];
  const needHessians = [propagation, ...sensSettings].some((s) => s?.method === "gptq");
  const hessians = new Map<string, Float64Array>();
  const bits = opts.proxyBits ?? [2, 3, 4, 8];
  const groups = opts.proxyGroups ?? [32, 128, 0];

  const analysed: TapAnalysis[] = [];
  const spectra: SpectrumRow[] = [];
  const incoherence: IncoherenceRow[] = [];
  const weights: WeightRow[] = [];
  const proxy: ProxyTable = { methods: ["rtn", "gptq"], bits, groups, rows: [] };

  log("calibrating");
  const c = await calibrate(model, opts.data, {
    ...opts.calib,
    signal: opts.signal,
    onProgress: (p) => log(`calibrating: ${p.tokens}/${p.totalTokens} tokens`),
    sink: async (r) => {
      analysed.push({ tap: r.tap, result: { ...r, hessian: null } });
      if (!r.hessian) return;
      const n = r.tap.channels;
      log(`spectrum of ${r.tap.tensor} (${n})`);
      const sp = await hessianSpectrum(r.hessian, n, { percdamp, vectors: n <= EIGEN_MAX_N_VECTORS, signal: opts.signal });
      spectra.push({
        tensor: r.tap.tensor,
        block: r.tap.block,
        roles: r.tap.roles as SpectrumRow["roles"],
        n,
        eigenvalues: encodeF32(sp.values),
        trace: sp.trace,
        condition_number: sp.conditionNumber,
        condition_number_damped: sp.conditionNumberDamped,
        effective_rank: sp.effectiveRank,
        ldl_trace_ratio: sp.ldlTraceRatio,
        damp: sp.damp,
        percdamp: sp.percdamp,
        dead_inputs: sp.deadInputs,
      });
      const muHBefore = sp.vectors ? muH(sp.vectors, n) : null;
      const floats = r.tap.layers.map((name) => layersByName.get(name)!).filter((l) => ["float32", "float16", "bfloat16"].includes(l.dtype));
      const ws = new Map(floats.map((l) => [l.name, readWeightOutIn(model, l)])); // W: [out × in]
      const rotations = floats.length
        ? await chosenQuipRotations(
            floats.map((l) => ({ layer: l, w: ws.get(l.name)! })),
            sp.vectors ?? null,
            opts.quipSeed ?? QUIP_DEFAULTS.quipSeed,
            opts.quipRotation ?? QUIP_DEFAULTS.quipRotation,
            opts.quipRotationTries ?? QUIP_DEFAULTS.quipRotationTries,
            opts.signal,
          )
        : new Map<string, QuipRotation>();
      for (const l of floats) {
        if (opts.signal?.aborted) throw new CancelledError("analysis");
        log(`incoherence and proxy losses of ${l.name}`);
        const w = ws.get(l.name)!;
        weights.push(weightRow(l, w, rule));
        const rot = rotations.get(l.name)!;
        const wr = await rotateWeight(w, l.out, l.in, rot);
        const [before, after] = pairedHistograms(w, wr);
        incoherence.push({
          layer: l.name,
          mu_w: muW(w, l.out, l.in),
          mu_h: muHBefore,
          mu_w_rotated: muW(wr, l.out, l.in),
          mu_h_rotated: sp.vectors ? muH(await rotateEigenvectors(sp.vectors, n, rot.v), n) : null,
          rotation: { kind: rot.kind, seed_u: rot.u.seed, seed_v: rot.v.seed, source: rot.source, tries: rot.tries },
          hist_before: before,
          hist_after: after,
        });
        const hf = Float32Array.from(r.hessian);
        const done = new Set<string>();
        for (const b of bits) {
          for (const g0 of groups) {
            const g = effectiveGroup(g0, l.in);
            if (done.has(`${b}|${g}`)) continue;
            done.add(`${b}|${g}`);
            const t0 = performance.now();
            // One GPTQ call gives GPTQ's and RTN's losses at the same bits/group/grid.
            const q = await gptqQuantize({ w, rows: l.out, cols: l.in, h: hf, bits: b, group: g, symmetric: false, percdamp }, { signal: opts.signal });
            const seconds = (performance.now() - t0) / 1000;
            proxy.rows.push({ layer: l.name, method: "rtn", bits: b, group: g, proxy_loss: q.relProxyLossRtn, seconds });
            proxy.rows.push({ layer: l.name, method: "gptq", bits: b, group: g, proxy_loss: q.relProxyLoss, seconds });
          }
        }
      }
      if (needHessians) hessians.set(r.tap.tensor, r.hessian);
    },
  });
  report.calibration = { data: opts.data.file, tokens: c.tokens, sequences: c.sequences, seconds: c.seconds, provider: c.provider };
  report.notes.push(...c.notes);

  // Activations: outliers, then how many tokens carry them (a second fp pass over the data).
  const statsIn = analysed.map((a) => ({ tap: a.tap, stats: a.result.stats }));
  const wanted = new Map(
    statsIn.map(({ tap, stats }) => [tap.tensor, { channels: outlierChannels(stats.absmax, rule).map((o) => o.channel), threshold: outlierThreshold(stats.absmax, rule) }]),
  );
  log("counting outlier tokens");
  const counts = await countOutlierTokens(model, opts.data, wanted, { ...opts.calib, signal: opts.signal });
  const rows = activationRows(statsIn, rule, counts);
  setSection(report, "activations", rows);
  setSection(report, "heatmap", heatmapOf(rows, rule));
  setSection(report, "persistence", persistentOutliers(rows));
  const heatTensors = opts.tokenHeatmaps === "auto" || opts.tokenHeatmaps === undefined ? strongestOutlier(rows) : opts.tokenHeatmaps;

  if (heatTensors.length) {
    const th = [];
    for (const t of heatTensors) th.push(await tokenHeatmap(model, opts.data, t, opts.tokenSample ?? 0, { ...opts.calib, decode: opts.decode }));
    setSection(report, "token_heatmaps", th);
  }
  setSection(report, "weights", weights);
  setSection(report, "incoherence", incoherence);
  setSection(report, "spectra", spectra);
  setSection(report, "proxy", proxy);
  if (spectra.some((s) => s.n > EIGEN_MAX_N_VECTORS)) report.notes.push(`μ_H is not computed for inputs wider than ${EIGEN_MAX_N_VECTORS} (eigenvectors needed)`);

  const bank = new WeightBank(model, tapOf, needHessians ? hessians : null, percdamp);
  const targets = floatLayers(index);
  if (propagation) {
    log(`error propagation (${propagation.method} W${propagation.bits})`);
    const sub = { ...opts.data, sequences: opts.data.sequences.slice(0, opts.propagationSamples ?? 16) };
    const prop = await errorPropagation(model, index, targets, propagation, bank, sub, { ...opts.calib, signal: opts.signal });
    // The layer alone on fp inputs: its proxy loss from the table (same setting, calibration data).
    for (const row of prop.layers) {
      if (row.local_sqnr_db !== null) continue;
      const l = layersByName.get(row.layer)!;
      const p = proxy.rows.find((r) => r.layer === row.layer && r.method === propagation.method && r.bits === propagation.bits && r.group === effectiveGroup(propagation.group, l.in));
      if (p && p.proxy_loss > 0) row.local_sqnr_db = -10 * Math.log10(p.proxy_loss);
    }
    setSection(report, "propagation", prop);
  }
  if (opts.evalData && sensSettings.length) {
    const session = await VariantSession.open(model, { layers: targets, ...opts.calib });
    try {
      log("fp reference logits");
      const ref = await FpReference.build(session, opts.evalData, opts.signal);
      const t = [...sensitivityTargets(targets, "role", sensSettings), ...sensitivityTargets(targets, "layer", sensSettings)];
      setSection(
        report,
        "sensitivity",
        await measureSensitivity(session, ref, bank, t, { file: opts.evalData.file, sequences: opts.evalData.sequences.length }, {
          signal: opts.signal,
          onProgress: (d, n, row) => log(`sensitivity ${d}/${n}: ${row.target} kl ${row.kl_mean.toPrecision(3)}`),
        }),
      );
    } finally {
      await session.release();
    }
  }
  report.layers = layerRows(index, report);
  return report;
}

function strongestOutlier(rows: QuantLensReport["activations"] & object): string[] {
  let best: { tensor: string; ratio: number } | null = null;
  for (const r of rows) for (const o of r.outliers) if (!best || o.ratio > best.ratio) best = { tensor: r.tensor, ratio: o.ratio };
  return best ? [best.tensor] : [];
}

/** The inspector's table: one row per linear layer with what the sections say about it. */
export function layerRows(index: LinearIndex, report: QuantLensReport): LayerRow[] {
  const ref = REFERENCE_SETTING;
  const taps = planTaps(index);
  const tapOf = new Map<string, string>();
  for (const t of taps) for (const n of t.layers) tapOf.set(n, t.tensor);
  const outliers = new Map((report.activations ?? []).map((a) => [a.tensor, a.outliers.length]));
  const inc = new Map((report.incoherence ?? []).map((r) => [r.layer, r]));
  const sens = new Map((report.sensitivity?.rows ?? []).filter((r) => r.by === "layer").map((r) => [r.target, r.kl_mean]));
  const q = new Map((report.quantization?.layers ?? []).map((r) => [r.name, r]));
  const plan = new Map((report.plan?.plan.layers ?? []).map((r) => [r.name, r]));
  return index.layers.map((l) => {
    const chosen = q.get(l.name) ?? plan.get(l.name);
    const g = effectiveGroup(chosen ? chosen.group : ref.group, l.in);
    const m = chosen ? chosen.method : ref.method;
    const b = chosen ? chosen.bits : ref.bits;
    const fromQuant = q.get(l.name)?.proxy_loss;
    const fromTable = report.proxy?.rows.find((r) => r.layer === l.name && r.method === m && r.bits === b && r.group === g)?.proxy_loss;
    return {
      name: l.name,
      role: l.role,
      block: l.block,
      in: l.in,
      out: l.out,
      dtype: l.dtype,
      input: tapOf.get(l.name) ?? l.input,
      method: (chosen?.method as LayerRow["method"]) ?? null,
      bits: chosen?.bits ?? null,
      group: chosen?.group ?? null,
      proxy_loss: fromQuant ?? fromTable ?? null,
      outlier_count: outliers.get(tapOf.get(l.name) ?? l.input) ?? 0,
      sensitivity: sens.get(l.name) ?? null,
      mu_w: inc.get(l.name)?.mu_w ?? null,
      mu_h: inc.get(l.name)?.mu_h ?? null,
    };
  });
}

/**
 * Per-layer, per-output-channel and per-input-channel (column absmax max_i |W_ij|, SmoothQuant's
 * max|W_j| for one layer) weight statistics; rows whose absmax is an outlier among rows.
 */
export function weightRow(l: LinearLayer, w: Float32Array, rule: OutlierRule): WeightRow {
  const rows = l.out;
  const cols = l.in;
  const absmax = new Float32Array(rows);
  const std = new Float32Array(rows);
  const kurt = new Float32Array(rows);
  const colMax = new Float32Array(cols);
  let gMax = 0;
  let gSum = 0;
  let gSq = 0;
  for (let r = 0; r < rows; r++) {
    let s = 0;
    let m = 0;
    for (let c = 0; c < cols; c++) {
      const v = w[r * cols + c];
      s += v;
      const a = Math.abs(v);
      if (a > m) m = a;
      if (a > colMax[c]) colMax[c] = a;
    }
    const mean = s / cols;
    let m2 = 0;
    let m4 = 0;
    for (let c = 0; c < cols; c++) {
      const d = w[r * cols + c] - mean;
      m2 += d * d;
      m4 += d * d * d * d;
    }
    absmax[r] = m;
    std[r] = Math.sqrt(m2 / cols);
    kurt[r] = m2 > 0 ? (cols * m4) / (m2 * m2) - 3 : 0;
    gMax = Math.max(gMax, m);
    gSum += s;
  }
  const gMean = gSum / w.length;
  let g2 = 0;
  let g4 = 0;
  for (let i = 0; i < w.length; i++) {
    const d = w[i] - gMean;
    g2 += d * d;
    g4 += d * d * d * d;
  }
  gSq = g2 / w.length;
  return {
    layer: l.name,
    absmax: gMax,
    mean: gMean,
    std: Math.sqrt(gSq),
    kurtosis: g2 > 0 ? (w.length * g4) / (g2 * g2) - 3 : 0,
    row_absmax: encodeF32(absmax),
    row_std: encodeF32(std),
    row_kurtosis: encodeF32(kurt),
    col_absmax: encodeF32(colMax),
    outlier_rows: outlierChannels(absmax, rule).map(({ channel, absmax: a, ratio, score }) => ({ channel, absmax: a, ratio, score })),
  };
}
