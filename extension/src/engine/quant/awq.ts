/**
 * AWQ (Lin et al. 2023, "Activation-aware Weight Quantization"), as its reference code does it,
 * block by block on the fp model's activations:
 *
 * 1. Scale search, per input tensor (the layers sharing it: q/k/v, o, gate/up, down), in graph
 *    order: s = s_x^α with s_x = mean|x| per input channel, clamped at 1e-4 and normalised by
 *    √(max s · min s); α on the grid i/20, i = 0..19 (the code's n_grid). The loss of a candidate
 *    is the output error of every layer sharing the input,
 *        Σ_layers ‖X (Q(W·diag s)·diag(s)⁻¹ − W)ᵀ‖² = Σ tr(ΔW H ΔWᵀ)·N/2,   W: [out × in], H = (2/N) XᵀX,
 *    evaluated exactly through the calibration Hessian (no activations kept). With
 *    `awqLoss: "module"` the loss of q/k/v is the error of the block's attention output and that of
 *    gate/up the error of its MLP output, as the code's `module2inspect` measures it: the block is
 *    re-run on its fp inputs per candidate (calib/runner.ts calibrateWithProbes). The best s is
 *    applied at once (W ← W·diag s, the input divided by s through export/smoothing.ts; a fold
 *    into a previous linear divides that linear's rows before it is quantized, as the code's
 *    `apply_scale` does).
 * 2. Clipping search (the code's `auto_clip`), every layer but q/k: per output channel and group,
 *    the range ±max|w|·(1 − i/20), i < 10, minimising that group's output error
 *    e_gᵀ H_gg e_g (H of the smoothed input).
 * 3. RTN of the smoothed, clipped weights at the target bits/group (the codes of W·diag s).
 */
import { CancelledError, UsageError } from "../errors";
import type { ChannelStats } from "../calib/channel-stats";
import { calibrate, calibrateWithProbes, type CalibrationResult, type StageProbe, type TapResult } from "../calib/runner";
import { spillProperty } from "../spill";
import { planTaps, type Tap } from "../calib/taps";
import { sgemm } from "../kernels/linalg";
import { rtnDequantizeSync, rtnQuantize, type RtnConfig } from "../kernels/quant";
import type { LinearIndex, LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { actQuantOf, type ActQuant } from "../export/act-qdq";
import { planSmoothingFold, type SmoothingVector } from "../export/smoothing";
import type { QuantConfig } from "./config";
import { readWeightOutIn, toStoredLayout } from "./layer-weights";
import { f16ToF32 } from "../kernels/index";
import { proxyLoss } from "./proxy";
import type { LayerQuant, QuantizedModel, QuantizeOptions } from "./quantize";

export interface AwqOptions {
  /** α candidates i/grid, i = 0..grid−1 (AWQ: 20). */
  grid: number;
  /** Use this α instead of searching. */
  alpha?: number;
  /** Clipping search after the scales (AWQ: on). */
  clip: boolean;
  /** Clip candidates max|w|·(1 − i/clipGrid), i < floor(maxShrink·clipGrid) (AWQ: 20, 0.5). */
  clipGrid: number;
  maxShrink: number;
}

export const AWQ_DEFAULTS: Readonly<AwqOptions> = { grid: 20, clip: true, clipGrid: 20, maxShrink: 0.5 };

/** The RTN setting AWQ quantizes with (no MSE clip: AWQ has its own). */
export type WeightSpec = Pick<RtnConfig, "bits" | "symmetric" | "group">;

/** A layer's weight W: [rows = out × cols = in]. */
export interface WeightMatrix {
  w: Float32Array;
  rows: number;
  cols: number;
}

/** s = max(s_x^α, 1e-4), normalised by √(max s · min s) (AWQ's `auto_scale`). */
export function awqScales(sx: ArrayLike<number>, alpha: number): Float32Array {
  const s = new Float32Array(sx.length);
  let max = 0;
  let min = Infinity;
  for (let j = 0; j < s.length; j++) {
    const v = Math.max(Math.pow(sx[j], alpha), 1e-4);
    s[j] = v;
    max = Math.max(max, v);
    min = Math.min(min, v);
  }
  const norm = Math.sqrt(max * min);
  for (let j = 0; j < s.length; j++) s[j] = s[j] / norm;
  return s;
}

/** tr(E H Eᵀ) for E: [rows × cols], H: [cols × cols] float32. */
export async function quadraticError(e: Float32Array, hf: Float32Array, rows: number, cols: number, signal?: AbortSignal): Promise<number> {
  const eh = new Float32Array(rows * cols);
  await sgemm({ transA: false, transB: false, m: rows, n: cols, k: cols, alpha: 1, a: e, b: hf, beta: 0, c: eh }, { signal });
  let s = 0;
  for (let i = 0; i < eh.length; i++) s += eh[i] * e[i];
  return s;
}

/** ΔW = Q(W·diag s)·diag(s)⁻¹ − W, [rows × cols]. */
export async function smoothedQuantError(m: WeightMatrix, s: Float32Array, spec: WeightSpec, signal?: AbortSignal): Promise<Float32Array> {
  const { w, rows, cols } = m;
  const ws = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) ws[r * cols + j] = w[r * cols + j] * s[j];
  const q = await rtnQuantize(ws, rows, cols, spec, { signal });
  const dq = rtnDequantizeSync(q, rows, cols, spec.group);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) dq[r * cols + j] = dq[r * cols + j] / s[j] - w[r * cols + j];
  return dq;
}

