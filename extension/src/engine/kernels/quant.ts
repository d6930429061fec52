/**
 * RTN quantization and packing: validated arguments, then the addon (core/rtn.h, core/pack.h)
 * when it loads, else the TypeScript references (reference-quant.ts), bit-identical either way.
 *
 *   const q = await rtnQuantize(W, out, in, { bits: 4, symmetric: false, group: 128 });
 *   const w = await packMatMulNBits(q, out, in, { bits: 4, blockSize: 128 });   // ORT contrib op
 *   const d = await packDequantizeLinearInt4(q, out, in, { blockSize: 128 });   // ONNX opset 21
 *
 * W is [rows = out, cols = in] (the transpose of an ONNX MatMul weight, GPTQ's layout).
 */
import type { NativeClip } from "./binding";
import { expectArray, native, throwIfAborted, withCancel, type KernelCallOptions } from "./index";
import {
  nbitsShape,
  packInt4TransposedRef,
  packInt8TransposedRef,
  packMatMulNBitsRef,
  packNBitsZeroPointsRef,
  rtnDequantizeRef,
  rtnGroups,
  rtnParamsRef,
  rtnQuantizeRef,
  unpackMatMulNBitsRef,
  type ClipSearch,
  type QuantSpec,
  type RtnResult,
} from "./reference-quant";

export {
  GPTQ_CLIP,
  nbitsShape,
  rtnCode,
  rtnDequant,
  rtnGroups,
  rtnMaxq,
  roundHalfEven,
  unpackInt4TransposedRef as unpackInt4Transposed,
  unpackNBitsZeroPointsRef as unpackNBitsZeroPoints,
} from "./reference-quant";
export type { ClipSearch, NBitsShape, QuantBits, QuantSpec, RtnResult } from "./reference-quant";

export interface RtnConfig extends QuantSpec {
  /** Consecutive input columns per group; 0 = one group per row (per-channel). */
  group: number;
  /** MSE clipping search (GPTQ's `mse`), or null/absent for plain min/max. */
  clip?: ClipSearch | null;
}

/** MatMulNBits block sizes onnxruntime 1.30 accepts. */
export const NBITS_BLOCK_SIZES = [16, 32, 64, 128, 256] as const;
/** MatMulNBits `bits` values onnxruntime 1.30's CPU kernel runs (3 is refused at session creation). */
export const NBITS_ORT_BITS = [2, 4, 8] as const;

// ---- RTN ----------------------------------------------------------------------------------------

/** Quantize W [rows × cols]; off the JS thread when native. Rejects naming W[r, c] on NaN/±Inf. */
export async function rtnQuantize(
  W: Float32Array, rows: number, cols: number, config: RtnConfig, options: KernelCallOptions = {},
): Promise<RtnResult> {
  const fn = "rtnQuantize";
  checkRtn(fn, W, rows, cols, config);
  throwIfAborted(options.signal, fn);
  const out = rtnOutputs(rows, cols, config.group);
  const k = native();
  if (!k) return rtnQuantizeRef(W, rows, cols, config.group, config, config.clip ?? null, out);
  const clip = nativeClip(config.clip);
  await withCancel(k, options.signal, fn, (token) =>
    k.rtnQuantize(W, rows, cols, config.group, config.bits, config.symmetric, clip, out.codes, out.scales, out.zeros, token),
  );
  return out;
}

/** As rtnQuantize on the calling thread (blocks it): for small layers and the GPTQ tests. */
export function rtnQuantizeSync(W: Float32Array, rows: number, cols: number, config: RtnConfig): RtnResult {
  checkRtn("rtnQuantizeSync", W, rows, cols, config);
  const out = rtnOutputs(rows, cols, config.group);
  const k = native();
  if (!k) return rtnQuantizeRef(W, rows, cols, config.group, config, config.clip ?? null, out);
  k.rtnQuantizeSync(W, rows, cols, config.group, config.bits, config.symmetric, nativeClip(config.clip), out.codes, out.scales, out.zeros);
  return out;
}

