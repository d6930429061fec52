/**
 * GPTQ / OPTQ (Frantar et al. 2022; IST-DASLab gptq.py) written plainly: the yardstick the
 * native kernel (native-kernels/core/gptq.cpp) is tested against, and its fallback.
 *
 * Same algorithm, same options, same output layout (core/gptq.h documents it), but WITHOUT lazy
 * batches: after each column the whole trailing part of W is updated at once, in float64. The
 * native kernel updates only its batch per column and the rest with one GEMM per batch, in
 * float32; agreement between the two checks the batching. Group parameters, codes and
 * dequantized values come from the RTN reference (reference-quant.ts), bit for bit the native
 * quantizer's, applied to the working weight rounded to float32 (as the native kernel stores it).
 *
 * Notation: W: [rows = out, cols = in], H: [cols, cols] (2/N Σ xᵀx), U: [cols, cols] the upper
 * Cholesky factor of (H + λI)⁻¹ in quantization order ("Hinv" in gptq.py).
 */
import { gptqInverseCholeskyUpperRef } from "./reference-linalg";
import {
  rtnCode,
  rtnDequant,
  rtnGroups,
  rtnMaxq,
  rtnParamsShrunkRef,
  rtnQuantizeRef,
  type QuantBits,
  type QuantSpec,
} from "./reference-quant";

/** Every option explicit (kernels/gptq.ts fills the defaults). */
export interface GptqSettings {
  bits: QuantBits;
  symmetric: boolean;
  /** Input columns per group; 0 = per-channel. The last group may be shorter. */
  group: number;
  /**
   * Lazy-batch width. The reference has no batches (each error reaches every later column at
   * once); only `batchStartGroups` reads it.
   */
  blockSize: number;
  percdamp: number;
  actOrder: boolean;
  staticGroups: boolean;
  /** Dynamic groups: parameters from the weights as of the start of the group's blockSize batch. */
  batchStartGroups: boolean;
  maxDampRetries: number;
  /** Compute the proxy losses (NaN when false). */
  losses: boolean;
  /** Per row, a factor in (0, 1] shrinking every group's min/max range (clipping); null = 1. */
  rowShrink: Float32Array | null;
}

/** What one layer's GPTQ gives (layout: native-kernels/core/gptq.h). */
export interface GptqOutput {
  /** [rows × cols], ORIGINAL column order. */
  codes: Uint8Array;
  /** [rows × ngroups]. Q[r, j] = scales[r, g] · (codes[r, j] − zeros[r, g]), g = groupIndex[j]. */
  scales: Float32Array;
  zeros: Float32Array;
  ngroups: number;
  /** [cols], perm[p] = the original column quantized p-th (identity without act-order). */
  perm: Int32Array;
  /** [cols], the group of each original column. */
  groupIndex: Int32Array;
  /** λ added to H's diagonal, λ / mean(diag H), and how many ×10 escalations it took. */
  damp: number;
  percdamp: number;
  dampRetries: number;
  /** Inputs with H_ii = 0 (weights zeroed, H_ii = 1). */
  deadColumns: number;
  /** tr((W−Q) H (W−Q)ᵀ) with the caller's W and undamped H. */
  proxyLoss: number;
  /** The same for RTN with the same bits, group and grid. */
  proxyLossRtn: number;
  /** tr(W H Wᵀ). */
  weightEnergy: number;
  /**
   * [rows] each row's proxy loss e H eᵀ (undamped H, e = w − q), from GPTQ's own bookkeeping:
   * Σ_q err_q² with err_q = (w_q − q_q) / U_qq equals e (H + λI) eᵀ (each OBS step's loss is exact
   * given the compensation of the later columns), less λ‖e‖². O(rows·cols), no product with H.
   */
  rowLoss: Float64Array;
}

/** A zero (or tiny) percdamp escalates from this when H + λI does not factorize (as the addon). */
export const MIN_RETRY_PERCDAMP = 1e-5;