export interface ScaleSearchResult {
  alpha: number;
  scale: Float32Array;
  /** Σ over the layers of tr(ΔW H ΔWᵀ) at the chosen α. */
  loss: number;
  /** Every candidate's loss (for reports and tests). */
  candidates: { alpha: number; loss: number }[];
}

/**
 * AWQ's grid search of α for the layers sharing one input (same C = cols). `sx`: mean|x| per
 * channel; `h`: the input's Hessian (2/N) XᵀX [C × C].
 */
export async function awqScaleSearch(
  layers: WeightMatrix[],
  sx: ArrayLike<number>,
  h: Float64Array | Float32Array,
  spec: WeightSpec,
  opts: Pick<AwqOptions, "grid" | "alpha">,
  signal?: AbortSignal,
): Promise<ScaleSearchResult> {
  const C = sx.length;
  if (layers.some((l) => l.cols !== C) || h.length !== C * C) throw new RangeError(`awqScaleSearch(): layers, s_x (${C}) and H (${h.length}) disagree on the input size`);
  const hf = h instanceof Float32Array ? h : Float32Array.from(h);
  return alphaSearch(sx, opts, signal, async (s) => {
    let loss = 0;
    for (const l of layers) loss += await quadraticError(await smoothedQuantError(l, s, spec, signal), hf, l.rows, l.cols, signal);
    return loss;
  });
}

/** The α grid (or the fixed α) with s = awqScales(sx, α), keeping the candidate of least `lossOf(s)`. */
async function alphaSearch(
  sx: ArrayLike<number>,
  opts: Pick<AwqOptions, "grid" | "alpha">,
  signal: AbortSignal | undefined,
  lossOf: (s: Float32Array) => Promise<number>,
): Promise<ScaleSearchResult> {
  const alphas = opts.alpha !== undefined ? [opts.alpha] : Array.from({ length: opts.grid }, (_, i) => i / opts.grid);
  const candidates: ScaleSearchResult["candidates"] = [];
  let best: ScaleSearchResult | null = null;
  for (const alpha of alphas) {
    if (signal?.aborted) throw new CancelledError("AWQ scale search");
    const s = awqScales(sx, alpha);
    const loss = await lossOf(s);
    candidates.push({ alpha, loss });
    if (!best || loss < best.loss) best = { alpha, scale: s, loss, candidates };
  }
  return best!;
}

/**
 * The scale search as AWQ's code runs it for q/k/v and gate/up (`module2inspect`): the loss of a
 * candidate s is the squared error of a whole module's output, the block's attention (o_proj's
 * output) or MLP (down_proj's output), with the layers sharing the input replaced by
 * Q(W·diag s)·diag(s)⁻¹ and everything else in fp, over every calibration token. `probe`
 * re-runs the block on its fp inputs; `toModel` maps a candidate [out × in] weight of the current
 * (smoothed) coordinates to what the model stores for that layer.
 */
