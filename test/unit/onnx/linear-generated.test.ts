import { describe, expect, it } from "vitest";
import { toBinary } from "@bufbuild/protobuf";
import { buildLlama, type LlamaFixtureConfig } from "../../fixtures/generator";
import { ModelProtoSchema } from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";

const ROLES = ["q", "k", "v", "o", "gate", "up", "down"] as const;

type Case = LlamaFixtureConfig & { label: string };
const SHAPES: Case[] = [
  { label: "GQA 64/172", hidden: 64, ffn: 172, layers: 3, heads: 8, kvHeads: 4, vocab: 512 },
  { label: "MHA 48/128", hidden: 48, ffn: 128, layers: 2, heads: 4, kvHeads: 4, vocab: 300 },
  { label: "MQA 32/88 untied", hidden: 32, ffn: 88, layers: 1, heads: 4, kvHeads: 1, vocab: 97, tied: false },
  { label: "wide 96/256", hidden: 96, ffn: 256, layers: 2, heads: 6, kvHeads: 2, vocab: 1000 },
];
const VARIANTS: Partial<LlamaFixtureConfig>[] = [
  {},
  { linearForm: "gemm" },
  { linearForm: "transposed" },
  { naming: "anonymous" },
  { naming: "anonymous", linearForm: "gemm", weightDtype: "float16" },
  { naming: "anonymous", linearForm: "transposed", weightDtype: "bfloat16" },
  { weightDtype: "float16" },
];

function expected(c: LlamaFixtureConfig, role: (typeof ROLES)[number]): [number, number] {
  const hd = c.hidden / c.heads;
  return {
    q: [c.hidden, c.heads * hd],
    k: [c.hidden, c.kvHeads * hd],
    v: [c.hidden, c.kvHeads * hd],
    o: [c.heads * hd, c.hidden],
    gate: [c.hidden, c.ffn],
    up: [c.hidden, c.ffn],
    down: [c.ffn, c.hidden],
  }[role] as [number, number];
}

describe("linear-layer discovery on generated Llamas", () => {
  for (const shape of SHAPES) {
    for (const variant of VARIANTS) {
      const config = { ...shape, ...variant };
      const label = `${shape.label} ${JSON.stringify(variant)}`;
      it(label, () => {
        const bytes = toBinary(ModelProtoSchema, buildLlama(config));
        const index = indexLinears(OnnxModel.fromBytes("/tmp/generated.onnx", bytes));
        const { layers } = index;
        expect(layers).toHaveLength(7 * config.layers + 1);
        expect(index.blocks).toBe(config.layers);
        const source = config.naming === "anonymous" ? "structure" : "name";
        for (let b = 0; b < config.layers; b++) {
          const block = layers.slice(7 * b, 7 * b + 7);
          expect(block.map((l) => l.role)).toEqual([...ROLES]);
          for (const l of block) {
            expect(l.block).toBe(b);
            expect(l.roleSource).toBe(source);
            expect([l.in, l.out], `${l.role}`).toEqual(expected(config, l.role as (typeof ROLES)[number]));
            expect(l.dtype).toBe(config.weightDtype ?? "float32");
            expect(l.op).toBe(config.linearForm === "gemm" ? "Gemm" : "MatMul");
            expect(l.layout).toBe(config.linearForm === "gemm" || config.linearForm === "transposed" ? "out_in" : "in_out");
          }
          const [q, k, v, o, gate, up, down] = block;
          expect(k.shareGroup).toBe(q.shareGroup);
          expect(v.shareGroup).toBe(q.shareGroup);
          expect(up.shareGroup).toBe(gate.shareGroup);
          expect(new Set([q.shareGroup, o.shareGroup, gate.shareGroup, down.shareGroup]).size).toBe(4);
        }
        const head = layers.at(-1)!;
        expect(head).toMatchObject({ role: "lm_head", block: null, in: config.hidden, out: config.vocab });
        if (config.tied === false) expect(head.tiedTo).toBeUndefined();
        else expect(head.tiedTo).toBe(index.embeddings[0].weight);
      });
    }
  }
});
