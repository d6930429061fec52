/**
 * TypeScript references of the orthogonal transforms: the FWHT (native-kernels/core/hadamard.h)
 * and the seeded Kronecker transforms (core/orthogonal.h, which documents the factorization rule,
 * the random streams and the order of operations). Same operations in the same order as the C++
 * scalar path, so factors and transformed values are bit-identical to the addon's.
 */

export type OrthoKind = "hadamard" | "kron" | "auto";

/** The largest dense factor; a prime factor of n above it has no transform. */
export const MAX_DENSE_FACTOR = 4096;

export type OrthoFactor =
  /** x ↦ H_d·diag(signs)·x / √d. */
  | { kind: "hadamard"; size: number; signs: Float32Array }
  /** Q = H_0·…·H_{d−2}·diag(d): reflectors v_0 (d values), v_1 (d − 1), …, each with v·v = 2. */
  | { kind: "dense"; size: number; reflectors: Float64Array; d: Float64Array };

export interface FactorPlan {
  kind: "hadamard" | "dense";
  size: number;
}

const f = Math.fround;

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 2 ** 31;
}

/** float(1/√n). */
export function fwhtNorm(n: number): number {
  return f(1 / Math.sqrt(n));
}

// ---- FWHT -----------------------------------------------------------------------------------

/** Butterflies of `d` vectors of length `inner` (vector b at base + b·inner), then × norm. */
function fwhtColumns(x: Float32Array, base: number, d: number, inner: number, norm: number): void {
  for (let h = 1; h < d; h *= 2) {
    for (let i = 0; i < d; i += 2 * h) {
      for (let b = i; b < i + h; b++) {
        const p = base + b * inner;
        const q = base + (b + h) * inner;
        for (let j = 0; j < inner; j++) {
          const a = x[p + j];
          const c = x[q + j];
          x[p + j] = a + c;
          x[q + j] = a - c;
        }
      }
    }
  }
  for (let i = base; i < base + d * inner; i++) x[i] *= norm;
}

/** X [rows × n] in place, each row ← H_n·row/√n (n a power of two). */
export function fwhtRef(x: Float32Array, rows: number, n: number): void {
  const norm = fwhtNorm(n);
  for (let r = 0; r < rows; r++) fwhtColumns(x, r * n, n, 1, norm);
}

// ---- random streams (orthogonal_rng.h) ----------------------------------------------------------

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** ln(s) for 0 < s < 2 from +, −, ×, ÷ only (bit-reproducible across engines). */
export function reproducibleLog(s: number): number {
  const SQRT2 = 1.4142135623730951;
  const LN2 = 0.6931471805599453;
  let x = s;
  let e = 0;
  while (x < 1) {
    x *= 2;
    e -= 1;
  }
  if (x > SQRT2) {
    x /= 2;
    e += 1;
  }
  const t = (x - 1) / (x + 1);
  const t2 = t * t;
  let sum = 1 / 27;
  for (let k = 12; k >= 0; k--) sum = sum * t2 + 1 / (2 * k + 1);
  return e * LN2 + 2 * t * sum;
}

