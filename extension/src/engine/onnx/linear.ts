import type { NodeProto } from "./proto/onnx_pb";
import { attrInt, attrInts, GraphIndex } from "./graph";
import { BadModelError, UnsupportedError } from "../errors";
import { dtypeName, floatDtype } from "./dtype";
import { bf16BitsToFloat, floatToBf16Bits, floatToHalfBits, halfBitsToFloat } from "../kernels/reference";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../kernels/index";
import type { OnnxModel } from "./model";

/** What a linear layer does in a transformer block (DESIGN.md). */
export type Role = "q" | "k" | "v" | "o" | "gate" | "up" | "down" | "lm_head" | "other";
export const ROLES: readonly Role[] = ["q", "k", "v", "o", "gate", "up", "down", "lm_head", "other"];

/**
 * One linear layer: `y = x W (+ b)` with a constant weight. Logically `W: [in, out]` whatever the
 * stored layout (MatMul B is `[in, out]`; Gemm with transB=1 or a Transpose in front stores
 * `[out, in]`).
 */
export interface LinearLayer {
  /** Node name (or `<op>#<index>` when the node is unnamed). Unique within the model. */
  name: string;
  op: "MatMul" | "Gemm";
  nodeIndex: number;
  /** Initializer holding the weight. */
  weight: string;
  /** Orientation of the stored initializer. */
  layout: "in_out" | "out_in";
  /** Ops between the initializer and the linear, nearest to the initializer first. */
  weightPath: string[];
  in: number;
  out: number;
  /** Stored dtype of the weight initializer (float32, float16, bfloat16, or a quantized type). */
  dtype: string;
  bias?: string;
  /** The activation tensor the layer reads. */
  input: string;
  output: string;
  /** Transformer block index, `null` outside the blocks (lm_head, projections). */
  block: number | null;
  role: Role;
  roleSource: "name" | "structure" | "none";
  /** Layers reading the same activation (q/k/v; gate/up) share a group id. */
  shareGroup: number;
  /** For lm_head: the embedding initializer it is tied to (same values, transposed). */
  tiedTo?: string;
}

export interface ShareGroup {
  id: number;
  /** The activation tensor the layers read (after skipping reshapes). */
  input: string;
  layers: string[];
}

export interface Embedding {
  /** Gather node and its table initializer `[vocab, hidden]`. */
  node: string;
  weight: string;
  vocab: number;
  hidden: number;
}

export interface LinearIndex {
  layers: LinearLayer[];
  shareGroups: ShareGroup[];
  embeddings: Embedding[];
  /** Number of transformer blocks found (max block index + 1). */
  blocks: number;
  graph: GraphIndex;
  /**
   * MatMul/Gemm nodes whose weight is computed from constants inside the graph (e.g.
   * `Add(W₁, W₂)`) instead of stored as an initializer: not indexed as linear layers.
   */
  computed: { node: string; tensor: string; op: string }[];
}

const WEIGHT_PASSTHROUGH = new Set(["Transpose", "Cast", "Identity", "DequantizeLinear"]);
const SHAPE_ONLY = new Set(["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose"]);
const NONLINEAR = new Set(["Sigmoid", "Relu", "Gelu", "FastGelu", "QuickGelu", "BiasGelu", "Tanh", "Erf", "Softplus", "Silu", "Swish", "Elu", "Selu", "HardSigmoid", "HardSwish", "Mish", "LeakyRelu"]);

