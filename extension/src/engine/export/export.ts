import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { UsageError } from "../errors";
import type { OnnxModel } from "../onnx/model";
import { saveModel } from "../onnx/save";
import { GraphIndex } from "../onnx/graph";
import { defaultOpset, upgradeOpset } from "./opset";
import { DataType } from "../onnx/dtype";
import { NodeProtoSchema, OperatorSetIdProtoSchema, TensorProto_DataLocation, type ModelProto, type NodeProto, type TensorProto } from "../onnx/proto/onnx_pb";
import type { SpillRef } from "../spill";
import { NBITS_BLOCK_SIZES, NBITS_ORT_BITS, packDequantizeLinearInt4, packDequantizeLinearInt8, packMatMulNBits, type DequantizeLinearWeight } from "../kernels/quant";
import { dequantized, type LayerQuant, type QuantizedModel } from "../quant/quantize";
import { toStoredLayout } from "../quant/layer-weights";
import { bytesTensor, floatTensor, GraphEditor, intAttr } from "./graph-edit";
import { exportRotatedLayer, type RotationCache } from "./rotation";
import { indexLinears } from "../onnx/linear";
import { applySmoothing, smoothingReport } from "./smoothing";
import { actQuantReport, insertActQdq } from "./act-qdq";

export type ExportFormat = "fake" | "matmulnbits" | "qdq";
/** Smaller tensors stay in memory even when spilling. */
const SPILL_MIN_BYTES = 4096;
export const FORMATS: readonly ExportFormat[] = ["fake", "matmulnbits", "qdq"];

export interface ExportResult {
  output: string;
  report: string;
  format: ExportFormat;
  /** Per layer: the form it was written in (a layer the format cannot express falls back to fake). */
  layers: { name: string; form: "matmulnbits" | "qdq" | "fake"; note?: string }[];
  notes: string[];
}

/**
 * Write the quantized model (never over the input) and a report JSON beside it.
 * - `fake`: dequantized float weights in the original dtype and layout (any bits/group);
 * - `matmulnbits`: com.microsoft MatMulNBits (bits 2/4/8, block 16..256, as onnxruntime 1.30 runs);
 * - `qdq`: DequantizeLinear → MatMul: 8-bit per output channel (int8/uint8, any opset), or
 *   blocked along the input (int4/uint4 for 2–4 bits, 8-bit with groups; per-channel low-bit as one
 *   block), which raises the default-domain opset to 21 (export/opset.ts rewrites what changed).
 * Layers a format cannot express are written as `fake`, and the report says so.
 */
