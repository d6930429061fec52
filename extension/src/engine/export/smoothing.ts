/**
 * Per-input-channel smoothing (AWQ, SmoothQuant): the layers reading an activation X [tokens × C]
 * get `W ← W·diag(s)` (W: [out × in]) and X is divided by s, so `(X·diag(s)⁻¹)(W·diag(s))ᵀ = X Wᵀ`
 * in exact arithmetic. Where X comes from is what decides how X/s is computed:
 *
 * - `norm`: X = x̂ ⊙ γ (an RMSNorm/LayerNorm-style `Mul` by a constant initializer, or an ONNX
 *   `LayerNormalization` / `SimplifiedLayerNormalization` scale and bias): γ ← γ/s, exact, no op
 *   added. Needs every reader of X to be one of the smoothed layers.
 * - `linear`: X = a ⊙ (x W_pᵀ) (Llama's MLP: `down` reads `silu(gate) ⊙ up`) or X = x W_pᵀ
 *   directly: output channel j of the producing linear W_p is divided by s_j (rows of W_p), exact
 *   because the element-wise product and reshapes keep channel j in place. The producer must be
 *   quantized in the same run, after the fold (its codes carry 1/s). Used by AWQ only.
 * - `mul`: anything else — an explicit `Mul(X, 1/s)` in front of the layers. Also exact; it costs
 *   one element-wise op. QuantLens uses it for `o_proj`: v_proj → o_proj through attention is
 *   exact in fp only when each attention output channel maps to one v_proj output channel (true
 *   for multi-head attention, but with grouped-query attention one v channel feeds several o
 *   inputs, which then must share one scale), and proving that channel map from an exported graph
 *   (Reshape/Transpose/Expand around the attention MatMuls) is fragile, so it is not attempted.
 *
 * The source model is never modified: folds write new initializers into a GraphEditor's copy.
 */
