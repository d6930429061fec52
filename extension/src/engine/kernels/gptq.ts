/**
 * GPTQ / OPTQ (= QuIP's LDLQ) for one linear layer: validated arguments, then the addon
 * (native-kernels/core/gptq.h, on a worker thread) when it loads, else the TypeScript reference
 * (reference-gptq.ts, giving the event loop a turn every few milliseconds).
 *
 *   const r = await gptqQuantize({ w, rows: out, cols: in, h, bits: 4, group: 128, symmetric: false,
 *                                  actOrder: true }, { signal });
 *   r.codes / r.scales / r.zeros / r.groupIndex      the quantized layer (layout below)
 *   r.relProxyLoss vs r.relProxyLossRtn               what GPTQ bought over round-to-nearest
 *
 * W is [rows = out, cols = in] (the transpose of an ONNX MatMul weight); H is [cols, cols], the
 * Hessian proxy 2/N Σ xᵀx of the layer's inputs.
 *
 * Layout: codes [rows × cols] are in the ORIGINAL column order; scales/zeros are
 * [rows × ngroups]; weight (r, j) dequantizes with group g = groupIndex[j]:
 * Q[r, j] = scales[r·ngroups + g] · (codes[r·cols + j] − zeros[r·ngroups + g]).
 * Without act-order, or with act-order and static groups, groupIndex[j] = floor(j / group) (a
 * plain blocked layout). With act-order and dynamic groups, groups are runs of `group` columns
 * in the PERMUTED order (groupIndex[j] = floor(invperm[j] / group)): an exporter needs a
 * group-index input (MatMulNBits g_idx) or must permute the layer's inputs by `perm`.
 */
import type { NativeGptqStats } from "./binding";
import { expectArray, native, throwIfAborted, withCancel, type KernelCallOptions } from "./index";
import { CancelledError } from "../errors";
import { gptqReferenceSteps, type GptqOutput, type GptqSettings } from "./reference-gptq";
import { rtnGroups, type QuantBits } from "./reference-quant";

export interface GptqInput {
  /** W: [rows × cols] row-major, float32. Read only; do not modify it until the promise settles. */
  w: Float32Array;
  rows: number;
  cols: number;
  /** H: [cols × cols], symmetric (undamped; GPTQ damps a copy). Read only. */
  h: Float32Array;
  bits: QuantBits;
  /** Input columns per group (32, 64, 128, …; the last group may be shorter); 0 = per-channel. */
  group: number;
  /** true: zero fixed at 2^(bits−1) and range ±max|w|; false: min/max range with a zero point. */
  symmetric: boolean;
  /** Lazy-batch width (default 128). Only speed depends on it (and float rounding). */
  blockSize?: number;
  /** Damping λ = percdamp · mean(diag H) (default 0.01). */
  percdamp?: number;
  /** Quantize inputs in order of decreasing H_ii (default false). */
  actOrder?: boolean;
  /** With groups and act-order: group parameters from the natural column ranges, up front (default false). */
  staticGroups?: boolean;
  /**
   * Dynamic groups: scale/zero from the weights as they were when the group's lazy batch began
   * (gptq.py's behaviour; the result then depends on blockSize) instead of the fully updated ones
   * (default false).
   */
  batchStartGroups?: boolean;
  /** λ ×10 this many times when H + λI is not positive definite (default 4). */
  maxDampRetries?: number;
  /** Compute proxyLoss, proxyLossRtn and weightEnergy (default true; each costs ~rows·cols² flops). */
  losses?: boolean;
  /**
   * Clipping: per row r, a factor in (0, 1] that shrinks the min/max range of every group of the
   * row to [p·min, p·max] before its scale and zero are taken (one candidate of GPTQ's clipping
   * grid). Default: none (p = 1). Rows are independent in GPTQ, so a per-row search over p
   * (quant/gptq-clip.ts) picks each row's best exactly.
   */
  rowShrink?: Float32Array | null;
}

