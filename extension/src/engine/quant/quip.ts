/**
 * QuIP (Chee et al. 2023, "QuIP: 2-Bit Quantization of Large Language Models With Guarantees"):
 * incoherence processing, LDLQ, optional greedy passes, undo.
 *
 * Notation: W [m = out × n = in] (GPTQ's orientation, y = x·Wᵀ), H [n × n] = 2/N Σ xᵀx.
 *
 * Pre-processing (the paper's Algorithm 1):
 *   1. H ← H + λI, λ = percdamp · mean(diag H)                          (from OPTQ)
 *   2. D̃ = ⁴√(diag(H) / diag(WᵀW)) (element-wise; option `quipRescale`, on by default);
 *      W ← W·D̃, H ← D̃⁻¹·H·D̃⁻¹. D̃ minimises tr(D⁻¹HD⁻¹)·‖WD‖²_F over positive diagonals D (the
 *      product the paper's LDLQ error bound is proportional to), normalised here to geometric
 *      mean 1 (a common factor changes nothing).
 *   3. W ← U·W·Vᵀ, H ← V·H·Vᵀ with seeded random orthogonal U [m×m], V [n×n]
 *      (kernels/transforms.ts: Kronecker products of small random orthogonals and randomized
 *      Hadamards, any size without a prime factor above 4096).
 *   4. Scale (option `quipScale`):
 *      "tensor" (the paper's code): one s = ρ·‖W‖_F/√(mn) (ρ = `quipRho`, 2.4), the grid
 *      s·(2c/(2^b−1) − 1), c = 0 … 2^b−1: symmetric, no zero level (zero point (2^b−1)/2);
 *      with `clip`, ρ is searched (1 … 5) for the least proxy loss after LDLQ.
 *      "group": min/max (or symmetric) scales per row (`group` 0) or per group of inputs, as
 *      GPTQ's; with `clip`, each row's range shrink is searched on the proxy loss LDLQ reaches
 *      (quant/gptq-clip.ts).
 * Quantization: LDLQ (= GPTQ, one kernel) on the processed W and H. With "group" scales this is
 * kernels/gptq.ts itself; with the per-tensor grid, fixed before rounding, `ldlqFixedGrid` below
 * runs the same lazy-batch recursion (TypeScript, trailing updates in sgemm).
 * Greedy passes (`quipRefine`): coordinate descent over columns on the proxy loss — each weight
 * moved to the grid point minimising tr(ΔW·H·ΔWᵀ) with the others fixed; a change is kept only when
 * it lowers the loss, and a pass that (by float rounding) did not lower it is undone, so the proxy
 * loss never increases.
 * Post-processing (Algorithm 2): Ŵ_orig = Uᵀ·Ŵ·V·D̃⁻¹. The proxy loss is reported in the original
 * space, tr((W − Ŵ_orig)·H·(W − Ŵ_orig)ᵀ) with the undamped H (the same number in the processed
 * space: U, V orthogonal and D̃ cancels).
 *
 * The codes, scales and zeros a LayerQuant holds are those of Ŵ in the PROCESSED space; its
 * `rotation` field (LayerRotation) says how to get back (quantize.ts `dequantized` does it, the
 * exporter writes it as graph ops: export/rotation.ts).
 *
 * Seed convention (reproducible; analysis computes μ_W/μ_H "after the rotation QuIP would apply"
 * with `quipRotations`):
 *   V (input side, size in):  seed = quipSeed(baseSeed, "V:" + layer.input)  — every layer
 *                             reading the same tensor (q/k/v, gate/up) gets the same V;
 *   U (output side, size out): seed = quipSeed(baseSeed, "U:" + layer.name);
 *   quipSeed(base, key) = fmix32(fnv1a32(key) ^ fmix32(base)), an unsigned 32-bit integer;
 *   draw t > 0 of a key (`quipRotationTries`, chooseQuipRotations) appends "#t" to it, e.g.
 *   "V:" + layer.input + "#3"; the LayerRotation records the seeds kept;
 *   kind (`quipRotation`): "kron" → two balanced dense factors (the paper's Kronecker product),
 *   "auto" → dense(odd part) ⊗ randomized Hadamard(2^k), "hadamard" → a randomized Hadamard
 *   where n is a power of two, else "auto".
 */
import { UsageError } from "../errors";
import { sgemm, gptqInverseCholeskyUpper } from "../kernels/linalg";
import { gptqQuantize } from "../kernels/gptq";
import { GPTQ_CLIP_SEARCH, gptqClipQuantize } from "./gptq-clip";
import { symmetricEigen } from "../kernels/eigen";
import { randomOrthogonalTransform, type OrthoKind, type OrthogonalTransform } from "../kernels/transforms";
import { fmix32 } from "../kernels/reference-transforms";
import { roundHalfEven, rtnGroups } from "../kernels/reference-quant";
import type { QuantConfig } from "./config";
import { proxyLoss } from "./proxy";
import { transpose } from "./layer-weights";