/** Find every linear layer of a model, with roles, blocks, share groups and tied embeddings. */
export function indexLinears(model: OnnxModel): LinearIndex {
  const g = new GraphIndex(model.graph);
  const layers: LinearLayer[] = [];
  g.nodes.forEach((node, nodeIndex) => {
    const l = asLinear(model, g, node, nodeIndex);
    if (l) layers.push(l);
  });

  // Share groups: layers whose inputs are the same tensor once reshapes are skipped.
  const groupOf = new Map<string, ShareGroup>();
  const shareGroups: ShareGroup[] = [];
  for (const l of layers) {
    const key = canonicalSource(g, l.input);
    let group = groupOf.get(key);
    if (!group) {
      group = { id: shareGroups.length, input: key, layers: [] };
      groupOf.set(key, group);
      shareGroups.push(group);
    }
    group.layers.push(l.name);
    l.shareGroup = group.id;
  }

  const embeddings = findEmbeddings(model, g);
  for (const l of layers) nameRole(l);
  inferRolesFromStructure(g, layers, shareGroups, embeddings);
  assignBlocks(layers);
  markTied(model, layers, embeddings);
  const blocks = layers.reduce((m, l) => (l.block !== null ? Math.max(m, l.block + 1) : m), 0);
  checkLinearShapes(model, g, layers, embeddings);
  return { layers, shareGroups, embeddings, blocks, graph: g, computed: computedWeights(g, layers) };
}

/**
 * Throw a BadModelError when a model has no linear layer QuantLens can work on, saying why when
 * the graph computes its MatMul weights from constants instead of storing them.
 */
export function requireLinears(model: OnnxModel, index: LinearIndex): void {
  if (index.layers.length > 0) return;
  const c = index.computed;
  const why = c.length
    ? `; ${c.length} MatMul/Gemm weight${c.length > 1 ? "s are" : " is"} computed inside the graph instead of stored (e.g. '${c[0].node}' reads '${c[0].tensor}', the output of a ${c[0].op} node): fold the constants first (onnxruntime offline optimization, onnxsim) so the weights become initializers`
    : "";
  throw new BadModelError(
    model.file,
    `has no linear layers (MatMul or Gemm with a constant initializer weight); QuantLens quantizes linear layers only${why}`,
  );
}

/**
 * Every float linear weight must be finite: NaN/Inf would poison calibration and quantization
 * alike. Streams each weight once; the error names the tensor and the first bad element.
 */
export function assertFiniteWeights(model: OnnxModel, layers: readonly LinearLayer[]): void {
  const seen = new Set<string>();
  for (const l of layers) {
    if (seen.has(l.weight) || !floatDtype(model.info(l.weight)?.dataType ?? 0)) continue;
    seen.add(l.weight);
    model.assertFinite(l.weight);
  }
}

/** Constant-only subgraphs feeding a MatMul/Gemm weight input that is not a traceable initializer. */
function computedWeights(g: GraphIndex, layers: LinearLayer[]): LinearIndex["computed"] {
  const linearNodes = new Set(layers.map((l) => g.nodes[l.nodeIndex]));
  const constant = new Map<string, boolean>();
  const isConst = (t: string, depth = 0): boolean => {
    if (g.isConstant(t)) return true;
    const known = constant.get(t);
    if (known !== undefined) return known;
    const p = g.producer.get(t);
    // Deep chains are not worth following: an unknown answer counts as "not constant".
    const v = !!p && depth < 32 && p.input.length > 0 && p.input.every((i) => i === "" || isConst(i, depth + 1));
    constant.set(t, v);
    return v;
  };
  const out: LinearIndex["computed"] = [];
  for (const n of g.nodes) {
    if ((n.opType !== "MatMul" && n.opType !== "Gemm") || linearNodes.has(n) || n.input.length < 2) continue;
    if (n.domain && n.domain !== "ai.onnx") continue;
    const w = n.input[1];
    if (g.initializerNames.has(w) || isConst(n.input[0]) || !isConst(w)) continue;
    out.push({ node: g.nodeLabel(n), tensor: w, op: g.producer.get(w)?.opType ?? "?" });
  }
  return out;
}

