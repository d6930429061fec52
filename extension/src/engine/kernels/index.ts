/**
 * The engine's numeric kernels: validated arguments, then the native addon when it loads, else
 * the TypeScript references (`reference.ts`). Engine code imports kernels from here only.
 *
 *   const m = await moments(weights, { signal });   // native on a worker thread, cancellable
 *   const f = f16ToF32(bits);                         // bit-identical on either backend
 *   kernelBackend()                                   // { native, reason?, threads, simd }
 *
 * The addon loads lazily on first use. When it cannot load, one warning goes to the host's
 * logger (console.warn by default) and every call falls back; `QUANTLENS_NATIVE=0` or
 * `configureKernels({ allowNative: false })` (Restricted Mode) choose the fallback silently.
 */
import { CancelledError } from "../errors";
import {
  loadNativeKernels,
  type ConvertKind,
  type NativeCancelToken,
  type NativeFmaPeak,
  type NativeKernels,
} from "./binding";
import {
  bf16ToF32Ref,
  f16ToF32Ref,
  f32ToBf16Ref,
  f32ToF16Ref,
  mergeMoments,
  momentsRef,
  type Moments,
} from "./reference";

export type { Moments } from "./reference";
export { emptyMoments, mergeMoments, momentsExcessKurtosis, momentsStd } from "./reference";
export type { NativeFmaPeak as FmaPeak } from "./binding";
export * from "./transforms";
export * from "./quant";
export * from "./linalg";
export * from "./gptq";
export * from "./eigen";

/**
 * Elements per moments block, shared with the addon (`kMomentsBlock`): both reduce blocks in
 * two passes and merge them in the same pairwise tree, so the fallback equals the native
 * scalar path bit for bit and the native SIMD path to rounding.
 */
export const MOMENTS_BLOCK = 32768;

/** Below this many elements `moments()` runs on the calling thread (a thread hop costs more). */
const MOMENTS_ASYNC_MIN = 1 << 16;
/** Fallback kernels give the event loop a turn (and check for cancellation) this often. */
const FALLBACK_YIELD_ELEMENTS = 1 << 20;
const MAX_THREADS = 1024;

export interface KernelBackend {
  /** True when calls go to the native addon. */
  native: boolean;
  /** Why not, when `native` is false. */
  reason?: string;
  /** Threads the kernels use. */
  threads: number;
  /** The SIMD path: "avx2+fma+f16c", "avx2+fma", "scalar", or "none (TypeScript)". */
  simd: string;
  /** The addon file, when loaded. */
  path?: string;
}

export interface KernelHostOptions {
  /** Where the one "native kernels unavailable" warning goes (default console.warn). */
  log?: (message: string) => void;
  /** false: never load or call native code (e.g. an untrusted workspace). Default true. */
  allowNative?: boolean;
}

export interface KernelCallOptions {
  /** Aborting rejects the call with `CancelledError`; native kernels stop at the next block. */
  signal?: AbortSignal;
}

// ---- backend selection -------------------------------------------------------------------

interface BackendState {
  loaded: boolean;
  kernels: NativeKernels | null;
  reason?: string;
  path?: string;
}

let log: (message: string) => void = (message) => console.warn(message);
let allowNative = true;
let state: BackendState = { loaded: false, kernels: null };

/** Host settings. Call before the first kernel call to keep native code from loading at all. */
export function configureKernels(options: KernelHostOptions): void {
  if (options.log) log = options.log;
  if (options.allowNative !== undefined) allowNative = options.allowNative;
}

/** The loaded addon, or null (fallback). For the kernel families' dispatch modules. */
export function native(): NativeKernels | null {
  if (!allowNative) return null;
  if (!state.loaded) state = loadBackend();
  return state.kernels;
}