/** W ≈ scale·(q − zero), [rows × cols]. */
export async function rtnDequantize(
  q: RtnResult, rows: number, cols: number, group: number, options: KernelCallOptions = {},
): Promise<Float32Array> {
  const fn = "rtnDequantize";
  checkQuantized(fn, q, rows, cols, group);
  throwIfAborted(options.signal, fn);
  const out = new Float32Array(rows * cols);
  const k = native();
  if (!k) return rtnDequantizeRef(q.codes, q.scales, q.zeros, rows, cols, group, out);
  await withCancel(k, options.signal, fn, (token) =>
    k.rtnDequantize(q.codes, q.scales, q.zeros, rows, cols, group, out, token),
  );
  return out;
}

export function rtnDequantizeSync(q: RtnResult, rows: number, cols: number, group: number): Float32Array {
  checkQuantized("rtnDequantizeSync", q, rows, cols, group);
  const out = new Float32Array(rows * cols);
  const k = native();
  if (!k) return rtnDequantizeRef(q.codes, q.scales, q.zeros, rows, cols, group, out);
  k.rtnDequantizeSync(q.codes, q.scales, q.zeros, rows, cols, group, out);
  return out;
}

/** Scale and zero of one group of weights. */
export function rtnParams(w: Float32Array, spec: QuantSpec, clip: ClipSearch | null = null): { scale: number; zero: number } {
  expectArray("rtnParams", "w", w, Float32Array);
  checkSpec("rtnParams", spec);
  checkClip("rtnParams", clip);
  const k = native();
  return k ? k.rtnParams(w, spec.bits, spec.symmetric, nativeClip(clip)) : rtnParamsRef(w, spec, clip);
}

// ---- packing ------------------------------------------------------------------------------------

/** Inputs of a com.microsoft MatMulNBits node (layout: native-kernels/core/pack.h). */
export interface MatMulNBitsWeight {
  K: number;
  N: number;
  bits: number;
  blockSize: number;
  /** uint8 [N, nBlocks, blobSize]. */
  B: Uint8Array;
  dimsB: [number, number, number];
  /** float32 [N · nBlocks]. */
  scales: Float32Array;
  /** uint8 [N · ceil(nBlocks·bits/8)], or null when every zero is 2^(bits−1) (ORT's default). */
  zeroPoints: Uint8Array | null;
}

/**
 * Pack RTN/GPTQ output (group = blockSize) as MatMulNBits inputs. `zeroPoints: "auto"` (default)
 * omits them when all equal ORT's default 2^(bits−1) (symmetric quantization).
 */
export async function packMatMulNBits(
  q: RtnResult, N: number, K: number, config: { bits: number; blockSize: number; zeroPoints?: "auto" | "always" },
  options: KernelCallOptions = {},
): Promise<MatMulNBitsWeight> {
  const fn = "packMatMulNBits";
  const { bits, blockSize } = config;
  checkQuantized(fn, q, N, K, blockSize);
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new RangeError(`${fn}(): bits must be an integer in 1..8, got ${bits}`);
  if (!Number.isInteger(blockSize) || blockSize < 1 || (blockSize * bits) % 8 !== 0) {
    throw new RangeError(`${fn}(): blockSize · bits must be a positive multiple of 8, got blockSize ${blockSize}`);
  }
  const s = nbitsShape(K, bits, blockSize);
  const B = await packCodes(fn, "nbits", q.codes, N, K, bits, blockSize, 0, N * s.nBlocks * s.blobSize, options);
  const dflt = 1 << (bits - 1);
  const omit = (config.zeroPoints ?? "auto") === "auto" && q.zeros.every((z) => z === dflt);
  const k = native();
  let zeroPoints: Uint8Array | null = null;
  if (!omit) {
    if (k) {
      zeroPoints = new Uint8Array(N * s.zpBytesPerRow);
      k.packZeroPoints(q.zeros, N, s.nBlocks, bits, zeroPoints);
    } else {
      zeroPoints = packNBitsZeroPointsRef(q.zeros, N, s.nBlocks, bits);
    }
  }
  return { K, N, bits, blockSize, B, dimsB: [N, s.nBlocks, s.blobSize], scales: q.scales, zeroPoints };
}

