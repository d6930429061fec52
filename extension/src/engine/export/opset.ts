/**
 * Raise a model's default-domain opset (e.g. 17 → 21, which blocked int4/uint4 DequantizeLinear
 * needs), rewriting the operators whose meaning changed in between. Works on copies: the source
 * proto is never modified.
 *
 * What changed between opset 13 and 21 for operators that existed at the source version (ONNX
 * Changelog.md), and what this does about it:
 * - 18: ReduceL1/L2/LogSum/LogSumExp/Max/Mean/Min/Prod/SumSquare take `axes` as an input instead
 *   of an attribute → the attribute becomes a Constant int64 input (no attribute: reduce all,
 *   unchanged). Split needs `num_outputs` when no `split` input is given → added (= outputs).
 * - 20: GridSample's modes renamed (bilinear → linear, bicubic → cubic) → renamed. DFT takes
 *   `axis` as an input → refused (UnsupportedError), as is GroupNormalization before 21 (its
 *   scale/bias became per channel, not per group) and any source opset below 13.
 * - Everything else in (source, 21] only added types or optional inputs/attributes: unchanged.
 * Subgraphs (If/Loop/Scan bodies) and model-local functions are rewritten the same way.
 */
import { create } from "@bufbuild/protobuf";
import { UnsupportedError } from "../errors";
import {
  AttributeProto_AttributeType as AT,
  AttributeProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  type AttributeProto,
  type FunctionProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type OperatorSetIdProto,
} from "../onnx/proto/onnx_pb";
import { DataType } from "../onnx/dtype";

const REDUCE_AXES_TO_INPUT = new Set([
  "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSumSquare",
]);
/** The lowest source opset this knows the history from. */
const MIN_SOURCE = 13;
const MAX_TARGET = 21;

export function defaultOpset(model: ModelProto): number {
  const o = model.opsetImport.find((x) => (x.domain ?? "") === "" || x.domain === "ai.onnx");
  return o ? Number(o.version) : 1;
}

/** A copy of `model` at default-domain opset `target` (≤ 21), IR version ≥ 10 when target ≥ 21. */
export function upgradeOpset(model: ModelProto, target: number, file = "model"): ModelProto {
  const from = defaultOpset(model);
  if (from >= target) return model;
  if (target > MAX_TARGET) throw new UnsupportedError(`cannot raise ${file} to opset ${target}: QuantLens knows operator changes up to ${MAX_TARGET}`);
  if (from < MIN_SOURCE) throw new UnsupportedError(`cannot raise ${file} from opset ${from} to ${target}: only models at opset ${MIN_SOURCE} or later are converted`);
  const ctx = { from, target, file, names: usedNames(model.graph) };
  const setVersion = (imports: OperatorSetIdProto[]) => {
    const rest = imports.filter((x) => !((x.domain ?? "") === "" || x.domain === "ai.onnx"));
    return [create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(target) }), ...rest];
  };
  return {
    ...model,
    irVersion: target >= 21 && model.irVersion < 10n ? 10n : model.irVersion,
    opsetImport: setVersion(model.opsetImport),
    graph: model.graph ? convertGraph(model.graph, ctx) : model.graph,
    functions: model.functions.map((f): FunctionProto => {
      const uses = f.opsetImport.some((x) => (x.domain ?? "") === "" || x.domain === "ai.onnx");
      return uses ? { ...f, opsetImport: setVersion(f.opsetImport), node: convertNodes(f.node, ctx, `function '${f.name}'`) } : f;
    }),
  };
}

interface Ctx {
  from: number;
  target: number;
  file: string;
  names: Set<string>;
}

function convertGraph(g: GraphProto, ctx: Ctx): GraphProto {
  return { ...g, node: convertNodes(g.node, ctx, `graph '${g.name}'`) };
}

function convertNodes(nodes: NodeProto[], ctx: Ctx, where: string): NodeProto[] {
  const out: NodeProto[] = [];
  for (const n of nodes) {
    const attrs = n.attribute.map((a) => convertSubgraphs(a, ctx));
    const node: NodeProto = { ...n, attribute: attrs };
    const isDefault = (n.domain ?? "") === "" || n.domain === "ai.onnx";
    if (!isDefault) {
      out.push(node);
      continue;
    }
    const label = `node '${n.name || n.output[0] || n.opType}' (${n.opType}) in ${where} of ${ctx.file}`;
    const crosses = (v: number) => ctx.from < v && ctx.target >= v;
    if (REDUCE_AXES_TO_INPUT.has(n.opType) && crosses(18)) {
      const axes = attrs.find((a) => a.name === "axes");
      if (axes) {
        const name = fresh(ctx, `${n.output[0] || n.name}_axes`);
        out.push(create(NodeProtoSchema, {
          name,
          opType: "Constant",
          output: [name],
          attribute: [create(AttributeProtoSchema, {
            name: "value",
            type: AT.TENSOR,
            t: create(TensorProtoSchema, { name, dataType: DataType.INT64, dims: [BigInt(axes.ints.length)], int64Data: [...axes.ints] }),
          })],
        }));
        out.push({ ...node, input: [n.input[0], name], attribute: attrs.filter((a) => a !== axes) });
        continue;
      }
    } else if (n.opType === "Split" && crosses(18)) {
      const hasSplit = n.input.length > 1 && n.input[1] !== "";
      if (!hasSplit && !attrs.some((a) => a.name === "num_outputs")) {
        out.push({ ...node, attribute: [...attrs, create(AttributeProtoSchema, { name: "num_outputs", type: AT.INT, i: BigInt(n.output.length) })] });
        continue;
      }
    } else if (n.opType === "GridSample" && crosses(20)) {
      const renamed = attrs.map((a) => {
        if (a.name !== "mode") return a;
        const mode = new TextDecoder().decode(a.s);
        const to = mode === "bilinear" ? "linear" : mode === "bicubic" ? "cubic" : mode;
        return { ...a, s: new TextEncoder().encode(to) };
      });
      out.push({ ...node, attribute: renamed });
      continue;
    } else if (n.opType === "DFT" && crosses(20)) {
      throw new UnsupportedError(`cannot raise ${label} to opset ${ctx.target}: DFT's axis became an input at opset 20 and is not converted`);
    } else if (n.opType === "GroupNormalization" && crosses(21)) {
      throw new UnsupportedError(`cannot raise ${label} to opset ${ctx.target}: GroupNormalization's scale and bias changed meaning at opset 21`);
    }
    out.push(node);
  }
  return out;
}

function convertSubgraphs(a: AttributeProto, ctx: Ctx): AttributeProto {
  if (a.g) return { ...a, g: convertGraph(a.g, ctx) };
  if (a.graphs.length) return { ...a, graphs: a.graphs.map((g) => convertGraph(g, ctx)) };
  return a;
}

function usedNames(g: GraphProto | undefined): Set<string> {
  const names = new Set<string>();
  const visit = (graph: GraphProto) => {
    for (const t of graph.initializer) names.add(t.name);
    for (const v of [...graph.input, ...graph.output, ...graph.valueInfo]) names.add(v.name);
    for (const n of graph.node) {
      names.add(n.name);
      for (const o of n.output) names.add(o);
      for (const i of n.input) names.add(i);
      for (const a of n.attribute) {
        if (a.g) visit(a.g);
        for (const s of a.graphs) visit(s);
      }
    }
  };
  if (g) visit(g);
  return names;
}

function fresh(ctx: Ctx, base: string): string {
  let name = base;
  for (let i = 1; ctx.names.has(name); i++) name = `${base}_${i}`;
  ctx.names.add(name);
  return name;
}