export type QuipRotationKind = "kron" | "hadamard" | "auto";
export type QuipScale = "tensor" | "group";

/** One seeded orthogonal transform (kernels/transforms.ts randomOrthogonalTransform). */
export interface RotationSpec {
  n: number;
  seed: number;
  kind: OrthoKind;
}

/** How a QuIP layer's codes relate to its weight: W ≈ Uᵀ·Ŵ·V·diag(rescale)⁻¹. */
export interface LayerRotation {
  method: "quip";
  /** Output side, size out. */
  u: RotationSpec;
  /** Input side, size in (shared by the layers reading the same tensor). */
  v: RotationSpec;
  /** D̃ [in] (W_processed = U·W·D̃·Vᵀ); null without rescaling. */
  rescale: Float32Array | null;
}

/** The fields of a linear layer the seed convention reads. */
export interface QuipLayerId {
  name: string;
  input: string;
  in: number;
  out: number;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv1a32(key: string): number {
  let h = FNV_OFFSET;
  const bytes = new TextEncoder().encode(key);
  for (const b of bytes) h = Math.imul(h ^ b, FNV_PRIME) >>> 0;
  return h >>> 0;
}

/** The seed of one transform: fmix32(fnv1a32(key) ^ fmix32(base)). */
export function quipSeed(baseSeed: number, key: string): number {
  if (!Number.isInteger(baseSeed) || baseSeed < 0 || baseSeed > 0xffffffff) {
    throw new UsageError(`QuIP seed must be an integer in [0, 2^32), not ${baseSeed}`);
  }
  return fmix32((fnv1a32(key) ^ fmix32(baseSeed >>> 0)) >>> 0);
}

/** The transform kind QuIP uses for a dimension n under a rotation option. */
export function rotationKindFor(n: number, rotation: QuipRotationKind): OrthoKind {
  if (rotation === "hadamard") return (n & (n - 1)) === 0 ? "hadamard" : "auto";
  return rotation;
}

/** The key of draw `t` of a rotation: draw 0 is the key itself (one try = the single draw). */
function drawKey(key: string, t: number): string {
  return t === 0 ? key : `${key}#${t}`;
}

/** U (draw `tu`) and V (draw `tv`) for a layer under the seed convention above. */
export function quipRotationSpecs(
  layer: QuipLayerId, baseSeed: number, rotation: QuipRotationKind = "kron", draw: { u?: number; v?: number } = {},
): { u: RotationSpec; v: RotationSpec } {
  return {
    u: { n: layer.out, seed: quipSeed(baseSeed, drawKey(`U:${layer.name}`, draw.u ?? 0)), kind: rotationKindFor(layer.out, rotation) },
    v: { n: layer.in, seed: quipSeed(baseSeed, drawKey(`V:${layer.input}`, draw.v ?? 0)), kind: rotationKindFor(layer.in, rotation) },
  };
}

/** The transforms themselves (draw 0; what the quantizer and the analysis use with one try). */
export function quipRotations(layer: QuipLayerId, baseSeed: number, rotation: QuipRotationKind = "kron"): { u: OrthogonalTransform; v: OrthogonalTransform } {
  const s = quipRotationSpecs(layer, baseSeed, rotation);
  return { u: transformOf(s.u), v: transformOf(s.v) };
}

/** The rotations chosen for the layers reading one input tensor (chooseQuipRotations). */
export interface QuipRotationChoice {
  /** V, shared by every layer reading the tensor. */
  v: RotationSpec;
  /** U per layer name. */
  u: Map<string, RotationSpec>;
  /** μ_H of V·H·Vᵀ (null without H's eigenvectors) and μ_W of U·W·Vᵀ per layer name. */
  muH: number | null;
  muW: Map<string, number>;
  /** The draws compared, and the ones kept (0 = the single draw of the seed convention). */
  tries: number;
  drawV: number;
  drawU: Map<string, number>;
}

/**
 * QuIP's rotations for the layers reading one tensor, drawn `tries` times and kept where the
 * processed layers are most incoherent. QuIP's guarantee is probabilistic: a random U, V makes
 * W and H incoherent with high probability, and its LDLQ bound grows with μ_H²·μ_W². On a small
 * model one draw often lands above what the layer had before (on stories260K a single draw
 * raises μ_W of layers.0 q_proj 6.75 → 6.95 and μ_H of block 1's o_proj input 4.07 → 4.23),
 * so, as a derandomisation, V is chosen first by the smallest μ_H(V)·(geometric mean over the
 * layers of μ_W(U_t·W·V_tᵀ)) over the draws t that lower μ_H (over all draws if none does), then
 * each layer's U by the smallest μ_W given that V. 16 draws by default: on an H that is already
 * incoherent few draws lower μ_H (block 1's post-attention input of stories260K: 9 of 64).
 * Without eigenvectors (n above EIGEN_MAX_N_VECTORS) V is chosen by μ_W alone. Draw 0 is the
 * seed convention's rotation, so `tries` 1 reproduces it; ties keep the earlier draw. The cost
 * is 2·tries orthogonal transforms of each W and `tries` of the n×n eigenvectors.
 */
export async function chooseQuipRotations(
  layers: { id: QuipLayerId; w: Float32Array }[],
  eigenvectors: Float64Array | Float32Array | null,
  baseSeed: number,
  rotation: QuipRotationKind,
  tries: number,
  signal?: AbortSignal,
): Promise<QuipRotationChoice> {
  if (layers.length === 0) throw new RangeError("chooseQuipRotations(): no layers");
  if (!Number.isInteger(tries) || tries < 1) throw new UsageError(`--rotation-tries must be an integer ≥ 1, not ${tries}`);
  const n = layers[0].id.in;
  const input = layers[0].id.input;
  for (const l of layers) {
    if (l.id.in !== n || l.id.input !== input) throw new RangeError(`chooseQuipRotations(): ${l.id.name} does not read '${input}' (${n} inputs)`);
  }
  /** (W·Vᵀ)ᵀ: the columns of W·Vᵀ as rows, ready for U. */
  const rotatedColumns = async (w: Float32Array, l: QuipLayerId, v: OrthogonalTransform) => transpose(await v.apply(Float32Array.from(w), l.out, { signal }), l.out, l.in);
  /** μ_W of U·W·Vᵀ from (W·Vᵀ)ᵀ (left as it is). */
  const muWith = async (wvT: Float32Array, l: QuipLayerId, u: OrthogonalTransform) => weightIncoherence(await u.apply(Float32Array.from(wvT), l.in, { signal }), l.in, l.out);
  // A draw that leaves H more coherent than it was unrotated has failed at what the rotation is
  // for: V is taken from the draws that lower μ_H when there are any.
  const muH0 = eigenvectors ? eigenvectorIncoherence(eigenvectors, n) : null;
  const better = (a: { score: number; muH: number | null }, b: { score: number; muH: number | null }) => {
    const aOk = muH0 === null || a.muH! < muH0;
    const bOk = muH0 === null || b.muH! < muH0;
    return aOk !== bOk ? aOk : a.score < b.score;
  };
  // The best draw keeps (W·Vᵀ)ᵀ of every layer: the U draws below start from it.
  let best: { t: number; score: number; muH: number | null; muW: number[]; wvT: Float32Array[] } | null = null;
  for (let t = 0; t < tries; t++) {
    const v = transformOf(quipRotationSpecs(layers[0].id, baseSeed, rotation, { v: t }).v);
    const mh = eigenvectors ? eigenvectorIncoherence(await rotateEigenvectors(eigenvectors, n, v, signal), n) : null;
    const mw: number[] = [];
    const wvT: Float32Array[] = [];
    for (const l of layers) {
      wvT.push(await rotatedColumns(l.w, l.id, v));
      mw.push(await muWith(wvT[wvT.length - 1], l.id, transformOf(quipRotationSpecs(l.id, baseSeed, rotation, { u: t }).u)));
    }
    const score = (mh ?? 1) * Math.exp(mw.reduce((a, m) => a + Math.log(Math.max(m, 1e-30)), 0) / mw.length);
    const draw = { t, score, muH: mh, muW: mw, wvT };
    if (!best || better(draw, best)) best = draw;
  }
  const drawV = best!.t;
  const v = quipRotationSpecs(layers[0].id, baseSeed, rotation, { v: drawV }).v;
  const u = new Map<string, RotationSpec>();
  const muW = new Map<string, number>();
  const drawU = new Map<string, number>();
  for (const [i, l] of layers.entries()) {
    const wvT = best!.wvT[i];
    let keep = { t: drawV, mu: best!.muW[i] };
    for (let t = 0; t < tries; t++) {
      if (t === drawV) continue;
      const mu = await muWith(wvT, l.id, transformOf(quipRotationSpecs(l.id, baseSeed, rotation, { u: t }).u));
      if (mu < keep.mu || (mu === keep.mu && t < keep.t)) keep = { t, mu };
    }
    u.set(l.id.name, quipRotationSpecs(l.id, baseSeed, rotation, { u: keep.t }).u);
    muW.set(l.id.name, keep.mu);
    drawU.set(l.id.name, keep.t);
  }
  return { v, u, muH: best!.muH, muW, tries, drawV, drawU };
}

/** V·Q for eigenvectors Q [n × n] (column j = eigenvector j): the rotated H's eigenvectors (row j = V·q_j). */
export async function rotateEigenvectors(q: Float64Array | Float32Array, n: number, v: OrthogonalTransform, signal?: AbortSignal): Promise<Float32Array> {
  const t = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = q[i * n + j];
  await v.apply(t, n, { signal });
  return t;
}

export function transformOf(spec: RotationSpec): OrthogonalTransform {
  return randomOrthogonalTransform({ n: spec.n, seed: spec.seed, kind: spec.kind });
}

// ---- processing and its undo ----------------------------------------------------------------

/** U·(W·diag(d))·Vᵀ for W [rows × cols] (a new array). */
export function rotateWeight(w: Float32Array, rows: number, cols: number, u: OrthogonalTransform, v: OrthogonalTransform, rescale: Float32Array | null): Float32Array {
  const x = Float32Array.from(w);
  if (rescale) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) x[r * cols + c] *= rescale[c];
  v.applySync(x, rows); // rows ← V·row: W·Vᵀ
  const t = transpose(x, rows, cols);
  u.applySync(t, cols); // columns ← U·column
  return transpose(t, cols, rows);
}