/** MatMulNBits B → codes [N × K]. */
export async function unpackMatMulNBits(
  B: Uint8Array, N: number, K: number, bits: number, blockSize: number, options: KernelCallOptions = {},
): Promise<Uint8Array> {
  const s = nbitsShape(K, bits, blockSize);
  if (B.length !== N * s.nBlocks * s.blobSize) throw new RangeError(`unpackMatMulNBits(): B has ${B.length} bytes, expected ${N * s.nBlocks * s.blobSize}`);
  return packCodes("unpackMatMulNBits", "unnbits", B, N, K, bits, blockSize, 0, N * K, options);
}

/** Inputs of an opset-21 DequantizeLinear (weight [K, N], blocked along axis 0). */
export interface DequantizeLinearWeight {
  dtype: "int4" | "uint4" | "int8" | "uint8";
  /** [K, N]: the ONNX MatMul orientation. */
  dims: [number, number];
  /** Packed data (int4/uint4: two per byte, low nibble first). */
  data: Uint8Array;
  /** float32, [ceil(K / blockSize), N] (int4) or [N] (8-bit per channel). */
  scale: Float32Array;
  scaleDims: number[];
  /** Same dtype and dims as `scale`'s, packed like `data`; null when absent (= 0). */
  zeroPoint: Uint8Array | null;
  /** 0 (blocked along K) for 4-bit, 1 (per output channel) for 8-bit. */
  axis: 0 | 1;
  /** Set for blocked 4-bit. */
  blockSize?: number;
}

/**
 * 4-bit codes (group = blockSize) as ONNX int4 (all zeros 8: x = q − 8, no zero point) or uint4
 * (x = q with a uint4 zero point [nBlocks, N]).
 */
export async function packDequantizeLinearInt4(
  q: RtnResult, N: number, K: number, config: { blockSize: number }, options: KernelCallOptions = {},
): Promise<DequantizeLinearWeight> {
  const fn = "packDequantizeLinearInt4";
  const { blockSize } = config;
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`${fn}(): blockSize must be a positive integer, got ${blockSize}`);
  checkQuantized(fn, q, N, K, blockSize);
  const nBlocks = Math.ceil(K / blockSize);
  const symmetric = q.zeros.every((z) => z === 8);
  const data = await packCodes(fn, "int4t", q.codes, N, K, 4, 0, symmetric ? 8 : 0, Math.ceil((N * K) / 2), options);
  const scale = transpose(q.scales, N, nBlocks);
  let zeroPoint: Uint8Array | null = null;
  if (!symmetric) {
    const zcodes = Uint8Array.from(q.zeros);
    zeroPoint = packInt4TransposedRef(zcodes, N, nBlocks, 0);
  }
  return { dtype: symmetric ? "int4" : "uint4", dims: [K, N], data, scale, scaleDims: [nBlocks, N], zeroPoint, axis: 0, blockSize };
}

/** 8-bit per-channel codes (group = 0) as ONNX int8 (all zeros 128: x = q − 128) or uint8 + zero point. */
export async function packDequantizeLinearInt8(
  q: RtnResult, N: number, K: number, options: KernelCallOptions = {},
): Promise<DequantizeLinearWeight> {
  const fn = "packDequantizeLinearInt8";
  checkQuantized(fn, q, N, K, 0);
  const symmetric = q.zeros.every((z) => z === 128);
  const data = await packCodes(fn, "int8t", q.codes, N, K, 8, 0, symmetric ? 128 : 0, N * K, options);
  return {
    dtype: symmetric ? "int8" : "uint8",
    dims: [K, N],
    data,
    scale: Float32Array.from(q.scales),
    scaleDims: [N],
    zeroPoint: symmetric ? null : Uint8Array.from(q.zeros),
    axis: 1,
  };
}

// ---- helpers ------------------------------------------------------------------------------------