export async function awqModuleScaleSearch(
  layers: { m: WeightMatrix; weight: string; toModel: (w: Float32Array) => Float32Array }[],
  sx: ArrayLike<number>,
  spec: WeightSpec,
  opts: Pick<AwqOptions, "grid" | "alpha">,
  probe: StageProbe,
  output: string,
  signal?: AbortSignal,
): Promise<ScaleSearchResult> {
  const values = (t: { type: string; data: unknown }): Float32Array => {
    if (t.type === "float32") return t.data as Float32Array;
    if (t.type === "float16") return f16ToF32(t.data as Uint16Array);
    throw new Error(`AWQ module loss: '${output}' has type ${t.type}; expected float32 or float16`);
  };
  const reference: Float32Array[] = [];
  await probe.run(new Map(), [output], (b, t) => {
    reference[b] = values(t[output]);
  });
  return alphaSearch(sx, opts, signal, async (s) => {
    const overrides = new Map<string, Float32Array>();
    for (const l of layers) {
      const e = await smoothedQuantError(l.m, s, spec, signal);
      for (let i = 0; i < e.length; i++) e[i] += l.m.w[i];
      overrides.set(l.weight, l.toModel(e));
    }
    let loss = 0;
    await probe.run(overrides, [output], (b, t) => {
      const y = values(t[output]);
      const r = reference[b];
      if (!r || r.length !== y.length) throw new Error(`AWQ module loss: batch ${b} of '${output}' changed shape between runs`);
      for (let i = 0; i < y.length; i++) {
        const d = y[i] - r[i];
        loss += d * d;
      }
    });
    return loss;
  });
}

/**
 * AWQ's clipping search on a (smoothed) W [rows × cols] with the Hessian of its input `hf`
 * [cols × cols]: per row and group, the range ±max|w_g|·(1 − i/clipGrid) whose quantized group
 * minimises e_gᵀ H_gg e_g, e_g = Q(clamp(w_g)) − w_g. Returns W clamped to the chosen ranges
 * (quantizing it with `spec` gives the chosen codes: each group's RTN depends on that group only).
 */
export async function awqClipSearch(
  m: WeightMatrix,
  hf: Float32Array,
  spec: WeightSpec,
  opts: Pick<AwqOptions, "clipGrid" | "maxShrink">,
  signal?: AbortSignal,
): Promise<{ w: Float32Array; shrink: Float32Array }> {
  const { w, rows, cols } = m;
  const gs = spec.group > 0 ? spec.group : cols;
  const ng = Math.ceil(cols / gs);
  const orgMax = new Float32Array(rows * ng);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < ng; g++) {
      let a = 0;
      for (let j = g * gs; j < Math.min(cols, (g + 1) * gs); j++) a = Math.max(a, Math.abs(w[r * cols + j]));
      orgMax[r * ng + g] = a;
    }
  }
  // H_gg blocks, once.
  const hBlocks: Float32Array[] = [];
  for (let g = 0; g < ng; g++) {
    const j0 = g * gs;
    const len = Math.min(cols, j0 + gs) - j0;
    const b = new Float32Array(len * len);
    for (let a = 0; a < len; a++) for (let c = 0; c < len; c++) b[a * len + c] = hf[(j0 + a) * cols + j0 + c];
    hBlocks.push(b);
  }
  const bestErr = new Float64Array(rows * ng).fill(Infinity);
  const bestShrink = new Float32Array(rows * ng).fill(1);
  const steps = Math.max(1, Math.floor(opts.maxShrink * opts.clipGrid));
  const wc = new Float32Array(w.length);
  for (let i = 0; i < steps; i++) {
    if (signal?.aborted) throw new CancelledError("AWQ clipping search");
    const p = 1 - i / opts.clipGrid;
    clampGroups(w, wc, rows, cols, gs, ng, orgMax, () => p);
    const q = await rtnQuantize(wc, rows, cols, spec, { signal });
    const e = rtnDequantizeSync(q, rows, cols, spec.group);
    for (let k = 0; k < e.length; k++) e[k] -= w[k];
    for (let g = 0; g < ng; g++) {
      const j0 = g * gs;
      const len = Math.min(cols, j0 + gs) - j0;
      const eg = new Float32Array(rows * len);
      for (let r = 0; r < rows; r++) eg.set(e.subarray(r * cols + j0, r * cols + j0 + len), r * len);
      const m2 = new Float32Array(rows * len);
      await sgemm({ transA: false, transB: false, m: rows, n: len, k: len, alpha: 1, a: eg, b: hBlocks[g], beta: 0, c: m2 }, { signal });
      for (let r = 0; r < rows; r++) {
        let err = 0;
        for (let c = 0; c < len; c++) err += m2[r * len + c] * eg[r * len + c];
        if (err < bestErr[r * ng + g]) {
          bestErr[r * ng + g] = err;
          bestShrink[r * ng + g] = p;
        }
      }
    }
  }
  const out = new Float32Array(w.length);
  clampGroups(w, out, rows, cols, gs, ng, orgMax, (r, g) => bestShrink[r * ng + g]);
  return { w: out, shrink: bestShrink };
}

