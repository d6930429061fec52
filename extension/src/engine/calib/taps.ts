import os from "node:os";
import { create } from "@bufbuild/protobuf";
import { UsageError } from "../errors";
import type { LinearIndex } from "../onnx/linear";
import { ValueInfoProtoSchema, type ModelProto, type TensorProto } from "../onnx/proto/onnx_pb";
import { TensorProto_DataLocation } from "../onnx/proto/onnx_pb";
import { DataType } from "../onnx/dtype";
import { f32ToBf16, f32ToF16 } from "../kernels/index";
import { hessianBufferRows } from "./hessian";

/** One tapped activation: the input tensor of one or more linear layers (q/k/v share one). */
export interface Tap {
  /** The graph tensor added as an output. */
  tensor: string;
  /** Input features (last dimension). */
  channels: number;
  /** Linear layers reading it (by name). */
  layers: string[];
  /** Roles and block of those layers, for reports ("q,k,v" in block 3). */
  roles: string[];
  block: number | null;
}

/** Distinct linear-layer inputs, in graph order: one tap per share group. */
export function planTaps(index: LinearIndex): Tap[] {
  const taps = new Map<string, Tap>();
  for (const l of index.layers) {
    // Members of one share group read the same activation, possibly through their own
    // Reshape; the first member's input stands for the group.
    const group = index.shareGroups[l.shareGroup];
    const first = index.layers.find((x) => x.name === group.layers[0])!;
    let tap = taps.get(first.input);
    if (!tap) {
      tap = { tensor: first.input, channels: first.in, layers: [], roles: [], block: first.block };
      taps.set(first.input, tap);
    }
    tap.layers.push(l.name);
    tap.roles.push(l.role);
  }
  return [...taps.values()];
}

/**
 * Bytes a tap holds during a pass: its Hessian (float64), the rows gathered for its next update
 * and the kernel's two packed copies of a call's rows, per-channel stats, one batch of rows.
 */
export function tapBytes(channels: number, batchRows: number, hessian: boolean, tokens: number): number {
  const bufferRows = hessianBufferRows(channels);
  const buffered = bufferRows > 1 ? Math.min(bufferRows, tokens) : 0;
  const callRows = buffered || batchRows;
  const h = hessian ? channels * channels * 8 + buffered * channels * 4 + 2 * callRows * channels * 4 : 0;
  // Two batches of rows: one being analysed while onnxruntime makes the next.
  return h + channels * 8 * 9 + 2 * batchRows * channels * 4 + tokens * 8;
}

/** Default memory budget: half of this machine's memory. */
export function defaultMaxMemory(): number {
  return Math.floor(os.totalmem() / 2);
}

/**
 * Split taps into passes over the data so that what a pass accumulates fits the budget
 * (model weights held by onnxruntime are counted against it too). Taps stay in graph order.
 */
export function planPasses(taps: Tap[], budget: number, fixedBytes: number, bytesOf: (t: Tap) => number): Tap[][] {
  const room = budget - fixedBytes;
  const passes: Tap[][] = [];
  let current: Tap[] = [];
  let used = 0;
  for (const t of taps) {
    const b = bytesOf(t);
    if (b > room) {
      throw new UsageError(
        `--max-memory ${fmtMiB(budget)} is too small: tapping '${t.tensor}' (${t.channels} channels) needs ${fmtMiB(b)} besides ${fmtMiB(fixedBytes)} for the model; raise --max-memory to at least ${fmtMiB(b + fixedBytes)}`,
      );
    }
    if (used + b > room && current.length) {
      passes.push(current);
      current = [];
      used = 0;
    }
    current.push(t);
    used += b;
  }
  if (current.length) passes.push(current);
  return passes;
}

function fmtMiB(b: number): string {
  return `${Math.ceil(b / 2 ** 20)} MiB`;
}

/**
 * A copy of the model with `tensors` added to the graph outputs and, for sequential
 * calibration, some initializers' values replaced. The input proto is not modified.
 */
export function tappedProto(proto: ModelProto, tensors: string[], overrides?: Map<string, Float32Array>): ModelProto {
  const g = proto.graph!;
  const existing = new Set(g.output.map((o) => o.name));
  const output = [...g.output, ...tensors.filter((t) => !existing.has(t)).map((name) => create(ValueInfoProtoSchema, { name }))];
  return { ...proto, graph: { ...g, output, initializer: replaceInitializers(g.initializer, overrides) } };
}

/** `initializers` with the values of those named in `overrides` replaced (same dtype and dims). */
export function replaceInitializers(initializers: TensorProto[], overrides?: Map<string, Float32Array>): TensorProto[] {
  if (!overrides?.size) return initializers;
  return initializers.map((t) => {
    const v = overrides.get(t.name);
    return v ? replaceValues(t, v) : t;
  });
}

function replaceValues(t: TensorProto, values: Float32Array): TensorProto {
  const count = t.dims.reduce((a, d) => a * Number(d), 1);
  if (values.length !== count) throw new UsageError(`replacement for '${t.name}' has ${values.length} values, the tensor has ${count}`);
  // Stored in the initializer's own dtype (fp16/bf16 models keep their Cast after it).
  let bytes: Uint8Array;
  if (t.dataType === DataType.FLOAT) bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  else if (t.dataType === DataType.FLOAT16 || t.dataType === DataType.BFLOAT16) {
    const half = t.dataType === DataType.FLOAT16 ? f32ToF16(values) : f32ToBf16(values);
    bytes = new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
  } else {
    throw new UsageError(`replacement for '${t.name}': only float32/float16/bfloat16 initializers can be replaced`);
  }
  return {
    ...t,
    rawData: bytes,
    floatData: [],
    externalData: [],
    dataLocation: TensorProto_DataLocation.DEFAULT,
  };
}