/** Uᵀ·Ŵ·V·diag(d)⁻¹: the processed-space weight back in the original space (a new array). */
export function unrotateWeight(wp: Float32Array, rows: number, cols: number, u: OrthogonalTransform, v: OrthogonalTransform, rescale: Float32Array | null): Float32Array {
  const x = Float32Array.from(wp);
  v.applySync(x, rows, { inverse: true }); // rows ← Vᵀ·row: Ŵ·V
  const t = transpose(x, rows, cols);
  u.applySync(t, cols, { inverse: true });
  const y = transpose(t, cols, rows);
  if (rescale) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) y[r * cols + c] /= rescale[c];
  return y;
}

/** A LayerQuant's processed-space weight back in the original space. */
export function undoRotation(rot: LayerRotation, wp: Float32Array, rows: number, cols: number): Float32Array {
  return unrotateWeight(wp, rows, cols, transformOf(rot.u), transformOf(rot.v), rot.rescale);
}

/** V·D⁻¹·(H + λI)·D⁻¹·Vᵀ (float32, symmetrised) for H [n × n]. */
export function rotateHessian(h: Float64Array | Float32Array, n: number, v: OrthogonalTransform, rescale: Float32Array | null, lambda = 0): Float32Array {
  const x = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const hij = i === j ? h[i * n + j] + lambda : h[i * n + j];
      x[i * n + j] = rescale ? hij / (rescale[i] * rescale[j]) : hij;
    }
  }
  v.applySync(x, n); // H·Vᵀ (rows ← V·row)
  const t = transpose(x, n, n); // V·H
  v.applySync(t, n); // V·H·Vᵀ
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const a = 0.5 * (t[i * n + j] + t[j * n + i]);
      t[i * n + j] = a;
      t[j * n + i] = a;
    }
  }
  return t;
}

