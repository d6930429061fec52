/**
 * TypeScript references of the RTN quantizer and the packers (native-kernels/core/rtn.h and
 * pack.h hold the documentation of the math and of every byte layout). Each function does the
 * C++ scalar path's float32 operations in the same order (`f` = Math.fround after every
 * operation), so codes, scales, zeros and packed bytes are bit-identical to the addon's.
 *
 *   q  = clamp(round(w / scale) + zero, 0, maxq)   round: ties to even; maxq = 2^bits − 1
 *   dq = scale · (q − zero)
 * W: [rows = out, cols = in] row-major; groups of `group` consecutive columns (0 = per row).
 */

export type QuantBits = 2 | 3 | 4 | 8;

export interface QuantSpec {
  bits: QuantBits;
  /** true: zero fixed at 2^(bits−1), range ±max|w|; false: min/max range with a rounded zero. */
  symmetric: boolean;
}

/** GPTQ's `mse` search: candidates shrink the range by p = 1 − i/grid, i < floor(maxShrink·grid). */
export interface ClipSearch {
  /** Candidate step 1/grid (GPTQ: 100). */
  grid: number;
  /** In (0, 1) (GPTQ: 0.8). */
  maxShrink: number;
  /** The p of Σ|w − dq|^p the search minimizes (GPTQ: 2.4). */
  norm: number;
}

export const GPTQ_CLIP: Readonly<ClipSearch> = { grid: 100, maxShrink: 0.8, norm: 2.4 };

export interface RtnResult {
  /** [rows × cols], each in [0, maxq]. */
  codes: Uint8Array;
  /** [rows × ngroups]. */
  scales: Float32Array;
  /** [rows × ngroups], integer-valued floats in [0, maxq]. */
  zeros: Float32Array;
}

const f = Math.fround;
/** The smallest normal float32, 2^−126. */
const FLT_MIN = 1.1754943508222875e-38;

export function rtnMaxq(bits: number): number {
  return (1 << bits) - 1;
}

/** ceil(cols / group), 1 when group = 0. */
export function rtnGroups(cols: number, group: number): number {
  return group === 0 ? 1 : Math.ceil(cols / group);
}

/** Round a float32 to nearest, ties to even (torch.round), as `ql::round_half_even`. */
export function roundHalfEven(x: number): number {
  const a = Math.abs(x);
  if (!(a < 8388608)) return x;
  const r = f(f(a + 8388608) - 8388608);
  return x < 0 ? -r : r;
}

/** q = clamp(round(w / scale) + zero, 0, maxq). */
export function rtnCode(w: number, scale: number, zero: number, maxq: number): number {
  let q = f(roundHalfEven(f(w / scale)) + zero);
  if (!(q > 0)) q = 0;
  if (q > maxq) q = maxq;
  return q;
}

/** dq = scale · (q − zero). */
export function rtnDequant(q: number, scale: number, zero: number): number {
  return f(scale * f(q - zero));
}

interface Range {
  min: number;
  max: number;
  finite: boolean;
}

function groupRange(w: Float32Array, begin: number, n: number, stride: number): Range {
  let min = Infinity;
  let max = -Infinity;
  let finite = true;
  for (let i = 0; i < n; i++) {
    const v = w[begin + i * stride];
    if (!Number.isFinite(v)) finite = false;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max, finite };
}

interface Params {
  scale: number;
  zero: number;
}

function paramsOfRange(xmin: number, xmax: number, symmetric: boolean, maxq: number): Params | null {
  const s = f(f(xmax - xmin) / maxq);
  if (!(s >= FLT_MIN) || !Number.isFinite(s)) return null;
  return { scale: s, zero: symmetric ? (maxq + 1) / 2 : roundHalfEven(f(-xmin / s)) };
}

/** Min/max parameters and the (guarded) range they came from. */
function minMaxParams(wmin: number, wmax: number, spec: QuantSpec): Params & { xmin: number; xmax: number } {
  const maxq = rtnMaxq(spec.bits);
  let xmin = wmin < 0 ? wmin : 0;
  let xmax = wmax > 0 ? wmax : 0;
  if (spec.symmetric) {
    const a = -xmin > xmax ? -xmin : xmax;
    xmin = -a;
    xmax = a;
  }
  const p = paramsOfRange(xmin, xmax, spec.symmetric, maxq);
  if (p) return { ...p, xmin, xmax };
  if (!Number.isFinite(f(f(xmax - xmin) / maxq))) {
    throw new RangeError("rtn_params: group range overflows float (|w| above ~1.7e38)");
  }
  // All zero, or a scale below the smallest normal float: GPTQ's guard xmin = −1, xmax = +1.
  return { ...(paramsOfRange(-1, 1, spec.symmetric, maxq) as Params), xmin: -1, xmax: 1 };
}

function groupError(
  w: Float32Array, begin: number, n: number, stride: number, scale: number, zero: number, maxq: number, norm: number,
): number {
  let err = 0;
  for (let i = 0; i < n; i++) {
    const v = w[begin + i * stride];
    const d = Math.abs(f(rtnDequant(rtnCode(v, scale, zero, maxq), scale, zero) - v));
    err += norm === 2 ? d * d : Math.pow(d, norm);
  }
  return err;
}