async function packCodes(
  fn: string, format: "nbits" | "unnbits" | "int4t" | "int8t", src: Uint8Array, N: number, K: number, bits: number,
  blockSize: number, offset: number, dstLength: number, options: KernelCallOptions,
): Promise<Uint8Array> {
  expectArray(fn, "codes", src, Uint8Array);
  throwIfAborted(options.signal, fn);
  const k = native();
  if (!k) {
    switch (format) {
      case "nbits":
        return packMatMulNBitsRef(src, N, K, bits, blockSize);
      case "unnbits":
        return unpackMatMulNBitsRef(src, N, K, bits, blockSize);
      case "int4t":
        return packInt4TransposedRef(src, N, K, offset);
      case "int8t":
        return packInt8TransposedRef(src, N, K, offset);
    }
  }
  const dst = new Uint8Array(dstLength);
  await withCancel(k, options.signal, fn, (token) => k.packCodes(format, src, N, K, bits, blockSize, offset, dst, token));
  return dst;
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

function rtnOutputs(rows: number, cols: number, group: number): RtnResult {
  const params = rows * rtnGroups(cols, group);
  return { codes: new Uint8Array(rows * cols), scales: new Float32Array(params), zeros: new Float32Array(params) };
}

function nativeClip(clip: ClipSearch | null | undefined): NativeClip | null {
  return clip && clip.grid > 0 ? { grid: clip.grid, maxShrink: clip.maxShrink, norm: clip.norm } : null;
}

function checkSpec(fn: string, spec: QuantSpec): void {
  if (![2, 3, 4, 8].includes(spec.bits)) throw new RangeError(`${fn}(): bits must be 2, 3, 4 or 8, got ${spec.bits}`);
  if (typeof spec.symmetric !== "boolean") throw new TypeError(`${fn}(): symmetric must be a boolean`);
}

function checkClip(fn: string, clip: ClipSearch | null | undefined): void {
  if (!clip || clip.grid === 0) return;
  if (!Number.isInteger(clip.grid) || clip.grid < 1 || clip.grid > 100000) {
    throw new RangeError(`${fn}(): clip.grid must be an integer in [1, 100000], got ${clip.grid}`);
  }
  if (!(clip.maxShrink > 0 && clip.maxShrink < 1)) throw new RangeError(`${fn}(): clip.maxShrink must be in (0, 1), got ${clip.maxShrink}`);
  if (!(clip.norm > 0 && clip.norm <= 16)) throw new RangeError(`${fn}(): clip.norm must be in (0, 16], got ${clip.norm}`);
}

function checkDims(fn: string, rows: number, cols: number, group: number): void {
  for (const [name, v] of [["rows", rows], ["cols", cols], ["group", group]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${fn}(): ${name} must be a non-negative integer, got ${v}`);
  }
}

function checkRtn(fn: string, W: Float32Array, rows: number, cols: number, config: RtnConfig): void {
  expectArray(fn, "W", W, Float32Array);
  checkDims(fn, rows, cols, config.group);
  checkSpec(fn, config);
  checkClip(fn, config.clip);
  if (W.length !== rows * cols) throw new RangeError(`${fn}(): W has ${W.length} values, not rows ${rows} × cols ${cols}`);
}

function checkQuantized(fn: string, q: RtnResult, rows: number, cols: number, group: number): void {
  expectArray(fn, "codes", q.codes, Uint8Array);
  expectArray(fn, "scales", q.scales, Float32Array);
  expectArray(fn, "zeros", q.zeros, Float32Array);
  checkDims(fn, rows, cols, group);
  const params = rows * rtnGroups(cols, group);
  if (q.codes.length !== rows * cols) throw new RangeError(`${fn}(): codes has ${q.codes.length} values, not rows ${rows} × cols ${cols}`);
  if (q.scales.length !== params || q.zeros.length !== params) {
    throw new RangeError(`${fn}(): scales/zeros need rows × ceil(cols / group) = ${params} values (group ${group}), got ${q.scales.length}/${q.zeros.length}`);
  }
}