/** GPTQ on the calling thread (blocks it; see gptqReferenceSteps for a cooperative driver). */
export function gptqReference(w: Float32Array, rows: number, cols: number, h: Float32Array, s: GptqSettings): GptqOutput {
  const steps = gptqReferenceSteps(w, rows, cols, h, s);
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}

/**
 * GPTQ as a generator that yields after each column (and each row of the loss passes), so a
 * caller can give the event loop a turn and stop early; its return value is the result.
 */
export function* gptqReferenceSteps(
  W: Float32Array,
  rows: number,
  cols: number,
  H: Float32Array,
  s: GptqSettings,
): Generator<number, GptqOutput, void> {
  checkFinite(W, rows, cols, "w");
  checkFinite(H, cols, cols, "h");
  const spec: QuantSpec = { bits: s.bits, symmetric: s.symmetric };
  const maxq = rtnMaxq(s.bits);
  const params = (r: number, buf: Float32Array, n: number) => rtnParamsShrunkRef(buf, spec, s.rowShrink ? s.rowShrink[r] : 1, 0, n);
  const ngroups = s.group >= cols ? 1 : rtnGroups(cols, s.group);
  const G = ngroups === 1 ? cols : s.group; // group width in columns
  const mode = ngroups === 1 ? "perChannel" : s.staticGroups ? "static" : "dynamic";

  // Dead inputs: H_ii = 1 and W[:, i] = 0.
  const dead = new Uint8Array(cols);
  let deadColumns = 0;
  for (let j = 0; j < cols; j++) {
    dead[j] = H[j * cols + j] === 0 ? 1 : 0;
    deadColumns += dead[j];
  }
  const diag = (j: number) => (dead[j] ? 1 : H[j * cols + j]);

  // Act-order: decreasing diag(H), ties in column order (Array.prototype.sort is stable).
  const order = Array.from({ length: cols }, (_, j) => j);
  if (s.actOrder) order.sort((a, b) => diag(b) - diag(a));
  const perm = Int32Array.from(order);
  const groupOf = (p: number) => (mode === "perChannel" ? 0 : mode === "static" ? Math.floor(perm[p] / G) : Math.floor(p / G));
  const groupIndex = new Int32Array(cols);
  for (let p = 0; p < cols; p++) groupIndex[perm[p]] = groupOf(p);

  const scales = new Float32Array(rows * ngroups);
  const zeros = new Float32Array(rows * ngroups);
  const codes = new Uint8Array(rows * cols);

  // Per-channel and static-group parameters: up front, from W with dead columns zeroed (static
  // groups with batchStartGroups: when their first column comes, below).
  const lazyStatic = mode === "static" && s.batchStartGroups;
  if (mode !== "dynamic" && !lazyStatic) {
    const buf = new Float32Array(G);
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < ngroups; g++) {
        const c0 = g * G;
        const n = Math.min(G, cols - c0);
        for (let c = 0; c < n; c++) buf[c] = dead[c0 + c] ? 0 : W[r * cols + c0 + c];
        const pr = params(r, buf, n);
        scales[r * ngroups + g] = pr.scale;
        zeros[r * ngroups + g] = pr.zero;
      }
    }
  }

  const damping = dampedInverseCholesky(H, cols, perm, dead, s);
  const U = damping.U;

  // Wq: [rows, cols] the working weights in quantization order, float64.
  const Wq = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let p = 0; p < cols; p++) Wq[r * cols + p] = dead[perm[p]] ? 0 : W[r * cols + perm[p]];
  }

  // Column by column: quantize, and spread the scaled error over EVERY later column at once.
  const groupBuf = new Float32Array(G);
  // batchStartGroups: the weights as they were when the current blockSize batch began.
  const batchStart = mode !== "perChannel" && s.batchStartGroups ? new Float64Array(rows * cols) : null;
  const invperm = new Int32Array(cols);
  for (let p = 0; p < cols; p++) invperm[perm[p]] = p;
  const started = new Uint8Array(ngroups);
  const rowLoss = new Float64Array(rows);
  for (let i = 0; i < cols; i++) {
    if (batchStart && i % s.blockSize === 0) batchStart.set(Wq);
    const d = U[i * cols + i];
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      if (mode === "dynamic" && i % G === 0) {
        // find_params on the current (error-updated) weights of the group.
        const n = Math.min(G, cols - i);
        const src = batchStart ?? Wq;
        for (let c = 0; c < n; c++) groupBuf[c] = src[row + i + c];
        const pr = params(r, groupBuf, n);
        scales[r * ngroups + i / G] = pr.scale;
        zeros[r * ngroups + i / G] = pr.zero;
      }
      if (lazyStatic && batchStart && !started[groupOf(i)]) {
        // A static group's first column: its parameters from the batch-start weights of all of
        // its columns (every other one comes later).
        const gg = groupOf(i);
        const c0 = gg * G;
        const n = Math.min(G, cols - c0);
        for (let c = 0; c < n; c++) groupBuf[c] = batchStart[row + invperm[c0 + c]];
        const pr = params(r, groupBuf, n);
        scales[r * ngroups + gg] = pr.scale;
        zeros[r * ngroups + gg] = pr.zero;
      }
      const g = r * ngroups + groupOf(i);
      const w = Math.fround(Wq[row + i]);
      const q = rtnCode(w, scales[g], zeros[g], maxq);
      codes[row + perm[i]] = q;
      // err = (w − dq) / U_ii;  w[i+1:] −= err · U[i, i+1:]  (= (w − dq) / [H_F⁻¹]_ii · [H_F⁻¹]_{i, i+1:},
      // H_F⁻¹ the inverse Hessian of the columns not yet quantized: see core/gptq.cpp)
      const err = (w - rtnDequant(q, scales[g], zeros[g])) / d;
      rowLoss[r] += err * err;
      for (let j = i + 1; j < cols; j++) Wq[row + j] -= err * U[i * cols + j];
    }
    if (lazyStatic) started[groupOf(i)] = 1;
    yield i + 1;
  }

  const result: GptqOutput = {
    codes,
    scales,
    zeros,
    ngroups,
    perm,
    groupIndex,
    damp: damping.lambda,
    percdamp: damping.percdamp,
    dampRetries: damping.retries,
    deadColumns,
    proxyLoss: NaN,
    proxyLossRtn: NaN,
    weightEnergy: NaN,
    rowLoss,
  };
  // E = W − Q once, for the row losses and the proxy loss. Σ err² is the damped loss: take λ‖e‖²
  // off (dead inputs: H's row is 0 there).
  const gptqError = dequantError(W, codes, scales, zeros, groupIndex, rows, cols, ngroups);
  for (let r = 0; r < rows; r++) {
    let e2 = 0;
    for (let j = 0; j < cols; j++) if (!dead[j]) e2 += gptqError[r * cols + j] ** 2;
    rowLoss[r] -= damping.lambda * e2;
  }
  if (!s.losses) return result;
  result.proxyLoss = yield* proxyLossSteps(gptqError, rows, cols, H);
  const rtn = rtnQuantizeRef(W, rows, cols, ngroups === 1 ? 0 : s.group, spec);
  const natural = Int32Array.from({ length: cols }, (_, j) => (ngroups === 1 ? 0 : Math.floor(j / G)));
  const rtnError = dequantError(W, rtn.codes, rtn.scales, rtn.zeros, natural, rows, cols, ngroups);
  result.proxyLossRtn = yield* proxyLossSteps(rtnError, rows, cols, H);
  result.weightEnergy = yield* proxyLossSteps(W, rows, cols, H);
  return result;
}