/**
 * One layer's GPTQ result: the reference's `GptqOutput` fields (codes, scales/zeros, groupIndex,
 * damping, proxy losses), `perm` only with act-order, and the normalised losses.
 */
export interface GptqResult extends Omit<GptqOutput, "perm"> {
  /** With act-order: perm[p] = the original column quantized p-th. */
  perm?: Int32Array;
  /** proxyLoss / weightEnergy, proxyLossRtn / weightEnergy (0 when W H Wᵀ vanishes). */
  relProxyLoss: number;
  relProxyLossRtn: number;
  backend: "native" | "typescript";
}

export const GPTQ_DEFAULTS = {
  blockSize: 128,
  percdamp: 0.01,
  actOrder: false,
  staticGroups: false,
  batchStartGroups: false,
  maxDampRetries: 4,
  losses: true,
} as const;

const MAX_DAMP_RETRIES = 30;
/** The reference fallback gives the event loop a turn at least this often (ms). */
const FALLBACK_SLICE_MS = 10;

/**
 * Quantize one layer with GPTQ. Native on a worker thread, cancellable between lazy batches.
 * Rejects with a RangeError (code ERR_QUANTLENS_NON_FINITE) naming the first NaN/±Inf of w or h,
 * with CancelledError when `signal` aborts, and when H + λI is still not positive definite after
 * `maxDampRetries` escalations.
 */
export async function gptqQuantize(input: GptqInput, options: KernelCallOptions = {}): Promise<GptqResult> {
  const settings = validate(input);
  const { w, rows, cols, h } = input;
  const signal = options.signal;
  throwIfAborted(signal, "gptqQuantize");
  const k = native();
  if (!k) return finish(await referenceAsync(input, settings, signal), settings, "typescript");

  const ngroups = rtnGroups(cols, settings.group >= cols ? 0 : settings.group);
  const out = {
    codes: new Uint8Array(rows * cols),
    scales: new Float32Array(rows * ngroups),
    zeros: new Float32Array(rows * ngroups),
    perm: new Int32Array(cols),
    groupIndex: new Int32Array(cols),
    rowLoss: new Float64Array(rows),
  };
  const stats: NativeGptqStats = await withCancel(k, signal, "gptqQuantize", (token) =>
    k.gptqQuantize(w, h, rows, cols, settings, out.codes, out.scales, out.zeros, out.perm, out.groupIndex, token, settings.rowShrink, out.rowLoss),
  );
  return finish({ ...out, ...stats, ngroups }, settings, "native");
}

function finish(o: GptqOutput, s: GptqSettings, backend: GptqResult["backend"]): GptqResult {
  const rel = (loss: number) => (o.weightEnergy > 0 ? loss / o.weightEnergy : Number.isNaN(loss) ? NaN : 0);
  return {
    codes: o.codes,
    scales: o.scales,
    zeros: o.zeros,
    ngroups: o.ngroups,
    ...(s.actOrder ? { perm: o.perm } : {}),
    groupIndex: o.groupIndex,
    damp: o.damp,
    percdamp: o.percdamp,
    dampRetries: o.dampRetries,
    deadColumns: o.deadColumns,
    proxyLoss: o.proxyLoss,
    proxyLossRtn: o.proxyLossRtn,
    weightEnergy: o.weightEnergy,
    rowLoss: o.rowLoss,
    relProxyLoss: rel(o.proxyLoss),
    relProxyLossRtn: rel(o.proxyLossRtn),
    backend,
  };
}

/** The reference, a slice of columns per event-loop turn; aborting stops it at the next turn. */
async function referenceAsync(input: GptqInput, s: GptqSettings, signal: AbortSignal | undefined): Promise<GptqOutput> {
  const steps = gptqReferenceSteps(input.w, input.rows, input.cols, input.h, s);
  let sliceStart = performance.now();
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
    if (performance.now() - sliceStart >= FALLBACK_SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (signal?.aborted) throw new CancelledError("gptqQuantize");
      sliceStart = performance.now();
    }
  }
}