import { create } from "@bufbuild/protobuf";
import { UsageError } from "../errors";
import { DataType } from "../onnx/dtype";
import type { GraphIndex } from "../onnx/graph";
import type { LinearIndex, LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { NodeProtoSchema, type NodeProto } from "../onnx/proto/onnx_pb";
import { readWeightOutIn, toStoredLayout } from "../quant/layer-weights";
import { floatTensor, GraphEditor } from "./graph-edit";

export type SmoothingFold =
  /** Divide the constant operand (`initializers`: the Mul's constant, or LayerNorm scale + bias) of the node producing `output`. */
  | { kind: "norm"; output: string; initializers: string[] }
  /** Divide the output channels (rows of W: [out × in]) of linear `layer`. */
  | { kind: "linear"; layer: string }
  /** Insert `Mul(x, 1/s)` in front of the layers. */
  | { kind: "mul" };

/** One smoothing vector: the `layers` reading `tensor` carry W·diag(s); `tensor` is divided by s via `fold`. */
export interface SmoothingVector {
  /** The tapped activation (a linear layer's input, as calibration names it). */
  tensor: string;
  /** s [C], all > 0. */
  scale: Float32Array;
  /** Names of the linear layers reading `tensor`. */
  layers: string[];
  fold: SmoothingFold;
  /** How s was chosen, for reports (AWQ: the α of s = mean|x|^α; SmoothQuant: its migration strength). */
  alpha?: number;
}

/** Ops that move an activation without changing which element is which channel (last axis kept). */
const CHANNEL_PRESERVING = new Set(["Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze"]);
const LAYER_NORMS = new Set(["LayerNormalization", "SimplifiedLayerNormalization"]);

/**
 * How to divide the activation read by `layers` (one share group, `tensor` = its tapped input)
 * by a per-channel vector. `foldableLinears`: layers whose rows may absorb 1/s (quantized in the
 * same run, after this fold); pass an empty set to allow only norm folds and explicit Muls.
 */
export function planSmoothingFold(
  model: OnnxModel,
  index: LinearIndex,
  tensor: string,
  layers: LinearLayer[],
  foldableLinears: ReadonlySet<string>,
): SmoothingFold {
  const g = index.graph;
  const C = layers[0].in;
  // Walk back through channel-preserving ops to the tensor that actually gets divided.
  let root = tensor;
  for (;;) {
    const p = g.producer.get(root);
    if (!p || !CHANNEL_PRESERVING.has(p.opType) || !p.input[0]) break;
    root = p.input[0];
  }
  if (g.graphOutputs.has(root) || !onlyReaches(g, root, new Set(layers.map((l) => l.nodeIndex)))) return { kind: "mul" };
  const p = g.producer.get(root);
  if (!p) return { kind: "mul" };
  if (p.opType === "Mul" && p.domain === "") {
    const consts = p.input.filter((i) => g.initializerNames.has(i));
    if (consts.length === 1) {
      const info = model.info(consts[0]);
      // A [C] constant proves the divided tensor's last axis is C; a scalar only when no reshape
      // lies between it and the layers.
      if (info && isFloat(info.dataType) && (info.count === C || (info.count === 1 && root === tensor)) && lastAxisOnly(info.dims)) {
        return { kind: "norm", output: root, initializers: consts };
      }
      return { kind: "mul" };
    }
    if (consts.length === 0) {
      // a ⊙ u with u = x W_pᵀ read by nothing else.
      for (const operand of p.input) {
        const lin = producingLinear(index, operand, foldableLinears, C);
        if (lin && g.consumersOf(operand).length === 1) return { kind: "linear", layer: lin.name };
      }
    }
    return { kind: "mul" };
  }
  if (LAYER_NORMS.has(p.opType) && p.domain === "" && p.output[0] === root) {
    const axis = p.attribute.find((a) => a.name === "axis");
    const inits = p.input.slice(1).filter((i) => !!i);
    const ok =
      (!axis || Number(axis.i) === -1) &&
      inits.length >= 1 &&
      inits.every((i) => {
        const info = g.initializerNames.has(i) ? model.info(i) : undefined;
        return !!info && isFloat(info.dataType) && info.count === C;
      });
    return ok ? { kind: "norm", output: root, initializers: inits } : { kind: "mul" };
  }
  const lin = producingLinear(index, root, foldableLinears, C);
  if (lin) return { kind: "linear", layer: lin.name };
  return { kind: "mul" };
}

function producingLinear(index: LinearIndex, tensor: string, allowed: ReadonlySet<string>, C: number): LinearLayer | undefined {
  const l = index.layers.find((x) => x.output === tensor);
  // A bias would need dividing too; MatMul layers have none.
  return l && allowed.has(l.name) && l.op === "MatMul" && !l.bias && l.out === C ? l : undefined;
}

/** Every path from `tensor` goes through channel-preserving ops into one of `nodes` (as its data input). */
function onlyReaches(g: GraphIndex, tensor: string, nodes: ReadonlySet<number>): boolean {
  if (g.graphOutputs.has(tensor)) return false;
  const consumers = g.consumersOf(tensor);
  if (consumers.length === 0) return false;
  return consumers.every((n) => {
    const i = g.order.get(n)!;
    if (nodes.has(i)) return n.input[0] === tensor && n.input.indexOf(tensor) === 0 && n.input.lastIndexOf(tensor) === 0;
    return CHANNEL_PRESERVING.has(n.opType) && n.input[0] === tensor && !!n.output[0] && onlyReaches(g, n.output[0], nodes);
  });
}

function isFloat(dt: number): boolean {
  return dt === DataType.FLOAT || dt === DataType.FLOAT16 || dt === DataType.BFLOAT16;
}

function lastAxisOnly(dims: number[]): boolean {
  return dims.slice(0, -1).every((d) => d === 1);
}

/**
 * The element type of the activation a layer reads: its weight's stored type unless a Cast sits
 * between the weight and the layer (fp16 weights cast to float32 ⇒ float32 activations).
 */
export function activationDataType(l: LinearLayer): number {
  if (l.weightPath.includes("Cast") || l.weightPath.includes("DequantizeLinear")) return DataType.FLOAT;
  if (l.dtype === "float16") return DataType.FLOAT16;
  if (l.dtype === "bfloat16") return DataType.BFLOAT16;
  return DataType.FLOAT;
}

/** The node currently computing `output` in the editor (nodes are found by output: they may be unnamed or replaced). */
export function nodeByOutput(g: GraphEditor, output: string): NodeProto {
  const n = g.nodes.find((x) => x.output.includes(output));
  if (!n) throw new Error(`no node computes '${output}' in the exported graph`);
  return n;
}

/** A fresh tensor name based on `base` that no initializer or node output uses yet. */
export function freshName(g: GraphEditor, base: string): string {
  const used = (n: string) => g.initializers.has(n) || g.nodes.some((x) => x.output.includes(n) || x.input.includes(n));
  if (!used(base)) return base;
  for (let k = 1; ; k++) if (!used(`${base}_${k}`)) return `${base}_${k}`;
}

/** A node name based on `base` that no node in the editor has yet. */
export function freshNodeName(g: GraphEditor, base: string): string {
  const names = new Set(g.nodes.map((n) => n.name));
  if (!names.has(base)) return base;
  for (let k = 1; ; k++) if (!names.has(`${base}_${k}`)) return `${base}_${k}`;
}

/**
 * Divide each smoothed activation by its s in the exported graph. `weightsDone`: layers whose
 * weights in `g` already carry W·diag(s) and any 1/s row fold (the quantized ones); for the others
 * the fp weights are scaled here (so an fp model with only the smoothing applied computes the same
 * function, which the tests check).
 */
export function applySmoothing(g: GraphEditor, model: OnnxModel, index: LinearIndex, smoothing: readonly SmoothingVector[], weightsDone: ReadonlySet<string>): void {
  const byName = new Map(index.layers.map((l) => [l.name, l]));
  const layerOf = (name: string) => {
    const l = byName.get(name);
    if (!l) throw new UsageError(`smoothing names linear layer '${name}', which ${model.file} does not have`);
    return l;
  };
  // A layer can be scaled twice (its columns by its own input's s, its rows by the next
  // layer's): work on one copy per layer.
  const scaled = new Map<string, Float32Array>();
  const readW = (l: LinearLayer) => scaled.get(l.name) ?? readWeightOutIn(model, l);
  const writeW = (l: LinearLayer, w: Float32Array) => {
    scaled.set(l.name, w);
    const info = model.info(l.weight)!;
    g.setInitializer(floatTensor(l.weight, info.dims, toStoredLayout(l, w), info.dataType));
  };
  for (const sv of smoothing) {
    const layers = sv.layers.map(layerOf);
    const C = layers[0].in;
    if (sv.scale.length !== C || layers.some((l) => l.in !== C)) {
      throw new UsageError(`smoothing vector for '${sv.tensor}' has ${sv.scale.length} entries; its layers read ${C} channels`);
    }
    const s = sv.scale;
    for (const l of layers) {
      if (weightsDone.has(l.name)) continue;
      const w = readW(l); // W: [out × in]
      for (let o = 0; o < l.out; o++) for (let j = 0; j < C; j++) w[o * C + j] *= s[j];
      writeW(l, w);
    }
    const fold = sv.fold;
    if (fold.kind === "norm") {
      const node = nodeByOutput(g, fold.output);
      const input = [...node.input];
      for (const name of fold.initializers) {
        const info = model.info(name);
        if (!info) throw new UsageError(`smoothing fold: '${name}' is not an initializer of ${model.file}`);
        const v = model.readFloat32(name);
        const folded = new Float32Array(C);
        for (let j = 0; j < C; j++) folded[j] = (v.length === 1 ? v[0] : v[j]) / s[j];
        const fresh = freshName(g, `${name}_smoothed`);
        g.setInitializer(floatTensor(fresh, v.length === 1 ? [C] : info.dims, folded, info.dataType));
        input.forEach((x, k) => {
          if (x === name) input[k] = fresh;
        });
      }
      g.replaceNode(node, { ...node, input });
    } else if (fold.kind === "linear") {
      const p = layerOf(fold.layer);
      if (weightsDone.has(p.name)) continue;
      const w = readW(p);
      for (let o = 0; o < p.out; o++) for (let k = 0; k < p.in; k++) w[o * p.in + k] /= s[o];
      writeW(p, w);
    } else {
      const inv = new Float32Array(C);
      for (let j = 0; j < C; j++) inv[j] = 1 / s[j];
      rewireThrough(g, layers, (x, dataType) => {
        const scale = freshName(g, `${sv.tensor}_smooth_inv`);
        const y = freshName(g, `${x}_smoothed`);
        g.setInitializer(floatTensor(scale, [C], inv, dataType));
        return { nodes: [create(NodeProtoSchema, { name: freshNodeName(g, `${x}/SmoothMul`), opType: "Mul", input: [x, scale], output: [y] })], output: y };
      });
    }
  }
}

/**
 * For each distinct tensor the `layers` currently read (as their data input), insert the nodes
 * `make` returns right before the first of those layers and let the layers read its output.
 */
export function rewireThrough(
  g: GraphEditor,
  layers: readonly LinearLayer[],
  make: (input: string, dataType: number) => { nodes: NodeProto[]; output: string },
): void {
  const byInput = new Map<string, { layer: LinearLayer; node: NodeProto }[]>();
  for (const l of layers) {
    const node = nodeByOutput(g, l.output);
    const x = node.input[0];
    let list = byInput.get(x);
    if (!list) byInput.set(x, (list = []));
    list.push({ layer: l, node });
  }
  for (const [x, readers] of byInput) {
    const { nodes, output } = make(x, activationDataType(readers[0].layer));
    for (const r of readers) {
      const current = nodeByOutput(g, r.layer.output);
      g.replaceNode(current, { ...current, input: [output, ...current.input.slice(1)] });
    }
    const first = Math.min(...readers.map((r) => g.nodes.indexOf(nodeByOutput(g, r.layer.output))));
    g.nodes.splice(first, 0, ...nodes);
  }
}

/** Report rows for the smoothing vectors. */
export function smoothingReport(smoothing: readonly SmoothingVector[]) {
  return smoothing.map((sv) => {
    let min = Infinity;
    let max = 0;
    for (const v of sv.scale) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    return { tensor: sv.tensor, layers: sv.layers, fold: sv.fold.kind, ...(sv.fold.kind === "linear" ? { into: sv.fold.layer } : {}), alpha: sv.alpha, scale_min: min, scale_max: max };
  });
}
