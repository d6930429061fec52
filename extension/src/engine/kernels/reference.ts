/**
 * Plain TypeScript references of the numeric kernels (STYLE.md §6). They are the fallback when
 * the native addon is not built and the yardstick the native kernels are tested against.
 * Signatures match `binding.ts` one for one.
 */

/**
 * Streaming central moments of a sample, mergeable across chunks (Pébay 2008 pairwise update),
 * so a multi-GB weight read in slices gives the same statistics as one pass over it.
 * `m2 = Σ(x−mean)²`, `m3 = Σ(x−mean)³`, `m4 = Σ(x−mean)⁴`.
 */
export interface Moments {
  n: number;
  mean: number;
  m2: number;
  m3: number;
  m4: number;
  absmax: number;
  min: number;
  max: number;
  /** Count of NaN or ±Inf values (excluded from the moments). */
  nonFinite: number;
}

export function emptyMoments(): Moments {
  return { n: 0, mean: 0, m2: 0, m3: 0, m4: 0, absmax: 0, min: Infinity, max: -Infinity, nonFinite: 0 };
}

/** Moments of one chunk, two passes in float64 (mean first, then central sums). */
export function momentsRef(x: Float32Array): Moments {
  let n = 0;
  let sum = 0;
  let absmax = 0;
  let min = Infinity;
  let max = -Infinity;
  let nonFinite = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (!Number.isFinite(v)) {
      nonFinite++;
      continue;
    }
    n++;
    sum += v;
    const a = Math.abs(v);
    if (a > absmax) absmax = a;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (n === 0) return { ...emptyMoments(), nonFinite };
  const mean = sum / n;
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (!Number.isFinite(v)) continue;
    const d = v - mean;
    const d2 = d * d;
    m2 += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
  }
  return { n, mean, m2, m3, m4, absmax, min, max, nonFinite };
}

/** Combine the moments of two disjoint samples (Pébay's pairwise formulas). */
export function mergeMoments(a: Moments, b: Moments): Moments {
  const nonFinite = a.nonFinite + b.nonFinite;
  if (a.n === 0) return { ...b, nonFinite };
  if (b.n === 0) return { ...a, nonFinite };
  const n = a.n + b.n;
  const delta = b.mean - a.mean;
  const d_n = delta / n;
  const d_n2 = d_n * d_n;
  const mean = a.mean + d_n * b.n;
  const m2 = a.m2 + b.m2 + delta * d_n * a.n * b.n;
  const m3 =
    a.m3 + b.m3 + delta * d_n2 * a.n * b.n * (a.n - b.n) + 3 * d_n * (a.n * b.m2 - b.n * a.m2);
  const m4 =
    a.m4 +
    b.m4 +
    delta * d_n2 * d_n * a.n * b.n * (a.n * a.n - a.n * b.n + b.n * b.n) +
    6 * d_n2 * (a.n * a.n * b.m2 + b.n * b.n * a.m2) +
    4 * d_n * (a.n * b.m3 - b.n * a.m3);
  return {
    n,
    mean,
    m2,
    m3,
    m4,
    absmax: Math.max(a.absmax, b.absmax),
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
    nonFinite,
  };
}

/** Population standard deviation. */
export function momentsStd(m: Moments): number {
  return m.n > 0 ? Math.sqrt(m.m2 / m.n) : 0;
}

/** Excess kurtosis `n·m4/m2² − 3` (0 for a Gaussian); 0 when the variance is 0. */
export function momentsExcessKurtosis(m: Moments): number {
  return m.m2 > 0 ? (m.n * m.m4) / (m.m2 * m.m2) - 3 : 0;
}

// ---- fp16 / bf16 ↔ fp32 --------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits → float32, subnormals, infinities and NaN included. */
export function halfBitsToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** float32 → binary16 bits, round to nearest even, overflow to ±Inf, NaN kept quiet. */
export function floatToHalfBits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  // Re-bias the exponent from 127 to 15.
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit-1 mantissa right, rounding to nearest even.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && (r & 1) === 1)) r++;
    return sign | r;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1) === 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** bfloat16 bits → float32: the high half of the float32 bit pattern. */
export function bf16BitsToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** float32 → bfloat16 bits, round to nearest even, NaN kept quiet. */
export function floatToBf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

export function f16ToF32Ref(src: Uint16Array, dst: Float32Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = halfBitsToFloat(src[i]);
}

export function bf16ToF32Ref(src: Uint16Array, dst: Float32Array): void {
  // Write the bit patterns directly: a float32 passing through a JS number may have a signalling
  // NaN quieted (V8 does it in some tiers, not others), and this must be deterministic.
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
}

export function f32ToF16Ref(src: Float32Array, dst: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = floatToHalfBits(src[i]);
}

export function f32ToBf16Ref(src: Float32Array, dst: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = floatToBf16Bits(src[i]);
}
