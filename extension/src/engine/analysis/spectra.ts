import { cholesky } from "../kernels/linalg";
import { symmetricEigen } from "../kernels/eigen";

/**
 * Eigen-analysis of a Hessian H = (2/N) Σ xᵀx [n × n] (float64, symmetric PSD up to rounding),
 * and what GPTQ does with it: dead inputs (H_ii = 0 → H_ii = 1), damping λ = percdamp · mean(diag H),
 * and the LDL factorisation H + λI = L D Lᵀ (L unit lower) whose D are the per-input error
 * weights of LDLQ/GPTQ's rounding (QuIP §3): tr(D)/tr(H+λI) ≤ 1, smaller = more correlated
 * inputs, more for GPTQ to gain over RTN.
 */
export interface Spectrum {
  /** All eigenvalues of H, ascending. */
  values: Float64Array;
  /** [n × n] column j = unit eigenvector of values[j] (when asked for). */
  vectors?: Float64Array;
  trace: number;
  /** λ_max/λ_min; null when λ_min ≤ 0 (singular). */
  conditionNumber: number | null;
  /** Of the matrix GPTQ factors (dead inputs fixed, damped). */
  conditionNumberDamped: number;
  /** exp(−Σ p_i log p_i) with p_i = max(λ_i, 0)/Σ max(λ, 0) (Roy & Vetterli 2007). */
  effectiveRank: number;
  /** tr(D)/tr(H + λI). */
  ldlTraceRatio: number;
  damp: number;
  percdamp: number;
  deadInputs: number;
}

export async function hessianSpectrum(h: Float64Array, n: number, opts: { percdamp?: number; vectors?: boolean; signal?: AbortSignal } = {}): Promise<Spectrum> {
  const percdamp = opts.percdamp ?? 0.01;
  const eig = await symmetricEigen(h, n, { vectors: opts.vectors ?? false, signal: opts.signal });
  const values = eig.values;
  let trace = 0;
  let dead = 0;
  const hd = Float64Array.from(h);
  for (let i = 0; i < n; i++) {
    trace += h[i * n + i];
    if (h[i * n + i] === 0) {
      hd[i * n + i] = 1;
      dead++;
    }
  }
  let diagSum = 0;
  for (let i = 0; i < n; i++) diagSum += hd[i * n + i];
  const damp = (percdamp * diagSum) / n;
  for (let i = 0; i < n; i++) hd[i * n + i] += damp;

  // Eigenvalues of the fixed, damped matrix: a dead input's row/column is zero, so fixing its
  // diagonal turns one zero eigenvalue into 1; damping shifts all by λ.
  const fixed = Float64Array.from(values);
  let zerosToFix = dead;
  for (let i = 0; i < n && zerosToFix > 0; i++) {
    if (Math.abs(fixed[i]) <= 1e-12 * Math.max(1, Math.abs(values[n - 1]))) {
      fixed[i] = 1;
      zerosToFix--;
    }
  }
  fixed.sort();
  const lo = values[0];
  const hi = values[n - 1];
  let pos = 0;
  for (const v of values) if (v > 0) pos += v;
  let entropy = 0;
  if (pos > 0) {
    for (const v of values) {
      if (v <= 0) continue;
      const p = v / pos;
      entropy -= p * Math.log(p);
    }
  }
  const dampedTrace = diagSum + n * damp;
  return {
    values,
    ...(eig.vectors ? { vectors: eig.vectors } : {}),
    trace,
    conditionNumber: lo > 0 ? hi / lo : null,
    conditionNumberDamped: (fixed[n - 1] + damp) / (fixed[0] + damp),
    effectiveRank: pos > 0 ? Math.exp(entropy) : 0,
    ldlTraceRatio: (await ldlDiagonalSum(hd, n, opts.signal)) / dampedTrace,
    damp,
    percdamp,
    deadInputs: dead,
  };
}

/**
 * Σ D_ii of A = L D Lᵀ (A SPD): with the Cholesky factor A = C Cᵀ, D_ii = C_ii². float64 in
 * TypeScript up to n = 1024, the float32 kernel (native when built) above.
 */
export async function ldlDiagonalSum(a: Float64Array, n: number, signal?: AbortSignal): Promise<number> {
  if (n > 1024) {
    const f = Float32Array.from(a);
    const r = await cholesky(f, n, { signal });
    if (!r.ok) return NaN;
    let s = 0;
    for (let i = 0; i < n; i++) s += f[i * n + i] * f[i * n + i];
    return s;
  }
  const c = Float64Array.from(a);
  let s = 0;
  for (let j = 0; j < n; j++) {
    let d = c[j * n + j];
    for (let k = 0; k < j; k++) d -= c[j * n + k] * c[j * n + k];
    if (!(d > 0)) return NaN;
    s += d; // D_jj = C_jj²
    const cjj = Math.sqrt(d);
    c[j * n + j] = cjj;
    for (let i = j + 1; i < n; i++) {
      let v = c[i * n + j];
      for (let k = 0; k < j; k++) v -= c[i * n + k] * c[j * n + k];
      c[i * n + j] = v / cjj;
    }
  }
  return s;
}
