/**
 * Packing (core/pack.h) pinned against onnxruntime-node 1.30: one-node models built from our
 * packed bytes must reproduce A·dequant(W)ᵀ computed from our own dequantization. Also: native
 * packers equal the TypeScript references byte for byte, round trips, hand-checked bytes.
 *
 * What ORT 1.30 (CPU) established here:
 *   - MatMulNBits runs bits 2, 4, 8; bits 3 (and 1, 5) are refused at session creation;
 *     block_size must be 16, 32, 64, 128 or 256; K need not be a multiple of block_size.
 *   - accuracy_level 0/1 matches our fp32 reference to ~1e-7; accuracy_level 4 (int8
 *     activations) does not (~0.3–1%): the exporter must not set it when accuracy matters.
 *   - DequantizeLinear int4/uint4 blocked along K (opset 21, ragged last block included) and
 *     8-bit per channel match exactly with graph optimizations disabled; with the default
 *     optimizations the 4-bit DequantizeLinear→MatMul pair is fused into a kernel ~0.3–0.6% off.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import {
  packDequantizeLinearInt4,
  packDequantizeLinearInt8,
  packMatMulNBits,
  rtnDequantize,
  rtnQuantize,
  unpackInt4Transposed,
  unpackMatMulNBits,
  unpackNBitsZeroPoints,
  type DequantizeLinearWeight,
  type MatMulNBitsWeight,
  type QuantBits,
} from "../../extension/src/engine/kernels/index";
import {
  nbitsShape,
  packInt4TransposedRef,
  packInt8TransposedRef,
  packMatMulNBitsRef,
  packNBitsZeroPointsRef,
  unpackMatMulNBitsRef,
} from "../../extension/src/engine/kernels/reference-quant";
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  TensorProtoSchema,
  TensorProto_DataType as DT,
  type TensorProto,
} from "../../extension/src/engine/onnx/proto/onnx_pb";
import { bytesDiffer, gaussian, NATIVE_DISABLED, requireNative, uniform } from "./helpers";

const k = requireNative();

/** ORT's fp32 MatMulNBits / DequantizeLinear→MatMul vs our double-precision product, relative to max |y|. */
const ORT_REL_TOL = 1e-5;

// ---- tiny ONNX models --------------------------------------------------------------------------

const M = 3; // activation rows

function io(name: string, dims: number[]) {
  return {
    name,
    type: {
      value: {
        case: "tensorType" as const,
        value: { elemType: DT.FLOAT, shape: { dim: dims.map((d) => ({ value: { case: "dimValue" as const, value: BigInt(d) } })) } },
      },
    },
  };
}

function tensor(name: string, dims: number[], dataType: DT, raw: Uint8Array | Float32Array): TensorProto {
  const bytes = raw instanceof Float32Array ? new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) : raw;
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType, rawData: bytes.slice() });
}

function intAttr(name: string, i: number) {
  return { name, type: 2, i: BigInt(i) };
}

function model(nodes: ReturnType<typeof create<typeof NodeProtoSchema>>[], init: TensorProto[], K: number, N: number): Uint8Array {
  return toBinary(
    ModelProtoSchema,
    create(ModelProtoSchema, {
      irVersion: 10n,
      opsetImport: [
        { domain: "", version: 21n },
        { domain: "com.microsoft", version: 1n },
      ],
      graph: create(GraphProtoSchema, { name: "pack", initializer: init, node: nodes, input: [io("A", [M, K])], output: [io("Y", [M, N])] }),
    }),
  );
}

function nbitsModel(w: MatMulNBitsWeight, accuracyLevel: number): Uint8Array {
  const init = [tensor("B", w.dimsB, DT.UINT8, w.B), tensor("scales", [w.scales.length], DT.FLOAT, w.scales)];
  if (w.zeroPoints) init.push(tensor("zp", [w.zeroPoints.length], DT.UINT8, w.zeroPoints));
  const node = create(NodeProtoSchema, {
    opType: "MatMulNBits",
    domain: "com.microsoft",
    input: w.zeroPoints ? ["A", "B", "scales", "zp"] : ["A", "B", "scales"],
    output: ["Y"],
    attribute: [intAttr("K", w.K), intAttr("N", w.N), intAttr("bits", w.bits), intAttr("block_size", w.blockSize), intAttr("accuracy_level", accuracyLevel)],
  });
  return model([node], init, w.K, w.N);
}

const DTYPES = { int4: DT.INT4, uint4: DT.UINT4, int8: DT.INT8, uint8: DT.UINT8 } as const;