function clampGroups(
  w: Float32Array, out: Float32Array, rows: number, cols: number, gs: number, ng: number, orgMax: Float32Array,
  shrink: (r: number, g: number) => number,
): void {
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < ng; g++) {
      const p = shrink(r, g);
      const lim = p === 1 ? Infinity : Math.fround(orgMax[r * ng + g] * p);
      for (let j = g * gs; j < Math.min(cols, (g + 1) * gs); j++) {
        const v = w[r * cols + j];
        out[r * cols + j] = v > lim ? lim : v < -lim ? -lim : v;
      }
    }
  }
}

// ---- the model-level driver (shared with SmoothQuant) ------------------------------------------

/** One tapped input of a block, with its statistics and Hessian, and the layers reading it. */
export interface BlockTap {
  tap: Tap;
  layers: LinearLayer[];
  stats: ChannelStats;
  /** (2/N) XᵀX, float64 [C × C]. */
  hessian: Float64Array;
}

export interface BlockContext {
  model: OnnxModel;
  index: LinearIndex;
  config: QuantConfig;
  signal?: AbortSignal;
  log: (message: string) => void;
  /** Re-runs of this block on its fp inputs (AWQ's module-output loss); null when the model does not stage. */
  probe?: StageProbe | null;
}

export interface BlockResult {
  layers: LayerQuant[];
  smoothing: SmoothingVector[];
}

/** A method's work on one transformer block's taps (in graph order). */
export type BlockPass = (block: BlockTap[], ctx: BlockContext) => Promise<BlockResult>;

/**
 * Calibrate the fp model once (what AWQ's and SmoothQuant's code do: inputs of every block from
 * the fp model, scaling being exact) and run `pass` on each block as soon as all its taps are in;
 * the Hessians of a block are dropped after it. Adds calibrated activation quantizers when
 * `actBits` is set.
 */
