import { describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { TensorProto_DataType as DT } from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { floatToBf16Bits, floatToHalfBits } from "../../../extension/src/engine/kernels/reference";
import { singleMatMul } from "../../helpers/tiny-models";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";

const VALUES = Float32Array.from([1, -2, 0.5, 65504, -0.0001, 3.140625, 0, 1e-7]);

function u16bytes(bits: number[]): Uint8Array {
  return new Uint8Array(Uint16Array.from(bits).buffer);
}

describe("float16 / bfloat16 weights", () => {
  it("reads float16 raw_data as float32", () => {
    const raw = u16bytes(Array.from(VALUES, floatToHalfBits));
    const m = OnnxModel.fromBytes("/tmp/f16.onnx", singleMatMul({ dims: [4n, 2n], dataType: DT.FLOAT16, rawData: raw }));
    const w = m.readFloat32("proj.weight");
    // Exactly representable in fp16 except 1e-7 (→ nearest subnormal 1.19e-7) and −1e-4.
    expect(Array.from(w.subarray(0, 4))).toEqual([1, -2, 0.5, 65504]);
    expect(w[5]).toBe(3.140625);
    expect(w[7]).toBeCloseTo(1.1920929e-7, 12);
    expect(Math.abs(w[4] + 0.0001)).toBeLessThan(0.0001 * 2 ** -10);
    expect(indexLinears(m).layers[0].dtype).toBe("float16");
  });

  it("reads float16 stored in int32_data (the typed-field form)", () => {
    const bits = Array.from(VALUES, floatToHalfBits);
    const bytes = singleMatMul({ dims: [4n, 2n], dataType: DT.FLOAT16, rawData: new Uint8Array(0), int32Data: bits });
    const fromTyped = OnnxModel.fromBytes("/tmp/typed.onnx", bytes).readFloat32("proj.weight");
    const fromRaw = OnnxModel.fromBytes("/tmp/raw.onnx", singleMatMul({ dims: [4n, 2n], dataType: DT.FLOAT16, rawData: u16bytes(bits) })).readFloat32("proj.weight");
    expect(fromTyped).toEqual(fromRaw);
  });

  it("reads bfloat16 raw_data as float32 (the high half of the float32 bits)", () => {
    const raw = u16bytes(Array.from(VALUES, floatToBf16Bits));
    const m = OnnxModel.fromBytes("/tmp/bf16.onnx", singleMatMul({ dims: [4n, 2n], dataType: DT.BFLOAT16, rawData: raw }));
    const w = m.readFloat32("proj.weight");
    expect(Array.from(w.subarray(0, 3))).toEqual([1, -2, 0.5]);
    expect(w[3]).toBe(65536); // 65504 rounds to nearest even in bf16's 8-bit mantissa
    expect(w[5]).toBe(3.140625);
    for (let i = 0; i < VALUES.length; i++) expect(Math.abs(w[i] - VALUES[i])).toBeLessThanOrEqual(Math.abs(VALUES[i]) * 2 ** -8);
  });

  it("reads float32 from float_data and from unaligned raw_data alike", () => {
    const viaTyped = OnnxModel.fromBytes("/tmp/t.onnx", singleMatMul({ dims: [4n, 2n], dataType: DT.FLOAT, rawData: new Uint8Array(0), floatData: Array.from(VALUES) }));
    expect(viaTyped.readFloat32("proj.weight")).toEqual(VALUES);
    const viaRaw = OnnxModel.fromBytes("/tmp/r.onnx", singleMatMul({ dims: [4n, 2n], dataType: DT.FLOAT, rawData: new Uint8Array(VALUES.buffer) }));
    expect(viaRaw.readFloat32("proj.weight")).toEqual(VALUES);
    expect(viaRaw.readFloat32("proj.weight", 2, 3)).toEqual(VALUES.subarray(2, 5));
    // The returned array is a copy: writing to it leaves the model untouched.
    viaRaw.readFloat32("proj.weight")[0] = 42;
    expect(viaRaw.readFloat32("proj.weight")[0]).toBe(1);
  });
});
