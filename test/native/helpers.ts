/**
 * Shared by test/native: the addon (loaded loudly), seeded data and named tolerances.
 *
 * The native tests must not skip quietly when the addon is missing: CI always builds it, so a
 * missing or stale build fails here with the reason. Set QUANTLENS_NATIVE=0 to run only the
 * fallback tests on a machine without a compiler.
 */
import { loadNativeKernels, type NativeKernels } from "../../extension/src/engine/kernels/binding";
import type { Moments } from "../../extension/src/engine/kernels/reference";

export const NATIVE_DISABLED = ["0", "false", "off"].includes((process.env.QUANTLENS_NATIVE ?? "").toLowerCase());

/** The addon, or an exception saying why not (unless QUANTLENS_NATIVE=0, then null). */
export function requireNative(): NativeKernels | null {
  if (NATIVE_DISABLED) return null;
  const result = loadNativeKernels();
  if (!result.ok) {
    throw new Error(
      `test/native needs the native addon: ${result.reason}.\n` +
        "Build it with `npm run build:native`, or set QUANTLENS_NATIVE=0 to test only the TypeScript fallback.",
    );
  }
  return result.kernels;
}

/** mulberry32: small, fast, seeded; uniform in [0, 1). */
export function uniform(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n Gaussian samples N(mean, std²) (Box–Muller), rounded to float32. */
export function gaussian(n: number, mean: number, std: number, seed: number): Float32Array {
  const u = uniform(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = u() || Number.MIN_VALUE;
    x[i] = mean + std * Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * u());
  }
  return x;
}

/** Random 32-bit patterns (any float, NaN payloads and subnormals included). */
export function randomBits(n: number, seed: number): Uint32Array {
  const u = uniform(seed);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = (u() * 4294967296) >>> 0;
  return bits;
}

/**
 * Native moments vs `momentsRef`. Both sum in double, in different orders: the reference
 * accumulates all n terms in one sequential pass (relative error up to ~n·ε, typically ~√n·ε ≈
 * 4e-13 at n = 10^7), the addon sums 32768-element blocks in SIMD lanes and merges them
 * pairwise. Measured worst cases over the inputs below (10^7 elements, mean 1e4 ± 1 included)
 * are about 100× under these bounds; a real bug (a lost lane, a wrong merge) is off by far more.
 */
export const MOMENTS_TOL = {
  /** |Δmean| ≤ mean · (|mean| + σ) */
  mean: 1e-12,
  /** |Δm2| ≤ m2 · m2 */
  m2: 1e-11,
  /** |Δm3| ≤ m3 · n·σ³ (m3 itself may be ~0 for symmetric data, so scale by its natural size) */
  m3: 1e-10,
  /** |Δm4| ≤ m4 · m4 */
  m4: 1e-10,
} as const;

/** Messages naming each field out of tolerance; [] when `actual` matches `expected`. */
export function momentsMismatches(actual: Moments, expected: Moments, tol = MOMENTS_TOL): string[] {
  const bad: string[] = [];
  for (const key of ["n", "nonFinite", "absmax", "min", "max"] as const) {
    if (actual[key] !== expected[key]) bad.push(`${key}: ${actual[key]} !== ${expected[key]}`);
  }
  if (expected.n === 0) {
    for (const key of ["mean", "m2", "m3", "m4"] as const) {
      if (actual[key] !== 0) bad.push(`${key}: ${actual[key]} for an empty sample`);
    }
    return bad;
  }
  const sigma = Math.sqrt(expected.m2 / expected.n);
  const check = (key: "mean" | "m2" | "m3" | "m4", scale: number, rel: number) => {
    const err = Math.abs(actual[key] - expected[key]);
    if (!(err <= rel * scale)) bad.push(`${key}: ${actual[key]} vs ${expected[key]} (|Δ| ${err.toExponential(2)} > ${(rel * scale).toExponential(2)})`);
  };
  check("mean", Math.abs(expected.mean) + sigma, tol.mean);
  check("m2", expected.m2, tol.m2);
  check("m3", expected.n * sigma ** 3, tol.m3);
  check("m4", expected.m4, tol.m4);
  return bad;
}

/** Bitwise equality of all fields (Object.is: tells NaN, +0 and −0 apart). */
export function sameMoments(a: Moments, b: Moments): boolean {
  return (Object.keys(b) as (keyof Moments)[]).every((k) => Object.is(a[k], b[k]));
}

export function hex(n: number, digits: number): string {
  return "0x" + n.toString(16).padStart(digits, "0");
}

/**
 * Byte-for-byte comparison of two typed arrays (fast on millions of elements, where expect's
 * deep equality is slow); undefined when equal, else the first differing element index.
 */
export function bytesDiffer(a: ArrayBufferView, b: ArrayBufferView): string | undefined {
  const x = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const y = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (x.equals(y)) return undefined;
  if (x.length !== y.length) return `byte length ${x.length} vs ${y.length}`;
  let i = 0;
  while (x[i] === y[i]) i++;
  return `first difference at byte ${i}`;
}
