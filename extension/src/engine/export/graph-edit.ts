import { create } from "@bufbuild/protobuf";
import { DataType } from "../onnx/dtype";
import { f32ToBf16, f32ToF16 } from "../kernels/index";
import { AttributeProto_AttributeType, AttributeProtoSchema, TensorProtoSchema, type AttributeProto, type GraphProto, type NodeProto, type TensorProto } from "../onnx/proto/onnx_pb";

/** A float tensor stored in `dataType` (float32, float16 or bfloat16), from float32 values. */
export function floatTensor(name: string, dims: number[], values: Float32Array, dataType: number = DataType.FLOAT): TensorProto {
  let raw: Uint8Array;
  if (dataType === DataType.FLOAT) raw = new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  else {
    const half = dataType === DataType.FLOAT16 ? f32ToF16(values) : f32ToBf16(values);
    raw = new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
  }
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType, rawData: raw });
}

export function bytesTensor(name: string, dims: number[], data: Uint8Array, dataType: number): TensorProto {
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType, rawData: data });
}

export function intAttr(name: string, value: number): AttributeProto {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(value) });
}

/**
 * Mutable view of a graph for exporters: replace nodes and initializers, then drop what nothing
 * reads any more. Works on shallow copies; the source model's proto is never modified.
 */
export class GraphEditor {
  readonly nodes: NodeProto[];
  readonly initializers: Map<string, TensorProto>;

  constructor(private readonly graph: GraphProto) {
    this.nodes = [...graph.node];
    this.initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  }

  replaceNode(old: NodeProto, replacement: NodeProto): void {
    const i = this.nodes.indexOf(old);
    if (i < 0) throw new Error(`node '${old.name}' is not in the graph`);
    this.nodes[i] = replacement;
  }

  setInitializer(t: TensorProto): void {
    this.initializers.set(t.name, t);
  }

  /** Remove nodes whose outputs nobody reads (and that are not graph outputs), then orphan initializers. */
  prune(): void {
    const outputs = new Set(this.graph.output.map((o) => o.name));
    let changed = true;
    while (changed) {
      changed = false;
      const read = new Set<string>();
      for (const n of this.nodes) for (const i of n.input) read.add(i);
      for (let k = this.nodes.length - 1; k >= 0; k--) {
        const n = this.nodes[k];
        if (n.output.every((o) => !o || (!read.has(o) && !outputs.has(o)))) {
          this.nodes.splice(k, 1);
          changed = true;
        }
      }
    }
    const read = new Set<string>([...outputs]);
    for (const n of this.nodes) for (const i of n.input) read.add(i);
    for (const name of [...this.initializers.keys()]) if (!read.has(name)) this.initializers.delete(name);
  }

  build(): GraphProto {
    // Keep the original initializer order, new ones after.
    const order = this.graph.initializer.map((t) => t.name).filter((n) => this.initializers.has(n));
    const added = [...this.initializers.keys()].filter((n) => !order.includes(n));
    return {
      ...this.graph,
      node: this.nodes,
      initializer: [...order, ...added].map((n) => this.initializers.get(n)!),
    };
  }
}
