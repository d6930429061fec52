import { CancelledError, UsageError } from "../errors";
import { assertFiniteWeights, indexLinears, requireLinears, type LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { calibrate, calibrateSequential, type CalibrationOptions, type TapResult } from "../calib/runner";
import type { TokenData } from "../calib/data";
import { planTaps } from "../calib/taps";
import { rtnDequantizeSync, rtnQuantize } from "../kernels/quant";
import { gptqQuantize, type GptqInput, type GptqResult } from "../kernels/gptq";
import { GPTQ_CLIP_SEARCH, gptqClipQuantize } from "./gptq-clip";
import { checkConfig, type QuantConfig } from "./config";
import { proxyLoss } from "./proxy";
import { readWeightOutIn, toStoredLayout } from "./layer-weights";
import type { LayerPlan } from "./plan";
import { awqBlock, quantizeByBlock } from "./awq";
import { smoothQuantBlock } from "./smoothquant";
import { actQuantOf, type ActQuant } from "../export/act-qdq";
import type { SmoothingVector } from "../export/smoothing";
import { spillProperty, type Spill } from "../spill";
import { chooseQuipRotations, quipQuantizeLayer, quipSettings, undoRotation, type LayerRotation, type RotationSpec } from "./quip";
import { EIGEN_MAX_N_VECTORS, symmetricEigen } from "../kernels/eigen";

/** One quantized linear layer: W ≈ scale·(code − zero) per group of input channels. */
export interface LayerQuant {
  layer: LinearLayer;
  method: QuantConfig["method"];
  bits: number;
  group: number;
  symmetric: boolean;
  /** [out × in] codes in [0, 2^bits), original column order. */
  codes: Uint8Array;
  /** [out × ngroups]. */
  scales: Float32Array;
  zeros: Float32Array;
  /** tr((W−Q) H (W−Q)ᵀ), normalised by tr(W H Wᵀ); the same for RTN; null without calibration. */
  proxyLoss: number | null;
  relProxyLoss: number | null;
  proxyLossRtn: number | null;
  damp?: number;
  /** GPTQ: times the damping was raised ×10 because H + λI did not factorize (singular H). */
  dampRetries?: number;
  deadColumns?: number;
  /**
   * AWQ/SmoothQuant: codes/scales/zeros are those of diag(r)·W·diag(s) (s: this layer's input
   * smoothing [in], r: a later layer's smoothing folded into its outputs [out]; null = none);
   * `unsmoothed()` in quant/awq.ts maps a dequantized W back.
   */
  smoothed?: { inputScale: Float32Array | null; outputScale: Float32Array | null };
  /** QuIP: codes/scales/zeros are those of U·W·D̃·Vᵀ; this says how to undo it (quant/quip.ts). */
  rotation?: LayerRotation;
  /**
   * GPTQ act-order with permuted groups: codes/scales/zeros are those of W[:, perm] (column p of
   * the codes is input perm[p]; groups are runs of p), so the layer computes x[:, perm]·W[:, perm]ᵀ.
   */
  perm?: Int32Array;
  /** GPTQ with `clip`: the per-row range shrinks the search kept (quant/gptq-clip.ts). */
  clip?: { rowsClipped: number; meanShrink: number; minShrink: number };
  seconds: number;
}

export interface QuantizedModel {
  config: QuantConfig;
  layers: LayerQuant[];
  /** Linear layers left in float, with why. */
  kept: { name: string; reason: string }[];
  calibration: { tokens: number; seconds: number; passes: number } | null;
  seconds: number;
  /** AWQ/SmoothQuant: per-input-channel smoothing; the layers' codes are those of W·diag(s) (export/smoothing.ts). */
  smoothing?: SmoothingVector[];
  /** `--act-bits 8`: calibrated int8 quantizers of the layers' inputs (export/act-qdq.ts). */
  actQuant?: ActQuant[];
  /** Where the layers' codes were spilled (large models); export puts its packed weights there too. */
  spill?: Spill;
}

export interface QuantizeOptions {
  /** Calibration data (needed by GPTQ; gives RTN its proxy loss). */
  data?: TokenData;
  calib?: Pick<CalibrationOptions, "batchSize" | "maxMemory" | "threads" | "executionProvider" | "staged">;
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
  /** Per-layer settings (`quantize --plan`, quant/plan.ts): a layer's effective config, null = keep in float. */
  plan?: LayerPlan;
  /**
   * Large models: each layer's codes go to this scratch file as soon as it is quantized
   * (`LayerQuant.codes` reads them back), so memory does not grow with the model. The caller closes it.
   */
  spill?: Spill;
}

/** Dequantized W [out × in] of a layer's result. */
export function dequantized(q: LayerQuant): Float32Array {
  const rows = q.layer.out;
  const cols = q.layer.in;
  let w = rtnDequantizeSync({ codes: q.codes, scales: q.scales, zeros: q.zeros }, rows, cols, q.group);
  if (q.perm) w = unpermuteColumns(w, rows, cols, q.perm);
  return q.rotation ? undoRotation(q.rotation, w, rows, cols) : w;
}

/** out[r, perm[p]] = a[r, p] (a: [rows × cols], columns in permuted order). */
function unpermuteColumns<T extends Float32Array | Uint8Array>(a: T, rows: number, cols: number, perm: Int32Array): T {
  const out = new (a.constructor as new (n: number) => T)(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let p = 0; p < cols; p++) out[o + perm[p]] = a[o + p];
  }
  return out;
}

