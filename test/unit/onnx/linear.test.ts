import { describe, expect, it } from "vitest";
import { toBinary } from "@bufbuild/protobuf";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { indexLinears, type LinearLayer } from "../../../extension/src/engine/onnx/linear";
import { ModelProtoSchema } from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { anonymize } from "../../helpers/anonymize";
import { STORIES_MODEL } from "../../helpers/paths";

const PROJ = ["q", "k", "v", "o", "gate", "up", "down"] as const;
const SHAPES: Record<(typeof PROJ)[number], [number, number]> = {
  q: [64, 64],
  k: [64, 32],
  v: [64, 32],
  o: [64, 64],
  gate: [64, 172],
  up: [64, 172],
  down: [172, 64],
};

function expectStoriesLayout(layers: LinearLayer[]) {
  expect(layers).toHaveLength(36);
  for (let b = 0; b < 5; b++) {
    const block = layers.slice(b * 7, b * 7 + 7);
    expect(block.map((l) => l.role)).toEqual([...PROJ]);
    for (const l of block) {
      expect(l.block).toBe(b);
      expect([l.in, l.out]).toEqual(SHAPES[l.role as (typeof PROJ)[number]]);
      expect(l.dtype).toBe("float32");
    }
    // q/k/v read one tensor, gate/up another; o and down read their own.
    const [q, k, v, o, gate, up, down] = block;
    expect(new Set([q.shareGroup, k.shareGroup, v.shareGroup]).size).toBe(1);
    expect(gate.shareGroup).toBe(up.shareGroup);
    expect(new Set([q.shareGroup, o.shareGroup, gate.shareGroup, down.shareGroup]).size).toBe(4);
  }
  const head = layers[35];
  expect(head.role).toBe("lm_head");
  expect(head.block).toBeNull();
  expect([head.in, head.out]).toEqual([64, 512]);
}

describe("linear-layer discovery", () => {
  it("finds the 36 linears of stories260K with roles, blocks and shapes from names", async () => {
    const model = await OnnxModel.load(STORIES_MODEL);
    const index = indexLinears(model);
    expectStoriesLayout(index.layers);
    expect(index.layers.every((l) => l.roleSource === "name")).toBe(true);
    expect(index.layers[0].name).toBe("/model/layers.0/self_attn/q_proj/MatMul");
    expect(index.layers[0].weight).toBe("model.layers.0.self_attn.q_proj.weight");
    expect(index.layers[0].input).toBe("/model/layers.0/input_layernorm/Mul_1_output_0");
    expect(index.blocks).toBe(5);
    // The 10 attention-internal MatMuls (scores, context) are not linears.
    expect(model.graph.node.filter((n) => n.opType === "MatMul")).toHaveLength(46);
    expect(index.shareGroups.filter((g) => g.layers.length === 3)).toHaveLength(5);
    expect(index.shareGroups.filter((g) => g.layers.length === 2)).toHaveLength(5);
  });

  it("recognises the tied embedding", async () => {
    const index = indexLinears(await OnnxModel.load(STORIES_MODEL));
    expect(index.embeddings).toEqual([
      { node: "/model/embed_tokens/Gather", weight: "model.embed_tokens.weight", vocab: 512, hidden: 64 },
    ]);
    expect(index.layers[35].tiedTo).toBe("model.embed_tokens.weight");
  });

  it("recovers the same roles and blocks from graph structure when every name is stripped", async () => {
    const named = await OnnxModel.load(STORIES_MODEL);
    const anon = OnnxModel.fromBytes(STORIES_MODEL, toBinary(ModelProtoSchema, anonymize(named.proto)));
    const index = indexLinears(anon);
    expect(index.layers.every((l) => l.roleSource === "structure")).toBe(true);
    expect(index.layers[0].name).toMatch(/^MatMul#\d+$/);
    expectStoriesLayout(index.layers);
    expect(index.layers[35].tiedTo).toBe("onnx::MatMul_1000");
  });

  it("is not fooled into a tie when the lm_head differs from the embedding", async () => {
    const model = await OnnxModel.load(STORIES_MODEL);
    const head = model.initializer("lm_head.weight")!;
    const raw = new Uint8Array(head.rawData); // copy
    raw[4 * 777] ^= 1; // flip one mantissa bit of one element
    head.rawData = raw;
    expect(indexLinears(model).layers[35].tiedTo).toBeUndefined();
  });
});
