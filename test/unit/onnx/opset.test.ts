import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { defaultOpset, upgradeOpset } from "../../../extension/src/engine/export/opset";
import { UnsupportedError } from "../../../extension/src/engine/errors";
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  TensorProto_DataType as DT,
  type ModelProto,
  type NodeProto,
} from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { loadRefCases, maxAbsDiff, runLogits } from "../../helpers/ort";
import { STORIES_MODEL } from "../../helpers/paths";

const io = (name: string, dims: number[]) => ({
  name,
  type: {
    value: {
      case: "tensorType" as const,
      value: { elemType: DT.FLOAT, shape: { dim: dims.map((d) => ({ value: { case: "dimValue" as const, value: BigInt(d) } })) } },
    },
  },
});
const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v.map(BigInt) });
const int = (name: string, v: number) => ({ name, type: 2, i: BigInt(v) });

/** x [2, 6] → Split (equal, no `split` input) into 3 → ReduceMax/ReduceMean over axes [1] of each part. */
function splitReduceModel(extra: { node?: NodeProto[] } = {}): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [{ domain: "", version: 17n }],
    graph: create(GraphProtoSchema, {
      name: "split-reduce",
      node: [
        create(NodeProtoSchema, { name: "split", opType: "Split", input: ["x"], output: ["a", "b", "c"], attribute: [int("axis", 1)] }),
        create(NodeProtoSchema, { name: "max", opType: "ReduceMax", input: ["a"], output: ["ma"], attribute: [ints("axes", [1]), int("keepdims", 0)] }),
        create(NodeProtoSchema, { name: "mean", opType: "ReduceMean", input: ["b"], output: ["mb"], attribute: [ints("axes", [1]), int("keepdims", 0)] }),
        create(NodeProtoSchema, { name: "all", opType: "ReduceSumSquare", input: ["c"], output: ["sc"], attribute: [int("keepdims", 0)] }),
      ],
      input: [io("x", [2, 6])],
      output: [io("ma", [2]), io("mb", [2]), io("sc", [])],
      ...extra,
    }),
  });
}

async function run(model: ModelProto, x: Float32Array) {
  const session = await ort.InferenceSession.create(toBinary(ModelProtoSchema, model), { graphOptimizationLevel: "disabled" });
  try {
    const out = await session.run({ x: new ort.Tensor("float32", x, [2, 6]) });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v.data as Float32Array)]));
  } finally {
    await session.release();
  }
}

describe("upgradeOpset (17 → 21)", () => {
  it("stories260K at opset 21 gives the same logits in onnxruntime; the source proto is untouched", async () => {
    const model = await OnnxModel.load(STORIES_MODEL);
    try {
      const before = toBinary(ModelProtoSchema, model.proto);
      const up = upgradeOpset(model.proto, 21, model.file);
      expect(defaultOpset(model.proto)).toBe(17);
      expect(defaultOpset(up)).toBe(21);
      expect(up.irVersion).toBeGreaterThanOrEqual(10n);
      const reduces = up.graph!.node.filter((n) => n.opType === "ReduceMean");
      expect(reduces.length).toBe(11);
      for (const n of reduces) {
        expect(n.attribute.some((a) => a.name === "axes")).toBe(false);
        expect(n.input.length).toBe(2);
      }
      expect(Buffer.from(toBinary(ModelProtoSchema, model.proto)).equals(Buffer.from(before))).toBe(true);
      const c = loadRefCases().find((x) => x.name === "b2_t64")!;
      const a = await runLogits(fs.readFileSync(STORIES_MODEL), c.ids, c.shape);
      const b = await runLogits(toBinary(ModelProtoSchema, up), c.ids, c.shape);
      expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-6);
    } finally {
      model.close();
    }
  });

  it("moves Reduce* axes to an input, gives Split num_outputs, and keeps the results", async () => {
    const src = splitReduceModel();
    const up = upgradeOpset(src, 21);
    const split = up.graph!.node.find((n) => n.opType === "Split")!;
    expect(split.attribute.find((a) => a.name === "num_outputs")?.i).toBe(3n);
    expect(up.graph!.node.filter((n) => n.opType === "Constant").length).toBe(2); // ReduceSumSquare had no axes
    const x = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i + 1) * 3);
    const want = await run(src, x);
    const got = await run(up, x);
    expect(Object.keys(got).sort()).toEqual(["ma", "mb", "sc"]);
    for (const k of Object.keys(want)) for (let i = 0; i < want[k].length; i++) expect(got[k][i]).toBeCloseTo(want[k][i], 6);
    // Hand check of one value: the max of x[0, 0..1].
    expect(got.ma[0]).toBeCloseTo(Math.max(x[0], x[1]), 6);
  });

  it("refuses what it cannot convert, naming the node and the file", () => {
    const gn = splitReduceModel({
      node: [create(NodeProtoSchema, { name: "gn", opType: "GroupNormalization", input: ["x", "s", "b"], output: ["y"], attribute: [int("num_groups", 2)] })],
    });
    expect(() => upgradeOpset(gn, 21, "m.onnx")).toThrow(UnsupportedError);
    expect(() => upgradeOpset(gn, 21, "m.onnx")).toThrow(/node 'gn' \(GroupNormalization\).*m\.onnx/);
    const old = { ...splitReduceModel(), opsetImport: [{ domain: "", version: 11n }] } as ModelProto;
    expect(() => upgradeOpset(old, 21, "old.onnx")).toThrow(/opset 11/);
    expect(() => upgradeOpset(splitReduceModel(), 22)).toThrow(/up to 21/);
    // Already there: returned as is.
    const same = splitReduceModel();
    expect(upgradeOpset(same, 17)).toBe(same);
  });
});