/**
 * The paper's diagonal rescaling D̃_j = ⁴√((H_jj + λ) / ‖W_:j‖²) (H damped by λ), normalised to
 * geometric mean 1; 1 where a column of W is zero or H_jj is not positive.
 */
export function quipRescale(w: Float32Array, rows: number, cols: number, h: Float64Array | Float32Array, lambda = 0): Float32Array {
  const norm2 = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) norm2[c] += w[r * cols + c] * w[r * cols + c];
  const d = new Float64Array(cols);
  let logSum = 0;
  let count = 0;
  for (let c = 0; c < cols; c++) {
    const hjj = h[c * cols + c] + lambda;
    if (norm2[c] > 0 && hjj > 0) {
      d[c] = Math.pow(hjj / norm2[c], 0.25);
      logSum += Math.log(d[c]);
      count++;
    } else d[c] = NaN;
  }
  const g = count ? Math.exp(logSum / count) : 1;
  return Float32Array.from(d, (x) => (Number.isNaN(x) ? 1 : x / g));
}

// ---- incoherence (DESIGN.md) ------------------------------------------------------------------

/** μ_W = max|W_ij|·√(mn)/‖W‖_F. */
export function weightIncoherence(w: Float32Array, rows: number, cols: number): number {
  let max = 0;
  let ss = 0;
  for (let i = 0; i < w.length; i++) {
    const a = Math.abs(w[i]);
    if (a > max) max = a;
    ss += a * a;
  }
  return ss > 0 ? (max * Math.sqrt(rows * cols)) / Math.sqrt(ss) : 0;
}

/** μ_H = max|Q_ij|·√n over the unit eigenvectors Q of H. */
export async function hessianIncoherence(h: Float64Array | Float32Array, n: number, signal?: AbortSignal): Promise<number> {
  const e = await symmetricEigen(h, n, { vectors: true, signal });
  return eigenvectorIncoherence(e.vectors!, n);
}