function dqModel(w: DequantizeLinearWeight): Uint8Array {
  const [K, N] = w.dims;
  const init = [tensor("Wq", w.dims, DTYPES[w.dtype], w.data), tensor("scale", w.scaleDims, DT.FLOAT, w.scale)];
  if (w.zeroPoint) init.push(tensor("zp", w.scaleDims, DTYPES[w.dtype], w.zeroPoint));
  const attribute = [intAttr("axis", w.axis)];
  if (w.blockSize !== undefined) attribute.push(intAttr("block_size", w.blockSize));
  const dq = create(NodeProtoSchema, { opType: "DequantizeLinear", input: w.zeroPoint ? ["Wq", "scale", "zp"] : ["Wq", "scale"], output: ["W"], attribute });
  const mm = create(NodeProtoSchema, { opType: "MatMul", input: ["A", "W"], output: ["Y"] });
  return model([dq, mm], init, K, N);
}

async function run(bytes: Uint8Array, A: Float32Array, K: number, optimize: boolean): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, optimize ? {} : { graphOptimizationLevel: "disabled" });
  try {
    const out = await session.run({ A: new ort.Tensor("float32", A, [M, K]) });
    return out.Y.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** max |y − A·Wdqᵀ| / max |A·Wdqᵀ|, Wdq [N × K] (our dequantized weights), product in double. */
function relError(y: Float32Array, A: Float32Array, Wdq: Float32Array, N: number, K: number): number {
  let err = 0, scale = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let kk = 0; kk < K; kk++) s += A[m * K + kk] * Wdq[n * K + kk];
      err = Math.max(err, Math.abs(y[m * N + n] - s));
      scale = Math.max(scale, Math.abs(s));
    }
  }
  return err / scale;
}

// ---- byte layouts, hand-checked and round-tripped ----------------------------------------------------

