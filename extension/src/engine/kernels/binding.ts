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
export interface NativeKernels {
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