function validate(input: GptqInput): GptqSettings {
  const fn = "gptqQuantize()";
  if (typeof input !== "object" || input === null) throw new TypeError(`${fn}: input must be an object`);
  expectArray("gptqQuantize", "w", input.w, Float32Array);
  expectArray("gptqQuantize", "h", input.h, Float32Array);
  const { rows, cols } = input;
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`${fn}: rows must be a positive integer, got ${rows}`);
  if (!Number.isInteger(cols) || cols < 1) throw new RangeError(`${fn}: cols must be a positive integer, got ${cols}`);
  if (input.w.length !== rows * cols) {
    throw new RangeError(`${fn}: w has ${input.w.length} values, expected rows × cols = ${rows} × ${cols} = ${rows * cols}`);
  }
  if (input.h.length !== cols * cols) {
    throw new RangeError(`${fn}: h has ${input.h.length} values, expected cols × cols = ${cols} × ${cols} = ${cols * cols}`);
  }
  const bits = input.bits as number;
  if (bits !== 2 && bits !== 3 && bits !== 4 && bits !== 8) throw new RangeError(`${fn}: bits must be 2, 3, 4 or 8, got ${bits}`);
  if (typeof input.symmetric !== "boolean") throw new TypeError(`${fn}: symmetric must be a boolean`);
  if (!Number.isInteger(input.group) || input.group < 0) {
    throw new RangeError(`${fn}: group must be an integer >= 0 (0 = per-channel), got ${input.group}`);
  }
  const s: GptqSettings = {
    bits: input.bits,
    symmetric: input.symmetric,
    group: input.group,
    blockSize: input.blockSize ?? GPTQ_DEFAULTS.blockSize,
    percdamp: input.percdamp ?? GPTQ_DEFAULTS.percdamp,
    actOrder: input.actOrder ?? GPTQ_DEFAULTS.actOrder,
    staticGroups: input.staticGroups ?? GPTQ_DEFAULTS.staticGroups,
    batchStartGroups: input.batchStartGroups ?? GPTQ_DEFAULTS.batchStartGroups,
    maxDampRetries: input.maxDampRetries ?? GPTQ_DEFAULTS.maxDampRetries,
    losses: input.losses ?? GPTQ_DEFAULTS.losses,
    rowShrink: input.rowShrink ?? null,
  };
  if (s.rowShrink) {
    expectArray("gptqQuantize", "rowShrink", s.rowShrink, Float32Array);
    if (s.rowShrink.length !== rows) throw new RangeError(`${fn}: rowShrink has ${s.rowShrink.length} values, expected rows = ${rows}`);
    const bad = s.rowShrink.findIndex((p) => !(p > 0 && p <= 1));
    if (bad >= 0) throw new RangeError(`${fn}: rowShrink[${bad}] is ${s.rowShrink[bad]}; each must be in (0, 1]`);
  }
  if (!Number.isInteger(s.blockSize) || s.blockSize < 1) throw new RangeError(`${fn}: blockSize must be a positive integer, got ${s.blockSize}`);
  if (!(s.percdamp >= 0) || !Number.isFinite(s.percdamp)) throw new RangeError(`${fn}: percdamp must be finite and >= 0, got ${s.percdamp}`);
  if (!Number.isInteger(s.maxDampRetries) || s.maxDampRetries < 0 || s.maxDampRetries > MAX_DAMP_RETRIES) {
    throw new RangeError(`${fn}: maxDampRetries must be an integer in [0, ${MAX_DAMP_RETRIES}], got ${s.maxDampRetries}`);
  }
  for (const key of ["actOrder", "staticGroups", "batchStartGroups", "losses"] as const) {
    if (typeof s[key] !== "boolean") throw new TypeError(`${fn}: ${key} must be a boolean`);
  }
  return s;
}