/** μ_H from H's eigenvectors Q [n × n] (any layout: the max over all entries). */
export function eigenvectorIncoherence(vectors: Float64Array | Float32Array, n: number): number {
  let max = 0;
  for (let i = 0; i < vectors.length; i++) max = Math.max(max, Math.abs(vectors[i]));
  return max * Math.sqrt(n);
}

// ---- grids ----------------------------------------------------------------------------------

/** A fixed quantization grid: Q[r, j] = scales[r, g]·(code − zeros[r, g]), g = floor(j / group). */
export interface FixedGrid {
  bits: number;
  /** 0: one (scale, zero) per row. */
  group: number;
  scales: Float32Array;
  zeros: Float32Array;
}

function gridAt(grid: FixedGrid, cols: number) {
  const ngroups = rtnGroups(cols, grid.group >= cols ? 0 : grid.group);
  const g = ngroups === 1 ? cols : grid.group;
  return { ngroups, g, maxq: (1 << grid.bits) - 1 };
}

/** The grid point nearest w: code = clamp(round(w/scale + zero), 0, maxq) (ties to even as RTN's). */
export function gridCode(w: number, scale: number, zero: number, maxq: number): number {
  const zi = Math.floor(zero);
  let q = roundHalfEven(Math.fround(w / scale) + (zero - zi)) + zi;
  if (!(q > 0)) q = 0;
  if (q > maxq) q = maxq;
  return q;
}

/** The paper's per-tensor grid for a processed W: s = ρ‖W‖_F/√(mn), step 2s/(2^b−1), zero (2^b−1)/2. */
export function tensorGrid(w: Float32Array, rows: number, cols: number, bits: number, rho: number): FixedGrid {
  let ss = 0;
  for (let i = 0; i < w.length; i++) ss += w[i] * w[i];
  const maxq = (1 << bits) - 1;
  const s = (rho * Math.sqrt(ss / (rows * cols))) || 1;
  return { bits, group: 0, scales: new Float32Array(rows).fill((2 * s) / maxq), zeros: new Float32Array(rows).fill(maxq / 2) };
}

/** ρ in 0.5 … 4 (step 0.05) giving the least Σ(w − Q(w))² with the per-tensor grid (nearest rounding; not what `clip` uses). */
export function searchRho(w: Float32Array, rows: number, cols: number, bits: number): number {
  let ss = 0;
  for (let i = 0; i < w.length; i++) ss += w[i] * w[i];
  const rms = Math.sqrt(ss / (rows * cols)) || 1;
  const maxq = (1 << bits) - 1;
  // A strided sample keeps this cheap on 7B-sized layers.
  const stride = Math.max(1, Math.floor(w.length / 262144));
  let best = 2.4;
  let bestErr = Infinity;
  for (let k = 10; k <= 80; k++) {
    const rho = k * 0.05;
    const step = (2 * rho * rms) / maxq;
    const zero = maxq / 2;
    let err = 0;
    for (let i = 0; i < w.length; i += stride) {
      const d = w[i] - step * (gridCode(w[i], step, zero, maxq) - zero);
      err += d * d;
    }
    if (err < bestErr) {
      bestErr = err;
      best = rho;
    }
  }
  return best;
}

/** Nearest-grid-point codes of W (what LDLQ is compared with). */
export function roundToGrid(w: Float32Array, rows: number, cols: number, grid: FixedGrid): Uint8Array {
  const { ngroups, g, maxq } = gridAt(grid, cols);
  const codes = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = r * ngroups + Math.floor(c / g);
      codes[r * cols + c] = gridCode(w[r * cols + c], grid.scales[k], grid.zeros[k], maxq);
    }
  }
  return codes;
}

export function dequantizeGrid(codes: Uint8Array, rows: number, cols: number, grid: FixedGrid): Float32Array {
  const { ngroups, g } = gridAt(grid, cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = r * ngroups + Math.floor(c / g);
      out[r * cols + c] = grid.scales[k] * (codes[r * cols + c] - grid.zeros[k]);
    }
  }
  return out;
}

// ---- LDLQ with a fixed grid ----------------------------------------------------------------------

/**
 * LDLQ (= GPTQ without act-order) of W [rows × cols] on a grid fixed up front, H [cols × cols]
 * (damped, positive definite; float32). Lazy batches of `blockSize` columns as gptq.py: within a
 * batch the error feeds the batch's later columns row by row, then the trailing columns get
 * W[:, i2:] −= Err·U[i1:i2, i2:] (sgemm), U the upper Cholesky factor of H⁻¹. W is not modified.
 */
