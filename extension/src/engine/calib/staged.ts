import { create } from "@bufbuild/protobuf";
import type { OnnxModel } from "../onnx/model";
import type { LinearIndex } from "../onnx/linear";
import { DataType } from "../onnx/dtype";
import {
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type ValueInfoProto,
} from "../onnx/proto/onnx_pb";
import { CancelledError } from "../errors";
import { createSession, type ExecutionProvider } from "./session";
import { replaceInitializers } from "./taps";

type OrtTensor = import("onnxruntime-node").Tensor;

/**
 * Block-by-block forward passes. The graph (topologically ordered) is cut after each transformer
 * block's last linear layer; each stage becomes a model of its own whose inputs are the tensors
 * earlier stages produce (the residual stream, shared rotary/mask tensors, graph inputs). The
 * stages run one at a time over all calibration batches, keeping only the cut tensors between
 * them, so onnxruntime maps one block's weights at a time (memory bounded by a block, not the
 * model), and a stage can be re-run with some of its weights replaced (true-sequential GPTQ runs
 * only the block being quantized, from its already-quantized inputs).
 */
export interface Stage {
  index: number;
  /** Node range [start, end) of the original graph. */
  start: number;
  end: number;
  /** Transformer block whose linear layers it holds (null: the part after the last block). */
  block: number | null;
  /** Tensors it reads that earlier stages (or the graph inputs) produce. */
  inputs: string[];
  /** Tensors it produces that later stages read. */
  outputs: string[];
  /** Initializer bytes its nodes read. */
  weightBytes: number;
}

export interface StagePlan {
  stages: Stage[];
  /** Stage that produces each non-initializer tensor (-1: a graph input). */
  producerStage: Map<string, number>;
}

/**
 * Cut points after each block's last linear layer, or null when the model cannot be staged
 * usefully: fewer than two blocks, or blocks whose nodes interleave.
 */
export function planStages(model: OnnxModel, index: LinearIndex): StagePlan | null {
  const graph = model.graph;
  const lastOfBlock = new Map<number, number>();
  const firstOfBlock = new Map<number, number>();
  for (const l of index.layers) {
    if (l.block === null) continue;
    lastOfBlock.set(l.block, Math.max(lastOfBlock.get(l.block) ?? -1, l.nodeIndex));
    firstOfBlock.set(l.block, Math.min(firstOfBlock.get(l.block) ?? Infinity, l.nodeIndex));
  }
  const blocks = [...lastOfBlock.keys()].sort((a, b) => firstOfBlock.get(a)! - firstOfBlock.get(b)!);
  if (blocks.length < 2) return null;
  for (let i = 1; i < blocks.length; i++) {
    if (firstOfBlock.get(blocks[i])! <= lastOfBlock.get(blocks[i - 1])!) return null;
  }
  const n = graph.node.length;
  const bounds: { start: number; end: number; block: number | null }[] = [];
  let start = 0;
  for (const b of blocks) {
    const end = lastOfBlock.get(b)! + 1;
    bounds.push({ start, end, block: b });
    start = end;
  }
  if (start < n) bounds.push({ start, end: n, block: null });

  const initializers = new Set(graph.initializer.map((t) => t.name));
  // Constant nodes are copied into every stage that reads them (onnxruntime folds and fuses
  // them there, as in the whole model) instead of crossing cuts as inputs.
  const constants = constantNodes(graph);
  const producerStage = new Map<string, number>();
  for (const i of graph.input) if (!initializers.has(i.name)) producerStage.set(i.name, -1);
  const lastUse = new Map<string, number>();
  const stageOfNode = new Int32Array(n);
  bounds.forEach((s, k) => {
    for (let i = s.start; i < s.end; i++) stageOfNode[i] = k;
  });
  graph.node.forEach((node, i) => {
    const k = stageOfNode[i];
    for (const t of nodeReads(node)) {
      if ((initializers.has(t) && !producerStage.has(t)) || constants.has(t)) continue;
      lastUse.set(t, Math.max(lastUse.get(t) ?? -1, k));
    }
    for (const o of node.output) if (o) producerStage.set(o, k);
  });
  // The graph's own outputs (logits, present key/values) are not kept: calibration reads taps.
  const byteLength = (t: string) => model.info(t)?.byteLength ?? 0;
  const stages: Stage[] = bounds.map((s, k) => {
    const reads = new Set<string>();
    const produced = new Set<string>();
    const weights = new Set<string>();
    for (let i = s.start; i < s.end; i++) {
      const node = graph.node[i];
      for (const t of nodeReads(node)) {
        if (produced.has(t) || constants.has(t)) continue;
        if (initializers.has(t) && !producerStage.has(t)) weights.add(t);
        else reads.add(t);
      }
      for (const o of node.output) if (o) produced.add(o);
    }
    return {
      index: k,
      start: s.start,
      end: s.end,
      block: s.block,
      inputs: [...reads].filter((t) => !produced.has(t)),
      outputs: [...produced].filter((t) => (lastUse.get(t) ?? -1) > k),
      weightBytes: [...weights].reduce((a, t) => a + byteLength(t), 0),
    };
  });
  // Every input must come from somewhere earlier; otherwise the graph is not in topological
  // order (or reads a tensor nothing produces) and staging would be wrong.
  for (const st of stages) {
    for (const t of st.inputs) {
      const p = producerStage.get(t);
      if (p === undefined || p >= st.index) return null;
    }
  }
  return { stages, producerStage };
}