export async function exportQuantized(model: OnnxModel, q: QuantizedModel, out: string, format: ExportFormat, extra: Record<string, unknown> = {}, signal?: AbortSignal): Promise<ExportResult> {
  if (!FORMATS.includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(", ")}, not '${format}'`);
  const abs = path.resolve(out);
  if (abs === model.file) throw new UsageError(`refusing to overwrite the input model ${model.file}; choose another output path`);
  const g = new GraphEditor(model.graph);
  const graphIndex = new GraphIndex(model.graph);
  const layers: ExportResult["layers"] = [];
  const notes: string[] = [];
  let usesContrib = false;
  /** Blocked DequantizeLinear (int4/uint4, blocked 8-bit) needs the default domain at opset 21. */
  let needsOpset = 0;
  const rotations: RotationCache = new Map();
  const gathers = new Map<string, string>();
  // Large models (q.spill): weights go to the scratch file as they are made and are read back one
  // at a time by saveModel, so the export holds one layer's bytes, not the model's.
  const spilled = new Map<string, SpillRef>();
  const put = (t: TensorProto) => {
    if (!q.spill || t.rawData.length < SPILL_MIN_BYTES) return g.setInitializer(t);
    spilled.set(t.name, q.spill.put(t.rawData));
    g.setInitializer({ ...t, rawData: new Uint8Array(0), dataLocation: TensorProto_DataLocation.EXTERNAL, externalData: [] });
  };
  for (const lq of q.layers) {
    const l = lq.layer;
    const node = model.graph.node[l.nodeIndex];
    let why: string | undefined;
    if (lq.rotation && format !== "fake") {
      // QuIP: low-bit codes of the processed weight between input/output rotation subgraphs.
      const r = await exportRotatedLayer(g, node, lq, format, rotations, { dataType: model.info(l.weight)?.dataType });
      if (r.form !== "fake") {
        usesContrib ||= r.form === "matmulnbits";
        if (r.opset) needsOpset = Math.max(needsOpset, r.opset);
        layers.push({ name: l.name, form: r.form });
        continue;
      }
      why = r.note;
    } else if (format === "matmulnbits") why = nbitsUnsupported(lq);
    else if (format === "qdq") why = qdqUnsupported(lq);
    if (format !== "fake" && !why && l.op !== "MatMul") why = `${l.op} is written as fake-quant`;
    if (format !== "fake" && !why && lq.perm && defaultOpset(model.proto) < 11) why = "permuted act-order groups need Gather with axis −1 (opset ≥ 11)";
    if (format === "fake" || why) {
      const stored = model.info(l.weight)!;
      const values = toStoredLayout(l, dequantized(lq));
      const reader = sharedWeightReader(g, graphIndex, l.weight, node);
      if (reader) {
        // The initializer is also read elsewhere (a tied lm_head's embedding table): the
        // quantized copy gets its own name and only this layer's chain reads it.
        const name = freshInitializerName(g, `${l.weight}_quantized`);
        put(floatTensor(name, stored.dims, values, stored.dataType));
        const rewired = { ...reader, input: reader.input.map((x) => (x === l.weight ? name : x)) };
        g.replaceNode(reader, rewired);
      } else {
        put(floatTensor(l.weight, stored.dims, values, stored.dataType));
      }
      layers.push({ name: l.name, form: "fake", ...(why ? { note: why } : {}) });
      continue;
    }
    // Permuted act-order groups: the codes are W[:, perm]'s, so the layer reads x[..., perm].
    const input = lq.perm ? gathered(g, node.input[0], lq.perm, gathers) : node.input[0];
    if (format === "matmulnbits") {
      const p = await packMatMulNBits({ codes: lq.codes, scales: lq.scales, zeros: lq.zeros }, l.out, l.in, { bits: lq.bits, blockSize: lq.group });
      const base = l.weight;
      put(bytesTensor(`${base}_Q${lq.bits}`, p.dimsB, p.B, DataType.UINT8));
      put(floatTensor(`${base}_scales`, [p.scales.length], p.scales));
      const inputs = [input, `${base}_Q${lq.bits}`, `${base}_scales`];
      if (p.zeroPoints) {
        put(bytesTensor(`${base}_zp`, [p.zeroPoints.length], p.zeroPoints, DataType.UINT8));
        inputs.push(`${base}_zp`);
      }
      g.replaceNode(
        node,
        create(NodeProtoSchema, {
          name: node.name,
          opType: "MatMulNBits",
          domain: "com.microsoft",
          input: inputs,
          output: node.output,
          // accuracy_level 0: compute in the activations' precision (level 4 quantizes the
          // activations to int8 and is off by ~0.3–1%).
          attribute: [intAttr("K", l.in), intAttr("N", l.out), intAttr("bits", lq.bits), intAttr("block_size", lq.group), intAttr("accuracy_level", 0)],
        }),
      );
      usesContrib = true;
      layers.push({ name: l.name, form: "matmulnbits" });
    } else {
      const p = await packQdqWeight(lq);
      if (p.axis === 0) needsOpset = Math.max(needsOpset, 21);
      const base = l.weight;
      put(bytesTensor(`${base}_q`, p.dims, p.data, QDQ_DTYPE[p.dtype]));
      put(floatTensor(`${base}_scale`, p.scaleDims, p.scale));
      const dqInputs = [`${base}_q`, `${base}_scale`];
      if (p.zeroPoint) {
        put(bytesTensor(`${base}_zero_point`, p.scaleDims, p.zeroPoint, QDQ_DTYPE[p.dtype]));
        dqInputs.push(`${base}_zero_point`);
      }
      const dqOut = `${base}_dequantized`;
      const matmul = create(NodeProtoSchema, { name: node.name, opType: "MatMul", input: [input, dqOut], output: node.output });
      g.replaceNode(node, matmul);
      // Right before its MatMul (found by identity: exported nodes may be unnamed).
      g.nodes.splice(g.nodes.indexOf(matmul), 0, create(NodeProtoSchema, {
        name: `${l.name}/DequantizeLinear`,
        opType: "DequantizeLinear",
        input: dqInputs,
        output: [dqOut],
        attribute: p.axis === 0 ? [intAttr("axis", 0), intAttr("block_size", p.blockSize!)] : [intAttr("axis", 1)],
      }));
      layers.push({ name: l.name, form: "qdq" });
    }
  }
  // AWQ/SmoothQuant smoothing, then W8A8 activation Q/DQ: both rewire the layers' inputs, so
  // they come after the layers are written (the quantized codes already carry W·diag(s)).
  if (q.smoothing?.length || q.actQuant?.length) {
    const index = indexLinears(model);
    if (q.smoothing?.length) applySmoothing(g, model, index, q.smoothing, new Set(q.layers.map((x) => x.layer.name)));
    if (q.actQuant?.length) insertActQdq(g, index, q.actQuant);
  }
  g.prune();
  const fallbacks = layers.filter((x) => x.note);
  if (fallbacks.length) notes.push(`${fallbacks.length} layer(s) written as fake-quant: ${[...new Set(fallbacks.map((x) => x.note))].join("; ")}`);
  let base: ModelProto = model.proto;
  if (needsOpset > defaultOpset(base)) {
    base = upgradeOpset(base, needsOpset, model.file);
    notes.push(`default-domain opset raised from ${defaultOpset(model.proto)} to ${needsOpset} for blocked DequantizeLinear`);
  }
  const proto: ModelProto = {
    ...base,
    graph: needsOpset > defaultOpset(model.proto) ? upgradeOpset({ ...model.proto, graph: g.build(), functions: [] }, needsOpset, model.file).graph : g.build(),
    opsetImport:
      usesContrib && !base.opsetImport.some((o) => o.domain === "com.microsoft")
        ? [...base.opsetImport, create(OperatorSetIdProtoSchema, { domain: "com.microsoft", version: 1n })]
        : base.opsetImport,
    producerName: "quantlens",
  };
  // Cancelling mid-write leaves no partial model (saveModel removes its temp files).
  const spill = q.spill;
  await saveModel(proto, abs, {
    source: model,
    signal,
    ...(spill && spilled.size
      ? { spilled: { size: (name) => spilled.get(name)?.length, read: (name) => (spilled.has(name) ? spill.get(spilled.get(name)!) : undefined) } }
      : {}),
  });
  const report = abs.replace(/\.onnx$/i, "") + ".quantlens.json";
  const body = {
    format_version: 1,
    model: model.file,
    output: abs,
    format,
    config: q.config,
    seconds: q.seconds,
    calibration: q.calibration,
    notes,
    kept: q.kept,
    layers: q.layers.map((lq, i) => layerReport(lq, layers[i].form, layers[i].note)),
    ...(q.smoothing ? { smoothing: smoothingReport(q.smoothing) } : {}),
    ...(q.actQuant ? { act_quant: actQuantReport(q.actQuant) } : {}),
    ...extra,
  };
  const tmp = `${report}.tmp-${process.pid}`;
  await fs.promises.writeFile(tmp, `${JSON.stringify(body, null, 2)}\n`);
  await fs.promises.rename(tmp, report);
  return { output: abs, report, format, layers, notes };
}

/**
 * `input` with its last axis permuted by `perm` (a Gather right after the tensor is made, shared
 * by every layer reading the same tensor with the same permutation: q/k/v share their H, so
 * their act-order permutation too).
 */
function gathered(g: GraphEditor, input: string, perm: Int32Array, cache: Map<string, string>): string {
  const key = `${input}\u0000${crypto.createHash("sha256").update(new Uint8Array(perm.buffer, perm.byteOffset, perm.byteLength)).digest("hex")}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const base = freshInitializerName(g, `${input}_act_order`);
  const indices = `${base}_perm`;
  const out = `${base}_gathered`;
  g.setInitializer(bytesTensor(indices, [perm.length], new Uint8Array(BigInt64Array.from(perm, (v) => BigInt(v)).buffer), DataType.INT64));
  const node = create(NodeProtoSchema, { name: `${base}/Gather`, opType: "Gather", input: [input, indices], output: [out], attribute: [intAttr("axis", -1)] });
  // Right after the producer (or first, for a graph input), so every reader comes after it.
  const at = g.nodes.findIndex((n) => n.output.includes(input));
  g.nodes.splice(at + 1, 0, node);
  cache.set(key, out);
  return out;
}

