/**
 * SmoothQuant (Xiao et al. 2022): migrate activation outliers into the weights with a
 * per-input-channel factor, then W8A8.
 *
 *   s_j = max|X_j|^α / max|W_j|^(1−α),   W_j = column j of every layer reading X (max over them),
 *
 * clamped at 1e-5 as the reference code does, W ← W·diag(s) and X ← X/s folded into the op
 * producing X, only where that fold is exact and adds no op (export/smoothing.ts):
 * - the norms: q/k/v after input_layernorm, gate/up after post_attention_layernorm — what the
 *   reference `smooth_lm` does for Llama (`smoothScope: "norm"` stops here);
 * - by default (`smoothScope: "exact"`) also down_proj, whose input silu(gate) ⊙ up is divided by
 *   dividing up_proj's output rows. The paper's models (OPT/BLOOM: ReLU/GELU before fc2) had no
 *   such fold; in SwiGLU models the down_proj input carries the worst activation outliers (on
 *   stories260K it is ~95% of plain W8A8's KL), and this exact fold halves SmoothQuant's KL there.
 * o_proj (after attention) is not smoothed: it would need an explicit Mul. Weights: RTN at the
 * configured setting (W8A8: 8-bit, per output channel, symmetric); activations: calibrated static
 * per-tensor int8 scales (export/act-qdq.ts) on the smoothed inputs.
 */
import { planSmoothingFold, type SmoothingVector } from "../export/smoothing";
import type { RtnConfig } from "../kernels/quant";
import { GPTQ_CLIP } from "../kernels/quant";
import { divideRows, finishSmoothedLayer, scaleColumns, smoothedWeights, type BlockPass, type WeightMatrix } from "./awq";
import type { LayerQuant } from "./quantize";

/** SmoothQuant's default migration strength. */
export const SMOOTHQUANT_ALPHA = 0.5;

/** s_j = max(max|X_j|^α / max(max_layers |W_{:,j}|, 1e-5)^(1−α), 1e-5); W: [rows = out × cols = in]. */
export function smoothQuantScales(actAbsmax: ArrayLike<number>, layers: WeightMatrix[], alpha: number): Float32Array {
  const C = actAbsmax.length;
  const wmax = new Float64Array(C);
  for (const { w, rows, cols } of layers) {
    if (cols !== C) throw new RangeError(`smoothQuantScales(): a layer has ${cols} inputs, the activation ${C} channels`);
    for (let r = 0; r < rows; r++) for (let j = 0; j < C; j++) wmax[j] = Math.max(wmax[j], Math.abs(w[r * C + j]));
  }
  const s = new Float32Array(C);
  for (let j = 0; j < C; j++) s[j] = Math.max(Math.pow(actAbsmax[j], alpha) / Math.pow(Math.max(wmax[j], 1e-5), 1 - alpha), 1e-5);
  return s;
}

/** The SmoothQuant pass over one block: smoothing of the inputs that fold exactly, then RTN of the weights. */
export const smoothQuantBlock: BlockPass = async (block, ctx) => {
  const { model, index, config, signal } = ctx;
  const alpha = config.alpha ?? SMOOTHQUANT_ALPHA;
  const state = smoothedWeights(model, block.flatMap((e) => e.layers));
  const smoothing: SmoothingVector[] = [];
  const scope = config.smoothScope ?? "exact";
  // Layers already handled in this block: a later input may fold into their rows (up → down).
  const done = new Set<string>();
  for (const e of block) {
    const fold = planSmoothingFold(model, index, e.tap.tensor, e.layers, scope === "exact" ? done : new Set());
    for (const l of e.layers) done.add(l.name);
    if (fold.kind === "mul") continue;
    const xs = e.layers.map((l) => state.get(l.name)!);
    const s = smoothQuantScales(e.stats.absmax, xs.map((x) => ({ w: x.w, rows: x.layer.out, cols: x.layer.in })), alpha);
    for (const x of xs) scaleColumns(x, s);
    if (fold.kind === "linear") divideRows(state.get(fold.layer)!, s);
    smoothing.push({ tensor: e.tap.tensor, scale: s, layers: e.layers.map((l) => l.name), fold, alpha });
    ctx.log(`smoothquant ${e.tap.tensor}: s in [${Math.min(...s).toPrecision(3)}, ${Math.max(...s).toPrecision(3)}]`);
  }
  const rtn: RtnConfig = { bits: config.bits, symmetric: config.symmetric, group: config.group, ...(config.clip ? { clip: GPTQ_CLIP } : {}) };
  const layers: LayerQuant[] = [];
  for (const e of block) for (const l of e.layers) layers.push(await finishSmoothedLayer(state.get(l.name)!, state.get(l.name)!.w, e.hessian, rtn, "smoothquant", 0, signal));
  return { layers, smoothing };
};
