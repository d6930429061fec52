import { CancelledError, UsageError } from "../errors";
import { indexLinears } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import type { ValueInfoProto } from "../onnx/proto/onnx_pb";
import { f16ToF32 } from "../kernels/index";
import { ChannelStats } from "./channel-stats";
import { HessianAccumulator, hessianBufferRows } from "./hessian";
import { equalLengthBatches, type TokenData } from "./data";
import { createSession, LOW_MEMORY_WEIGHT_BYTES, ort, type ExecutionProvider } from "./session";
import { defaultMaxMemory, planPasses, planTaps, tapBytes, tappedProto, type Tap } from "./taps";
import { planStages, StagedForward, type StagePlan } from "./staged";

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
  /**
   * Block by block (calib/staged.ts): one block's weights in onnxruntime at a time, the same
   * activations. Default: for models of at least `LOW_MEMORY_WEIGHT_BYTES` (small models run
   * faster whole: one onnxruntime call per batch instead of one per block). `false`: whole-model
   * passes. Needs two or more transformer blocks; otherwise whole-model passes either way.
   */
  staged?: boolean;
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
  const batches = equalLengthBatches(data.sequences, batchSize);
  const ctx = new PassContext(model, data, batches, opts);
  const plan = (opts.staged ?? model.weightBytes >= LOW_MEMORY_WEIGHT_BYTES) ? stagePlanFor(model, data, taps, opts) : null;
  if (plan) {
    await calibrateStaged(ctx, plan, taps);
  } else {
    const passes = ctx.planRuns(taps, model.weightBytes * 2);
    ctx.totalTokens = data.tokens * passes.length;
    ctx.totalPasses = passes.length;
    const initializerNames = new Set(model.graph.initializer.map((t) => t.name));
    for (const passTaps of passes) {
      const proto = tappedProto(model.proto, passTaps.map((t) => t.tensor), opts.weightOverrides);
      const runner = await createSession(model, proto, { executionProvider: opts.executionProvider, threads: opts.threads });
      ctx.noteProvider(runner.provider, runner.note);
      const acc = ctx.accumulators(passTaps);
      try {
        // Pipelined: onnxruntime runs a batch (synchronously, on this thread) while the kernels
        // still work on the previous batch's statistics and Hessians on their own threads.
        let previous: Promise<void> | undefined;
        try {
          for (const batch of batches) {
            if (opts.signal?.aborted) throw new CancelledError("calibration");
            const feeds = buildFeeds(model.graph.input, initializerNames, batch);
            const out = await runner.session.run(feeds, passTaps.map((t) => t.tensor));
            await previous;
            previous = ctx.addBatch(acc, batch, (t) => out[t]);
          }
          await previous;
        } finally {
          // On an error, the other batch's kernels still finish before the session goes.
          await previous?.catch(() => undefined);
        }
      } catch (e) {
        throw asCalibrationCancel(e);
      } finally {
        await runner.release();
      }
      await ctx.finishPass(acc);
    }
  }
  return ctx.result(t0);
}

/** A kernel interrupted mid-batch names itself; the user cancelled the calibration. */
function asCalibrationCancel(e: unknown): unknown {
  return e instanceof CancelledError ? new CancelledError("calibration") : e;
}

interface Accumulator {
  tap: Tap;
  stats: ChannelStats;
  hessian: HessianAccumulator | null;
}

/** What the passes of one calibration share: options, progress, results, notes. */
class PassContext {
  readonly hessian: boolean;
  readonly budget: number;
  readonly maxLen: number;
  readonly notes: string[];
  readonly results: TapResult[] = [];
  provider: "cpu" | "cuda" = "cpu";
  pass = 0;
  totalTokens = 0;
  totalPasses = 0;
  private done = 0;
  private readonly sampleOf: (s: number[]) => number;

  constructor(
    readonly model: OnnxModel,
    readonly data: TokenData,
    readonly batches: number[][][],
    readonly opts: CalibrationOptions,
  ) {
    this.hessian = opts.hessian ?? true;
    this.budget = opts.maxMemory ?? defaultMaxMemory();
    this.maxLen = Math.max(...data.sequences.map((s) => s.length));
    this.notes = [...data.notes];
    this.sampleOf = sampleIndexer(data.sequences);
  }

