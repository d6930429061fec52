import { CancelledError, UsageError } from "../errors";
import { indexLinears } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import type { ValueInfoProto } from "../onnx/proto/onnx_pb";
import { f16ToF32 } from "../kernels/index";
import { ChannelStats } from "./channel-stats";
import { HessianAccumulator } from "./hessian";
import { equalLengthBatches, type TokenData } from "./data";
import { createSession, ort, type ExecutionProvider } from "./session";
import { defaultMaxMemory, planPasses, planTaps, tapBytes, tappedProto, type Tap } from "./taps";

export interface CalibrationOptions {
  /** Rows per onnxruntime run (sequences of equal length are batched). Default 8. */
  batchSize?: number;
  /** Accumulate Hessians `H = (2/N) Σ xᵀx` (default true). */
  hessian?: boolean;
  /** Memory budget in bytes for what the taps accumulate (default half the machine). */
  maxMemory?: number;
  /** Tap only these tensors (default: every linear layer's input). */
  tensors?: string[];
  /** Sequential mode: initializer values to use instead of the model's (e.g. quantized blocks). */
  weightOverrides?: Map<string, Float32Array>;
  executionProvider?: ExecutionProvider;
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (p: { pass: number; passes: number; tokens: number; totalTokens: number }) => void;
  /**
   * Receives each tap's result as its pass ends (e.g. to write it to a stats file). When given,
   * Hessians are not kept in the returned result, so memory stays bounded across passes.
   */
  sink?: (r: TapResult) => void | Promise<void>;
}

export interface TapResult {
  tap: Tap;
  stats: ChannelStats;
  /** `(2/N) Σ xᵀx`, float64 [C × C], when Hessians were asked for. */
  hessian: Float64Array | null;
}

export interface CalibrationResult {
  model: string;
  data: string;
  tokens: number;
  sequences: number;
  seconds: number;
  passes: number;
  provider: "cpu" | "cuda";
  notes: string[];
  taps: TapResult[];
}

/**
 * Run the model over the calibration sequences with every linear layer's input tapped, and
 * stream per-channel statistics and Hessians. Memory stays within `maxMemory`: when all taps do
 * not fit, the data is run once per subset of taps.
 */
export async function calibrate(model: OnnxModel, data: TokenData, opts: CalibrationOptions = {}): Promise<CalibrationResult> {
  const t0 = performance.now();
  const taps = selectTaps(model, opts.tensors);
  const batchSize = opts.batchSize ?? 8;
  const maxLen = Math.max(...data.sequences.map((s) => s.length));
  const hessian = opts.hessian ?? true;
  const passes = planPasses(taps, opts.maxMemory ?? defaultMaxMemory(), model.weightBytes * 2, (t) =>
    tapBytes(t.channels, batchSize * maxLen, hessian, data.tokens),
  );
  const batches = equalLengthBatches(data.sequences, batchSize);
  const sampleOf = sampleIndexer(data.sequences);
  const notes = [...data.notes];
  const results: TapResult[] = [];
  let provider: "cpu" | "cuda" = "cpu";
  const initializerNames = new Set(model.graph.initializer.map((t) => t.name));
  const totalTokens = data.tokens * passes.length;
  let done = 0;
  for (const [p, passTaps] of passes.entries()) {
    const proto = tappedProto(model.proto, passTaps.map((t) => t.tensor), opts.weightOverrides);
    const runner = await createSession(model, proto, { executionProvider: opts.executionProvider, threads: opts.threads });
    provider = runner.provider;
    if (runner.note && !notes.includes(runner.note)) notes.push(runner.note);
    const acc = passTaps.map((tap) => ({
      tap,
      stats: new ChannelStats(tap.channels),
      hessian: hessian ? new HessianAccumulator(tap.channels, tap.tensor) : null,
    }));
    try {
      for (const batch of batches) {
        if (opts.signal?.aborted) throw new CancelledError("calibration");
        const feeds = buildFeeds(model.graph.input, initializerNames, batch);
        const out = await runner.session.run(feeds, passTaps.map((t) => t.tensor));
        const seqLen = batch[0].length;
        const source = { samples: batch.map((s) => sampleOf(s)), seqLen, tokens: batch };
        for (const a of acc) {
          const x = asFloat32(out[a.tap.tensor], a.tap);
          const rows = x.length / a.tap.channels;
          await a.stats.update(x, rows, source, opts.signal);
          if (a.hessian) await a.hessian.add(x, rows, opts.signal);
        }
        done += batch.length * seqLen;
        opts.onProgress?.({ pass: p, passes: passes.length, tokens: done, totalTokens });
      }
    } catch (e) {
      // A kernel interrupted mid-batch names itself; the user cancelled the calibration.
      if (e instanceof CancelledError) throw new CancelledError("calibration");
      throw e;
    } finally {
      await runner.release();
    }
    for (const a of acc) {
      const r: TapResult = { tap: a.tap, stats: a.stats, hessian: a.hessian ? a.hessian.finish() : null };
      if (opts.sink) {
        await opts.sink(r);
        r.hessian = null;
      }
      results.push(r);
    }
  }
  return {
    model: model.file,
    data: data.file,
    tokens: data.tokens,
    sequences: data.sequences.length,
    seconds: (performance.now() - t0) / 1000,
    passes: passes.length,
    provider,
    notes,
    taps: results,
  };
}

