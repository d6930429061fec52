/**
 * A Llama model of 7B dimensions (hidden 4096, FFN 11008, 32 heads, fp16 linear weights) with
 * any number of blocks, written with its weights in an external data file without ever holding
 * more than one weight in memory: the graph comes from the fixture generator (one block, FFN 8,
 * so building it stays small), the block is repeated with renamed tensors, and every linear
 * weight is generated (N(0, 1/in), seeded) and streamed to the data file chunk by chunk.
 */
import fs from "node:fs";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { buildLlama } from "../fixtures/generator";
import { normalArray, Xoshiro128 } from "../fixtures/generator/random";
import { f32ToF16 } from "../../extension/src/engine/kernels/index";
import {
  ModelProtoSchema,
  NodeProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType as DT,
  type NodeProto,
  type TensorProto,
} from "../../extension/src/engine/onnx/proto/onnx_pb";

export interface ScaleModelConfig {
  layers: number;
  hidden?: number;
  ffn?: number;
  heads?: number;
  vocab?: number;
  /** Input channels of `model.layers.<deadLayer>.input_layernorm.weight` set to 0: q/k/v get dead inputs. */
  deadLayer?: number;
  deadChannels?: number;
  seed?: number;
}

export interface ScaleModel {
  file: string;
  dataFile: string;
  dataBytes: number;
  linears: number;
}

const ALIGN = 4096;
const POOL = 1 << 24;
const CHUNK = 1 << 22;

