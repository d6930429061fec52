/**
 * The native addon's surface (native-kernels/binding/*.cpp), typed once, and how it is found.
 *
 * Nothing here validates arguments or chooses between native and reference kernels: that is
 * `index.ts`. Code outside `kernels/` should import `index.ts`, not this file.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { Moments } from "./reference";
import type { GptqSettings } from "./reference-gptq";

/** Must equal `qlb::kAbiVersion` (native-kernels/binding/addon.h); a stale build is refused. */
export const NATIVE_ABI_VERSION = 1;

/** The addon file, relative to the repository (or packaged extension) root. */
export const NATIVE_ADDON_RELATIVE = path.join("native-kernels", "build", "Release", "quantlens_kernels.node");

export type HalfToFloatKind = "f16_to_f32" | "bf16_to_f32";
export type FloatToHalfKind = "f32_to_f16" | "f32_to_bf16";
export type ConvertKind = HalfToFloatKind | FloatToHalfKind;

/** A cancellation flag owned by the addon; kernels poll it between blocks. */
export interface NativeCancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

export interface NativeInfo {
  abiVersion: number;
  /** Threads the kernels use (the pool, caller included). */
  threads: number;
  hardwareThreads: number;
  /** The path kernels take now: "avx2+fma+f16c", "avx2+fma" or "scalar". */
  simd: string;
  cpu: { avx2: boolean; fma: boolean; f16c: boolean };
  compiler: string;
  /**
   * The optional CUDA backend (native-kernels/core/cuda_backend.h): `available` when
   * libquantlens_cuda.so loaded with the right ABI and found a device; `status` says which device,
   * or why not ("library not built: …", "no CUDA device: …", "disabled by QUANTLENS_CUDA=0", …).
   */
  cuda: { available: boolean; status: string; calls: { hessian: number; gptqLayers: number } };
}

export interface NativeFmaPeak {
  /** GFLOP/s of fp32 multiply-add chains on one thread (an FMA counts 2 flops). */
  one: number;
  /** GFLOP/s on `threads` threads running at once. */
  all: number;
  threads: number;
  /** "avx2+fma" (8-wide FMA) or "scalar". */
  simd: string;
}

/**
 * Promises reject with an `Error` whose `code` is `ERR_QUANTLENS_CANCELLED` (message
 * "cancelled") when the token was cancelled, or `ERR_QUANTLENS_NATIVE` for other failures.
 * Bad arguments throw a TypeError/RangeError synchronously, naming the function and argument.
 * Input arrays are kept alive while a promise is pending; do not write to, transfer or resize
 * them until it settles.
 */
/** RTN quantization and packing (binding/quant_binding.cpp; shapes checked in quant.ts). */
export interface NativeQuantKernels {
  rtnQuantize(
    W: Float32Array, rows: number, cols: number, group: number, bits: number, symmetric: boolean,
    clip: NativeClip | null, codes: Uint8Array, scales: Float32Array, zeros: Float32Array,
    cancel?: NativeCancelToken | null,
  ): Promise<void>;
  rtnQuantizeSync(
    W: Float32Array, rows: number, cols: number, group: number, bits: number, symmetric: boolean,
    clip: NativeClip | null, codes: Uint8Array, scales: Float32Array, zeros: Float32Array,
  ): void;
  rtnDequantize(
    codes: Uint8Array, scales: Float32Array, zeros: Float32Array, rows: number, cols: number, group: number,
    out: Float32Array, cancel?: NativeCancelToken | null,
  ): Promise<void>;
  rtnDequantizeSync(
    codes: Uint8Array, scales: Float32Array, zeros: Float32Array, rows: number, cols: number, group: number,
    out: Float32Array,
  ): void;
  rtnParams(w: Float32Array, bits: number, symmetric: boolean, clip: NativeClip | null): { scale: number; zero: number };
  /** format: "nbits" | "unnbits" | "int4t" | "unint4t" | "int8t" (core/pack.h). */
  packCodes(
    format: NativePackFormat, src: Uint8Array, N: number, K: number, bits: number, blockSize: number, offset: number,
    dst: Uint8Array, cancel?: NativeCancelToken | null,
  ): Promise<void>;
  packZeroPoints(zeros: Float32Array, N: number, nBlocks: number, bits: number, dst: Uint8Array): void;
  unpackZeroPoints(zp: Uint8Array, N: number, nBlocks: number, bits: number, zeros: Float32Array): void;
}