/** The taps a calibration makes: every linear layer's input, or the subset `tensors`. */
export function selectTaps(model: OnnxModel, tensors?: string[]): Tap[] {
  const taps = planTaps(indexLinears(model));
  if (!tensors) return taps;
  const known = new Set(taps.map((t) => t.tensor));
  const unknown = tensors.filter((t) => !known.has(t));
  if (unknown.length) throw new UsageError(`not a linear layer's input, cannot tap: ${unknown.join(", ")}`);
  const wanted = new Set(tensors);
  return taps.filter((t) => wanted.has(t.tensor));
}

/** Map a sequence (by identity) back to its index in the data. */
function sampleIndexer(sequences: number[][]): (s: number[]) => number {
  const m = new Map<number[], number>();
  sequences.forEach((s, i) => m.set(s, i));
  return (s) => m.get(s) ?? -1;
}

type OrtTensor = import("onnxruntime-node").Tensor;

function asFloat32(t: OrtTensor | undefined, tap: Tap): Float32Array {
  if (!t) throw new Error(`onnxruntime did not return the tapped tensor '${tap.tensor}'`);
  const last = t.dims[t.dims.length - 1];
  if (last !== tap.channels) {
    throw new Error(`tapped tensor '${tap.tensor}' has last dimension ${last}, expected ${tap.channels} input features`);
  }
  if (t.type === "float32") return t.data as Float32Array;
  if (t.type === "float16") return f16ToF32(t.data as Uint16Array);
  throw new Error(`tapped tensor '${tap.tensor}' has type ${t.type}; expected float32 or float16`);
}

/**
 * Inputs for a batch of equal-length sequences: `input_ids`, and when the model asks for them
 * `attention_mask` (ones), `position_ids` (0..T−1), `token_type_ids` (zeros) and empty
 * `past_key_values.*` (past length 0).
 */
export function buildFeeds(inputs: ValueInfoProto[], initializers: Set<string>, batch: number[][]): Record<string, OrtTensor> {
  const o = ort();
  const B = batch.length;
  const T = batch[0].length;
  const feeds: Record<string, OrtTensor> = {};
  for (const input of inputs) {
    if (initializers.has(input.name)) continue;
    const tt = input.type?.value.case === "tensorType" ? input.type.value.value : undefined;
    const elem = tt?.elemType ?? 7;
    const name = input.name;
    const ints = (fill: (b: number, t: number) => number) => {
      const n = B * T;
      if (elem === 6) {
        const a = new Int32Array(n);
        for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) a[b * T + t] = fill(b, t);
        return new o.Tensor("int32", a, [B, T]);
      }
      const a = new BigInt64Array(n);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) a[b * T + t] = BigInt(fill(b, t));
      return new o.Tensor("int64", a, [B, T]);
    };
    if (name === "input_ids") feeds[name] = ints((b, t) => batch[b][t]);
    else if (name === "attention_mask") feeds[name] = ints(() => 1);
    else if (name === "position_ids") feeds[name] = ints((_, t) => t);
    else if (name === "token_type_ids") feeds[name] = ints(() => 0);
    else if (name.startsWith("past_key_values") || name.startsWith("past.")) {
      // [batch, kv_heads, past_sequence_length, head_dim]: symbolic batch → B, the rest of the
      // symbolic dims (past length) → 0.
      const dims = (tt?.shape?.dim ?? []).map((d, i) => (d.value.case === "dimValue" ? Number(d.value.value) : i === 0 ? B : 0));
      const type = elem === 10 ? "float16" : "float32";
      feeds[name] = new o.Tensor(type, type === "float16" ? new Uint16Array(0) : new Float32Array(0), dims);
    } else {
      throw new Error(`model input '${name}' is not one QuantLens knows how to fill (input_ids, attention_mask, position_ids, token_type_ids, past_key_values.*)`);
    }
  }
  return feeds;
}