/** xoshiro128** keyed by (seed, n, factor), uniform [0, 1) doubles, polar-method Gaussians. */
export class OrthoRng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare = 0;
  private hasSpare = false;

  constructor(seed: number, n: number, factor: number) {
    const key = fmix32((n >>> 0) ^ fmix32((factor + 0x632be5ab) >>> 0));
    const s = [0, 1, 2, 3].map((i) => fmix32((seed + Math.imul(0x9e3779b9, i + 1) + key) >>> 0));
    if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
    [this.s0, this.s1, this.s2, this.s3] = s;
  }

  next(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  uniform(): number {
    const a = this.next() >>> 5;
    const b = this.next() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  gaussian(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    for (;;) {
      const u = 2 * this.uniform() - 1;
      const v = 2 * this.uniform() - 1;
      const s = u * u + v * v;
      if (s >= 1 || s === 0) continue;
      const m = Math.sqrt((-2 * reproducibleLog(s)) / s);
      this.spare = v * m;
      this.hasSpare = true;
      return u * m;
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ---- factorization and factors ----------------------------------------------------------------

function balancedDivisor(m: number): number {
  let best = 1;
  for (let p = 2; p * p <= m; p++) if (m % p === 0) best = p;
  return best;
}

function denseSplit(m: number, n: number, plan: FactorPlan[]): void {
  if (m <= MAX_DENSE_FACTOR) {
    plan.push({ kind: "dense", size: m });
    return;
  }
  const p = balancedDivisor(m);
  if (p === 1) {
    throw new RangeError(
      `orthogonal transform: n = ${n} has the prime factor ${m} > ${MAX_DENSE_FACTOR}: no orthogonal transform of that size (pad the dimension)`,
    );
  }
  denseSplit(p, n, plan);
  denseSplit(m / p, n, plan);
}

/** The factors of the transform of size n (rule: core/orthogonal.h). */
export function orthoPlan(n: number, kind: OrthoKind): FactorPlan[] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`orthogonal transform: n must be an integer ≥ 1, got ${n}`);
  if (n > 2 ** 31) throw new RangeError("orthogonal transform: n must be at most 2^31");
  const plan: FactorPlan[] = [];
  if (kind === "hadamard") {
    if (!isPowerOfTwo(n)) {
      throw new RangeError(`orthogonal transform: kind 'hadamard' needs n a power of two, got ${n} (use 'auto' or 'kron')`);
    }
    plan.push({ kind: "hadamard", size: n });
  } else if (kind === "auto") {
    let pow2 = 1;
    while ((n / pow2) % 2 === 0) pow2 *= 2;
    const m = n / pow2;
    if (m > 1) denseSplit(m, n, plan);
    if (pow2 > 1 || m === 1) plan.push({ kind: "hadamard", size: pow2 });
  } else if (kind === "kron") {
    const p = balancedDivisor(n);
    if (p > 1) denseSplit(p, n, plan);
    denseSplit(n / p, n, plan);
  } else {
    throw new RangeError(`orthogonal transform: kind must be hadamard, kron or auto, got '${String(kind)}'`);
  }
  return plan;
}

function drawHadamard(size: number, rng: OrthoRng): OrthoFactor {
  const signs = new Float32Array(size);
  for (let i = 0; i < size; i++) signs[i] = rng.next() >>> 31 ? -1 : 1;
  return { kind: "hadamard", size, signs };
}

function drawDense(size: number, rng: OrthoRng): OrthoFactor {
  const reflectors = new Float64Array((size * (size + 1)) / 2 - 1);
  const d = new Float64Array(size);
  const x = new Float64Array(size);
  let at = 0;
  for (let k = 0; k + 1 < size; k++) {
    const len = size - k;
    let ss = 0;
    for (let i = 0; i < len; i++) {
      x[i] = rng.gaussian();
      ss = ss + x[i] * x[i];
    }
    const sign = x[0] >= 0 ? 1 : -1;
    x[0] = x[0] + sign * Math.sqrt(ss);
    let vv = 0;
    for (let i = 0; i < len; i++) vv = vv + x[i] * x[i];
    if (vv === 0) {
      x[0] = Math.sqrt(2);
    } else {
      const scale = Math.sqrt(2 / vv);
      for (let i = 0; i < len; i++) x[i] = x[i] * scale;
    }
    reflectors.set(x.subarray(0, len), at);
    at += len;
    d[k] = -sign;
  }
  d[size - 1] = rng.gaussian() >= 0 ? 1 : -1;
  return { kind: "dense", size, reflectors, d };
}

/** Draw the factors of (n, seed, kind); bit-identical to the addon's `orthoFactors`. */
export function orthoFactorsRef(n: number, seed: number, kind: OrthoKind): OrthoFactor[] {
  return orthoPlan(n, kind).map((p, a) => {
    const rng = new OrthoRng(seed, n, a);
    return p.kind === "hadamard" ? drawHadamard(p.size, rng) : drawDense(p.size, rng);
  });
}

// ---- application ----------------------------------------------------------------------------

function hadamardFactor(
  fac: Extract<OrthoFactor, { kind: "hadamard" }>, x: Float32Array, base: number, outer: number, inner: number,
  inverse: boolean,
): void {
  const d = fac.size;
  const norm = fwhtNorm(d);
  for (let o = 0; o < outer; o++) {
    const block = base + o * d * inner;
    if (!inverse) for (let b = 0; b < d; b++) for (let j = 0; j < inner; j++) x[block + b * inner + j] *= fac.signs[b];
    fwhtColumns(x, block, d, inner, norm);
    if (inverse) for (let b = 0; b < d; b++) for (let j = 0; j < inner; j++) x[block + b * inner + j] *= fac.signs[b];
  }
}

function reflect(buf: Float64Array, v: Float64Array, at: number, k: number, len: number): void {
  let c = 0;
  for (let i = 0; i < len; i++) c = c + v[at + i] * buf[k + i];
  for (let i = 0; i < len; i++) buf[k + i] = buf[k + i] - c * v[at + i];
}

function denseFactor(
  fac: Extract<OrthoFactor, { kind: "dense" }>, x: Float32Array, base: number, outer: number, inner: number,
  inverse: boolean, buf: Float64Array,
): void {
  const d = fac.size;
  const offset = (k: number) => k * d - (k * (k - 1)) / 2;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const start = base + o * d * inner + j;
      for (let b = 0; b < d; b++) buf[b] = x[start + b * inner];
      if (!inverse) {
        for (let b = 0; b < d; b++) buf[b] = buf[b] * fac.d[b];
        for (let k = d - 2; k >= 0; k--) reflect(buf, fac.reflectors, offset(k), k, d - k);
      } else {
        for (let k = 0; k + 1 < d; k++) reflect(buf, fac.reflectors, offset(k), k, d - k);
        for (let b = 0; b < d; b++) buf[b] = buf[b] * fac.d[b];
      }
      for (let b = 0; b < d; b++) x[start + b * inner] = buf[b];
    }
  }
}

/**
 * Rows of x [rows × n] in place: x ← T·x (inverse: Tᵀ·x) with T = F_1 ⊗ … ⊗ F_t. Throws a
 * RangeError naming the first NaN/±Inf.
 */
export function orthoApplyRef(factors: readonly OrthoFactor[], n: number, x: Float32Array, rows: number, inverse: boolean): void {
  const sizes = factors.map((fac) => fac.size);
  const buf = new Float64Array(Math.max(1, ...sizes));
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    for (let c = 0; c < n; c++) {
      if (!Number.isFinite(x[base + c])) {
        const what = Number.isNaN(x[base + c]) ? "NaN" : "infinite";
        throw new RangeError(`orthogonal transform: X[${r}, ${c}] is ${what}; transform finite values only`);
      }
    }
    for (let step = 0; step < factors.length; step++) {
      const a = inverse ? factors.length - 1 - step : step;
      let outer = 1;
      let inner = 1;
      for (let i = 0; i < a; i++) outer *= sizes[i];
      for (let i = a + 1; i < sizes.length; i++) inner *= sizes[i];
      const fac = factors[a];
      if (fac.kind === "hadamard") hadamardFactor(fac, x, base, outer, inner, inverse);
      else denseFactor(fac, x, base, outer, inner, inverse, buf);
    }
  }
}