  /** Split `taps` into runs whose accumulators fit the budget besides `fixedBytes`. */
  planRuns(taps: Tap[], fixedBytes: number): Tap[][] {
    const batchSize = this.opts.batchSize ?? 8;
    return planPasses(taps, this.budget, fixedBytes, (t) => tapBytes(t.channels, batchSize * this.maxLen, this.hessian, this.data.tokens));
  }

  noteProvider(provider: "cpu" | "cuda", note?: string): void {
    this.provider = provider;
    if (note && !this.notes.includes(note)) this.notes.push(note);
  }

  accumulators(taps: Tap[]): Accumulator[] {
    return taps.map((tap) => ({
      tap,
      stats: new ChannelStats(tap.channels),
      hessian: this.hessian ? new HessianAccumulator(tap.channels, tap.tensor, Math.min(hessianBufferRows(tap.channels), this.data.tokens)) : null,
    }));
  }

  async addBatch(acc: Accumulator[], batch: number[][], tensor: (name: string) => OrtTensor | undefined): Promise<void> {
    const seqLen = batch[0].length;
    const source = { samples: batch.map((s) => this.sampleOf(s)), seqLen, tokens: batch };
    // Every tap's statistics and Hessian update go to the kernels at once (they run on worker
    // threads; each accumulator still sees its batches in order).
    await Promise.all(
      acc.map((a) => {
        const x = asFloat32(tensor(a.tap.tensor), a.tap);
        const rows = x.length / a.tap.channels;
        return Promise.all([a.stats.update(x, rows, source, this.opts.signal), a.hessian?.add(x, rows, this.opts.signal)]);
      }),
    );
    this.done += batch.length * seqLen;
    this.opts.onProgress?.({ pass: this.pass, passes: this.totalPasses, tokens: this.done, totalTokens: this.totalTokens });
  }

  result(t0: number): CalibrationResult {
    return {
      model: this.model.file,
      data: this.data.file,
      tokens: this.data.tokens,
      sequences: this.data.sequences.length,
      seconds: (performance.now() - t0) / 1000,
      passes: this.pass,
      provider: this.provider,
      notes: this.notes,
      taps: this.results,
    };
  }

  /** Hand a finished run's taps to the sink (which may drop their Hessians) and keep them. */
  async finishPass(acc: Accumulator[]): Promise<TapResult[]> {
    this.pass++;
    const out: TapResult[] = [];
    for (const a of acc) {
      const r: TapResult = { tap: a.tap, stats: a.stats, hessian: a.hessian ? await a.hessian.finish(this.opts.signal) : null };
      // The result is the only holder of H from here: a sink that drops it frees it.
      a.hessian = null;
      if (this.opts.sink) {
        await this.opts.sink(r);
        r.hessian = null;
      }
      this.results.push(r);
      out.push(r);
    }
    return out;
  }
}

/**
 * The model's stages when calibrating block by block pays and is possible: at least two
 * transformer blocks, and the cut tensors of all calibration tokens (a few hidden-size vectors
 * per token) fit in a quarter of the budget. Otherwise null: whole-model passes.
 */
function stagePlanFor(model: OnnxModel, data: TokenData, taps: Tap[], opts: CalibrationOptions): { plan: StagePlan; heldBytes: number } | null {
  if (!taps.length) return null;
  const plan = planStages(model, indexLinears(model));
  if (!plan) return null;
  // The residual stream is as wide as the first block's input (q/k/v's).
  const hidden = Math.max(...selectTaps(model).filter((t) => t.block !== null).slice(0, 1).map((t) => t.channels), 1);
  const heldBytes = data.tokens * hidden * 4 * 3;
  return heldBytes <= (opts.maxMemory ?? defaultMaxMemory()) / 4 ? { plan, heldBytes } : null;
}

/**
 * The staged forward over the calibration batches, the stage each tap is read in (the one that
 * computes it; graph inputs in the first) and the last stage any tap needs.
 */
function stagedRun(ctx: PassContext, plan: StagePlan, taps: Tap[]) {
  const { model, batches, opts } = ctx;
  const initializerNames = new Set(model.graph.initializer.map((t) => t.name));
  const fwd = new StagedForward(model, plan, batches.map((b) => buildFeeds(model.graph.input, initializerNames, b)), opts);
  const stageOf = (t: Tap) => Math.max(0, plan.producerStage.get(t.tensor) ?? 0);
  return { fwd, stageOf, last: Math.max(...taps.map(stageOf)) };
}

