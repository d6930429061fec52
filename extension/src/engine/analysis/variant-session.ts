import { create } from "@bufbuild/protobuf";
import { UsageError } from "../errors";
import type { LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { TypeProtoSchema, ValueInfoProtoSchema, type ModelProto, type TensorProto } from "../onnx/proto/onnx_pb";
import { DataType } from "../onnx/dtype";
import { buildFeeds } from "../calib/runner";
import { createSession, ort, type ExecutionProvider, type RunnerSession } from "../calib/session";
import { tappedProto } from "../calib/taps";
import { f16ToF32, f32ToF16 } from "../kernels/index";

/**
 * One onnxruntime session of the fp model in which the linear layers' weights are graph inputs
 * instead of initializers, so a run can feed replacement (fake-quantized) weights instead of
 * building a model per variant; runs without a replacement feed the original values (read once
 * and kept). (An initializer merely listed among the inputs would be overridable in onnxruntime
 * itself, but onnxruntime-node only passes feeds named in `session.inputNames`, which leaves those
 * out.) Quantized variants then cost one run each, with no model serialisation or session
 * creation. Extra outputs (activation taps) can be added.
 *
 * bfloat16 weights cannot be fed (onnxruntime-node has no bfloat16 tensors): such models fall
 * back to one session per distinct set of replacements (correct, slower).
 */
export interface VariantSessionOptions {
  /** Layers whose weights may be replaced. */
  layers: LinearLayer[];
  /** Extra graph tensors to return (taps). */
  taps?: string[];
  executionProvider?: ExecutionProvider;
  threads?: number;
}

export interface RunOutput {
  data: Float32Array;
  dims: number[];
}

type OrtTensor = import("onnxruntime-node").Tensor;

export class VariantSession {
  private fallbackKey = "";
  private fallback: RunnerSession | null = null;
  private readonly initializerNames: Set<string>;
  private readonly originals = new Map<string, OrtTensor>();

  private constructor(
    private readonly model: OnnxModel,
    private readonly runner: RunnerSession,
    private readonly weights: Map<string, TensorProto>,
    private readonly feedable: boolean,
    private readonly taps: string[],
    private readonly opts: VariantSessionOptions,
    /** The logits output (the model's `logits`, else its first output). */
    readonly logits: string,
  ) {
    this.initializerNames = new Set(model.graph.initializer.map((t) => t.name));
  }

  static async open(model: OnnxModel, opts: VariantSessionOptions): Promise<VariantSession> {
    const byName = new Map(model.graph.initializer.map((t) => [t.name, t]));
    const weights = new Map<string, TensorProto>();
    for (const l of opts.layers) {
      const t = byName.get(l.weight);
      if (!t) throw new UsageError(`${model.file}: layer '${l.name}' reads weight '${l.weight}', which is not an initializer`);
      weights.set(l.weight, t);
    }
    const feedable = [...weights.values()].every((t) => t.dataType === DataType.FLOAT || t.dataType === DataType.FLOAT16);
    const taps = opts.taps ?? [];
    const proto = feedable ? withWeightInputs(tappedProto(model.proto, taps), [...weights.values()]) : tappedProto(model.proto, taps);
    const runner = await createSession(model, proto, { executionProvider: opts.executionProvider, threads: opts.threads });
    const out = model.graph.output.find((o) => o.name === "logits") ?? model.graph.output[0];
    return new VariantSession(model, runner, weights, feedable, taps, opts, out.name);
  }

  get provider(): string {
    return this.runner.provider;
  }

  /**
   * Run a batch of equal-length sequences with `overrides` (weight initializer name → values in
   * the initializer's stored layout, float32) and return the requested outputs as float32.
   */
  async run(batch: number[][], overrides: Map<string, Float32Array>, outputs: string[]): Promise<Record<string, RunOutput>> {
    for (const name of overrides.keys()) if (!this.weights.has(name)) throw new UsageError(`weight '${name}' was not opened for replacement`);
    const feeds = buildFeeds(this.model.graph.input, this.initializerNames, batch);
    let session = this.runner;
    if (this.feedable) {
      for (const [name, t] of this.weights) {
        const values = overrides.get(name);
        if (values) feeds[name] = weightTensor(t, values);
        else {
          let orig = this.originals.get(name);
          if (!orig) this.originals.set(name, (orig = weightTensor(t, this.model.readFloat32(name))));
          feeds[name] = orig;
        }
      }
    } else if (overrides.size) {
      session = await this.sessionFor(overrides);
    }
    const out = await session.session.run(feeds, outputs);
    const result: Record<string, RunOutput> = {};
    for (const name of outputs) {
      const t = out[name] as OrtTensor;
      const data = t.type === "float16" ? f16ToF32(t.data as Uint16Array) : (t.data as Float32Array);
      result[name] = { data, dims: t.dims.map(Number) };
    }
    return result;
  }

  /** The rebuild fallback: one session per distinct override set (the last one is kept). */
  private async sessionFor(overrides: Map<string, Float32Array>): Promise<RunnerSession> {
    // Keyed by the arrays' identity: callers pass the same arrays for the same variant.
    const key = [...overrides.entries()].map(([k, v]) => `${k}:${arrayId(v)}`).join("|");
    if (this.fallback && key === this.fallbackKey) return this.fallback;
    await this.fallback?.release();
    this.fallback = await createSession(this.model, tappedProto(this.model.proto, this.taps, overrides), {
      executionProvider: this.opts.executionProvider,
      threads: this.opts.threads,
    });
    this.fallbackKey = key;
    return this.fallback;
  }

  async release(): Promise<void> {
    await this.fallback?.release();
    await this.runner.release();
  }
}

function weightTensor(t: TensorProto, values: Float32Array): OrtTensor {
  const o = ort();
  const dims = t.dims.map(Number);
  return t.dataType === DataType.FLOAT16 ? new o.Tensor("float16", f32ToF16(values), dims) : new o.Tensor("float32", values, dims);
}

/** A copy of the model with the given initializers turned into graph inputs (fed at every run). */
export function withWeightInputs(proto: ModelProto, weights: TensorProto[]): ModelProto {
  const g = proto.graph!;
  const names = new Set(weights.map((t) => t.name));
  const present = new Set(g.input.map((i) => i.name));
  const initializer = g.initializer.filter((t) => !names.has(t.name));
  const added = weights
    .filter((t) => !present.has(t.name))
    .map((t) =>
      create(ValueInfoProtoSchema, {
        name: t.name,
        type: create(TypeProtoSchema, {
          value: { case: "tensorType", value: { elemType: t.dataType, shape: { dim: t.dims.map((d) => ({ value: { case: "dimValue" as const, value: d } })) } } },
        }),
      }),
    );
  return { ...proto, graph: { ...g, initializer, input: [...g.input, ...added] } };
}

const ids = new WeakMap<Float32Array, number>();
let nextId = 0;
function arrayId(v: Float32Array): number {
  let id = ids.get(v);
  if (id === undefined) ids.set(v, (id = nextId++));
  return id;
}
