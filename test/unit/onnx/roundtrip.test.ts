import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FunctionProtoSchema, ModelProtoSchema, NodeProtoSchema, StringStringEntryProtoSchema } from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import { loadRefCases, maxAbsDiff, runLogits } from "../../helpers/ort";
import { STORIES_MODEL, tempDir } from "../../helpers/paths";

describe("ONNX decode → encode", () => {
  it("is byte-identical on stories260K", () => {
    const bytes = fs.readFileSync(STORIES_MODEL);
    const again = toBinary(ModelProtoSchema, fromBinary(ModelProtoSchema, bytes));
    expect(Buffer.compare(Buffer.from(again), bytes)).toBe(0);
  });

  it("keeps fields the schema does not know and current-IR fields", () => {
    const model = fromBinary(ModelProtoSchema, fs.readFileSync(STORIES_MODEL));
    // Append an unknown field (number 99, varint 7) to the first node's bytes, and set IR 11 /
    // opset 21 fields the old onnx-proto schema lacks (node metadata_props, model functions).
    const node = model.graph!.node[0];
    const nodeBytes = toBinary(NodeProtoSchema, node);
    const withUnknown = new Uint8Array([...nodeBytes, 0x98, 0x06, 0x07]);
    model.graph!.node[0] = fromBinary(NodeProtoSchema, withUnknown);
    model.graph!.node[1].metadataProps.push(create(StringStringEntryProtoSchema, { key: "k", value: "v" }));
    model.irVersion = 11n;
    model.functions.push(create(FunctionProtoSchema, { name: "f", domain: "custom" }));
    const encoded = toBinary(ModelProtoSchema, model);
    const decoded = fromBinary(ModelProtoSchema, encoded);
    expect(Buffer.from(toBinary(NodeProtoSchema, decoded.graph!.node[0]))).toEqual(Buffer.from(withUnknown));
    expect(decoded.graph!.node[1].metadataProps[0].value).toBe("v");
    expect(decoded.functions[0].name).toBe("f");
    expect(Buffer.compare(Buffer.from(toBinary(ModelProtoSchema, decoded)), Buffer.from(encoded))).toBe(0);
  });

  it("decode → encode → onnxruntime reproduces the reference logits within 1e-4", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const model = await OnnxModel.load(STORIES_MODEL);
      const out = path.join(dir, "roundtrip.onnx");
      await saveModel(model.proto, out, { externalData: false, source: model });
      for (const c of loadRefCases()) {
        const logits = await runLogits(out, c.ids, c.shape);
        expect(maxAbsDiff(logits, c.logits), c.name).toBeLessThan(1e-4);
      }
    } finally {
      cleanup();
    }
  });
});