/** Ops whose output keeps the last dimension of their (non-broadcast) activation input. */
const KEEPS_LAST_DIM = new Set([
  "Cast", "Identity", "Relu", "Sigmoid", "Tanh", "Erf", "Gelu", "FastGelu", "QuickGelu", "Softplus", "Silu", "Swish",
  "Elu", "Selu", "HardSigmoid", "HardSwish", "Mish", "LeakyRelu", "Neg", "Abs", "Sqrt", "Exp",
  "Add", "Sub", "Mul", "Div", "Pow", "Where",
  "SimplifiedLayerNormalization", "LayerNormalization", "SkipSimplifiedLayerNormalization", "SkipLayerNormalization",
  "RMSNormalization",
]);

/**
 * A linear layer whose weight does not fit the activation it reads makes a broken graph: check
 * each layer's input features against what is known of the last dimension of its input
 * (another linear's outputs, an embedding's width, a norm's weight, a static graph input), and
 * the layers sharing one input against each other. Only definite contradictions are reported.
 */
function checkLinearShapes(model: OnnxModel, g: GraphIndex, layers: LinearLayer[], embeddings: Embedding[]): void {
  const linearByOutput = new Map(layers.map((l) => [l.output, l]));
  const embedByNode = new Map<NodeProto, Embedding>();
  for (const n of g.nodes) {
    if (n.opType !== "Gather") continue;
    const e = embeddings.find((x) => x.weight === n.input[0]);
    if (e) embedByNode.set(n, e);
  }
  const staticInput = new Map<string, number>();
  for (const i of model.graph.input) {
    const dims = i.type?.value.case === "tensorType" ? i.type.value.value.shape?.dim : undefined;
    const last = dims?.[dims.length - 1];
    if (last?.value.case === "dimValue") staticInput.set(i.name, Number(last.value.value));
  }
  const memo = new Map<string, { dim: number; from: string } | null>();
  // Last dimension of `t` when it can be told for sure (> 1: broadcasting makes 1 inconclusive).
  const lastDim = (t: string, depth: number): { dim: number; from: string } | null => {
    if (memo.has(t)) return memo.get(t)!;
    let r: { dim: number; from: string } | null = null;
    const lin = linearByOutput.get(t);
    const p = g.producer.get(t);
    if (lin) r = { dim: lin.out, from: `the output of '${lin.name}'` };
    else if (staticInput.has(t)) r = { dim: staticInput.get(t)!, from: `graph input '${t}'` };
    else if (p && embedByNode.has(p)) {
      const e = embedByNode.get(p)!;
      r = { dim: e.hidden, from: `embedding '${e.weight}'` };
    } else if (p && depth < 12 && KEEPS_LAST_DIM.has(p.opType) && (!p.domain || p.domain === "ai.onnx" || p.domain === "com.microsoft")) {
      const inputs = p.opType === "Where" ? p.input.slice(1) : p.input;
      for (const i of inputs) {
        if (!i) continue;
        const info = model.info(i);
        if (info) {
          // A broadcast constant: a vector's length is the last dimension (scalars tell nothing).
          if (info.dims.length >= 1 && info.dims[info.dims.length - 1] > 1) {
            r = { dim: info.dims[info.dims.length - 1], from: `initializer '${i}'` };
            break;
          }
          continue;
        }
        const d = lastDim(i, depth + 1);
        if (d) {
          r = d;
          break;
        }
      }
    }
    if (r && r.dim <= 1) r = null;
    memo.set(t, r);
    return r;
  };
  const firstReader = new Map<string, LinearLayer>();
  for (const l of layers) {
    const other = firstReader.get(l.input);
    if (!other) firstReader.set(l.input, l);
    else if (other.in !== l.in) {
      throw new BadModelError(
        model.file,
        `linear layers '${other.name}' and '${l.name}' read the same tensor '${l.input}' but take ${other.in} and ${l.in} input features: the weight's dims do not match the graph`,
        { tensor: l.weight },
      );
    }
    const d = lastDim(l.input, 0);
    if (d && d.dim !== l.in) {
      throw new BadModelError(
        model.file,
        `linear layer '${l.name}' takes ${l.in} input features but its input '${l.input}' has ${d.dim} (from ${d.from}): the weight's dims do not match the graph`,
        { tensor: l.weight },
      );
    }
  }
}