const QDQ_DTYPE: Record<DequantizeLinearWeight["dtype"], number> = {
  int4: DataType.INT4,
  uint4: DataType.UINT4,
  int8: DataType.INT8,
  uint8: DataType.UINT8,
};

function qdqUnsupported(lq: LayerQuant): string | undefined {
  if (lq.bits > 8) return `qdq writes at most 8-bit weights, not ${lq.bits}`;
  return undefined;
}

/**
 * DequantizeLinear inputs for a layer: 8-bit per channel along axis 1; otherwise blocked along
 * the input axis (block = group, or all inputs for per-channel), codes of 2–4 bits as int4/uint4.
 */
async function packQdqWeight(lq: LayerQuant): Promise<DequantizeLinearWeight> {
  const l = lq.layer;
  const q = { codes: lq.codes, scales: lq.scales, zeros: lq.zeros };
  if (lq.bits === 8 && lq.group === 0) return packDequantizeLinearInt8(q, l.out, l.in);
  const blockSize = lq.group > 0 && lq.group < l.in ? lq.group : l.in;
  if (lq.bits <= 4) {
    // packDequantizeLinearInt4 writes int4 (q − 8) only when every zero is 8, i.e. symmetric 4-bit.
    return packDequantizeLinearInt4(q, l.out, l.in, { blockSize });
  }
  return packBlockedInt8(lq, blockSize);
}

