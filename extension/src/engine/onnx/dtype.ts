import { TensorProto_DataType as DT } from "./proto/onnx_pb";

export { DT as DataType };

/** Float element types QuantLens reads weights from (converted to float32 on read). */
export type FloatDtype = "float32" | "float16" | "bfloat16";

const NAMES: Record<number, string> = {
  [DT.UNDEFINED]: "undefined",
  [DT.FLOAT]: "float32",
  [DT.UINT8]: "uint8",
  [DT.INT8]: "int8",
  [DT.UINT16]: "uint16",
  [DT.INT16]: "int16",
  [DT.INT32]: "int32",
  [DT.INT64]: "int64",
  [DT.STRING]: "string",
  [DT.BOOL]: "bool",
  [DT.FLOAT16]: "float16",
  [DT.DOUBLE]: "float64",
  [DT.UINT32]: "uint32",
  [DT.UINT64]: "uint64",
  [DT.COMPLEX64]: "complex64",
  [DT.COMPLEX128]: "complex128",
  [DT.BFLOAT16]: "bfloat16",
  [DT.FLOAT8E4M3FN]: "float8e4m3fn",
  [DT.FLOAT8E4M3FNUZ]: "float8e4m3fnuz",
  [DT.FLOAT8E5M2]: "float8e5m2",
  [DT.FLOAT8E5M2FNUZ]: "float8e5m2fnuz",
  [DT.UINT4]: "uint4",
  [DT.INT4]: "int4",
  [DT.FLOAT4E2M1]: "float4e2m1",
  [DT.FLOAT8E8M0]: "float8e8m0",
  [DT.UINT2]: "uint2",
  [DT.INT2]: "int2",
};

export function dtypeName(dataType: number): string {
  return NAMES[dataType] ?? `unknown(${dataType})`;
}

/**
 * Storage size in bits of one element in `raw_data` (packed sub-byte types: int4/uint4/float4
 * two per byte, int2/uint2 four per byte). `undefined` for strings and unknown types.
 */
export function dtypeBits(dataType: number): number | undefined {
  switch (dataType) {
    case DT.BOOL:
    case DT.UINT8:
    case DT.INT8:
    case DT.FLOAT8E4M3FN:
    case DT.FLOAT8E4M3FNUZ:
    case DT.FLOAT8E5M2:
    case DT.FLOAT8E5M2FNUZ:
    case DT.FLOAT8E8M0:
      return 8;
    case DT.UINT16:
    case DT.INT16:
    case DT.FLOAT16:
    case DT.BFLOAT16:
      return 16;
    case DT.FLOAT:
    case DT.INT32:
    case DT.UINT32:
      return 32;
    case DT.DOUBLE:
    case DT.INT64:
    case DT.UINT64:
    case DT.COMPLEX64:
      return 64;
    case DT.COMPLEX128:
      return 128;
    case DT.UINT4:
    case DT.INT4:
    case DT.FLOAT4E2M1:
      return 4;
    case DT.UINT2:
    case DT.INT2:
      return 2;
    default:
      return undefined;
  }
}

/** Bytes of `raw_data` for `count` elements (sub-byte types round up to whole bytes). */
export function rawByteLength(dataType: number, count: number): number | undefined {
  const bits = dtypeBits(dataType);
  return bits === undefined ? undefined : Math.ceil((bits * count) / 8);
}

export function floatDtype(dataType: number): FloatDtype | undefined {
  if (dataType === DT.FLOAT) return "float32";
  if (dataType === DT.FLOAT16) return "float16";
  if (dataType === DT.BFLOAT16) return "bfloat16";
  return undefined;
}