describe("packing layouts (reference)", () => {
  it("MatMulNBits: little-endian bit streams per block, low bits first", () => {
    // 1 row, K = 16, block 16. 4 bits: byte j = q[2j] | q[2j+1] << 4.
    const q = Uint8Array.from({ length: 16 }, (_, i) => i);
    expect(Array.from(packMatMulNBitsRef(q, 1, 16, 4, 16))).toEqual([0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
    // 2 bits: four per byte, q[4j] in bits 0-1.
    const q2 = Uint8Array.from({ length: 16 }, (_, i) => i % 4);
    expect(Array.from(packMatMulNBitsRef(q2, 1, 16, 2, 16))).toEqual([0xe4, 0xe4, 0xe4, 0xe4]);
    // 8 bits: the codes; a ragged last block is zero padded.
    expect(Array.from(packMatMulNBitsRef(Uint8Array.of(7, 200, 9), 1, 3, 8, 16))).toEqual([7, 200, 9, ...new Array(13).fill(0)]);
    // 3 bits straddle bytes: q0 = 0b101, q1 = 0b110, q2 = 0b011 → bits 101 | 110 << 3 | 011 << 6.
    const b3 = packMatMulNBitsRef(Uint8Array.of(5, 6, 3, ...new Array(13).fill(0)), 1, 16, 3, 16);
    expect(b3[0]).toBe((5 | (6 << 3) | (3 << 6)) & 0xff);
    expect(b3[1]).toBe(3 >> 2);
    // Zero points: per row, packed like the codes, each row starting on a byte.
    expect(Array.from(packNBitsZeroPointsRef(Float32Array.of(1, 2, 3, 4, 5, 6), 2, 3, 4))).toEqual([0x21, 0x03, 0x54, 0x06]);
  });

  it("ONNX int4/uint4 [K × N]: element e = k·N + n, low nibble first; int4 stores q − 8", () => {
    // codes [N = 3 × K = 2] = [[0, 1], [2, 3], [4, 15]] → [K × N] = [[0, 2, 4], [1, 3, 15]].
    const q = Uint8Array.of(0, 1, 2, 3, 4, 15);
    expect(Array.from(packInt4TransposedRef(q, 3, 2, 0))).toEqual([0x20, 0x14, 0xf3]);
    // int4: q − 8 in two's complement nibbles: −8 → 0x8, −7 → 0x9, 7 → 0x7.
    expect(Array.from(packInt4TransposedRef(Uint8Array.of(0, 1, 15), 3, 1, 8))).toEqual([0x98, 0x07]);
    expect(Array.from(packInt8TransposedRef(Uint8Array.of(0, 128, 255, 1), 2, 2, 128))).toEqual([128, 127, 0, 129]);
  });

  it("round trips: every bits value 1..8, ragged K, odd N·K", async () => {
    const u = uniform(3);
    for (let bits = 1; bits <= 8; bits++) {
      for (const [N, K, bs] of [[5, 172, 128], [3, 64, 32], [2, 17, 16], [1, 300, 256]] as const) {
        const codes = Uint8Array.from({ length: N * K }, () => Math.floor(u() * 2 ** bits));
        const B = packMatMulNBitsRef(codes, N, K, bits, bs);
        expect(B.length).toBe(N * nbitsShape(K, bits, bs).nBlocks * nbitsShape(K, bits, bs).blobSize);
        expect(bytesDiffer(unpackMatMulNBitsRef(B, N, K, bits, bs), codes)).toBeUndefined();
        expect(bytesDiffer(await unpackMatMulNBits(B, N, K, bits, bs), codes)).toBeUndefined();
        const nb = Math.ceil(K / bs);
        const zeros = Float32Array.from({ length: N * nb }, () => Math.floor(u() * 2 ** bits));
        expect(unpackNBitsZeroPoints(packNBitsZeroPointsRef(zeros, N, nb, bits), N, nb, bits)).toEqual(zeros);
      }
    }
    for (const [N, K] of [[3, 5], [4, 4], [1, 7], [7, 1]] as const) {
      const codes = Uint8Array.from({ length: N * K }, () => Math.floor(u() * 16));
      for (const offset of [0, 8]) expect(bytesDiffer(unpackInt4Transposed(packInt4TransposedRef(codes, N, K, offset), N, K, offset), codes)).toBeUndefined();
    }
  });

  it("codes or zeros out of range are refused", () => {
    expect(() => packMatMulNBitsRef(Uint8Array.of(1, 16), 1, 2, 4, 16)).toThrow(/codes\[0, 1\] = 16 does not fit in 4 bits/);
    expect(() => packNBitsZeroPointsRef(Float32Array.of(2.5), 1, 1, 4)).toThrow(/zeros\[0, 0\] = 2.5 is not an integer/);
  });
});

describe.skipIf(NATIVE_DISABLED)("native packers equal the references byte for byte", () => {
  it("MatMulNBits codes and zero points, int4/int8 transposes", async () => {
    const native = k!;
    const u = uniform(11);
    for (const bits of [2, 3, 4, 8]) {
      for (const [N, K, bs] of [[37, 172, 128], [64, 4096, 32], [3, 17, 16]] as const) {
        const codes = Uint8Array.from({ length: N * K }, () => Math.floor(u() * 2 ** bits));
        const B = new Uint8Array(packMatMulNBitsRef(codes, N, K, bits, bs).length);
        await native.packCodes("nbits", codes, N, K, bits, bs, 0, B);
        expect(bytesDiffer(B, packMatMulNBitsRef(codes, N, K, bits, bs))).toBeUndefined();
        const nb = Math.ceil(K / bs);
        const zeros = Float32Array.from({ length: N * nb }, () => Math.floor(u() * 2 ** bits));
        const zp = new Uint8Array(N * Math.ceil((nb * bits) / 8));
        native.packZeroPoints(zeros, N, nb, bits, zp);
        expect(bytesDiffer(zp, packNBitsZeroPointsRef(zeros, N, nb, bits))).toBeUndefined();
      }
    }
    for (const [N, K] of [[33, 171], [64, 4096], [1, 1], [5, 3]] as const) {
      const codes = Uint8Array.from({ length: N * K }, () => Math.floor(u() * 16));
      for (const offset of [0, 8]) {
        const out = new Uint8Array(Math.ceil((N * K) / 2));
        await native.packCodes("int4t", codes, N, K, 4, 0, offset, out);
        expect(bytesDiffer(out, packInt4TransposedRef(codes, N, K, offset))).toBeUndefined();
      }
      const out8 = new Uint8Array(N * K);
      await native.packCodes("int8t", codes, N, K, 8, 0, 128, out8);
      expect(bytesDiffer(out8, packInt8TransposedRef(codes, N, K, 128))).toBeUndefined();
    }
    await expect(native.packCodes("nbits", Uint8Array.of(16, 0), 1, 2, 4, 16, 0, new Uint8Array(8))).rejects.toThrow(/does not fit in 4 bits/);
  });
});

// ---- pinned against onnxruntime ------------------------------------------------------------------

interface LayerCase {
  N: number;
  K: number;
  group: number;
}

/** Ragged last block (172 = 128 + 44), exact blocks, a small block size. */
const LAYERS: LayerCase[] = [
  { N: 24, K: 172, group: 128 },
  { N: 16, K: 64, group: 32 },
  { N: 8, K: 80, group: 16 },
];

async function quantized(c: LayerCase, bits: QuantBits, symmetric: boolean) {
  const W = gaussian(c.N * c.K, 0, 0.05, c.N * 1000 + c.K + bits);
  const q = await rtnQuantize(W, c.N, c.K, { bits, symmetric, group: c.group });
  const Wdq = await rtnDequantize(q, c.N, c.K, c.group);
  const A = gaussian(M * c.K, 0, 1, 99);
  return { q, Wdq, A };
}

describe("MatMulNBits in onnxruntime-node 1.30", () => {
  for (const bits of [2, 4, 8] as const) {
    for (const symmetric of [false, true]) {
      it(`bits ${bits}, ${symmetric ? "symmetric (default zero point)" : "asymmetric (packed zero points)"}: matches our dequantization`, async () => {
        for (const c of LAYERS) {
          const { q, Wdq, A } = await quantized(c, bits, symmetric);
          const w = await packMatMulNBits(q, c.N, c.K, { bits, blockSize: c.group });
          expect(w.zeroPoints === null).toBe(symmetric);
          for (const optimize of [false, true]) {
            for (const accuracyLevel of [0, 1]) {
              const y = await run(nbitsModel(w, accuracyLevel), A, c.K, optimize);
              const err = relError(y, A, Wdq, c.N, c.K);
              if (!(err <= ORT_REL_TOL)) throw new Error(`N ${c.N} K ${c.K} g${c.group} opt ${optimize} acc ${accuracyLevel}: rel err ${err}`);
            }
          }
          // Zero points kept even when they equal the default: same result.
          const always = await packMatMulNBits(q, c.N, c.K, { bits, blockSize: c.group, zeroPoints: "always" });
          expect(relError(await run(nbitsModel(always, 0), A, c.K, false), A, Wdq, c.N, c.K)).toBeLessThanOrEqual(ORT_REL_TOL);
        }
      });
    }
  }

  it("accuracy_level 4 (int8 activations) is not exact: ~0.1–2% off", async () => {
    const c = LAYERS[0];
    const { q, Wdq, A } = await quantized(c, 4, false);
    const w = await packMatMulNBits(q, c.N, c.K, { bits: 4, blockSize: c.group });
    const err = relError(await run(nbitsModel(w, 4), A, c.K, true), A, Wdq, c.N, c.K);
    expect(err).toBeGreaterThan(1e-4);
    expect(err).toBeLessThan(5e-2);
  });

  it("bits 3 is refused when the session is created; so are block sizes outside 16..256", async () => {
    const c = LAYERS[1];
    const { q } = await quantized(c, 3, false);
    const w3 = await packMatMulNBits(q, c.N, c.K, { bits: 3, blockSize: c.group });
    await expect(run(nbitsModel(w3, 0), new Float32Array(M * c.K), c.K, false)).rejects.toThrow(/Only 2b, 4b and 8b quantization is supported/);
    const { q: q4 } = await quantized({ N: 4, K: 48, group: 24 }, 4, false);
    const w24 = await packMatMulNBits(q4, 4, 48, { bits: 4, blockSize: 24 });
    await expect(run(nbitsModel(w24, 0), new Float32Array(M * 48), 48, false)).rejects.toThrow(/block sizes 16, 32, 64, 128, and 256/);
  });
});

describe("DequantizeLinear (opset 21) in onnxruntime-node 1.30", () => {
  for (const symmetric of [true, false]) {
    it(`blocked ${symmetric ? "int4" : "uint4 + uint4 zero points"} along K, ragged last block`, async () => {
      for (const c of LAYERS) {
        const { q, Wdq, A } = await quantized(c, 4, symmetric);
        const w = await packDequantizeLinearInt4(q, c.N, c.K, { blockSize: c.group });
        expect(w.dtype).toBe(symmetric ? "int4" : "uint4");
        const err = relError(await run(dqModel(w), A, c.K, false), A, Wdq, c.N, c.K);
        expect(err).toBeLessThanOrEqual(ORT_REL_TOL);
        // With the default graph optimizations ORT 1.30 fuses DequantizeLinear→MatMul for 4-bit
        // weights into a kernel that quantizes A (measured 0.3–0.6% off). Pinned so an ORT change
        // shows up here; exporters must not rely on the fused path for accuracy numbers.
        const fused = relError(await run(dqModel(w), A, c.K, true), A, Wdq, c.N, c.K);
        expect(fused).toBeGreaterThan(1e-4);
        expect(fused).toBeLessThan(5e-2);
      }
    });
  }

  for (const symmetric of [true, false]) {
    it(`8-bit per output channel as ${symmetric ? "int8" : "uint8 + zero point"}`, async () => {
      const c = { N: 12, K: 172, group: 0 };
      const { q, Wdq, A } = await quantized(c, 8, symmetric);
      const w = await packDequantizeLinearInt8(q, c.N, c.K);
      expect(w.dtype).toBe(symmetric ? "int8" : "uint8");
      expect(relError(await run(dqModel(w), A, c.K, false), A, Wdq, c.N, c.K)).toBeLessThanOrEqual(ORT_REL_TOL);
    });
  }
});
