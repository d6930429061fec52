import fs from "node:fs";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { UsageError } from "../errors";
import type { OnnxModel } from "../onnx/model";
import { saveModel } from "../onnx/save";
import { DataType } from "../onnx/dtype";
import { NodeProtoSchema, OperatorSetIdProtoSchema, type ModelProto } from "../onnx/proto/onnx_pb";
import { NBITS_BLOCK_SIZES, NBITS_ORT_BITS, packDequantizeLinearInt8, packMatMulNBits } from "../kernels/quant";
import { dequantized, type LayerQuant, type QuantizedModel } from "../quant/quantize";
import { toStoredLayout } from "../quant/layer-weights";
import { bytesTensor, floatTensor, GraphEditor, intAttr } from "./graph-edit";

export type ExportFormat = "fake" | "matmulnbits" | "qdq";
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
 * - `qdq`: DequantizeLinear → MatMul, int8 per output channel (8-bit per-channel layers).
 * Layers a format cannot express are written as `fake`, and the report says so.
 */
export async function exportQuantized(model: OnnxModel, q: QuantizedModel, out: string, format: ExportFormat, extra: Record<string, unknown> = {}): Promise<ExportResult> {
  if (!FORMATS.includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(", ")}, not '${format}'`);
  const abs = path.resolve(out);
  if (abs === model.file) throw new UsageError(`refusing to overwrite the input model ${model.file}; choose another output path`);
  const g = new GraphEditor(model.graph);
  const layers: ExportResult["layers"] = [];
  const notes: string[] = [];
  let usesContrib = false;
  for (const lq of q.layers) {
    const l = lq.layer;
    const node = model.graph.node[l.nodeIndex];
    let why: string | undefined;
    if (format === "matmulnbits") why = nbitsUnsupported(lq);
    else if (format === "qdq") why = lq.bits === 8 && lq.group === 0 ? undefined : "qdq is written for 8-bit per-channel layers (4-bit blocked DequantizeLinear needs opset 21)";
    if (format !== "fake" && !why && l.op !== "MatMul") why = `${l.op} is written as fake-quant`;
    if (format === "fake" || why) {
      const stored = model.info(l.weight)!;
      g.setInitializer(floatTensor(l.weight, stored.dims, toStoredLayout(l, dequantized(lq)), stored.dataType));
      layers.push({ name: l.name, form: "fake", ...(why ? { note: why } : {}) });
      continue;
    }
    if (format === "matmulnbits") {
      const p = await packMatMulNBits({ codes: lq.codes, scales: lq.scales, zeros: lq.zeros }, l.out, l.in, { bits: lq.bits, blockSize: lq.group });
      const base = l.weight;
      g.setInitializer(bytesTensor(`${base}_Q${lq.bits}`, p.dimsB, p.B, DataType.UINT8));
      g.setInitializer(floatTensor(`${base}_scales`, [p.scales.length], p.scales));
      const inputs = [node.input[0], `${base}_Q${lq.bits}`, `${base}_scales`];
      if (p.zeroPoints) {
        g.setInitializer(bytesTensor(`${base}_zp`, [p.zeroPoints.length], p.zeroPoints, DataType.UINT8));
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
      const p = await packDequantizeLinearInt8({ codes: lq.codes, scales: lq.scales, zeros: lq.zeros }, l.out, l.in);
      const base = l.weight;
      g.setInitializer(bytesTensor(`${base}_q`, p.dims, p.data, p.dtype === "int8" ? DataType.INT8 : DataType.UINT8));
      g.setInitializer(floatTensor(`${base}_scale`, p.scaleDims, p.scale));
      const dqInputs = [`${base}_q`, `${base}_scale`];
      if (p.zeroPoint) {
        g.setInitializer(bytesTensor(`${base}_zero_point`, p.scaleDims, p.zeroPoint, DataType.UINT8));
        dqInputs.push(`${base}_zero_point`);
      }
      const dqOut = `${base}_dequantized`;
      const matmul = create(NodeProtoSchema, { name: node.name, opType: "MatMul", input: [node.input[0], dqOut], output: node.output });
      g.replaceNode(node, matmul);
      // Right before its MatMul (found by identity: exported nodes may be unnamed).
      g.nodes.splice(g.nodes.indexOf(matmul), 0, create(NodeProtoSchema, {
        name: `${l.name}/DequantizeLinear`,
        opType: "DequantizeLinear",
        input: dqInputs,
        output: [dqOut],
        attribute: [intAttr("axis", 1)],
      }));
      layers.push({ name: l.name, form: "qdq" });
    }
  }
  g.prune();
  const fallbacks = layers.filter((x) => x.note);
  if (fallbacks.length) notes.push(`${fallbacks.length} layer(s) written as fake-quant: ${[...new Set(fallbacks.map((x) => x.note))].join("; ")}`);
  const proto: ModelProto = {
    ...model.proto,
    graph: g.build(),
    opsetImport:
      usesContrib && !model.proto.opsetImport.some((o) => o.domain === "com.microsoft")
        ? [...model.proto.opsetImport, create(OperatorSetIdProtoSchema, { domain: "com.microsoft", version: 1n })]
        : model.proto.opsetImport,
    producerName: "quantlens",
  };
  await saveModel(proto, abs, { source: model });
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
    ...extra,
  };
  const tmp = `${report}.tmp-${process.pid}`;
  await fs.promises.writeFile(tmp, `${JSON.stringify(body, null, 2)}\n`);
  await fs.promises.rename(tmp, report);
  return { output: abs, report, format, layers, notes };
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
    dead_columns: lq.deadColumns,
    seconds: lq.seconds,
    ...(form ? { form } : {}),
    ...(note ? { note } : {}),
  };
}
