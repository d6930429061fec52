import type { LinearLayer } from "../onnx/linear";
import type { OrthogonalTransform } from "../kernels/transforms";
import { chooseQuipRotations, transformOf, type QuipRotationKind } from "../quant/quip";
import type { Histogram } from "../report/schema";
import { transpose } from "../quant/layer-weights";

/**
 * QuIP incoherence (Chee et al. 2023, Def. 1): W [m × n] is μ_W-incoherent with
 * μ_W = max|W_ij|·√(mn)/‖W‖_F, and H [n × n] = Q Λ Qᵀ is μ_H-incoherent with μ_H = max|Q_ij|·√n.
 * Both are ≥ 1 (1 = perfectly spread) and at most √(mn) resp. √n. QuIP's incoherence
 * processing W ← U W Vᵀ, H ← V H Vᵀ with random orthogonal U, V lowers them; the rotated
 * eigenvectors are V Q, so μ_H after rotation needs no second eigendecomposition.
 */
export { weightIncoherence as muW, eigenvectorIncoherence as muH, rotateEigenvectors } from "../quant/quip";

/** The orthogonal pair QuIP applies to one layer: W ← U W Vᵀ (U: [out × out], V: [in × in]). */
export interface QuipRotation {
  u: OrthogonalTransform;
  v: OrthogonalTransform;
  kind: string;
  /** "quip": quant/quip.ts's own seeds and kinds (the quantizer's convention). */
  source: "quip" | "analysis";
  /** Draws compared (quip.ts chooseQuipRotations; 1 = the seed convention's single draw). */
  tries: number;
}

/**
 * The rotations `quantize --method quip` chooses for the layers reading one tensor from `tries`
 * draws (quip.ts chooseQuipRotations, same seeds, kind and rule), by layer name. `eigenvectors`:
 * of the tensor's H (null: chosen by μ_W alone, as the quantizer does above EIGEN_MAX_N_VECTORS).
 */
export async function chosenQuipRotations(
  layers: { layer: LinearLayer; w: Float32Array }[],
  eigenvectors: Float64Array | null,
  seed: number,
  kind: QuipRotationKind,
  tries: number,
  signal?: AbortSignal,
): Promise<Map<string, QuipRotation>> {
  const c = await chooseQuipRotations(layers.map((l) => ({ id: l.layer, w: l.w })), eigenvectors, seed, kind, tries, signal);
  const v = transformOf(c.v);
  return new Map(layers.map(({ layer }) => [layer.name, { u: transformOf(c.u.get(layer.name)!), v, kind, source: "quip", tries }]));
}

/** U W Vᵀ for W [rows × cols]: V on every row, then U on every column. */
export async function rotateWeight(w: Float32Array, rows: number, cols: number, r: QuipRotation): Promise<Float32Array> {
  const x = Float32Array.from(w);
  await r.v.apply(x, rows); // rows w_i ← V w_i: W Vᵀ
  const t = transpose(x, rows, cols); // [cols × rows]
  await r.u.apply(t, cols); // columns ← U col: U W Vᵀ (transposed)
  return transpose(t, cols, rows);
}

/** V H Vᵀ for a symmetric H [n × n]. */
export async function rotateHessian(h: Float64Array, n: number, v: OrthogonalTransform): Promise<Float32Array> {
  const a = Float32Array.from(h);
  await v.apply(a, n); // rows ← V h_i: H Vᵀ
  const at = transpose(a, n, n); // V H
  await v.apply(at, n); // V H Vᵀ
  return at;
}

/** Equal-width histograms of two weight sets on one symmetric range ±max|x| (comparable bins). */
export function pairedHistograms(a: Float32Array, b: Float32Array, bins = 64): [Histogram, Histogram] {
  let m = 0;
  for (const x of [a, b]) for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  if (m === 0) m = 1;
  const hist = (x: Float32Array): Histogram => {
    const counts = new Array<number>(bins).fill(0);
    for (let i = 0; i < x.length; i++) counts[Math.min(bins - 1, Math.max(0, Math.floor(((x[i] + m) / (2 * m)) * bins)))]++;
    return { lo: -m, hi: m, counts };
  };
  return [hist(a), hist(b)];
}