/** Outputs of `Constant` nodes (no inputs), with their node. */
function constantNodes(graph: GraphProto): Map<string, NodeProto> {
  const m = new Map<string, NodeProto>();
  for (const n of graph.node) {
    if (n.opType === "Constant" && (!n.domain || n.domain === "ai.onnx") && n.input.length === 0) for (const o of n.output) if (o) m.set(o, n);
  }
  return m;
}

/** Tensors a node reads: its inputs and the outer-scope names its subgraphs (If/Loop/Scan) use. */
function nodeReads(node: NodeProto): string[] {
  const out = node.input.filter((t) => t);
  for (const a of node.attribute) {
    for (const g of [a.g, ...a.graphs]) if (g) out.push(...outerScopeReads(g));
  }
  return out;
}

function outerScopeReads(g: GraphProto): string[] {
  const local = new Set<string>([...g.input.map((i) => i.name), ...g.initializer.map((t) => t.name)]);
  const out: string[] = [];
  for (const node of g.node) {
    for (const t of nodeReads(node)) if (!local.has(t)) out.push(t);
    for (const o of node.output) if (o) local.add(o);
  }
  return out;
}

const ORT_TYPE_TO_ONNX: Record<string, number> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  float64: DataType.DOUBLE,
  int64: DataType.INT64,
  int32: DataType.INT32,
  int16: DataType.INT16,
  int8: DataType.INT8,
  uint8: DataType.UINT8,
  uint16: DataType.UINT16,
  uint32: DataType.UINT32,
  uint64: DataType.UINT64,
  bool: DataType.BOOL,
};

/**
 * The stage as a model of its own: the nodes of `stage` that `outputs` need, the initializers
 * they read (`overrides` replace values), inputs typed from the graph's own declarations or from
 * the tensors that will be fed.
 */
export function stageProto(
  model: OnnxModel,
  stage: Stage,
  outputs: string[],
  feedTypes: Map<string, string>,
  overrides?: Map<string, Float32Array>,
): ModelProto {
  const graph = model.graph;
  const needed = new Set(outputs);
  const keep: NodeProto[] = [];
  for (let i = stage.end - 1; i >= stage.start; i--) {
    const node = graph.node[i];
    if (!node.output.some((o) => needed.has(o))) continue;
    keep.push(node);
    for (const t of nodeReads(node)) needed.add(t);
  }
  keep.reverse();
  // Constants made outside the stage are made again inside it.
  const constants = constantNodes(graph);
  const inStage = new Set(keep);
  const copied = new Set<NodeProto>();
  for (const t of needed) {
    const c = constants.get(t);
    if (c && !inStage.has(c)) copied.add(c);
  }
  keep.unshift(...copied);
  const produced = new Set(keep.flatMap((n) => n.output));
  const initializerNames = new Set(graph.initializer.map((t) => t.name));
  const declared = new Map<string, ValueInfoProto>();
  for (const vi of [...graph.input, ...graph.valueInfo, ...graph.output]) declared.set(vi.name, vi);
  const inputs: ValueInfoProto[] = [];
  for (const t of stage.inputs) {
    if (!needed.has(t) || produced.has(t)) continue;
    const vi = declared.get(t);
    const type = feedTypes.get(t);
    if (vi?.type) inputs.push(vi);
    else if (type && ORT_TYPE_TO_ONNX[type] !== undefined) {
      inputs.push(create(ValueInfoProtoSchema, {
        name: t,
        type: create(TypeProtoSchema, { value: { case: "tensorType", value: create(TypeProto_TensorSchema, { elemType: ORT_TYPE_TO_ONNX[type] }) } }),
      }));
    } else {
      throw new Error(`stage ${stage.index}: no type known for its input '${t}'${type ? ` (${type})` : ""}`);
    }
  }
  // Outputs that are stage inputs passed straight through (a tap the stage does not compute)
  // are not outputs of this model: the caller already holds them.
  const outs = outputs.filter((o) => produced.has(o));
  const initializer = replaceInitializers(
    graph.initializer.filter((t) => needed.has(t.name) && initializerNames.has(t.name) && !produced.has(t.name)),
    overrides,
  );
  return {
    ...model.proto,
    graph: {
      ...graph,
      node: keep,
      input: inputs,
      output: outs.map((name) => declared.get(name) ?? create(ValueInfoProtoSchema, { name })),
      initializer,
      sparseInitializer: graph.sparseInitializer.filter((t) => needed.has(t.values?.name ?? "")),
      valueInfo: graph.valueInfo.filter((vi) => produced.has(vi.name)),
    },
  };
}