/** A MatMul (weight as B) or Gemm (transA = 0) whose weight traces back to a 2-D initializer. */
function asLinear(model: OnnxModel, g: GraphIndex, node: NodeProto, nodeIndex: number): LinearLayer | undefined {
  if (node.domain && node.domain !== "ai.onnx") return undefined;
  if (node.opType !== "MatMul" && node.opType !== "Gemm") return undefined;
  if (node.input.length < 2 || g.isConstant(node.input[0])) return undefined;
  if (node.opType === "Gemm" && attrInt(node, "transA", 0) !== 0) return undefined;
  const w = traceWeight(g, node.input[1]);
  if (!w) return undefined;
  const info = model.info(w.initializer);
  if (!info || info.dims.length !== 2) return undefined;
  let transposed = w.transposed;
  if (node.opType === "Gemm" && attrInt(node, "transB", 0) === 1) transposed = !transposed;
  // Stored [r, c]: `in_out` when not transposed on the way to the linear.
  // Float weights are what QuantLens quantizes; integer weights behind a DequantizeLinear are an
  // already-quantized layer (listed, not re-read). Anything else is a weight we cannot read.
  if (!floatDtype(info.dataType) && !w.path.includes("DequantizeLinear")) {
    throw new UnsupportedError(
      `${model.file} (tensor '${w.initializer}'): linear layer '${g.nodeLabel(node)}' has a ${dtypeName(info.dataType)} weight; QuantLens reads float32, float16 and bfloat16 weights`,
    );
  }
  const [r, c] = info.dims;
  const layout = transposed ? "out_in" : "in_out";
  const bias = node.opType === "Gemm" && node.input[2] ? node.input[2] : undefined;
  return {
    name: g.nodeLabel(node),
    op: node.opType,
    nodeIndex,
    weight: w.initializer,
    layout,
    weightPath: w.path,
    in: transposed ? c : r,
    out: transposed ? r : c,
    dtype: dtypeName(info.dataType),
    bias,
    input: node.input[0],
    output: node.output[0],
    block: null,
    role: "other",
    roleSource: "none",
    shareGroup: -1,
  };
}

function traceWeight(
  g: GraphIndex,
  tensor: string,
): { initializer: string; transposed: boolean; path: string[] } | undefined {
  let cur = tensor;
  let transposed = false;
  const path: string[] = [];
  for (let depth = 0; depth < 8; depth++) {
    if (g.initializerNames.has(cur)) return { initializer: cur, transposed, path: path.reverse() };
    const p = g.producer.get(cur);
    if (!p || !WEIGHT_PASSTHROUGH.has(p.opType)) return undefined;
    if (p.opType === "Transpose") {
      const perm = attrInts(p, "perm");
      if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return undefined;
      transposed = !transposed;
    }
    path.push(p.opType);
    cur = p.input[0];
  }
  return undefined;
}

/** Walk back through shape-only ops so `Reshape(x)` and `x` count as one input. */
function canonicalSource(g: GraphIndex, tensor: string): string {
  let cur = tensor;
  for (let depth = 0; depth < 6; depth++) {
    const p = g.producer.get(cur);
    if (!p || !SHAPE_ONLY.has(p.opType)) break;
    cur = p.input[0];
  }
  return cur;
}

// ---- roles from names (Optimum / torch-export / HF parameter conventions) --------------------