function clipSearch(
  w: Float32Array, begin: number, n: number, stride: number, spec: QuantSpec, clip: ClipSearch,
  xmin: number, xmax: number, best0: Params,
): Params {
  const maxq = rtnMaxq(spec.bits);
  const candidates = Math.max(1, Math.floor(clip.maxShrink * clip.grid));
  let best = Infinity;
  let out = best0;
  for (let i = 0; i < candidates; i++) {
    const p = f(1 - i / clip.grid);
    const params = paramsOfRange(f(p * xmin), f(p * xmax), spec.symmetric, maxq);
    if (!params) continue;
    const err = groupError(w, begin, n, stride, params.scale, params.zero, maxq, clip.norm);
    if (err < best) {
      best = err;
      out = params;
    }
  }
  return out;
}

/** Scale and zero of one group w[begin], w[begin + stride], … (n values). */
export function rtnParamsRef(
  w: Float32Array, spec: QuantSpec, clip: ClipSearch | null = null, begin = 0, n = w.length - begin, stride = 1,
): Params {
  const r = groupRange(w, begin, n, stride);
  if (!r.finite) throw new RangeError("rtn_params: weights must be finite");
  const mm = minMaxParams(r.min, r.max, spec);
  const params = { scale: mm.scale, zero: mm.zero };
  return clip && clip.grid > 0 ? clipSearch(w, begin, n, stride, spec, clip, mm.xmin, mm.xmax, params) : params;
}

/**
 * Min/max parameters of a range shrunk by `shrink` (in (0, 1]): the range [p·xmin, p·xmax], which
 * is one candidate of GPTQ's clipping search (p = 1 − i/grid); 1 gives rtnParamsRef's min/max.
 * A shrunk range too small for a normal float scale keeps the unshrunk parameters.
 */
export function rtnParamsShrunkRef(w: Float32Array, spec: QuantSpec, shrink: number, begin = 0, n = w.length - begin): Params {
  const r = groupRange(w, begin, n, 1);
  if (!r.finite) throw new RangeError("rtn_params: weights must be finite");
  const mm = minMaxParams(r.min, r.max, spec);
  if (shrink === 1) return { scale: mm.scale, zero: mm.zero };
  const p = f(shrink);
  return paramsOfRange(f(p * mm.xmin), f(p * mm.xmax), spec.symmetric, rtnMaxq(spec.bits)) ?? { scale: mm.scale, zero: mm.zero };
}

/** Quantize W [rows × cols] (see `ql::rtn_quantize`). */
export function rtnQuantizeRef(
  W: Float32Array, rows: number, cols: number, group: number, spec: QuantSpec, clip: ClipSearch | null = null,
  out?: RtnResult,
): RtnResult {
  const ngroups = rtnGroups(cols, group);
  const res = out ?? {
    codes: new Uint8Array(rows * cols),
    scales: new Float32Array(rows * ngroups),
    zeros: new Float32Array(rows * ngroups),
  };
  const g = group === 0 || group > cols ? cols : group;
  const maxq = rtnMaxq(spec.bits);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < ngroups; k++) {
      const begin = r * cols + k * g;
      const n = Math.min(g, cols - k * g);
      const range = groupRange(W, begin, n, 1);
      if (!range.finite) {
        let c = 0;
        while (Number.isFinite(W[begin + c])) c++;
        const what = Number.isNaN(W[begin + c]) ? "NaN" : "infinite";
        throw new RangeError(`rtn_quantize: W[${r}, ${k * g + c}] is ${what}; quantize finite weights only`);
      }
      const mm = minMaxParams(range.min, range.max, spec);
      let params: Params = { scale: mm.scale, zero: mm.zero };
      if (clip && clip.grid > 0) params = clipSearch(W, begin, n, 1, spec, clip, mm.xmin, mm.xmax, params);
      res.scales[r * ngroups + k] = params.scale;
      res.zeros[r * ngroups + k] = params.zero;
      for (let i = 0; i < n; i++) res.codes[begin + i] = rtnCode(W[begin + i], params.scale, params.zero, maxq);
    }
  }
  return res;
}

/** out[r, c] = scale[r, g] · (codes[r, c] − zero[r, g]), g = c / group. */
export function rtnDequantizeRef(
  codes: Uint8Array, scales: Float32Array, zeros: Float32Array, rows: number, cols: number, group: number,
  out: Float32Array = new Float32Array(rows * cols),
): Float32Array {
  const ngroups = rtnGroups(cols, group);
  const g = group === 0 || group > cols ? cols : group;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = Math.floor(c / g);
      out[r * cols + c] = rtnDequant(codes[r * cols + c], scales[r * ngroups + k], zeros[r * ngroups + k]);
    }
  }
  return out;
}

// ---- packing (layouts: native-kernels/core/pack.h) ---------------------------------------------

export interface NBitsShape {
  /** ceil(K / blockSize). */
  nBlocks: number;
  /** blockSize · bits / 8. */
  blobSize: number;
  /** ceil(nBlocks · bits / 8). */
  zpBytesPerRow: number;
}