/** Stage by stage (calib/staged.ts): each tap is read in the stage that computes it. */
async function calibrateStaged(ctx: PassContext, { plan, heldBytes }: { plan: StagePlan; heldBytes: number }, taps: Tap[]): Promise<void> {
  const { batches, opts } = ctx;
  const { fwd, stageOf, last } = stagedRun(ctx, plan, taps);
  const runs: { stage: number; taps: Tap[]; expose: string[]; advance: boolean }[] = [];
  for (let k = 0; k <= last; k++) {
    const stage = plan.stages[k];
    // What a run holds besides its accumulators: the stage's weights as onnxruntime holds them
    // (fp16 may be widened) and the cut tensors kept for every batch.
    const parts = ctx.planRuns(taps.filter((t) => stageOf(t) === k), stage.weightBytes * 2 + heldBytes);
    if (!parts.length) parts.push([]);
    const expose = parts.flat().map((t) => t.tensor);
    parts.forEach((p, i) => runs.push({ stage: k, taps: p, expose, advance: i === parts.length - 1 && k < last }));
  }
  // Progress counts the runs that read taps (a run that only carries a stage forward reports none).
  ctx.totalTokens = ctx.data.tokens * runs.filter((r) => r.taps.length).length;
  ctx.totalPasses = runs.length;
  try {
    for (const r of runs) {
      const acc = ctx.accumulators(r.taps);
      await fwd.run(r.stage, {
        taps: r.taps.map((t) => t.tensor),
        advance: r.advance,
        expose: r.expose,
        overrides: opts.weightOverrides,
        onBatch: async (b, tensors) => ctx.addBatch(acc, batches[b], (t) => tensors[t]),
      });
      ctx.noteProvider(fwd.provider, fwd.notes[0]);
      await ctx.finishPass(acc);
    }
  } catch (e) {
    throw asCalibrationCancel(e);
  }
}

/**
 * GPTQ's true-sequential calibration: `groups` (tapped tensors, in graph order) are calibrated one
 * at a time, each through the weights `onGroup` returned for every earlier group (the quantized
 * layers). Block by block when the model stages (only the block being quantized runs, from its
 * quantized inputs), else one whole-model pass per group.
 */
export async function calibrateSequential(
  model: OnnxModel,
  data: TokenData,
  groups: string[],
  onGroup: (r: TapResult) => Promise<Map<string, Float32Array>>,
  opts: Omit<CalibrationOptions, "tensors" | "weightOverrides" | "sink"> = {},
): Promise<CalibrationResult> {
  const t0 = performance.now();
  const taps = selectTaps(model, groups);
  const order = new Map(groups.map((g, i) => [g, i]));
  taps.sort((a, b) => order.get(a.tensor)! - order.get(b.tensor)!);
  const overrides = new Map<string, Float32Array>();
  const batches = equalLengthBatches(data.sequences, opts.batchSize ?? 8);
  const ctx = new PassContext(model, data, batches, opts);
  const staged = opts.staged === false ? null : stagePlanFor(model, data, taps, opts);
  const absorb = async (results: TapResult[]) => {
    for (const r of results) for (const [k, v] of await onGroup(r)) overrides.set(k, v);
  };
  if (!staged) {
    ctx.totalTokens = data.tokens * taps.length;
    ctx.totalPasses = taps.length;
    for (const tap of taps) {
      const one = await calibrate(model, data, { ...opts, staged: false, tensors: [tap.tensor], weightOverrides: overrides, sink: undefined });
      ctx.noteProvider(one.provider, one.notes.find((n) => !ctx.notes.includes(n)));
      ctx.pass++;
      ctx.results.push(...one.taps);
      await absorb(one.taps);
      for (const r of one.taps) r.hessian = null;
    }
  } else {
    const plan = staged.plan;
    const { fwd, stageOf, last } = stagedRun(ctx, plan, taps);
    ctx.totalTokens = data.tokens * taps.length;
    ctx.totalPasses = taps.length + last;
    try {
      for (let k = 0; k <= last; k++) {
        for (const tap of taps.filter((t) => stageOf(t) === k)) {
          const acc = ctx.accumulators([tap]);
          await fwd.run(k, { taps: [tap.tensor], advance: false, overrides, onBatch: (b, tensors) => ctx.addBatch(acc, batches[b], (t) => tensors[t]) });
          ctx.noteProvider(fwd.provider, fwd.notes[0]);
          // Hessians go to onGroup and are not kept: memory stays at one tap's.
          const results = await ctx.finishPass(acc);
          await absorb(results);
          for (const r of results) r.hessian = null;
        }
        // The stage once more with all of its layers quantized: the next stage's inputs.
        if (k < last) {
          await fwd.run(k, { taps: [], advance: true, overrides });
          ctx.pass++;
        }
      }
    } catch (e) {
      throw asCalibrationCancel(e);
    }
  }
  return ctx.result(t0);
}