const FUSED = /(^|[._/])(qkv_proj|query_key_value|c_attn|wqkv|w_pack|gate_up_proj)([._/]|$)/i;
const NAME_RULES: Array<[Role, RegExp]> = [
  ["lm_head", /(^|[._/])(lm_head|embed_out|output_layer)([._/]|$)/i],
  ["q", /(^|[._/])(q_proj|query|wq|q_lin|q)([._/]|$)/i],
  ["k", /(^|[._/])(k_proj|key|wk|k_lin|k)([._/]|$)/i],
  ["v", /(^|[._/])(v_proj|value|wv|v_lin|v)([._/]|$)/i],
  ["o", /(^|[._/])(o_proj|out_proj|wo|out_lin|o)([._/]|$)/i],
  ["o", /(attn|attention)[._/](dense|c_proj)([._/]|$)/i],
  ["gate", /(^|[._/])(gate_proj|w1|gate)([._/]|$)/i],
  ["up", /(^|[._/])(up_proj|w3|dense_h_to_4h|fc1|c_fc|fc_in|up)([._/]|$)/i],
  ["down", /(^|[._/])(down_proj|w2|dense_4h_to_h|fc2|fc_out|down)([._/]|$)/i],
  ["down", /(mlp|ffn|feed_forward)[._/]c_proj([._/]|$)/i],
];
const BLOCK_RULE = /(^|[._/])(?:layers|layer|blocks|block|h|encoder\.layer|decoder\.layers)[._/](\d+)([._/]|$)/i;

function nameRole(l: LinearLayer): void {
  // Node names are as exported (`/model/layers.0/self_attn/q_proj/MatMul`); weight names are
  // parameter names (`model.layers.0.self_attn.q_proj.weight`). Either may be anonymous.
  for (const name of [l.name, l.weight]) {
    const block = BLOCK_RULE.exec(name);
    if (block && l.block === null) l.block = Number(block[2]);
    if (l.roleSource !== "none") continue;
    if (FUSED.test(name)) {
      l.roleSource = "name"; // a fused projection: known, but none of the single roles
      continue;
    }
    for (const [role, re] of NAME_RULES) {
      if (re.test(name)) {
        l.role = role;
        l.roleSource = "name";
        break;
      }
    }
  }
  if (l.role === "lm_head") l.block = null;
}

// ---- roles from graph structure (for anonymous exports) --------------------------------------

function findEmbeddings(model: OnnxModel, g: GraphIndex): Embedding[] {
  const out: Embedding[] = [];
  for (const n of g.nodes) {
    if (n.opType !== "Gather" || !g.initializerNames.has(n.input[0])) continue;
    const info = model.info(n.input[0]);
    if (!info || info.dims.length !== 2 || !["float32", "float16", "bfloat16"].includes(info.dtype)) continue;
    if (attrInt(n, "axis", 0) !== 0 || g.isConstant(n.input[1])) continue;
    out.push({ node: g.nodeLabel(n), weight: n.input[0], vocab: info.dims[0], hidden: info.dims[1] });
  }
  return out;
}

interface ActMatMulHit {
  node: NodeProto;
  side: number;
}

/**
 * The first activation×activation MatMul (attention scores or context) reached forward from
 * `tensor`, without passing through another linear layer, and which of its inputs the path
 * arrived on.
 */
function firstActMatMul(g: GraphIndex, linearNodes: Set<NodeProto>, tensor: string): ActMatMulHit | undefined {
  const seen = new Set<string>([tensor]);
  let frontier = [tensor];
  for (let depth = 0; depth < 16 && frontier.length; depth++) {
    const next: string[] = [];
    for (const t of frontier) {
      for (const c of g.consumersOf(t)) {
        if (linearNodes.has(c)) continue;
        if (c.opType === "MatMul" && !g.isConstant(c.input[0]) && !g.isConstant(c.input[1])) {
          return { node: c, side: c.input[0] === t ? 0 : 1 };
        }
        for (const o of c.output) {
          if (o && !seen.has(o)) {
            seen.add(o);
            next.push(o);
          }
        }
      }
    }
    frontier = next;
  }
  return undefined;
}

/**
 * Whether a nonlinearity consumes `tensor` within a few steps (the gate of a gated MLP), looking
 * through shape-only ops (a Gemm's 2-D output is reshaped back first) and the scaling of a
 * written-out GELU (x/√2 → Erf) or swish (x·β → Sigmoid).
 */