export interface NativeClip {
  grid: number;
  maxShrink: number;
  norm: number;
}

export type NativePackFormat = "nbits" | "unnbits" | "int4t" | "unint4t" | "int8t";

export type NativeOrthoKind = "hadamard" | "kron" | "auto";

export type NativeOrthoFactor =
  | { kind: "hadamard"; size: number; signs: Float32Array }
  | { kind: "dense"; size: number; reflectors: Float64Array; d: Float64Array };

/** FWHT and seeded orthogonal transforms (binding/transform_binding.cpp), rows of x in place. */
export interface NativeTransformKernels {
  fwht(x: Float32Array, rows: number, n: number, cancel?: NativeCancelToken | null): Promise<void>;
  fwhtSync(x: Float32Array, rows: number, n: number): void;
  orthoApply(
    x: Float32Array, rows: number, n: number, seed: number, kind: NativeOrthoKind, inverse: boolean,
    cancel?: NativeCancelToken | null,
  ): Promise<void>;
  orthoApplySync(x: Float32Array, rows: number, n: number, seed: number, kind: NativeOrthoKind, inverse: boolean): void;
  orthoFactors(n: number, seed: number, kind: NativeOrthoKind): NativeOrthoFactor[];
}

/** What gptqQuantize resolves to (binding/gptq_binding.cpp; the arrays are written in place). */
export interface NativeGptqStats {
  damp: number;
  percdamp: number;
  dampRetries: number;
  deadColumns: number;
  proxyLoss: number;
  proxyLossRtn: number;
  weightEnergy: number;
}

/** GPTQ for one layer (binding/gptq_binding.cpp; arguments checked in gptq.ts, layout in core/gptq.h). */
export interface NativeGptqKernels {
  gptqQuantize(
    w: Float32Array, h: Float32Array, rows: number, cols: number, options: GptqSettings,
    codes: Uint8Array, scales: Float32Array, zeros: Float32Array, perm: Int32Array, groupIndex: Int32Array,
    cancel?: NativeCancelToken | null, rowShrink?: Float32Array | null, rowLoss?: Float64Array | null,
  ): Promise<NativeGptqStats>;
}

/**
 * The BLAS-3 family (binding/linalg_binding.cpp; arguments checked in linalg.ts, contracts in
 * core/gemm.h, core/hessian.h, core/cholesky.h). Row-major Float32Arrays with row strides `ld*`.
 * Inputs are scanned for NaN/±Inf before anything is written: the promise then rejects with a
 * RangeError (code ERR_QUANTLENS_NON_FINITE) naming the argument and element.
 */
export interface NativeLinalgKernels {
  /** C[m×n] = alpha·op(A)·op(B) + beta·C; beta = 0 never reads C. */
  sgemm(
    transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array, lda: number,
    b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number, cancel?: NativeCancelToken | null,
  ): Promise<void>;
  /** As sgemm on the calling thread; refused (RangeError) above `sgemmSyncMaxMacs` multiply-adds. */
  sgemmSync(
    transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array, lda: number,
    b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number,
  ): void;
  readonly sgemmSyncMaxMacs: number;
  /** h[n×n] += xᵀ·x for x [rows×n] (fp32 chunks, fp64 sums); both triangles written, or with `lowerOnly` the lower one only (h not scanned). */
  hessianUpdate(h: Float64Array, n: number, x: Float32Array, rows: number, cancel?: NativeCancelToken | null, lowerOnly?: boolean): Promise<void>;
  /** h ← scale·h with the strict upper triangle copied from the lower one. */
  hessianSymmetrize(h: Float64Array, n: number, scale: number): Promise<void>;
  /** Lower Cholesky in place; resolves to -1, or the first non-positive pivot. */
  choleskyLower(a: Float32Array, n: number, lda: number, cancel?: NativeCancelToken | null): Promise<number>;
  /** Lower-triangular inverse in place (rejects with code ERR_QUANTLENS_SINGULAR on a zero diagonal). */
  trtriLower(l: Float32Array, n: number, lda: number, cancel?: NativeCancelToken | null): Promise<void>;
  /** H ← U with H⁻¹ = Uᵀ·U (U upper); resolves to -1, or the failing pivot (H then restored). */
  gptqInverseCholeskyUpper(h: Float32Array, n: number, lda: number, cancel?: NativeCancelToken | null): Promise<number>;
}