export async function ldlqFixedGrid(
  w: Float32Array, rows: number, cols: number, h: Float32Array, grid: FixedGrid, opts: { blockSize?: number; signal?: AbortSignal } = {},
): Promise<{ codes: Uint8Array; dampRetries: number }> {
  const u = Float32Array.from(h);
  let dampRetries = 0;
  let pivot = await gptqInverseCholeskyUpper(u, cols, { signal: opts.signal });
  if (pivot >= 0) {
    // As the GPTQ kernel: escalate a tiny damping ×10 until H + λI factorizes.
    let mean = 0;
    for (let j = 0; j < cols; j++) mean += h[j * cols + j];
    mean /= cols;
    let lambda = 1e-5 * (mean > 0 ? mean : 1);
    while (pivot >= 0 && dampRetries < 8) {
      u.set(h);
      for (let j = 0; j < cols; j++) u[j * cols + j] += lambda;
      pivot = await gptqInverseCholeskyUpper(u, cols, { signal: opts.signal });
      lambda *= 10;
      dampRetries++;
    }
    if (pivot >= 0) throw new RangeError(`LDLQ: the processed Hessian is not positive definite (pivot ${pivot}) even after damping`);
  }
  const W = Float32Array.from(w);
  const codes = new Uint8Array(rows * cols);
  const { ngroups, g, maxq } = gridAt(grid, cols);
  const B = Math.max(1, opts.blockSize ?? 128);
  const err = new Float32Array(rows * B);
  for (let i1 = 0; i1 < cols; i1 += B) {
    const i2 = Math.min(cols, i1 + B);
    const nb = i2 - i1;
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      for (let j = i1; j < i2; j++) {
        const k = r * ngroups + Math.floor(j / g);
        const scale = grid.scales[k];
        const zero = grid.zeros[k];
        const x = W[row + j];
        const c = gridCode(x, scale, zero, maxq);
        codes[row + j] = c;
        const e = (x - scale * (c - zero)) / u[j * cols + j];
        err[r * nb + (j - i1)] = e;
        for (let t = j + 1; t < i2; t++) W[row + t] -= e * u[j * cols + t];
      }
    }
    if (i2 < cols) {
      await sgemm(
        { transA: false, transB: false, m: rows, n: cols - i2, k: nb, alpha: -1, a: err, lda: nb, b: u.subarray(i1 * cols + i2), ldb: cols, beta: 1, c: W.subarray(i2), ldc: cols },
        { signal: opts.signal },
      );
    }
  }
  return { codes, dampRetries };
}

// ---- greedy passes ----------------------------------------------------------------------------------

/**
 * Coordinate-descent passes over the columns of Ŵ (codes on `grid`) lowering tr(E·H·Eᵀ), E = W − Ŵ.
 * Each weight moves to the grid point nearest its exact minimiser with the others fixed (a 1-D
 * convex quadratic, so that point is the best grid point), kept only when the loss drops; a pass
 * whose measured loss did not drop is undone. `codes` is updated in place; returns the losses
 * after each pass (index 0: before).
 */
export async function greedyPasses(
  w: Float32Array, rows: number, cols: number, h: Float32Array, grid: FixedGrid, codes: Uint8Array, passes: number,
  opts: { blockSize?: number; signal?: AbortSignal } = {},
): Promise<number[]> {
  const { ngroups, g, maxq } = gridAt(grid, cols);
  const loss = async (c: Uint8Array) => quadForm(subtract(w, dequantizeGrid(c, rows, cols, grid)), h, rows, cols, opts.signal);
  const losses = [await loss(codes)];
  const B = Math.max(1, opts.blockSize ?? 128);
  for (let p = 0; p < passes; p++) {
    const before = Uint8Array.from(codes);
    const E = subtract(w, dequantizeGrid(codes, rows, cols, grid));
    const G = new Float32Array(rows * cols); // E·H
    await sgemm({ transA: false, transB: false, m: rows, n: cols, k: cols, alpha: 1, a: E, b: h, beta: 0, c: G }, { signal: opts.signal });
    const delta = new Float32Array(rows * B);
    const gl = new Float64Array(B);
    for (let i1 = 0; i1 < cols; i1 += B) {
      const i2 = Math.min(cols, i1 + B);
      const nb = i2 - i1;
      delta.fill(0);
      for (let r = 0; r < rows; r++) {
        const row = r * cols;
        for (let t = 0; t < nb; t++) gl[t] = G[row + i1 + t];
        for (let j = i1; j < i2; j++) {
          const hjj = h[j * cols + j];
          if (!(hjj > 0)) continue;
          const eOld = E[row + j];
          const c = gl[j - i1] - eOld * hjj; // Σ_{k≠j} e_k·H_kj
          const k = r * ngroups + Math.floor(j / g);
          const scale = grid.scales[k];
          const zero = grid.zeros[k];
          const target = w[row + j] + c / hjj; // the unconstrained best Ŵ_rj
          const code = gridCode(target, scale, zero, maxq);
          if (code === codes[row + j]) continue;
          const eNew = w[row + j] - scale * (code - zero);
          const d = eNew - eOld;
          if (!(hjj * (eNew * eNew - eOld * eOld) + 2 * c * d < 0)) continue;
          codes[row + j] = code;
          E[row + j] = eNew;
          delta[r * nb + (j - i1)] = d;
          for (let t = 0; t < nb; t++) gl[t] += d * h[j * cols + i1 + t];
        }
      }
      await sgemm({ transA: false, transB: false, m: rows, n: cols, k: nb, alpha: 1, a: delta, lda: nb, b: h.subarray(i1 * cols), ldb: cols, beta: 1, c: G }, { signal: opts.signal });
    }
    const after = await loss(codes);
    if (!(after < losses[losses.length - 1])) {
      codes.set(before);
      losses.push(losses[losses.length - 1]);
      break; // a fixed point (or float noise): more passes change nothing
    }
    losses.push(after);
  }
  return losses;
}