/** Load the addon once; on failure (other than a deliberate QUANTLENS_NATIVE=0) warn once. */
function loadBackend(): BackendState {
  const result = loadNativeKernels();
  let reason: string;
  if (result.ok) {
    if (result.kernels.momentsBlock === MOMENTS_BLOCK) return { loaded: true, kernels: result.kernels, path: result.path };
    reason = `${result.path}: moments block ${result.kernels.momentsBlock}, expected ${MOMENTS_BLOCK}; run \`npm run build:native\``;
  } else {
    reason = result.reason;
    if (result.disabled) return { loaded: true, kernels: null, reason };
  }
  log(`QuantLens: native kernels unavailable (${reason}); using the TypeScript reference kernels.`);
  return { loaded: true, kernels: null, reason };
}

export function kernelBackend(): KernelBackend {
  const k = native();
  if (k) {
    const info = k.info();
    return { native: true, threads: info.threads, simd: info.simd, path: state.path };
  }
  const reason = allowNative ? (state.reason ?? "unknown") : "native code disabled by the host";
  return { native: false, reason, threads: 1, simd: "none (TypeScript)" };
}

/** Threads the native kernels may use (0 = all cores). Returns the count now; 1 on the fallback. */
export function setThreads(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_THREADS) {
    throw new RangeError(`setThreads(): n must be an integer in [0, ${MAX_THREADS}] (0 = all cores), got ${n}`);
  }
  const k = native();
  return k ? k.setThreads(n) : 1;
}

/** Measured fp32 FMA throughput of this machine (benchmarks divide by it). Needs the addon. */
export function fmaPeak(options: { seconds?: number; threads?: number } = {}): Promise<NativeFmaPeak> {
  const k = native();
  if (!k) return Promise.reject(new Error(`fmaPeak(): needs the native addon (${kernelBackend().reason})`));
  return k.fmaPeak(options);
}

// ---- moments ---------------------------------------------------------------------------

/** Moments of `x` (see `Moments`); on a worker thread when native and large. */
export async function moments(x: Float32Array, options: KernelCallOptions = {}): Promise<Moments> {
  expectArray("moments", "x", x, Float32Array);
  const signal = options.signal;
  throwIfAborted(signal, "moments");
  const k = native();
  if (!k) return momentsFallbackAsync(x, signal);
  if (x.length < MOMENTS_ASYNC_MIN) return k.momentsSync(x);
  return withCancel(k, signal, "moments", (token) => k.moments(x, token));
}

/** Moments on the calling thread (blocks it): for small arrays or synchronous callers. */
export function momentsSync(x: Float32Array): Moments {
  expectArray("momentsSync", "x", x, Float32Array);
  const k = native();
  return k ? k.momentsSync(x) : momentsBlockedRef(x);
}

/**
 * The TypeScript twin of the native algorithm: `momentsRef` per block of MOMENTS_BLOCK
 * elements, blocks merged pairwise level by level (an odd last block carried up). For inputs of
 * one block this is `momentsRef` itself.
 */
export function momentsBlockedRef(x: Float32Array): Moments {
  const parts: Moments[] = [];
  for (let begin = 0; begin < x.length || parts.length === 0; begin += MOMENTS_BLOCK) {
    parts.push(momentsRef(x.subarray(begin, begin + MOMENTS_BLOCK)));
  }
  return mergeTree(parts);
}

function mergeTree(parts: Moments[]): Moments {
  for (let count = parts.length; count > 1; count = (count + 1) >> 1) {
    for (let i = 0; i < count >> 1; i++) parts[i] = mergeMoments(parts[2 * i], parts[2 * i + 1]);
    if (count % 2 === 1) parts[count >> 1] = parts[count - 1];
  }
  return parts[0];
}

async function momentsFallbackAsync(x: Float32Array, signal: AbortSignal | undefined): Promise<Moments> {
  const parts: Moments[] = [];
  const blocksPerTurn = Math.max(1, FALLBACK_YIELD_ELEMENTS / MOMENTS_BLOCK);
  for (let begin = 0; begin < x.length || parts.length === 0; begin += MOMENTS_BLOCK) {
    if (parts.length > 0 && parts.length % blocksPerTurn === 0) {
      await nextTurn();
      throwIfAborted(signal, "moments");
    }
    parts.push(momentsRef(x.subarray(begin, begin + MOMENTS_BLOCK)));
  }
  return mergeTree(parts);
}