/**
 * Symmetric eigendecomposition (binding/eigen_binding.cpp, core/eigen.h; checked in eigen.ts).
 * a: [n×n] row-major, only its lower triangle read. Fills values (n, ascending) and, unless
 * null, vectors ([n×n], column j = the unit eigenvector of values[j]). A NaN/±Inf in the lower
 * triangle rejects with a RangeError, code ERR_QUANTLENS_NON_FINITE, before anything is written.
 */
export interface NativeEigenKernels {
  symmetricEigen(
    a: Float32Array | Float64Array, n: number, values: Float64Array, vectors: Float64Array | Float32Array | null,
    cancel?: NativeCancelToken | null,
  ): Promise<void>;
}

export interface NativeKernels extends NativeQuantKernels, NativeTransformKernels, NativeGptqKernels, NativeLinalgKernels, NativeEigenKernels {
  readonly abiVersion: number;
  /** Elements per moments block (the TypeScript fallback must use the same). */
  readonly momentsBlock: number;
  readonly CancelToken: new () => NativeCancelToken;

  info(): NativeInfo;
  /** Resize the thread pool; 0 = hardware concurrency. Returns the size now. */
  setThreads(n: number): number;
  /** "scalar" forces the portable kernels; returns the path now in use. */
  setSimd(mode: "auto" | "scalar"): string;
  /** Measured fp32 FMA throughput (runs about 8 × `seconds`, default 0.2). */
  fmaPeak(options?: { seconds?: number; threads?: number }): Promise<NativeFmaPeak>;

  /** Moments on a libuv thread (using the pool). */
  moments(x: Float32Array, cancel?: NativeCancelToken | null): Promise<Moments>;
  /** Moments on the calling thread (using the pool); blocks JS. */
  momentsSync(x: Float32Array): Moments;

  /** Convert on the calling thread (using the pool). dst: same length as src, not overlapping. */
  convert(kind: HalfToFloatKind, src: Uint16Array, dst: Float32Array): void;
  convert(kind: FloatToHalfKind, src: Float32Array, dst: Uint16Array): void;
  convertAsync(
    kind: HalfToFloatKind,
    src: Uint16Array,
    dst: Float32Array,
    cancel?: NativeCancelToken | null,
  ): Promise<void>;
  convertAsync(
    kind: FloatToHalfKind,
    src: Float32Array,
    dst: Uint16Array,
    cancel?: NativeCancelToken | null,
  ): Promise<void>;

  /** Per-channel statistics of one activation batch (see core/channel_stats.h). */
  readonly histBins: number;
  channelBatchStats(x: Float32Array, rows: number, channels: number, out: ChannelBatchOut, cancel?: NativeCancelToken | null): Promise<number>;
}

/** Output arrays of `channelBatchStats`: batch moments [C], running absmax [C] and histogram, per-row norm/peak. */
export interface ChannelBatchOut {
  mean: Float64Array;
  m2: Float64Array;
  m3: Float64Array;
  m4: Float64Array;
  absmax: Float32Array;
  /** Running Σ|x| per channel over the finite values (added to). */
  absSum: Float64Array;
  hist: Float64Array;
  rowNorm: Float32Array;
  rowPeak: Float32Array;
  rowPeakChannel: Int32Array;
}

const REQUIRED_FUNCTIONS = [
  "CancelToken",
  "info",
  "setThreads",
  "setSimd",
  "fmaPeak",
  "moments",
  "momentsSync",
  "convert",
  "convertAsync",
  "channelBatchStats",
  "rtnQuantize",
  "rtnQuantizeSync",
  "rtnDequantize",
  "rtnDequantizeSync",
  "rtnParams",
  "packCodes",
  "packZeroPoints",
  "unpackZeroPoints",
  "fwht",
  "fwhtSync",
  "orthoApply",
  "orthoApplySync",
  "orthoFactors",
  "sgemm",
  "sgemmSync",
  "hessianUpdate",
  "hessianSymmetrize",
  "choleskyLower",
  "trtriLower",
  "gptqInverseCholeskyUpper",
  "gptqQuantize",
  "symmetricEigen",
] as const;