/** tr(E H Eᵀ) = Σ_r Σ_ij E_ri H_ij E_rj, in float64, row by row. */
export function proxyLossRef(E: Float32Array | Float64Array, rows: number, cols: number, H: Float32Array): number {
  const steps = proxyLossSteps(E, rows, cols, H);
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}

/** proxyLossRef as a generator yielding after each row (what the fallback's time slices need). */
function* proxyLossSteps(E: Float32Array | Float64Array, rows: number, cols: number, H: Float32Array): Generator<number, number, void> {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const e = E.subarray(r * cols, (r + 1) * cols);
    let rowLoss = 0;
    for (let i = 0; i < cols; i++) {
      if (e[i] === 0) continue;
      let hi = 0;
      for (let j = 0; j < cols; j++) hi += H[i * cols + j] * e[j];
      rowLoss += e[i] * hi;
    }
    total += rowLoss;
    yield cols;
  }
  return total;
}

interface Damping {
  U: Float32Array;
  lambda: number;
  percdamp: number;
  retries: number;
}

/**
 * U = upper Cholesky factor of (Hp + λI)⁻¹, Hp = H[perm][:, perm] with dead H_ii = 1,
 * λ = percdamp · mean(diag); percdamp ×10 after each failure (from MIN_RETRY_PERCDAMP if smaller).
 */