function feedsNonlinearity(g: GraphIndex, tensor: string, depth = 4): boolean {
  if (depth === 0) return false;
  for (const c of g.consumersOf(tensor)) {
    if (NONLINEAR.has(c.opType)) return true;
    const passes = SHAPE_ONLY.has(c.opType) || ((c.opType === "Div" || c.opType === "Mul") && c.input.some((i) => g.isConstant(i)));
    if (passes && c.output[0] && feedsNonlinearity(g, c.output[0], depth - 1)) return true;
  }
  return false;
}

/** Ops walked back from a linear's input until another linear or an act×act MatMul is hit. */
function inputComesFrom(g: GraphIndex, linearNodes: Set<NodeProto>, tensor: string): "attention" | "gated" | "nonlinear" | "unknown" {
  let cur = tensor;
  for (let depth = 0; depth < 8; depth++) {
    const p = g.producer.get(cur);
    if (!p) return "unknown";
    if (SHAPE_ONLY.has(p.opType)) {
      cur = p.input[0];
      continue;
    }
    if (p.opType === "MatMul" && !linearNodes.has(p) && !g.isConstant(p.input[1])) return "attention";
    if (p.opType === "Mul") return "gated";
    if (NONLINEAR.has(p.opType)) return "nonlinear";
    return "unknown";
  }
  return "unknown";
}

function inferRolesFromStructure(g: GraphIndex, layers: LinearLayer[], groups: ShareGroup[], embeddings: Embedding[]): void {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const linearNodes = new Set(layers.map((l) => g.nodes[l.nodeIndex]));
  const vocabs = new Set(embeddings.map((e) => e.vocab));
  const set = (l: LinearLayer, role: Role) => {
    if (l.roleSource !== "none") return;
    l.role = role;
    l.roleSource = "structure";
  };

  // lm_head: projects to the vocabulary and feeds a graph output with no linear in between.
  for (const l of layers) {
    if (l.roleSource !== "none") continue;
    const vocabSized = vocabs.size ? vocabs.has(l.out) : l.out > 4 * l.in;
    if (vocabSized && reachesGraphOutput(g, linearNodes, l.output)) set(l, "lm_head");
  }

  for (const group of groups) {
    const members = group.layers.map((n) => byName.get(n)!).filter((l) => l.roleSource === "none");
    if (members.length >= 3) {
      // q and k meet at the score MatMul (q on the left, kᵀ on the right); v reaches the
      // context MatMul on the right.
      const hits = members.map((l) => ({ l, hit: firstActMatMul(g, linearNodes, l.output) }));
      for (const a of hits) {
        if (!a.hit) continue;
        const partner = hits.find((b) => b !== a && b.hit?.node === a.hit!.node);
        if (partner) set(a.l, a.hit.side === 0 ? "q" : "k");
        else set(a.l, "v");
      }
    } else if (members.length === 2) {
      const [a, b] = members;
      const aGate = feedsNonlinearity(g, a.output);
      const bGate = feedsNonlinearity(g, b.output);
      if (aGate !== bGate) {
        set(a, aGate ? "gate" : "up");
        set(b, bGate ? "gate" : "up");
      }
    } else if (members.length === 1) {
      const l = members[0];
      const from = inputComesFrom(g, linearNodes, l.input);
      if (from === "attention") set(l, "o");
      else if (from === "gated" || from === "nonlinear") set(l, "down");
      else if (feedsNonlinearity(g, l.output)) set(l, "up");
    }
  }
}

function reachesGraphOutput(g: GraphIndex, linearNodes: Set<NodeProto>, tensor: string): boolean {
  let frontier = [tensor];
  const seen = new Set(frontier);
  for (let depth = 0; depth < 8 && frontier.length; depth++) {
    const next: string[] = [];
    for (const t of frontier) {
      if (g.graphOutputs.has(t)) return true;
      for (const c of g.consumersOf(t)) {
        if (linearNodes.has(c)) continue;
        for (const o of c.output) {
          if (o && !seen.has(o)) {
            seen.add(o);
            next.push(o);
          }
        }
      }
    }
    frontier = next;
  }
  return false;
}