export async function quantizeByBlock(
  model: OnnxModel,
  index: LinearIndex,
  config: QuantConfig,
  targets: LinearLayer[],
  kept: QuantizedModel["kept"],
  opts: QuantizeOptions,
  pass: BlockPass,
  actBits: number | undefined,
): Promise<QuantizedModel> {
  const t0 = performance.now();
  if (!opts.data) throw new UsageError(`${config.method === "awq" ? "AWQ" : "SmoothQuant"} needs calibration data (--data FILE)`);
  const log = opts.onProgress ?? (() => undefined);
  if (config.sequential) log(`--sequential: ${config.method} calibrates once on the fp model, as its reference code does (smoothing is exact, so block inputs are the fp ones)`);
  const taps = planTaps(index);
  const targetNames = new Set(targets.map((l) => l.name));
  const layersOf = (t: Tap) => t.layers.filter((n) => targetNames.has(n)).map((n) => targets.find((l) => l.name === n)!);
  const wanted = taps.filter((t) => layersOf(t).length > 0);
  const keyOf = (t: Tap) => (t.block === null ? `tensor:${t.tensor}` : `block:${t.block}`);
  const expected = new Map<string, number>();
  for (const t of wanted) expected.set(keyOf(t), (expected.get(keyOf(t)) ?? 0) + 1);
  const pending = new Map<string, BlockTap[]>();
  const results = new Map<string, LayerQuant>();
  const smoothing: SmoothingVector[] = [];
  const actQuant: ActQuant[] = [];
  const ctx: BlockContext = { model, index, config, signal: opts.signal, log };
  const order = new Map(wanted.map((t, i) => [t.tensor, i]));
  const runBlock = async (list: BlockTap[], key: string, probe: StageProbe | null) => {
    list.sort((a, b) => order.get(a.tap.tensor)! - order.get(b.tap.tensor)!);
    if (opts.signal?.aborted) throw new CancelledError("quantization");
    log(`${config.method} ${key.replace(/^block:/, "block ")}`);
    const out = await pass(list, { ...ctx, probe });
    for (const lq of out.layers) {
      if (opts.spill) spillProperty(lq, "codes", opts.spill);
      results.set(lq.layer.name, lq);
    }
    smoothing.push(...out.smoothing);
    if (actBits) {
      for (const e of list) {
        const sv = out.smoothing.find((x) => x.tensor === e.tap.tensor);
        actQuant.push(actQuantOf(e.tap.tensor, e.layers.map((l) => l.name), e.stats.absmax, sv?.scale));
      }
    }
  };
  /** Hold taps until their block is complete, then run the pass on it (with `probe` when all of the block's taps came with it: a probe re-runs its own stage only). */
  const collect = async (arrived: TapResult[], probe: StageProbe | null) => {
    for (const r of arrived) {
      const key = keyOf(r.tap);
      pending.set(key, [...(pending.get(key) ?? []), { tap: r.tap, layers: layersOf(r.tap), stats: r.stats, hessian: r.hessian! }]);
    }
    for (const [key, list] of [...pending]) {
      if (list.length < expected.get(key)!) continue;
      pending.delete(key);
      await runBlock(list, key, probe && list.every((e) => arrived.some((r) => r.tap === e.tap)) ? probe : null);
    }
  };
  let c: CalibrationResult;
  if (config.method === "awq" && config.awqLoss === "module") {
    // Block by block, so the scale search can run the block's attention / MLP on its fp inputs.
    c = await calibrateWithProbes(
      model,
      opts.data,
      wanted.map((t) => t.tensor),
      async (stageResults, probe) => {
        if (!probe) log("--awq-loss module: the model does not run block by block here (one block, or too much calibration data to hold between blocks); the scale search measures each layer's output instead");
        await collect(stageResults, probe);
      },
      { ...opts.calib, signal: opts.signal },
    );
  } else {
    c = await calibrate(model, opts.data, {
      ...opts.calib,
      tensors: wanted.map((t) => t.tensor),
      signal: opts.signal,
      sink: (r) => collect([r], null),
    });
  }
  if (pending.size) throw new Error(`calibration ended with blocks still incomplete: ${[...pending.keys()].join(", ")}`);
  smoothing.sort((a, b) => order.get(a.tensor)! - order.get(b.tensor)!);
  actQuant.sort((a, b) => order.get(a.tensor)! - order.get(b.tensor)!);
  return {
    config,
    layers: targets.map((l) => results.get(l.name)!).filter(Boolean),
    kept,
    calibration: { tokens: c.tokens, seconds: c.seconds, passes: c.passes },
    seconds: (performance.now() - t0) / 1000,
    smoothing,
    ...(actBits ? { actQuant } : {}),
    ...(opts.spill ? { spill: opts.spill } : {}),
  };
}

/** One layer's state while a block is smoothed: W_cur = diag(r)·W_orig·diag(s). */
export interface SmoothedWeight {
  layer: LinearLayer;
  orig: Float32Array;
  w: Float32Array;
  s: Float32Array | null;
  r: Float32Array | null;
}

export function smoothedWeights(model: OnnxModel, layers: LinearLayer[]): Map<string, SmoothedWeight> {
  const m = new Map<string, SmoothedWeight>();
  for (const l of layers) {
    const orig = readWeightOutIn(model, l); // W: [out × in]
    m.set(l.name, { layer: l, orig, w: orig.slice(), s: null, r: null });
  }
  return m;
}