function dampedInverseCholesky(H: Float32Array, cols: number, perm: Int32Array, dead: Uint8Array, s: GptqSettings): Damping {
  let diagSum = 0;
  for (let j = 0; j < cols; j++) diagSum += dead[j] ? 1 : H[j * cols + j];
  const meanDiag = diagSum / cols;
  if (!(meanDiag > 0)) {
    throw new RangeError(`gptq: mean(diag H) is ${meanDiag}; H must be a Hessian proxy 2/N Σ xᵀx (positive semi-definite)`);
  }
  const U = new Float32Array(cols * cols);
  for (let attempt = 0; ; attempt++) {
    const percdamp = attempt === 0 ? s.percdamp : Math.max(s.percdamp, MIN_RETRY_PERCDAMP) * 10 ** attempt;
    const lambda = percdamp * meanDiag;
    for (let p = 0; p < cols; p++) {
      for (let q = 0; q < cols; q++) U[p * cols + q] = H[perm[p] * cols + perm[q]];
      U[p * cols + p] = Math.fround((dead[perm[p]] ? 1 : U[p * cols + p]) + lambda);
    }
    const pivot = gptqInverseCholeskyUpperRef(U, cols);
    if (pivot < 0) return { U, lambda, percdamp, retries: attempt };
    if (attempt >= s.maxDampRetries) {
      throw new RangeError(
        `gptq: H + λI is not positive definite (pivot ${pivot}) even with percdamp ${percdamp} after ${attempt} retries; check H or raise percdamp / maxDampRetries`,
      );
    }
  }
}

function dequantError(
  W: Float32Array,
  codes: Uint8Array,
  scales: Float32Array,
  zeros: Float32Array,
  groupIndex: Int32Array,
  rows: number,
  cols: number,
  ngroups: number,
): Float64Array {
  const E = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const g = r * ngroups + groupIndex[j];
      E[r * cols + j] = W[r * cols + j] - rtnDequant(codes[r * cols + j], scales[g], zeros[g]);
    }
  }
  return E;
}

function checkFinite(x: Float32Array, rows: number, cols: number, name: string): void {
  for (let i = 0; i < rows * cols; i++) {
    if (!Number.isFinite(x[i])) {
      // The addon's wording and code (binding/gptq_binding.cpp).
      throw Object.assign(
        new RangeError(
          `gptqQuantize(): argument '${name}' holds a non-finite value (NaN or ±Inf) at row ${Math.floor(i / cols)}, column ${i % cols}; GPTQ needs finite weights and Hessian`,
        ),
        { code: "ERR_QUANTLENS_NON_FINITE" },
      );
    }
  }
}
