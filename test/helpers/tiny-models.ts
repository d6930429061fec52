import { create, toBinary } from "@bufbuild/protobuf";
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  TensorProtoSchema,
  TensorProto_DataType as DT,
} from "../../extension/src/engine/onnx/proto/onnx_pb";
import { tensorValue } from "../fixtures/generator";

const valueInfo = tensorValue;

export interface WeightSpec {
  dims: bigint[];
  dataType: number;
  rawData: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
}

export function singleMatMul(weight: WeightSpec): Uint8Array {
  const w = create(TensorProtoSchema, { name: "proj.weight", ...weight });
  const [inF, outF] = weight.dims.map(Number);
  return toBinary(
    ModelProtoSchema,
    create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [{ domain: "", version: 17n }],
      graph: create(GraphProtoSchema, {
        name: "single",
        node: [create(NodeProtoSchema, { name: "/proj/MatMul", opType: "MatMul", input: ["x", "proj.weight"], output: ["y"] })],
        initializer: [w],
        input: [valueInfo("x", DT.FLOAT, ["batch", inF])],
        output: [valueInfo("y", DT.FLOAT, ["batch", outF])],
      }),
    }),
  );
}

/** `y = x + x`: a valid model with no linear layer. */
export function noLinears(): Uint8Array {
  return toBinary(
    ModelProtoSchema,
    create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [{ domain: "", version: 17n }],
      graph: create(GraphProtoSchema, {
        name: "add",
        node: [create(NodeProtoSchema, { name: "add", opType: "Add", input: ["x", "x"], output: ["y"] })],
        input: [valueInfo("x", DT.FLOAT, [4])],
        output: [valueInfo("y", DT.FLOAT, [4])],
      }),
    }),
  );
}