function subtract(a: Float32Array, b: Float32Array): Float32Array {
  const e = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) e[i] = a[i] - b[i];
  return e;
}

/** tr(E·H·Eᵀ) for E [rows × cols], H [cols × cols] float32 (float64 sum). */
export async function quadForm(e: Float32Array, h: Float32Array, rows: number, cols: number, signal?: AbortSignal): Promise<number> {
  const eh = new Float32Array(rows * cols);
  await sgemm({ transA: false, transB: false, m: rows, n: cols, k: cols, alpha: 1, a: e, b: h, beta: 0, c: eh }, { signal });
  let s = 0;
  for (let i = 0; i < eh.length; i++) s += eh[i] * e[i];
  return s;
}

// ---- one layer ----------------------------------------------------------------------------------

export interface QuipLayerResult {
  codes: Uint8Array;
  scales: Float32Array;
  zeros: Float32Array;
  /** The group of the codes' grid (0 = one scale per row; per-tensor grids are per-row grids with equal values). */
  group: number;
  symmetric: boolean;
  rotation: LayerRotation;
  /** Original space, undamped H. */
  proxyLoss: number;
  relProxyLoss: number;
  /** Nearest rounding on the same grid after the same processing. */
  proxyLossRtn: number;
  /** Loss after LDLQ and after each greedy pass (index 0 = LDLQ). */
  passLosses: number[];
  damp: number;
  deadColumns: number;
  rho?: number;
}

export type QuipSettings = Pick<QuantConfig, "bits" | "group" | "symmetric" | "percdamp" | "blockSize" | "clip" | "actOrder"> & {
  quipSeed: number;
  quipRotation: QuipRotationKind;
  quipRotationTries: number;
  quipRefine: number;
  quipRescale: boolean;
  quipScale: QuipScale;
  quipRho: number;
};

/** A QuantConfig's QuIP settings with the defaults filled in. */
export function quipSettings(c: QuantConfig): QuipSettings {
  return {
    bits: c.bits,
    group: c.group,
    symmetric: c.symmetric,
    percdamp: c.percdamp,
    blockSize: c.blockSize,
    clip: c.clip,
    actOrder: c.actOrder,
    quipSeed: c.quipSeed ?? QUIP_DEFAULTS.quipSeed,
    quipRotation: c.quipRotation ?? QUIP_DEFAULTS.quipRotation,
    quipRotationTries: c.quipRotationTries ?? QUIP_DEFAULTS.quipRotationTries,
    quipRefine: c.quipRefine ?? QUIP_DEFAULTS.quipRefine,
    quipRescale: c.quipRescale ?? QUIP_DEFAULTS.quipRescale,
    quipScale: c.quipScale ?? QUIP_DEFAULTS.quipScale,
    quipRho: c.quipRho ?? QUIP_DEFAULTS.quipRho,
  };
}

export const QUIP_DEFAULTS = {
  quipSeed: 0,
  quipRotation: "kron",
  quipRotationTries: 16,
  quipRefine: 0,
  quipRescale: true,
  quipScale: "tensor",
  quipRho: 2.4,
} as const satisfies Partial<QuipSettings>;

/**
 * QuIP one layer: W [out × in] (not modified), H (float64, undamped) of its input. `chosen`:
 * U and V chosen for it (chooseQuipRotations); without it, draw 0 of the seed convention.
 */