/** out[r, p] = a[r, perm[p]]. */
function permuteColumns(a: Uint8Array, rows: number, cols: number, perm: Int32Array): Uint8Array {
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let p = 0; p < cols; p++) out[o + p] = a[o + perm[p]];
  }
  return out;
}

/**
 * Quantize every linear layer of `model` (lm_head only when asked). GPTQ takes each layer's
 * Hessian from calibration: all at once by default (one run of the fp model), or with
 * `sequential` one input tensor at a time in graph order through every already-quantized layer
 * (GPTQ's true-sequential procedure: q/k/v, o, gate/up, down, block after block).
 */
export async function quantizeModel(model: OnnxModel, config: QuantConfig, opts: QuantizeOptions = {}): Promise<QuantizedModel> {
  checkConfig(config);
  const t0 = performance.now();
  const index = indexLinears(model);
  requireLinears(model, index);
  const kept: QuantizedModel["kept"] = [];
  const targets = index.layers.filter((l) => {
    if (opts.plan && !opts.plan(l, config)) return keep(kept, l, "not in the plan (--plan)");
    if (l.role === "lm_head" && !config.includeLmHead && !opts.plan) return keep(kept, l, "lm_head stays in float (use --include-lm-head)");
    if (!["float32", "float16", "bfloat16"].includes(l.dtype)) return keep(kept, l, `already quantized (${l.dtype})`);
    return true;
  });
  if (opts.plan && !opts.data && targets.some((l) => opts.plan!(l, config)?.method === "gptq")) throw new UsageError("the plan has GPTQ layers, which need calibration data (--data FILE)");
  if (config.method === "gptq" && !opts.data && !opts.plan) throw new UsageError("GPTQ needs calibration data (--data FILE)");
  if (config.method === "quip" && !opts.data) throw new UsageError("QuIP needs calibration data (--data FILE)");
  const actBits = config.actBits ?? (config.method === "smoothquant" ? 8 : undefined);
  if (actBits && !opts.data) throw new UsageError(`--act-bits ${actBits} needs calibration data (--data FILE) for the activation ranges`);
  if (actBits && config.method === "quip") throw new UsageError("--act-bits is not available with QuIP (the rotated activations' ranges are not calibrated)");
  if (actBits && config.actOrderGroups === "permuted") throw new UsageError("--act-bits is not available with --act-order-groups permuted (the activation quantizers would sit before the input's Gather)");
  // Fail before calibrating, not after: NaN/Inf weights would poison both.
  assertFiniteWeights(model, targets);
  if (config.method === "awq" || config.method === "smoothquant") {
    return quantizeByBlock(model, index, config, targets, kept, opts, config.method === "awq" ? awqBlock : smoothQuantBlock, actBits);
  }
  const actQuant: ActQuant[] = [];
  const results = new Map<string, LayerQuant>();
  let calibration: QuantizedModel["calibration"] = null;
  const log = opts.onProgress ?? (() => undefined);
  const quantizeTap = async (r: TapResult | null, layers: LinearLayer[]) => {
    if (actBits && r && layers.length) actQuant.push(actQuantOf(r.tap.tensor, layers.map((l) => l.name), r.stats.absmax));
    const configOf = (l: LinearLayer) => opts.plan?.(l, config) ?? config;
    // GPTQ reads H in float32: when every layer of the tap is GPTQ, convert once and drop the
    // float64 H (the largest thing alive while down_proj of a 7B block is quantized).
    let h32: Float32Array | undefined;
    if (r?.hessian && layers.length && layers.every((l) => configOf(l).method === "gptq")) {
      h32 = Float32Array.from(r.hessian);
      r.hessian = null;
    }
    const rotations = await chooseRotations(model, layers.filter((l) => configOf(l).method === "quip"), configOf, r?.hessian ?? null, opts.signal);
    for (const l of layers) {
      if (opts.signal?.aborted) throw new CancelledError("quantization");
      const lc = configOf(l);
      log(`${lc.method} ${l.name}`);
      const lq = await quantizeLayer(model, l, lc, r?.hessian ?? null, opts.signal, h32, rotations.get(l.name));
      if (opts.spill) spillProperty(lq, "codes", opts.spill);
      results.set(l.name, lq);
    }
  };
  const taps = planTaps(index);
  const layersOf = (tensor: string) => targets.filter((l) => taps.find((t) => t.tensor === tensor)?.layers.includes(l.name));

  if (!opts.data) {
    await quantizeTap(null, targets);
  } else if (!config.sequential) {
    const wanted = taps.filter((t) => layersOf(t.tensor).length > 0);
    const c = await calibrate(model, opts.data, {
      ...opts.calib,
      tensors: wanted.map((t) => t.tensor),
      signal: opts.signal,
      // Quantize as each pass ends, then drop its Hessians: memory stays bounded.
      sink: (r) => quantizeTap(r, layersOf(r.tap.tensor)),
    });
    calibration = { tokens: c.tokens, seconds: c.seconds, passes: c.passes };
  } else {
    // True-sequential (GPTQ's llama procedure): one stage per distinct input tensor in graph
    // order (q/k/v, then o, then gate/up, then down, block after block); each stage's inputs come
    // from the model with every earlier stage's layers already quantized.
    const stages = taps
      .map((t) => ({ tap: t, layers: layersOf(t.tensor) }))
      .filter((st) => st.layers.length > 0)
      .sort((a, b) => Math.min(...a.layers.map((l) => l.nodeIndex)) - Math.min(...b.layers.map((l) => l.nodeIndex)));
    const c = await calibrateSequential(
      model,
      opts.data,
      stages.map((st) => st.tap.tensor),
      async (r) => {
        const stage = stages.find((st) => st.tap.tensor === r.tap.tensor)!;
        const names = stage.layers.map((l) => l.name.replace(/^\/model\//, "")).join(", ");
        log(`calibrated ${names} (block ${stage.layers[0].block ?? "-"}) through the quantized layers before it`);
        await quantizeTap(r, stage.layers);
        return new Map(stage.layers.map((l) => [l.weight, toStoredLayout(l, dequantized(results.get(l.name)!))]));
      },
      { ...opts.calib, signal: opts.signal },
    );
    calibration = { tokens: c.tokens, seconds: c.seconds, passes: c.passes };
  }
  return {
    config,
    layers: targets.map((l) => results.get(l.name)!).filter(Boolean),
    kept,
    calibration,
    seconds: (performance.now() - t0) / 1000,
    ...(actBits ? { actQuant } : {}),
    ...(opts.spill ? { spill: opts.spill } : {}),
  };
}

function keep(kept: QuantizedModel["kept"], l: LinearLayer, reason: string): false {
  kept.push({ name: l.name, reason });
  return false;
}

/**
 * QuIP's U and V for the QuIP layers of one tap, chosen from `quipRotationTries` draws
 * (quip.ts chooseQuipRotations; layers sharing the tensor but with another base seed or
 * rotation kind, through a plan, are chosen among themselves).
 */
async function chooseRotations(
  model: OnnxModel,
  layers: LinearLayer[],
  configOf: (l: LinearLayer) => QuantConfig,
  hessian: Float64Array | null,
  signal: AbortSignal | undefined,
): Promise<Map<string, { u: RotationSpec; v: RotationSpec }>> {
  const chosen = new Map<string, { u: RotationSpec; v: RotationSpec }>();
  if (!layers.length || !hessian) return chosen;
  const byKey = new Map<string, LinearLayer[]>();
  for (const l of layers) {
    const s = quipSettings(configOf(l));
    if (s.quipRotationTries <= 1) continue;
    const key = `${s.quipSeed}|${s.quipRotation}|${s.quipRotationTries}`;
    byKey.set(key, [...(byKey.get(key) ?? []), l]);
  }
  if (!byKey.size) return chosen;
  const n = layers[0].in;
  // μ_H needs H's eigenvectors: one decomposition per tensor (above EIGEN_MAX_N_VECTORS, μ_W alone decides).
  const vectors = n <= EIGEN_MAX_N_VECTORS ? (await symmetricEigen(hessian, n, { vectors: true, signal })).vectors ?? null : null;
  for (const group of byKey.values()) {
    const s = quipSettings(configOf(group[0]));
    const c = await chooseQuipRotations(group.map((l) => ({ id: l, w: readWeightOutIn(model, l) })), vectors, s.quipSeed, s.quipRotation, s.quipRotationTries, signal);
    for (const l of group) chosen.set(l.name, { u: c.u.get(l.name)!, v: c.v });
  }
  return chosen;
}

/** What the clipping search kept for a layer's rows. */
function clipSummary(p: Float32Array): NonNullable<LayerQuant["clip"]> {
  let sum = 0;
  let min = 1;
  let clipped = 0;
  for (const x of p) {
    sum += x;
    if (x < min) min = x;
    if (x < 1) clipped++;
  }
  return { rowsClipped: clipped, meanShrink: sum / p.length, minShrink: min };
}

async function quantizeLayer(
  model: OnnxModel,
  l: LinearLayer,
  config: QuantConfig,
  hessian: Float64Array | null,
  signal: AbortSignal | undefined,
  /** H in float32 (GPTQ), when the caller already converted it. */
  h32?: Float32Array,
  /** QuIP: U and V chosen for this layer (chooseRotations). */
  rotation?: { u: RotationSpec; v: RotationSpec },
): Promise<LayerQuant> {
  const t0 = performance.now();
  const w = readWeightOutIn(model, l); // W: [out × in]
  const base = { layer: l, method: config.method, bits: config.bits, group: config.group, symmetric: config.symmetric };
  if (config.method === "quip") {
    if (!hessian) throw new UsageError(`QuIP needs the Hessian of '${l.input}' (calibration did not produce it)`);
    const r = await quipQuantizeLayer(w, l, hessian, quipSettings(config), signal, rotation);
    return {
      ...base,
      group: r.group,
      symmetric: r.symmetric,
      codes: r.codes,
      scales: r.scales,
      zeros: r.zeros,
      proxyLoss: r.proxyLoss,
      relProxyLoss: r.relProxyLoss,
      proxyLossRtn: r.proxyLossRtn,
      damp: r.damp,
      deadColumns: r.deadColumns,
      rotation: r.rotation,
      seconds: (performance.now() - t0) / 1000,
    };
  }
  if (config.method === "gptq") {
    if (!hessian && !h32) throw new UsageError(`GPTQ needs the Hessian of '${l.input}' (calibration did not produce it)`);
    const permuted = config.actOrder && config.group > 0 && config.group < l.in && config.actOrderGroups === "permuted";
    const run = (input: GptqInput, o: { signal?: AbortSignal }): Promise<GptqResult & { rowShrink?: Float32Array }> =>
      config.clip ? gptqClipQuantize(input, GPTQ_CLIP_SEARCH, o) : gptqQuantize(input, o);
    const g = await run(
      {
        w,
        rows: l.out,
        cols: l.in,
        h: h32 ?? Float32Array.from(hessian!),
        bits: config.bits,
        group: config.group,
        symmetric: config.symmetric,
        blockSize: config.blockSize,
        percdamp: config.percdamp,
        actOrder: config.actOrder,
        // Static groups keep every group a contiguous run of inputs, which MatMulNBits and
        // blocked DequantizeLinear need; permuted groups are runs of the permutation (the codes
        // are stored permuted and the export gathers the input to match).
        staticGroups: config.actOrder && config.group > 0 && config.actOrderGroups !== "permuted",
        batchStartGroups: (config.groupParams ?? "batch-start") === "batch-start",
      },
      { signal },
    );
    return {
      ...base,
      ...(permuted ? { codes: permuteColumns(g.codes, l.out, l.in, g.perm!), perm: g.perm } : { codes: g.codes }),
      scales: g.scales,
      zeros: g.zeros,
      proxyLoss: g.proxyLoss,
      relProxyLoss: g.relProxyLoss,
      proxyLossRtn: g.proxyLossRtn,
      damp: g.damp,
      dampRetries: g.dampRetries,
      deadColumns: g.deadColumns,
      ...(g.rowShrink ? { clip: clipSummary(g.rowShrink) } : {}),
      seconds: (performance.now() - t0) / 1000,
    };
  }
  const q = await rtnQuantize(w, l.out, l.in, {
    bits: config.bits,
    symmetric: config.symmetric,
    group: config.group,
    ...(config.clip ? { clip: { grid: 100, maxShrink: 0.8, norm: 2.4 } } : {}),
  }, { signal });
  let loss: { loss: number; energy: number } | null = null;
  if (hessian) loss = await proxyLoss(w, rtnDequantizeSync(q, l.out, l.in, config.group), hessian, l.out, l.in, signal);
  return {
    ...base,
    codes: q.codes,
    scales: q.scales,
    zeros: q.zeros,
    proxyLoss: loss?.loss ?? null,
    relProxyLoss: loss ? (loss.energy > 0 ? loss.loss / loss.energy : 0) : null,
    proxyLossRtn: loss?.loss ?? null,
    seconds: (performance.now() - t0) / 1000,
  };
}