export interface StageRunOptions {
  /** Tensors to hand to `onBatch` (produced by this stage or held from earlier ones). */
  taps: string[];
  /** Keep this stage's outputs as the inputs of the later stages (the last run of a stage). */
  advance: boolean;
  overrides?: Map<string, Float32Array>;
  /**
   * Also compute these (not handed out): runs of one stage that expose the same tensors run the
   * same optimized graph, so a tap reads bit-identical values whichever run takes it.
   */
  expose?: string[];
  /** Compute `taps` only, not the stage's outputs (a run that does not advance and reads a few tensors). */
  tapsOnly?: boolean;
  onBatch?: (batch: number, tensors: Record<string, OrtTensor>) => Promise<void>;
}

/**
 * Runs the stages of `plan` in order over fixed batches of graph inputs, holding the cut tensors
 * of every batch between stages (and nothing else).
 */
export class StagedForward {
  private live: Map<string, OrtTensor>[];
  private lastUse = new Map<string, number>();
  /** Next stage to advance. */
  private next = 0;
  provider: "cpu" | "cuda" = "cpu";
  notes: string[] = [];

  constructor(
    private readonly model: OnnxModel,
    readonly plan: StagePlan,
    feeds: Record<string, OrtTensor>[],
    private readonly opts: { executionProvider?: ExecutionProvider; threads?: number; signal?: AbortSignal } = {},
  ) {
    this.live = feeds.map((f) => new Map(Object.entries(f)));
    for (const st of plan.stages) for (const t of st.inputs) this.lastUse.set(t, Math.max(this.lastUse.get(t) ?? -1, st.index));
  }

  get stages(): Stage[] {
    return this.plan.stages;
  }

  /** Bytes of the cut tensors held now (all batches). */
  heldBytes(): number {
    let b = 0;
    for (const m of this.live) for (const t of m.values()) b += (t.data as ArrayBufferView).byteLength ?? 0;
    return b;
  }

  /** Run stage `index` (the next one to advance; earlier ones are gone) over every batch. */
  async run(index: number, o: StageRunOptions): Promise<void> {
    if (index !== this.next) throw new Error(`stage ${index} cannot run now: stage ${this.next} is next`);
    const stage = this.plan.stages[index];
    // The stage's outputs are computed on every run, kept or not: the same graph each time, so
    // onnxruntime fuses the same way and a tap reads the same values whichever run takes it.
    if (o.tapsOnly && o.advance) throw new Error(`stage ${index}: a run that advances computes the stage's outputs`);
    const outputs = [...new Set([...(o.tapsOnly ? [] : stage.outputs), ...(o.expose ?? []), ...o.taps])];
    const produced = new Set(stage.outputs);
    for (const t of o.taps) {
      if (!produced.has(t) && this.plan.producerStage.get(t) !== index && !this.live[0]?.has(t)) {
        throw new Error(`stage ${index} cannot hand out '${t}': it is neither produced there nor held`);
      }
    }
    const feedTypes = new Map<string, string>();
    for (const [k, v] of this.live[0] ?? []) feedTypes.set(k, v.type);
    const proto = stageProto(this.model, stage, outputs, feedTypes, o.overrides);
    const modelInputs = proto.graph!.input.map((i) => i.name);
    const modelOutputs = proto.graph!.output.map((x) => x.name);
    const kept: Record<string, OrtTensor>[] = [];
    if (modelOutputs.length) {
      const runner = await createSession(this.model, proto, { executionProvider: this.opts.executionProvider, threads: this.opts.threads });
      this.provider = runner.provider;
      if (runner.note && !this.notes.includes(runner.note)) this.notes.push(runner.note);
      try {
        // Pipelined as in calibrate(): a batch's taps are handed over while onnxruntime runs the next.
        let previous: Promise<void> | undefined;
        try {
          for (const [b, held] of this.live.entries()) {
            if (this.opts.signal?.aborted) throw new CancelledError("calibration");
            const feeds: Record<string, OrtTensor> = {};
            for (const name of modelInputs) {
              const t = held.get(name);
              if (!t) throw new Error(`stage ${index}: input '${name}' is not held for batch ${b}`);
              feeds[name] = t;
            }
            const out = await runner.session.run(feeds, modelOutputs);
            await previous;
            if (o.onBatch) {
              const handed: Record<string, OrtTensor> = {};
              for (const t of o.taps) handed[t] = out[t] ?? held.get(t)!;
              previous = o.onBatch(b, handed);
            }
            if (o.advance) {
              const keepOut: Record<string, OrtTensor> = {};
              for (const t of stage.outputs) if (out[t]) keepOut[t] = out[t];
              kept.push(keepOut);
            }
          }
          await previous;
        } finally {
          await previous?.catch(() => undefined);
        }
      } finally {
        await runner.release();
      }
    } else if (o.onBatch) {
      for (const [b, held] of this.live.entries()) {
        const handed: Record<string, OrtTensor> = {};
        for (const t of o.taps) handed[t] = held.get(t)!;
        await o.onBatch(b, handed);
      }
    }
    if (o.advance) {
      for (const [b, held] of this.live.entries()) {
        for (const t of [...held.keys()]) if ((this.lastUse.get(t) ?? -1) <= index) held.delete(t);
        for (const [t, v] of Object.entries(kept[b] ?? {})) held.set(t, v);
      }
      this.next = index + 1;
    }
  }
}