export async function quipQuantizeLayer(
  w: Float32Array, layer: QuipLayerId, hessian: Float64Array, s: QuipSettings, signal?: AbortSignal, chosen?: { u: RotationSpec; v: RotationSpec },
): Promise<QuipLayerResult> {
  const rows = layer.out;
  const cols = layer.in;
  if (w.length !== rows * cols) throw new RangeError(`quip: ${layer.name}: weight has ${w.length} values, not ${rows} × ${cols}`);
  if (hessian.length !== cols * cols) throw new RangeError(`quip: ${layer.name}: Hessian of '${layer.input}' has ${hessian.length} values, not ${cols}²`);
  // Dead inputs (H_jj = 0) carry nothing: their weights are zeroed, as GPTQ does.
  const w0 = Float32Array.from(w);
  let deadColumns = 0;
  let meanDiag = 0;
  for (let j = 0; j < cols; j++) {
    const hjj = hessian[j * cols + j];
    meanDiag += hjj;
    if (hjj === 0) {
      deadColumns++;
      for (let r = 0; r < rows; r++) w0[r * cols + j] = 0;
    }
  }
  meanDiag /= cols;
  const damp = s.percdamp * (meanDiag > 0 ? meanDiag : 1);
  const rescale = s.quipRescale ? quipRescale(w0, rows, cols, hessian, damp) : null;
  const specs = chosen ?? quipRotationSpecs(layer, s.quipSeed, s.quipRotation);
  if (specs.u.n !== rows || specs.v.n !== cols) throw new RangeError(`quip: ${layer.name}: rotation sizes ${specs.u.n}/${specs.v.n} do not match ${rows} × ${cols}`);
  const u = transformOf(specs.u);
  const v = transformOf(specs.v);
  const wp = rotateWeight(w0, rows, cols, u, v, rescale);
  const hp = rotateHessian(hessian, cols, v, rescale, damp); // damped: what LDLQ factors
  const hu = rotateHessian(hessian, cols, v, rescale); // undamped: the proxy loss's

  let grid: FixedGrid;
  let codes: Uint8Array;
  let rho: number | undefined;
  if (s.quipScale === "tensor") {
    const run = async (r: number) => {
      const gr = tensorGrid(wp, rows, cols, s.bits, r);
      const c = (await ldlqFixedGrid(wp, rows, cols, hp, gr, { blockSize: s.blockSize, signal })).codes;
      return { rho: r, grid: gr, codes: c, loss: s.clip ? await quadForm(subtract(wp, dequantizeGrid(c, rows, cols, gr)), hu, rows, cols, signal) : 0 };
    };
    let best = await run(s.quipRho);
    if (s.clip) {
      // ρ by the proxy loss LDLQ reaches (the squared rounding error alone picks ranges too
      // narrow for LDLQ's error feedback): 1 … 5 in steps of 0.5, then ±0.25 around the best.
      const tried = new Set([s.quipRho]);
      const consider = async (r: number) => {
        if (r <= 0 || tried.has(r)) return;
        tried.add(r);
        const c = await run(r);
        if (c.loss < best.loss) best = c;
      };
      for (let k = 2; k <= 10; k++) await consider(k * 0.5);
      const centre = best.rho;
      await consider(centre - 0.25);
      await consider(centre + 0.25);
    }
    rho = best.rho;
    grid = best.grid;
    codes = best.codes;
  } else {
    const input = {
      w: wp, rows, cols, h: hp, bits: s.bits, group: s.group, symmetric: s.symmetric, blockSize: s.blockSize,
      percdamp: 0, // H is damped already (step 1)
      actOrder: s.actOrder, staticGroups: s.actOrder && s.group > 0, losses: false,
    };
    // With `clip`: each row's range shrink chosen on the proxy loss LDLQ reaches (gptq-clip.ts).
    const r = s.clip ? await gptqClipQuantize(input, GPTQ_CLIP_SEARCH, { signal }) : await gptqQuantize(input, { signal });
    grid = { bits: s.bits, group: s.group >= cols ? 0 : s.group, scales: r.scales, zeros: r.zeros };
    codes = r.codes;
  }
  const passLosses = await greedyPasses(wp, rows, cols, hu, grid, codes, s.quipRefine, { blockSize: s.blockSize, signal });
  const rtnLoss = await quadForm(subtract(wp, dequantizeGrid(roundToGrid(wp, rows, cols, grid), rows, cols, grid)), hu, rows, cols, signal);

  const rotation: LayerRotation = { method: "quip", u: specs.u, v: specs.v, rescale };
  const back = unrotateWeight(dequantizeGrid(codes, rows, cols, grid), rows, cols, u, v, rescale);
  const l = await proxyLoss(w, back, hessian, rows, cols, signal);
  return {
    codes,
    scales: grid.scales,
    zeros: grid.zeros,
    group: grid.group,
    symmetric: s.quipScale === "tensor" ? true : s.symmetric,
    rotation,
    proxyLoss: l.loss,
    relProxyLoss: l.energy > 0 ? l.loss / l.energy : 0,
    proxyLossRtn: rtnLoss,
    passLosses,
    damp,
    deadColumns,
    ...(rho !== undefined ? { rho } : {}),
  };
}
