import fs from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { create, toBinary } from "@bufbuild/protobuf";
import type { OnnxModel } from "../../extension/src/engine/onnx/model";
import { ModelProtoSchema, ValueInfoProtoSchema } from "../../extension/src/engine/onnx/proto/onnx_pb";
import { STORIES } from "./paths";

export interface RefCase {
  name: string;
  shape: [number, number];
  ids: number[];
  logits: Float32Array;
}

/** The reference logits in test/fixtures/stories260K/ref (see its REF.md). */
export function loadRefCases(): RefCase[] {
  const dir = path.join(STORIES, "ref");
  const cases = JSON.parse(fs.readFileSync(path.join(dir, "cases.json"), "utf8")) as Record<
    string,
    { shape: [number, number]; ids: number[] }
  >;
  return Object.entries(cases).map(([name, c]) => {
    const buf = fs.readFileSync(path.join(dir, `${name}.logits.f32`));
    const logits = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    return { name, shape: c.shape, ids: c.ids, logits };
  });
}

/**
 * Run a causal LM (input_ids → logits) with onnxruntime-node on the CPU, with the session settings
 * QuantLens uses (calib/session.ts: DequantizeLinear→MatMul not rewritten to int8-activation
 * MatMulNBits).
 */
export async function runLogits(model: string | Uint8Array, ids: number[], shape: [number, number]): Promise<Float32Array> {
  const options: ort.InferenceSession.SessionOptions = { extra: { session: { qdq_matmulnbits_accuracy_level: "0" } } };
  const session =
    typeof model === "string" ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
  try {
    const input = new ort.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), shape);
    const out = await session.run({ input_ids: input });
    return out.logits.data as Float32Array;
  } finally {
    await session.release();
  }
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Independent activations: a plain onnxruntime run per sequence (optimizations off) with
 * `tensors` added as graph outputs; per tensor, one array per sequence.
 */
export async function rawActivations(model: OnnxModel, tensors: string[], sequences: number[][]): Promise<Map<string, Float32Array[]>> {
  const proto = structuredClone(model.proto);
  for (const t of tensors) proto.graph!.output.push(create(ValueInfoProtoSchema, { name: t }));
  const session = await ort.InferenceSession.create(toBinary(ModelProtoSchema, proto), { graphOptimizationLevel: "disabled" });
  const out = new Map<string, Float32Array[]>(tensors.map((t) => [t, []]));
  for (const s of sequences) {
    const r = await session.run({ input_ids: new ort.Tensor("int64", BigInt64Array.from(s.map(BigInt)), [1, s.length]) }, tensors);
    for (const t of tensors) out.get(t)!.push(Float32Array.from(r[t].data as Float32Array));
  }
  await session.release();
  return out;
}
