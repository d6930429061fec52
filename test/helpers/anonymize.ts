import { clone } from "@bufbuild/protobuf";
import { ModelProtoSchema, type ModelProto } from "../../extension/src/engine/onnx/proto/onnx_pb";

/**
 * Strip every meaningful name from a model, as some exporters do: nodes become unnamed and
 * initializers `onnx::MatMul_<n>`. The graph computes the same thing; only structure is left to
 * tell q from k or gate from up.
 */
export function anonymize(model: ModelProto): ModelProto {
  const m = clone(ModelProtoSchema, model);
  const g = m.graph!;
  const rename = new Map<string, string>();
  g.initializer.forEach((t, i) => rename.set(t.name, `onnx::MatMul_${1000 + i}`));
  let k = 0;
  for (const n of g.node) for (const o of n.output) if (!rename.has(o) && !g.output.some((x) => x.name === o)) rename.set(o, `t${k++}`);
  const r = (s: string) => rename.get(s) ?? s;
  for (const t of g.initializer) t.name = r(t.name);
  for (const n of g.node) {
    n.name = "";
    n.input = n.input.map(r);
    n.output = n.output.map(r);
  }
  for (const v of [...g.input, ...g.output, ...g.valueInfo]) v.name = r(v.name);
  return m;
}