export type NativeLoadResult =
  | { ok: true; kernels: NativeKernels; path: string }
  | { ok: false; reason: string; tried: string[]; disabled: boolean };

export interface NativeLoadOptions {
  /** Environment to read `QUANTLENS_NATIVE` / `QUANTLENS_NATIVE_PATH` from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Folder to search upward from (default: this module's folder, i.e. dist/ when bundled). */
  fromDir?: string;
}

/** How far up from `fromDir` to look for `native-kernels/build/Release/`. */
const SEARCH_DEPTH = 6;

/**
 * Candidate addon paths, best first: `QUANTLENS_NATIVE_PATH` if set, else
 * `<dir>/native-kernels/build/Release/quantlens_kernels.node` for `fromDir` and its parents.
 * That covers the esbuild bundles (`dist/extension.js`, `dist/cli.js`), vitest/tsx running the
 * sources (`extension/src/engine/kernels/`), and a packaged extension (its root holds
 * `native-kernels/build/Release/`).
 */
export function nativeAddonCandidates(options: NativeLoadOptions = {}): string[] {
  const env = options.env ?? process.env;
  if (env.QUANTLENS_NATIVE_PATH) return [path.resolve(env.QUANTLENS_NATIVE_PATH)];
  const candidates: string[] = [];
  let dir = path.resolve(options.fromDir ?? moduleDir());
  for (let i = 0; i <= SEARCH_DEPTH; i++) {
    candidates.push(path.join(dir, NATIVE_ADDON_RELATIVE));
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return candidates;
}

/**
 * Find and load the addon. Never throws: on failure says why, so the caller can fall back.
 * `QUANTLENS_NATIVE=0` skips loading (`disabled: true`).
 */
export function loadNativeKernels(options: NativeLoadOptions = {}): NativeLoadResult {
  const env = options.env ?? process.env;
  const switchValue = (env.QUANTLENS_NATIVE ?? "").trim().toLowerCase();
  if (switchValue === "0" || switchValue === "false" || switchValue === "off") {
    return { ok: false, reason: "disabled by QUANTLENS_NATIVE=0", tried: [], disabled: true };
  }
  const tried = nativeAddonCandidates(options);
  const file = tried.find((p) => fs.existsSync(p));
  if (!file) {
    const reason = env.QUANTLENS_NATIVE_PATH
      ? `addon not found at ${tried[0]} (QUANTLENS_NATIVE_PATH)`
      : `addon not built (looked for ${NATIVE_ADDON_RELATIVE} above ${options.fromDir ?? moduleDir()}; run \`npm run build:native\`)`;
    return { ok: false, reason, tried, disabled: false };
  }
  let loaded: unknown;
  try {
    // createRequire keeps esbuild from trying to bundle the .node file.
    loaded = createRequire(path.join(moduleDir(), "binding.js"))(file);
  } catch (err) {
    const detail = err instanceof Error ? err.message.split("\n")[0] : String(err);
    return { ok: false, reason: `cannot load ${file}: ${detail}`, tried, disabled: false };
  }
  const problem = checkSurface(loaded);
  if (problem) return { ok: false, reason: `${file}: ${problem}`, tried, disabled: false };
  return { ok: true, kernels: loaded as NativeKernels, path: file };
}

function checkSurface(loaded: unknown): string | undefined {
  if (typeof loaded !== "object" || loaded === null) return "not a QuantLens kernels addon";
  const record = loaded as Record<string, unknown>;
  if (record.abiVersion !== NATIVE_ABI_VERSION) {
    return `stale build (addon ABI ${String(record.abiVersion)}, expected ${NATIVE_ABI_VERSION}); run \`npm run build:native\``;
  }
  const missing = REQUIRED_FUNCTIONS.filter((name) => typeof record[name] !== "function");
  if (missing.length > 0) return `missing exports ${missing.join(", ")}; run \`npm run build:native\``;
  if (typeof record.momentsBlock !== "number") return "missing momentsBlock; run `npm run build:native`";
  return undefined;
}

function moduleDir(): string {
  // CommonJS (esbuild bundle, tsx) and vitest both define __dirname.
  return typeof __dirname === "string" ? __dirname : process.cwd();
}