/** 8-bit codes with groups: [K, N] int8 (q − 128, symmetric) or uint8 + zero points, blocked along K. */
function packBlockedInt8(lq: LayerQuant, blockSize: number): DequantizeLinearWeight {
  const N = lq.layer.out;
  const K = lq.layer.in;
  const nBlocks = Math.ceil(K / blockSize);
  const ngroups = lq.scales.length / N;
  if (ngroups !== nBlocks) throw new Error(`layer '${lq.layer.name}': ${ngroups} scale groups, expected ${nBlocks}`);
  const symmetric = lq.zeros.every((z) => z === 128);
  const data = new Uint8Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) data[k * N + n] = symmetric ? (lq.codes[n * K + k] - 128) & 0xff : lq.codes[n * K + k];
  }
  const scale = new Float32Array(nBlocks * N);
  const zeroPoint = symmetric ? null : new Uint8Array(nBlocks * N);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nBlocks; b++) {
      scale[b * N + n] = lq.scales[n * nBlocks + b];
      if (zeroPoint) zeroPoint[b * N + n] = lq.zeros[n * nBlocks + b];
    }
  }
  return { dtype: symmetric ? "int8" : "uint8", dims: [K, N], data, scale, scaleDims: [nBlocks, N], zeroPoint, axis: 0, blockSize };
}

/**
 * The node of `node`'s weight chain (the MatMul/Gemm itself, or the Transpose/Cast in front of
 * it) that reads initializer `weight`, when something else reads `weight` too; else null.
 */
function sharedWeightReader(g: GraphEditor, index: GraphIndex, weight: string, node: NodeProto): NodeProto | null {
  if (index.consumersOf(weight).length < 2) return null;
  let current = node;
  let t = node.input[1];
  for (let hops = 0; hops < 8 && t !== weight; hops++) {
    const p = index.producer.get(t);
    if (!p) return null;
    current = p;
    t = p.input[0];
  }
  return t === weight && g.nodes.includes(current) ? current : null;
}

function freshInitializerName(g: GraphEditor, base: string): string {
  let name = base;
  for (let i = 1; g.initializers.has(name); i++) name = `${base}_${i}`;
  return name;
}

function nbitsUnsupported(lq: LayerQuant): string | undefined {
  if (!(NBITS_ORT_BITS as readonly number[]).includes(lq.bits)) return `MatMulNBits in onnxruntime 1.30 runs ${NBITS_ORT_BITS.join("/")} bits, not ${lq.bits}`;
  if (!(NBITS_BLOCK_SIZES as readonly number[]).includes(lq.group)) return `MatMulNBits needs a block size of ${NBITS_BLOCK_SIZES.join("/")}, not ${lq.group === 0 ? "per-channel" : lq.group}`;
  return undefined;
}

export function layerReport(lq: LayerQuant, form?: string, note?: string) {
  return {
    name: lq.layer.name,
    role: lq.layer.role,
    block: lq.layer.block,
    in: lq.layer.in,
    out: lq.layer.out,
    method: lq.method,
    bits: lq.bits,
    group: lq.group,
    symmetric: lq.symmetric,
    proxy_loss: lq.proxyLoss,
    rel_proxy_loss: lq.relProxyLoss,
    proxy_loss_rtn: lq.proxyLossRtn,
    damp: lq.damp,
    damp_retries: lq.dampRetries,
    dead_columns: lq.deadColumns,
    ...(lq.rotation ? { rotation: { u: lq.rotation.u, v: lq.rotation.v, rescale: lq.rotation.rescale !== null } } : {}),
    ...(lq.perm ? { act_order_groups: "permuted" } : {}),
    ...(lq.clip ? { clip: { rows_clipped: lq.clip.rowsClipped, mean_shrink: lq.clip.meanShrink, min_shrink: lq.clip.minShrink } } : {}),
    seconds: lq.seconds,
    ...(form ? { form } : {}),
    ...(note ? { note } : {}),
  };
}