/**
 * Blocks for layers whose names carry none: in graph order, a block starts at each attention
 * input (q) — or, in a model without attention roles, at each MLP input (gate/up).
 */
function assignBlocks(layers: LinearLayer[]): void {
  if (layers.every((l) => l.block !== null || l.role === "lm_head")) return;
  const starts: Role = layers.some((l) => l.role === "q") ? "q" : layers.some((l) => l.role === "gate") ? "gate" : "up";
  let block = -1;
  for (const l of layers) {
    if (l.role === "lm_head") {
      l.block = null;
      continue;
    }
    if (l.role === starts) block++;
    if (l.block === null) l.block = Math.max(block, 0);
    else block = l.block;
  }
}

/**
 * An lm_head is tied to an embedding when its weight is the embedding table itself (through a
 * Transpose) or holds the same values transposed: checked at spread positions first, then
 * element by element up to 16M entries; bigger tables are judged on 65,536 positions.
 */
function markTied(model: OnnxModel, layers: LinearLayer[], embeddings: Embedding[]): void {
  for (const l of layers) {
    if (l.role !== "lm_head") continue;
    for (const e of embeddings) {
      if (l.weight === e.weight) {
        l.tiedTo = e.weight;
        break;
      }
      if (l.in !== e.hidden || l.out !== e.vocab) continue;
      if (sameTransposed(model, l, e)) {
        l.tiedTo = e.weight;
        break;
      }
    }
  }
}

function sameTransposed(model: OnnxModel, l: LinearLayer, e: Embedding): boolean {
  const total = e.vocab * e.hidden;
  // A tied head may be stored in lower precision than the table (fp16 head, fp32 embedding):
  // compare both after rounding to the coarser of the two dtypes.
  const round = coarserRounding(model.info(e.weight)!.dtype, model.info(l.weight)!.dtype);
  // Weight logical [in=hidden, out=vocab]; stored in_out → [h, v], out_in → [v, h].
  const weightIndex = (v: number, h: number) => (l.layout === "in_out" ? h * e.vocab + v : v * e.hidden + h);
  const at = (tensor: string, i: number) => round.one(model.readFloat32(tensor, i, 1)[0]);
  // Spread samples first: independent tables differ at nearly every position.
  const samples = Math.min(total, total <= 1 << 24 ? 1024 : 65_536);
  for (let s = 0; s < samples; s++) {
    const idx = Math.floor((s * total) / samples);
    const v = Math.floor(idx / e.hidden); // embedding [vocab, hidden]
    const h = idx % e.hidden;
    if (!Object.is(at(e.weight, idx), at(l.weight, weightIndex(v, h)))) return false;
  }
  if (total > 1 << 24) return true;
  // Small enough (up to 16M entries) to confirm on every element.
  const embed = round.all(model.readFloat32(e.weight));
  const weight = round.all(model.readFloat32(l.weight));
  for (let v = 0; v < e.vocab; v++) {
    for (let h = 0; h < e.hidden; h++) {
      if (!Object.is(embed[v * e.hidden + h], weight[weightIndex(v, h)])) return false;
    }
  }
  return true;
}

interface Rounding {
  one(x: number): number;
  all(x: Float32Array): Float32Array;
}

function coarserRounding(a: string, b: string): Rounding {
  if (a === "bfloat16" || b === "bfloat16") {
    return { one: (x) => bf16BitsToFloat(floatToBf16Bits(x)), all: (x) => bf16ToF32(f32ToBf16(x)) };
  }
  if (a === "float16" || b === "float16") {
    return { one: (x) => halfBitsToFloat(floatToHalfBits(x)), all: (x) => f16ToF32(f32ToF16(x)) };
  }
  return { one: (x) => x, all: (x) => x };
}