/** W ← W·diag(s). */
export function scaleColumns(x: SmoothedWeight, s: Float32Array): void {
  const { out: rows, in: cols } = x.layer;
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) x.w[r * cols + j] *= s[j];
  x.s = x.s ? x.s.map((v, j) => v * s[j]) : s.slice();
}

/** W ← diag(1/s)·W (a smoothing of the next layers folded into this layer's outputs). */
export function divideRows(x: SmoothedWeight, s: Float32Array): void {
  const { out: rows, in: cols } = x.layer;
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) x.w[r * cols + j] /= s[r];
  x.r = x.r ? x.r.map((v, r) => v / s[r]) : s.map((v) => 1 / v);
}

/** diag(1/s)·H·diag(1/s) as float32: the Hessian of the smoothed input X/s. */
export function smoothedHessian(h: Float64Array, s: Float32Array): Float32Array {
  const C = s.length;
  const out = new Float32Array(C * C);
  for (let a = 0; a < C; a++) for (let b = 0; b < C; b++) out[a * C + b] = h[a * C + b] / (s[a] * s[b]);
  return out;
}

/**
 * RTN of the smoothed (and possibly clipped) weights `w`, with the proxy loss measured in the
 * original coordinates: Ŵ = diag(r)⁻¹·Q·diag(s)⁻¹ against W_orig and the original Hessian, and
 * RTN's loss on W_orig at the same setting, so the two compare.
 */
export async function finishSmoothedLayer(
  x: SmoothedWeight,
  w: Float32Array,
  h: Float64Array,
  rtn: RtnConfig,
  method: QuantConfig["method"],
  seconds: number,
  signal?: AbortSignal,
): Promise<LayerQuant> {
  const t0 = performance.now();
  const l = x.layer;
  const q = await rtnQuantize(w, l.out, l.in, rtn, { signal });
  const dq = unscaled(l, rtnDequantizeSync(q, l.out, l.in, rtn.group), x.s, x.r);
  const loss = await proxyLoss(x.orig, dq, h, l.out, l.in, signal);
  const base = await rtnQuantize(x.orig, l.out, l.in, rtn, { signal });
  const lossRtn = await proxyLoss(x.orig, rtnDequantizeSync(base, l.out, l.in, rtn.group), h, l.out, l.in, signal);
  return {
    layer: l,
    method,
    bits: rtn.bits,
    group: rtn.group,
    symmetric: rtn.symmetric,
    codes: q.codes,
    scales: q.scales,
    zeros: q.zeros,
    proxyLoss: loss.loss,
    relProxyLoss: loss.energy > 0 ? loss.loss / loss.energy : 0,
    proxyLossRtn: lossRtn.loss,
    smoothed: { inputScale: x.s, outputScale: x.r },
    seconds: seconds + (performance.now() - t0) / 1000,
  };
}

/** A smoothed layer's dequantized W [out × in] (as `dequantized()` gives it) in the original model's coordinates. */
export function unsmoothed(lq: LayerQuant, w: Float32Array): Float32Array {
  return unscaled(lq.layer, w, lq.smoothed?.inputScale ?? null, lq.smoothed?.outputScale ?? null);
}

/** W [out × in] of the smoothed coordinates W_cur = diag(r)·W·diag(s) back in the model's: diag(r)⁻¹·W_cur·diag(s)⁻¹ (W itself when neither is set). */
function unscaled(layer: LinearLayer, w: Float32Array, s: Float32Array | null, r: Float32Array | null): Float32Array {
  if (!s && !r) return w;
  const { out: rows, in: cols } = layer;
  const o = new Float32Array(w.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) o[i * cols + j] = w[i * cols + j] / ((r ? r[i] : 1) * (s ? s[j] : 1));
  return o;
}