// ---- fp16 / bf16 <-> fp32 --------------------------------------------------------------

type Half = Uint16Array;

/** IEEE fp16 bits -> float32. Bit-identical on both backends (NaN -> 0x7fc00000). */
export function f16ToF32(src: Half, dst?: Float32Array): Float32Array {
  return convertSync("f16ToF32", "f16_to_f32", src, dst, Uint16Array, Float32Array);
}

/** bfloat16 bits -> float32: the high half of the float32 bit pattern, NaN payloads included. */
export function bf16ToF32(src: Half, dst?: Float32Array): Float32Array {
  return convertSync("bf16ToF32", "bf16_to_f32", src, dst, Uint16Array, Float32Array);
}

/** float32 -> fp16 bits, round to nearest even, overflow to ±Inf, NaN -> sign|0x7e00. */
export function f32ToF16(src: Float32Array, dst?: Half): Half {
  return convertSync("f32ToF16", "f32_to_f16", src, dst, Float32Array, Uint16Array);
}

/** float32 -> bfloat16 bits, round to nearest even, NaN kept quiet. */
export function f32ToBf16(src: Float32Array, dst?: Half): Half {
  return convertSync("f32ToBf16", "f32_to_bf16", src, dst, Float32Array, Uint16Array);
}

/** As f16ToF32, off the JS thread when native (for tensors of millions of elements). */
export function f16ToF32Async(src: Half, dst?: Float32Array, options?: KernelCallOptions): Promise<Float32Array> {
  return convertAsync("f16ToF32Async", "f16_to_f32", src, dst, Uint16Array, Float32Array, options);
}

export function bf16ToF32Async(src: Half, dst?: Float32Array, options?: KernelCallOptions): Promise<Float32Array> {
  return convertAsync("bf16ToF32Async", "bf16_to_f32", src, dst, Uint16Array, Float32Array, options);
}

export function f32ToF16Async(src: Float32Array, dst?: Half, options?: KernelCallOptions): Promise<Half> {
  return convertAsync("f32ToF16Async", "f32_to_f16", src, dst, Float32Array, Uint16Array, options);
}

export function f32ToBf16Async(src: Float32Array, dst?: Half, options?: KernelCallOptions): Promise<Half> {
  return convertAsync("f32ToBf16Async", "f32_to_bf16", src, dst, Float32Array, Uint16Array, options);
}

type ArrayCtor<T> = { new (length: number): T; readonly name: string };
type Elements = Float32Array | Uint16Array;

function convertRef(kind: ConvertKind, src: Elements, dst: Elements): void {
  switch (kind) {
    case "f16_to_f32":
      return f16ToF32Ref(src as Uint16Array, dst as Float32Array);
    case "bf16_to_f32":
      return bf16ToF32Ref(src as Uint16Array, dst as Float32Array);
    case "f32_to_f16":
      return f32ToF16Ref(src as Float32Array, dst as Uint16Array);
    case "f32_to_bf16":
      return f32ToBf16Ref(src as Float32Array, dst as Uint16Array);
  }
}

// The addon's overloads pair each kind with its array types; prepareConvert has checked them.
type UncheckedConvert = (kind: ConvertKind, src: Elements, dst: Elements) => void;
type UncheckedConvertAsync = (
  kind: ConvertKind,
  src: Elements,
  dst: Elements,
  cancel: NativeCancelToken | null,
) => Promise<void>;

function prepareConvert<S extends Elements, D extends Elements>(
  fn: string,
  src: S,
  dst: D | undefined,
  srcType: ArrayCtor<S>,
  dstType: ArrayCtor<D>,
): D {
  expectArray(fn, "src", src, srcType);
  if (dst === undefined) return new dstType(src.length);
  expectArray(fn, "dst", dst, dstType);
  if (dst.length !== src.length) {
    throw new RangeError(`${fn}(): dst.length (${dst.length}) must equal src.length (${src.length})`);
  }
  if (overlaps(src, dst)) throw new RangeError(`${fn}(): dst overlaps src in memory; pass a separate array`);
  return dst;
}

