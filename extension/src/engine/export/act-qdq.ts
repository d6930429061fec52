/**
 * Static activation quantization (W8A8, `--act-bits 8`): each quantized layer's input X (after
 * any smoothing) goes through `QuantizeLinear → DequantizeLinear` with one per-tensor scale
 * calibrated as SmoothQuant's static per-tensor setting does:
 *
 *   scale = max|X| / 127 over the calibration tokens,   x_q = clamp(round_half_even(x / scale), −128, 127),
 *   x̃ = scale · x_q   (int8, zero point 0)
 *
 * The absmax (not a percentile) keeps the calibrated range covering every calibration value; with
 * smoothing the outlier channels have already been divided down, which is the point of the method.
 * `qdq` exports run these ops for real; `fake` carries the very same ops, so the two agree.
 */
import { create } from "@bufbuild/protobuf";
import { UsageError } from "../errors";
import { DataType } from "../onnx/dtype";
import type { LinearIndex } from "../onnx/linear";
import { NodeProtoSchema, type NodeProto } from "../onnx/proto/onnx_pb";
import { bytesTensor, floatTensor, intAttr, type GraphEditor } from "./graph-edit";
import { freshName, freshNodeName, rewireThrough } from "./smoothing";

/** One calibrated activation quantizer, shared by the layers reading `tensor`. */
export interface ActQuant {
  /** The tapped activation (calibration's name for it). */
  tensor: string;
  layers: string[];
  bits: 8;
  /** max|X| over the calibration tokens, after smoothing. */
  absmax: number;
  /** absmax / 127. */
  scale: number;
}

export const ACT_QMAX = 127;

/**
 * The quantizer of an activation from its per-channel calibration absmax; `smoothing` s divides
 * channel j (the activation the layers see is X/s), so max|X_j/s_j| = absmax_j/s_j exactly.
 */
export function actQuantOf(tensor: string, layers: string[], absmax: ArrayLike<number>, smoothing?: ArrayLike<number>): ActQuant {
  let m = 0;
  for (let j = 0; j < absmax.length; j++) {
    const v = smoothing ? absmax[j] / smoothing[j] : absmax[j];
    if (v > m) m = v;
  }
  if (!Number.isFinite(m)) throw new UsageError(`activation '${tensor}' has a non-finite calibration range (max|x| = ${m}); check the calibration data`);
  // An activation that is identically zero on the calibration data still needs a valid scale.
  const absmaxOrOne = m > 0 ? m : 1;
  return { tensor, layers, bits: 8, absmax: m, scale: Math.fround(absmaxOrOne / ACT_QMAX) };
}

/** Insert the QuantizeLinear → DequantizeLinear pairs in front of the layers of each `ActQuant`. */
export function insertActQdq(g: GraphEditor, index: LinearIndex, acts: readonly ActQuant[]): void {
  const byName = new Map(index.layers.map((l) => [l.name, l]));
  for (const a of acts) {
    const layers = a.layers.map((n) => {
      const l = byName.get(n);
      if (!l) throw new UsageError(`activation quantizer for '${a.tensor}' names linear layer '${n}', which the model does not have`);
      return l;
    });
    rewireThrough(g, layers, (x, dataType) => {
      const scale = freshName(g, `${a.tensor}_act_scale`);
      const zero = freshName(g, `${a.tensor}_act_zero_point`);
      g.setInitializer(floatTensor(scale, [], Float32Array.of(a.scale)));
      g.setInitializer(bytesTensor(zero, [], new Uint8Array(1), DataType.INT8));
      const nodes: NodeProto[] = [];
      let input = x;
      // QuantizeLinear takes float16 scales only from opset 19: quantize fp16/bf16 activations in float32.
      if (dataType !== DataType.FLOAT) {
        input = freshName(g, `${x}_f32`);
        nodes.push(cast(freshNodeName(g, `${x}/ActCastIn`), x, input, DataType.FLOAT));
      }
      const q = freshName(g, `${x}_act_q`);
      let y = freshName(g, `${x}_act_dq`);
      nodes.push(create(NodeProtoSchema, { name: freshNodeName(g, `${x}/ActQuantizeLinear`), opType: "QuantizeLinear", input: [input, scale, zero], output: [q] }));
      nodes.push(create(NodeProtoSchema, { name: freshNodeName(g, `${x}/ActDequantizeLinear`), opType: "DequantizeLinear", input: [q, scale, zero], output: [y] }));
      if (dataType !== DataType.FLOAT) {
        const back = freshName(g, `${x}_act_dq_cast`);
        nodes.push(cast(freshNodeName(g, `${x}/ActCastOut`), y, back, dataType));
        y = back;
      }
      return { nodes, output: y };
    });
  }
}

function cast(name: string, input: string, output: string, to: number): NodeProto {
  return create(NodeProtoSchema, { name, opType: "Cast", input: [input], output: [output], attribute: [intAttr("to", to)] });
}

/** Report rows for the activation quantizers. */
export function actQuantReport(acts: readonly ActQuant[]) {
  return acts.map((a) => ({ tensor: a.tensor, layers: a.layers, bits: a.bits, absmax: a.absmax, scale: a.scale }));
}
