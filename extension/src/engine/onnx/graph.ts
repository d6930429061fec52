import type { GraphProto, NodeProto, AttributeProto } from "./proto/onnx_pb";

/**
 * Producer/consumer index over a graph's top-level nodes. Node order in ONNX is topological;
 * `order` keeps that order for "before/after" questions.
 */
export class GraphIndex {
  readonly producer = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();
  readonly order = new Map<NodeProto, number>();
  readonly initializerNames: Set<string>;
  readonly graphInputs: Set<string>;
  readonly graphOutputs: Set<string>;

  constructor(readonly graph: GraphProto) {
    this.initializerNames = new Set(graph.initializer.map((t) => t.name));
    this.graphInputs = new Set(graph.input.map((i) => i.name).filter((n) => !this.initializerNames.has(n)));
    this.graphOutputs = new Set(graph.output.map((o) => o.name));
    graph.node.forEach((n, i) => {
      this.order.set(n, i);
      for (const o of n.output) if (o) this.producer.set(o, n);
      for (const inp of n.input) {
        if (!inp) continue;
        let list = this.consumers.get(inp);
        if (!list) this.consumers.set(inp, (list = []));
        list.push(n);
      }
    });
  }

  get nodes(): NodeProto[] {
    return this.graph.node;
  }

  consumersOf(tensor: string): NodeProto[] {
    return this.consumers.get(tensor) ?? [];
  }

  /** A tensor whose value is fixed: an initializer or the output of a `Constant` node. */
  isConstant(tensor: string): boolean {
    return this.initializerNames.has(tensor) || this.producer.get(tensor)?.opType === "Constant";
  }

  /** Name used in reports: the node's name, or `<op>#<index>` for unnamed nodes. */
  nodeLabel(n: NodeProto): string {
    return n.name || `${n.opType}#${this.order.get(n) ?? "?"}`;
  }

  /** Op type histogram, `domain::Op` for non-default domains. */
  opHistogram(): Record<string, number> {
    const h: Record<string, number> = {};
    for (const n of this.graph.node) {
      const key = n.domain && n.domain !== "ai.onnx" ? `${n.domain}::${n.opType}` : n.opType;
      h[key] = (h[key] ?? 0) + 1;
    }
    return h;
  }
}

export function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = attr(node, name);
  return a ? Number(a.i) : fallback;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  const a = attr(node, name);
  return a ? a.ints.map(Number) : undefined;
}