function convertSync<S extends Elements, D extends Elements>(
  fn: string,
  kind: ConvertKind,
  src: S,
  dst: D | undefined,
  srcType: ArrayCtor<S>,
  dstType: ArrayCtor<D>,
): D {
  const out = prepareConvert(fn, src, dst, srcType, dstType);
  const k = native();
  if (k) (k.convert as UncheckedConvert)(kind, src, out);
  else convertRef(kind, src, out);
  return out;
}

async function convertAsync<S extends Elements, D extends Elements>(
  fn: string,
  kind: ConvertKind,
  src: S,
  dst: D | undefined,
  srcType: ArrayCtor<S>,
  dstType: ArrayCtor<D>,
  options: KernelCallOptions = {},
): Promise<D> {
  const out = prepareConvert(fn, src, dst, srcType, dstType);
  const signal = options.signal;
  throwIfAborted(signal, fn);
  const k = native();
  if (k) {
    const run = k.convertAsync as UncheckedConvertAsync;
    await withCancel(k, signal, fn, (token) => run(kind, src, out, token));
    return out;
  }
  for (let begin = 0; begin < src.length; begin += FALLBACK_YIELD_ELEMENTS) {
    if (begin > 0) {
      await nextTurn();
      throwIfAborted(signal, fn);
    }
    const end = Math.min(src.length, begin + FALLBACK_YIELD_ELEMENTS);
    convertRef(kind, src.subarray(begin, end), out.subarray(begin, end));
  }
  return out;
}

// ---- helpers ---------------------------------------------------------------------------

export function expectArray(fn: string, name: string, value: unknown, type: ArrayCtor<unknown>): void {
  if (!(value instanceof (type as unknown as abstract new (...args: never[]) => unknown))) {
    throw new TypeError(`${fn}(): ${name} must be a ${type.name}, got ${describe(value)}`);
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  const ctor = (value as { constructor?: { name?: string } }).constructor;
  return ctor?.name ?? "an object";
}

function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.buffer !== b.buffer || a.byteLength === 0 || b.byteLength === 0) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new CancelledError(what);
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Run a native async call with a CancelToken wired to `signal`, mapping the addon's
 * "cancelled" rejection to CancelledError.
 */
export async function withCancel<T>(
  k: NativeKernels,
  signal: AbortSignal | undefined,
  what: string,
  call: (token: NativeCancelToken | null) => Promise<T>,
): Promise<T> {
  if (!signal) return call(null).catch((err: unknown) => rethrow(err, what));
  const token = new k.CancelToken();
  const tokens = liveTokens(signal);
  tokens.add(token);
  try {
    return await call(token);
  } catch (err) {
    return rethrow(err, what);
  } finally {
    tokens.delete(token);
  }
}

/**
 * The cancel tokens of the native calls in flight under one signal. One "abort" listener per
 * signal cancels them all: calibration keeps a kernel call per tapped tensor in flight at once
 * (dozens), and a listener per call would trip Node's MaxListenersExceededWarning.
 */
const inFlight = new WeakMap<AbortSignal, Set<NativeCancelToken>>();
function liveTokens(signal: AbortSignal): Set<NativeCancelToken> {
  const known = inFlight.get(signal);
  if (known) return known;
  const tokens = new Set<NativeCancelToken>();
  inFlight.set(signal, tokens);
  signal.addEventListener("abort", () => tokens.forEach((t) => t.cancel()), { once: true });
  return tokens;
}

function rethrow(err: unknown, what: string): never {
  if (err instanceof Error && (err as { code?: unknown }).code === "ERR_QUANTLENS_CANCELLED") {
    throw new CancelledError(what);
  }
  throw err;
}