/**
 * Re-runs of the stage (transformer block) just calibrated, from the same fp inputs, with some
 * initializers replaced: what a search measuring a whole module's output needs (AWQ's code
 * compares the attention or MLP output of a candidate against the fp one).
 */
export interface StageProbe {
  /** Transformer block of the stage (null: the part after the last block). */
  block: number | null;
  /** Tensors the stage computes (a probe can read any of them). */
  produces: Set<string>;
  /**
   * One forward of the stage over every calibration batch, `overrides` (initializer name →
   * values in the stored layout) in place of the model's weights, handing `outputs` to `onBatch`.
   * Runs reading the same `outputs` run the same graph: with no overrides they reproduce the fp
   * values a candidate is compared with bit for bit.
   */
  run(overrides: Map<string, Float32Array>, outputs: string[], onBatch: (batch: number, tensors: Record<string, OrtTensor>) => Promise<void> | void): Promise<void>;
}

/**
 * Calibrate the fp model block by block and hand each block's taps (statistics and Hessians)
 * to `onStage` together with a probe of that block, before the block's fp outputs carry the
 * forward on. Where the model does not stage (one block, blocks that interleave, or calibration
 * data too large to hold between blocks) this is one ordinary calibration and the probe is null.
 */
export async function calibrateWithProbes(
  model: OnnxModel,
  data: TokenData,
  tensors: string[],
  onStage: (results: TapResult[], probe: StageProbe | null) => Promise<void>,
  opts: Omit<CalibrationOptions, "tensors" | "weightOverrides" | "sink" | "staged"> = {},
): Promise<CalibrationResult> {
  const t0 = performance.now();
  const taps = selectTaps(model, tensors);
  const staged = stagePlanFor(model, data, taps, opts);
  if (!staged) {
    const c = await calibrate(model, data, { ...opts, tensors, staged: false });
    await onStage(c.taps, null);
    for (const r of c.taps) r.hessian = null;
    return c;
  }
  const batches = equalLengthBatches(data.sequences, opts.batchSize ?? 8);
  const ctx = new PassContext(model, data, batches, opts);
  const { plan, heldBytes } = staged;
  const { fwd, stageOf, last } = stagedRun(ctx, plan, taps);
  const runs = Array.from({ length: last + 1 }, (_, k) => ctx.planRuns(taps.filter((t) => stageOf(t) === k), plan.stages[k].weightBytes * 2 + heldBytes));
  ctx.totalTokens = data.tokens * runs.flat().length;
  ctx.totalPasses = runs.reduce((a, r) => a + r.length, 0) + last;
  try {
    for (let k = 0; k <= last; k++) {
      // A block's taps in as few runs as the budget allows (the same graph each: `expose`); the
      // block's results all go to onStage together.
      const results: TapResult[] = [];
      const expose = runs[k].flat().map((t) => t.tensor);
      for (const part of runs[k]) {
        const acc = ctx.accumulators(part);
        await fwd.run(k, { taps: part.map((t) => t.tensor), expose, advance: false, onBatch: (b, tensors) => ctx.addBatch(acc, batches[b], (t) => tensors[t]) });
        ctx.noteProvider(fwd.provider, fwd.notes[0]);
        results.push(...(await ctx.finishPass(acc)));
      }
      const stage = plan.stages[k];
      const produces = new Set<string>();
      for (const [t, s] of plan.producerStage) if (s === k) produces.add(t);
      const probe: StageProbe = {
        block: stage.block,
        produces,
        run: async (overrides, outputs, onBatch) => {
          for (const o of outputs) if (!produces.has(o)) throw new Error(`stage ${k} does not compute '${o}'`);
          await fwd.run(k, { taps: outputs, tapsOnly: true, advance: false, overrides, onBatch: async (b, t) => onBatch(b, t) });
        },
      };
      if (results.length) await onStage(results, probe);
      for (const r of results) r.hessian = null;
      if (k < last) {
        await fwd.run(k, { taps: [], advance: true });
        ctx.pass++;
      }
    }
  } catch (e) {
    throw asCalibrationCancel(e);
  }
  return ctx.result(t0);
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