export function nbitsShape(K: number, bits: number, blockSize: number): NBitsShape {
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new RangeError(`MatMulNBits: bits must be in 1..8, got ${bits}`);
  if (!(blockSize > 0) || (blockSize * bits) % 8 !== 0) {
    throw new RangeError("MatMulNBits: block_size · bits must be a positive multiple of 8");
  }
  const nBlocks = Math.ceil(K / blockSize);
  return { nBlocks, blobSize: (blockSize * bits) / 8, zpBytesPerRow: Math.ceil((nBlocks * bits) / 8) };
}

/** Code i of a little-endian bit stream starting at `base`. */
function getCode(stream: Uint8Array, base: number, i: number, bits: number): number {
  const bit = i * bits;
  const shift = bit & 7;
  let v = stream[base + (bit >> 3)] >> shift;
  if (shift + bits > 8) v |= stream[base + (bit >> 3) + 1] << (8 - shift);
  return v & ((1 << bits) - 1);
}

function putCode(stream: Uint8Array, base: number, i: number, bits: number, v: number): void {
  const bit = i * bits;
  const shift = bit & 7;
  stream[base + (bit >> 3)] |= v << shift;
  if (shift + bits > 8) stream[base + (bit >> 3) + 1] |= v >> (8 - shift);
}

function badCode(fn: string, n: number, k: number, v: number, bits: number): never {
  throw new RangeError(`${fn}: codes[${n}, ${k}] = ${v} does not fit in ${bits} bits`);
}

/** codes [N × K] → MatMulNBits B [N × nBlocks × blobSize]. */
export function packMatMulNBitsRef(codes: Uint8Array, N: number, K: number, bits: number, blockSize: number): Uint8Array {
  const s = nbitsShape(K, bits, blockSize);
  const rowBytes = s.nBlocks * s.blobSize;
  const B = new Uint8Array(N * rowBytes);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const v = codes[n * K + k];
      if (v >> bits) badCode("packMatMulNBits", n, k, v, bits);
      putCode(B, n * rowBytes, k, bits, v);
    }
  }
  return B;
}

export function unpackMatMulNBitsRef(B: Uint8Array, N: number, K: number, bits: number, blockSize: number): Uint8Array {
  const s = nbitsShape(K, bits, blockSize);
  const rowBytes = s.nBlocks * s.blobSize;
  const codes = new Uint8Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) codes[n * K + k] = getCode(B, n * rowBytes, k, bits);
  return codes;
}

/** zeros [N × nBlocks] (integers in [0, 2^bits)) → MatMulNBits zero_points [N × ceil(nBlocks·bits/8)]. */
export function packNBitsZeroPointsRef(zeros: Float32Array, N: number, nBlocks: number, bits: number): Uint8Array {
  const rowBytes = Math.ceil((nBlocks * bits) / 8);
  const zp = new Uint8Array(N * rowBytes);
  const maxq = rtnMaxq(bits);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nBlocks; b++) {
      const z = zeros[n * nBlocks + b];
      if (!(z >= 0 && z <= maxq) || z !== Math.floor(z)) {
        throw new RangeError(`packNBitsZeroPoints: zeros[${n}, ${b}] = ${z} is not an integer in [0, ${maxq}]`);
      }
      putCode(zp, n * rowBytes, b, bits, z);
    }
  }
  return zp;
}

export function unpackNBitsZeroPointsRef(zp: Uint8Array, N: number, nBlocks: number, bits: number): Float32Array {
  const rowBytes = Math.ceil((nBlocks * bits) / 8);
  const zeros = new Float32Array(N * nBlocks);
  for (let n = 0; n < N; n++) for (let b = 0; b < nBlocks; b++) zeros[n * nBlocks + b] = getCode(zp, n * rowBytes, b, bits);
  return zeros;
}

/** codes [N × K] (< 16) → ONNX int4/uint4 [K × N], two per byte, low nibble first; stores q − offset. */
export function packInt4TransposedRef(codes: Uint8Array, N: number, K: number, offset: number): Uint8Array {
  const out = new Uint8Array(Math.ceil((N * K) / 2));
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const q = codes[n * K + k];
      if (q >> 4) badCode("packInt4Transposed", n, k, q, 4);
      const e = k * N + n;
      out[e >> 1] |= ((q - offset) & 0xf) << ((e & 1) * 4);
    }
  }
  return out;
}

export function unpackInt4TransposedRef(packed: Uint8Array, N: number, K: number, offset: number): Uint8Array {
  const codes = new Uint8Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const e = k * N + n;
      codes[n * K + k] = (((packed[e >> 1] >> ((e & 1) * 4)) & 0xf) + offset) & 0xf;
    }
  }
  return codes;
}

/** codes [N × K] → ONNX 8-bit [K × N], q − offset mod 256 (offset 128 turns uint8 codes into int8). */
export function packInt8TransposedRef(codes: Uint8Array, N: number, K: number, offset: number): Uint8Array {
  const out = new Uint8Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[k * N + n] = (codes[n * K + k] - offset) & 0xff;
  return out;
}