/** The AWQ pass over one block (see the file comment). */
export const awqBlock: BlockPass = async (block, ctx) => {
  const { model, index, config, signal } = ctx;
  const opts: AwqOptions = { ...AWQ_DEFAULTS, ...(config.alpha !== undefined ? { alpha: config.alpha } : {}), clip: config.awqClip ?? true };
  const spec: WeightSpec = { bits: config.bits, symmetric: config.symmetric, group: config.group };
  const state = smoothedWeights(model, block.flatMap((e) => e.layers));
  const smoothing: SmoothingVector[] = [];
  const hScaled = new Map<BlockTap, Float32Array>();
  const searchSeconds = new Map<BlockTap, number>();
  const done = new Set<string>();
  // 1. Scales, in graph order, so a fold into a producer's rows precedes its quantization.
  for (const e of block) {
    const t0 = performance.now();
    const xs = e.layers.map((l) => state.get(l.name)!);
    // A fixed α (--alpha) needs no search, so no block re-runs.
    const module = ctx.probe && config.awqLoss === "module" && opts.alpha === undefined ? moduleOutput(index, e.layers, ctx.probe) : null;
    const found = module
      ? await awqModuleScaleSearch(
          xs.map((x) => ({ m: { w: x.w, rows: x.layer.out, cols: x.layer.in }, weight: x.layer.weight, toModel: (w: Float32Array) => toStoredLayout(x.layer, unscaled(x.layer, w, x.s, x.r)) })),
          e.stats.absMean(),
          spec,
          opts,
          ctx.probe!,
          module.output,
          signal,
        )
      : await awqScaleSearch(xs.map((x) => ({ w: x.w, rows: x.layer.out, cols: x.layer.in })), e.stats.absMean(), e.hessian, spec, opts, signal);
    const s = found.scale;
    if (s.some((v) => v !== 1)) {
      const fold = planSmoothingFold(model, index, e.tap.tensor, e.layers, done);
      for (const x of xs) scaleColumns(x, s);
      if (fold.kind === "linear") divideRows(state.get(fold.layer)!, s);
      smoothing.push({ tensor: e.tap.tensor, scale: s, layers: e.layers.map((l) => l.name), fold, alpha: found.alpha });
      hScaled.set(e, smoothedHessian(e.hessian, s));
    } else {
      hScaled.set(e, Float32Array.from(e.hessian));
    }
    ctx.log(`awq ${e.tap.tensor}: α = ${found.alpha}${module ? ` (loss on ${module.role}'s output)` : ""}`);
    for (const l of e.layers) done.add(l.name);
    searchSeconds.set(e, (performance.now() - t0) / 1000);
  }
  // 2. Clipping search (not q/k: their outputs meet in QKᵀ, which a per-layer error ignores), 3. RTN.
  const layers: LayerQuant[] = [];
  for (const e of block) {
    for (const l of e.layers) {
      const x = state.get(l.name)!;
      let w = x.w;
      if (opts.clip && l.role !== "q" && l.role !== "k") w = (await awqClipSearch({ w, rows: l.out, cols: l.in }, hScaled.get(e)!, spec, opts, signal)).w;
      layers.push(await finishSmoothedLayer(x, w, e.hessian, spec, "awq", searchSeconds.get(e)! / e.layers.length, signal));
    }
  }
  return { layers, smoothing };
};

/**
 * The module whose output AWQ's code measures for the layers reading one input: the attention
 * (o_proj's output) for q/k/v, the MLP (down_proj's output) for gate/up, in the same block and
 * computed by the probed stage. Null for the others (o_proj, down_proj: their own output, which
 * the Hessian gives exactly) and when the roles are unknown.
 */
export function moduleOutput(index: LinearIndex, layers: LinearLayer[], probe: StageProbe): { role: "o" | "down"; output: string } | null {
  const roles = new Set(layers.map((l) => l.role));
  const block = layers[0]?.block ?? null;
  if (block === null || layers.some((l) => l.block !== block)) return null;
  const role = [...roles].every((r) => r === "q" || r === "k" || r === "v") ? "o" : [...roles].every((r) => r === "gate" || r === "up") ? "down" : null;
  if (!role) return null;
  const target = index.layers.filter((l) => l.block === block && l.role === role);
  if (target.length !== 1 || !probe.produces.has(target[0].output)) return null;
  return { role, output: target[0].output };
}