/** Write `<dir>/model.onnx` + `model.onnx.data`. */
export function writeScaleModel(dir: string, cfg: ScaleModelConfig, log: (m: string) => void = () => undefined): ScaleModel {
  const hidden = cfg.hidden ?? 4096;
  const ffn = cfg.ffn ?? 11008;
  const heads = cfg.heads ?? 32;
  const vocab = cfg.vocab ?? 1024;
  const seed = cfg.seed ?? 7;
  const deadChannels = cfg.deadChannels ?? 16;
  // The skeleton: one block, a tiny FFN (its dims are only in the weights, which are replaced).
  const skeleton = buildLlama({ hidden, ffn: 8, layers: 1, heads, kvHeads: heads, vocab, weightDtype: "float16", tied: false, seed });
  const g = skeleton.graph!;
  const inLayer0 = (n: NodeProto) => n.name.startsWith("/model/layers.0/");
  const firstLayerNode = g.node.findIndex(inLayer0);
  const lastLayerNode = g.node.length - 1 - [...g.node].reverse().findIndex(inLayer0);
  const prelude = g.node.slice(0, firstLayerNode);
  const block = g.node.slice(firstLayerNode, lastLayerNode + 1);
  const tail = g.node.slice(lastLayerNode + 1);
  const blockOutputs = new Set(block.flatMap((n) => n.output));
  const layerOutput = block[block.length - 1].output[0];
  const blockInput = "/model/embed_tokens/Gather_output_0";
  if (!block.some((n) => n.input.includes(blockInput))) throw new Error(`skeleton: block 0 does not read ${blockInput}`);

  const rename = (s: string, layer: number) => s.replaceAll("/model/layers.0/", `/model/layers.${layer}/`).replaceAll("model.layers.0.", `model.layers.${layer}.`);
  const nodes: NodeProto[] = [...prelude];
  let x = blockInput;
  for (let layer = 0; layer < cfg.layers; layer++) {
    for (const n of block) {
      nodes.push(
        create(NodeProtoSchema, {
          ...n,
          name: rename(n.name, layer),
          input: n.input.map((i) => (i === blockInput ? x : blockOutputs.has(i) || i.startsWith("model.layers.0.") ? rename(i, layer) : i)),
          output: n.output.map((o) => rename(o, layer)),
        }),
      );
    }
    x = rename(layerOutput, layer);
  }
  for (const n of tail) nodes.push(create(NodeProtoSchema, { ...n, input: n.input.map((i) => (i === layerOutput ? x : i)) }));

  const dataName = "model.onnx.data";
  const dataFile = path.join(dir, dataName);
  const fd = fs.openSync(dataFile, "w");
  let offset = 0;
  const external = (name: string, dims: number[], dataType: number, write: (at: number) => number): TensorProto => {
    offset = Math.ceil(offset / ALIGN) * ALIGN;
    const start = offset;
    const length = write(start);
    offset += length;
    return create(TensorProtoSchema, {
      name,
      dims: dims.map(BigInt),
      dataType,
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [
        create(StringStringEntryProtoSchema, { key: "location", value: dataName }),
        create(StringStringEntryProtoSchema, { key: "offset", value: String(start) }),
        create(StringStringEntryProtoSchema, { key: "length", value: String(length) }),
      ],
    });
  };
  const writeBytes = (bytes: Uint8Array) => (at: number) => {
    fs.writeSync(fd, bytes, 0, bytes.length, at);
    return bytes.length;
  };
  // W ~ N(0, 1/in) in fp16, written 4M elements at a time. Drawing 1.4G Gaussians one by one
  // takes minutes; each chunk instead reads a pool of 2^24 seeded normals from a random start,
  // with a random sign (the values are what GPTQ sees, their independence is not under test).
  const pool = normalArray(seed, "scale-pool", POOL, 0, 1);
  const picks = new Xoshiro128(seed);
  const chunkBuf = new Float32Array(CHUNK);
  const writeRandom = (count: number, std: number) => (at: number) => {
    for (let s = 0; s < count; s += CHUNK) {
      const n = Math.min(CHUNK, count - s);
      const start = picks.nextBelow(POOL);
      const scale = picks.nextUint32() & 1 ? std : -std;
      for (let i = 0; i < n; i++) chunkBuf[i] = scale * pool[(start + i) & (POOL - 1)];
      const half = f32ToF16(chunkBuf.subarray(0, n));
      fs.writeSync(fd, new Uint8Array(half.buffer, half.byteOffset, half.byteLength), 0, n * 2, at + s * 2);
    }
    return count * 2;
  };
  const byName = new Map(g.initializer.map((t) => [t.name, t]));
  const initializers: TensorProto[] = [];
  const keep = (t: TensorProto) => (t.rawData.length >= 1024 ? external(t.name, t.dims.map(Number), t.dataType, writeBytes(t.rawData)) : t);
  for (const t of g.initializer) if (!t.name.startsWith("model.layers.")) initializers.push(keep(t));
  const shapes: Record<string, [number, number]> = {
    "self_attn.q_proj": [hidden, hidden],
    "self_attn.k_proj": [hidden, hidden],
    "self_attn.v_proj": [hidden, hidden],
    "self_attn.o_proj": [hidden, hidden],
    "mlp.gate_proj": [hidden, ffn],
    "mlp.up_proj": [hidden, ffn],
    "mlp.down_proj": [ffn, hidden],
  };
  let linears = 0;
  try {
    for (let layer = 0; layer < cfg.layers; layer++) {
      for (const which of ["input_layernorm", "post_attention_layernorm"]) {
        const t = byName.get(`model.layers.0.${which}.weight`)!;
        const raw = new Uint8Array(t.rawData);
        if (which === "input_layernorm" && layer === cfg.deadLayer) new Float32Array(raw.buffer).fill(0, 0, deadChannels);
        initializers.push(create(TensorProtoSchema, { ...t, name: `model.layers.${layer}.${which}.weight`, rawData: raw }));
      }
      for (const [mod, [inF, outF]] of Object.entries(shapes)) {
        const name = `model.layers.${layer}.${mod}.weight`;
        initializers.push(external(name, [inF, outF], DT.FLOAT16, writeRandom(inF * outF, 1 / Math.sqrt(inF))));
        linears++;
      }
      log(`generated block ${layer + 1}/${cfg.layers} (${(offset / 2 ** 30).toFixed(2)} GiB)`);
    }
  } finally {
    fs.closeSync(fd);
  }
  const model = create(ModelProtoSchema, {
    ...skeleton,
    docString: `scale test model: ${cfg.layers} blocks, hidden ${hidden}, ffn ${ffn}, heads ${heads}, vocab ${vocab}, fp16`,
    metadataProps: skeleton.metadataProps.map((p) =>
      p.key === "n_layers" ? { ...p, value: String(cfg.layers) } : p.key === "hidden_dim" ? { ...p, value: String(ffn) } : p,
    ),
    graph: { ...g, node: nodes, initializer: initializers },
  });
  const file = path.join(dir, "model.onnx");
  fs.writeFileSync(file, toBinary(ModelProtoSchema, model));
  return { file, dataFile, dataBytes: offset, linears: linears + 1 };
}
