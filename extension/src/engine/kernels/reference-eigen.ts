/**
 * Plain TypeScript reference of the symmetric eigendecomposition (STYLE.md §6): the cyclic
 * Jacobi method. Simple, accurate (it converges quadratically and, with the relative threshold
 * below, keeps even tiny eigenvalues of positive definite matrices to high relative accuracy) and
 * independent of the native algorithm (Householder + divide and conquer), so it is the yardstick
 * the addon is tested against. It is O(n³) per sweep with ~6–10 sweeps: fine for n of a few
 * hundred, slow beyond (it is also the fallback when the addon is missing).
 *
 * Input: a [n×n] row-major, only the lower triangle (a[i·n + j], j ≤ i) read.
 * Output: values ascending; vectors [n×n] row-major, column j the unit eigenvector of values[j].
 */

export interface EigenRef {
  values: Float64Array;
  vectors?: Float64Array;
}

/** Sweeps before giving up (convergence is quadratic: 6–12 is typical even at n = 1000). */
export const JACOBI_MAX_SWEEPS = 60;
/** Off-diagonal entries below this are left alone (rotating subnormals gains nothing). */
const SUBNORMAL_FLOOR = 1e-290;

/**
 * A cyclic Jacobi run that can be advanced in slices (the async fallback yields between them).
 * Each rotation J(p, q, θ) zeroes A[p][q]: A ← JᵀAJ, V ← VJ (Rutishauser's update formulas).
 * A rotation is skipped when |A[p][q]| ≤ ε·√(|A[p][p]|·|A[q][q]|) (Demmel–Veselić); a sweep that
 * skips them all ends the run.
 */
export class JacobiEigen {
  readonly n: number;
  /** The full symmetric working copy, row-major. */
  private readonly a: Float64Array;
  /** Vᵀ, row-major: row j is column j of V (rotations then touch two contiguous rows). */
  private readonly v: Float64Array | null;
  private p = 0;
  private sweep = 0;
  private rotatedThisSweep = false;
  private finished = false;

  constructor(input: Float32Array | Float64Array, n: number, wantVectors: boolean) {
    this.n = n;
    this.a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        const x = input[i * n + j];
        this.a[i * n + j] = x;
        this.a[j * n + i] = x;
      }
    }
    this.v = wantVectors ? new Float64Array(n * n) : null;
    if (this.v) for (let i = 0; i < n; i++) this.v[i * n + i] = 1;
    this.finished = n <= 1;
  }

  get done(): boolean {
    return this.finished;
  }

  /** Sweeps completed so far. */
  get sweeps(): number {
    return this.sweep;
  }

  /**
   * Run rows p of the current sweep (each rotates A[p][q] for q > p) until about `budget`
   * multiply-adds are spent or the run ends. Returns `done`.
   */
  step(budget = Infinity): boolean {
    const { n, a, v } = this;
    let spent = 0;
    while (!this.finished && spent < budget) {
      const p = this.p;
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const app = a[p * n + p];
        const aqq = a[q * n + q];
        const small = Number.EPSILON * Math.sqrt(Math.abs(app)) * Math.sqrt(Math.abs(aqq));
        if (Math.abs(apq) <= small || Math.abs(apq) < SUBNORMAL_FLOOR) continue;
        this.rotatedThisSweep = true;
        spent += v ? 4 * n : 2 * n;
        // t = tan θ, the smaller root of t² + 2t·cot2θ − 1 = 0.
        const theta = (aqq - app) / (2 * apq);
        const t =
          Math.abs(theta) > 1e150 ? 0.5 / theta : Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        const tau = s / (1 + c);
        a[p * n + p] = app - t * apq;
        a[q * n + q] = aqq + t * apq;
        a[p * n + q] = 0;
        a[q * n + p] = 0;
        const rowP = p * n;
        const rowQ = q * n;
        for (let r = 0; r < n; r++) {
          if (r === p || r === q) continue;
          const arp = a[rowP + r]; // = A[r][p]: both triangles are kept
          const arq = a[rowQ + r];
          const np = arp - s * (arq + tau * arp);
          const nq = arq + s * (arp - tau * arq);
          a[rowP + r] = np;
          a[r * n + p] = np;
          a[rowQ + r] = nq;
          a[r * n + q] = nq;
        }
        if (v) {
          const vp = p * n;
          const vq = q * n;
          for (let r = 0; r < n; r++) {
            const vrp = v[vp + r];
            const vrq = v[vq + r];
            v[vp + r] = vrp - s * (vrq + tau * vrp);
            v[vq + r] = vrq + s * (vrp - tau * vrq);
          }
        }
      }
      spent += n;
      this.p++;
      if (this.p >= n - 1) {
        this.p = 0;
        this.sweep++;
        if (!this.rotatedThisSweep) this.finished = true;
        else if (this.sweep >= JACOBI_MAX_SWEEPS) {
          throw new Error(`symmetricEigen(): the Jacobi reference did not converge in ${JACOBI_MAX_SWEEPS} sweeps`);
        }
        this.rotatedThisSweep = false;
      }
    }
    return this.finished;
  }

  /** Eigenvalues ascending and (when asked for) the vectors in matching columns. */
  result(): EigenRef {
    if (!this.finished) throw new Error("JacobiEigen.result(): the run has not converged yet");
    const { n, a, v } = this;
    const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[i * n + i] - a[j * n + j] || i - j);
    const values = Float64Array.from(order, (i) => a[i * n + i]);
    if (!v) return { values };
    const vectors = new Float64Array(n * n);
    for (let r = 0; r < n; r++) {
      for (let t = 0; t < n; t++) vectors[r * n + t] = v[order[t] * n + r];
    }
    return { values, vectors };
  }
}

/** Eigenvalues (and vectors) of the symmetric a [n×n] by cyclic Jacobi, synchronously. */
export function symmetricEigenJacobiRef(a: Float32Array | Float64Array, n: number, wantVectors: boolean): EigenRef {
  const run = new JacobiEigen(a, n, wantVectors);
  run.step();
  return run.result();
}
