import { CancelledError, UsageError } from "../errors";
import { indexLinears, type LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import type { TokenData } from "../calib/data";
import { calibrate, type CalibrationOptions } from "../calib/runner";
import { planTaps } from "../calib/taps";
import { WeightBank } from "./weight-bank";
import { percentile } from "../eval/metrics";
import type { SensitivityRow, SensitivitySection } from "../report/schema";
import type { Setting } from "./fake-quant";
import { VariantSession } from "./variant-session";

/**
 * Reference next-token probabilities of the fp model on held-out sequences, computed once and
 * kept (float32 softmax, [tokens × V]) so that every quantized variant costs one forward pass
 * plus the KL sums. Each sequence gives inputs ids[0..n−2] (targets ids[1..n−1], as eval.ts).
 * Memory: 4·tokens·V bytes (stories260K, 64 sequences ≈ 20k tokens × 512: ~40 MB).
 */
export class FpReference {
  private constructor(
    /** Right-padded batches of inputs; `rows[i]` maps batch i's valid positions to logits rows. */
    readonly batches: number[][][],
    readonly rows: Int32Array[],
    /** Per batch: p_fp [rows × V] (float32), and per row Σ_v p·log p and Σ_v p (float64). */
    readonly probs: Float32Array[],
    readonly plogp: Float64Array[],
    readonly psum: Float64Array[],
    readonly argmax: Int32Array[],
    readonly vocab: number,
    readonly tokens: number,
    readonly seconds: number,
  ) {}

  static async build(session: VariantSession, data: TokenData, signal?: AbortSignal, batchSize = 8): Promise<FpReference> {
    const t0 = performance.now();
    const inputs = data.sequences.filter((s) => s.length >= 2).map((s) => s.slice(0, -1));
    if (inputs.length === 0) throw new UsageError(`${data.file}: no sequence has two or more tokens to evaluate`);
    // Sequences sorted by length run `batchSize` at a time, right-padded to the longest: a causal
    // LM's logits at position t depend on tokens ≤ t only, so padding after a sequence's end
    // changes none of its positions (and padded positions are skipped). Fewer, larger runs.
    const order = inputs.map((_, i) => i).sort((x, y) => inputs[x].length - inputs[y].length);
    const batches: number[][][] = [];
    const rowMaps: Int32Array[] = [];
    for (let i = 0; i < order.length; i += batchSize) {
      const seqs = order.slice(i, i + batchSize).map((k) => inputs[k]);
      const T = seqs[seqs.length - 1].length;
      batches.push(seqs.map((q) => (q.length === T ? q : [...q, ...new Array<number>(T - q.length).fill(q[q.length - 1])])));
      const map: number[] = [];
      seqs.forEach((q, b) => {
        for (let t = 0; t < q.length; t++) map.push(b * T + t);
      });
      rowMaps.push(Int32Array.from(map));
    }
    const probs: Float32Array[] = [];
    const plogp: Float64Array[] = [];
    const psum: Float64Array[] = [];
    const argmax: Int32Array[] = [];
    let vocab = 0;
    let tokens = 0;
    for (const [i, b] of batches.entries()) {
      if (signal?.aborted) throw new CancelledError("sensitivity");
      const out = (await session.run(b, new Map(), [session.logits]))[session.logits];
      vocab = out.dims[out.dims.length - 1];
      const map = rowMaps[i];
      const rows = map.length;
      const p = new Float32Array(out.data.length);
      const e = new Float64Array(rows);
      const z = new Float64Array(rows);
      const am = new Int32Array(rows);
      const lp = new Float64Array(vocab);
      for (let r = 0; r < rows; r++) {
        am[r] = logSoftmax(out.data, map[r] * vocab, vocab, lp);
        let a = 0;
        let sum = 0;
        for (let v = 0; v < vocab; v++) {
          const pv = Math.fround(Math.exp(lp[v]));
          p[r * vocab + v] = pv;
          a += pv * lp[v];
          sum += pv;
        }
        e[r] = a;
        z[r] = sum;
      }
      probs.push(p);
      plogp.push(e);
      psum.push(z);
      argmax.push(am);
      tokens += rows;
    }
    return new FpReference(batches, rowMaps, probs, plogp, psum, argmax, vocab, tokens, (performance.now() - t0) / 1000);
  }

  /**
   * KL(fp ‖ variant) per token and top-1 agreement of a variant (weights replaced by `overrides`).
   * With the cached p (float32), Σp·log p and Σp: KL = Σ p·log p − Σ p·x_q + lse(x_q)·Σp, one
   * exp per logit.
   */
  async compare(session: VariantSession, overrides: Map<string, Float32Array>, signal?: AbortSignal): Promise<{ kl_mean: number; kl_p99: number; kl_max: number; top1: number; tokens: number }> {
    const kls = new Float64Array(this.tokens);
    let k = 0;
    let agree = 0;
    const V = this.vocab;
    for (const [i, b] of this.batches.entries()) {
      if (signal?.aborted) throw new CancelledError("sensitivity");
      const q = (await session.run(b, overrides, [session.logits]))[session.logits].data;
      const p = this.probs[i];
      const am = this.argmax[i];
      const map = this.rows[i];
      for (let r = 0; r < am.length; r++) {
        const off = map[r] * V;
        const po = r * V;
        let max = -Infinity;
        let argQ = 0;
        for (let v = 0; v < V; v++) {
          if (q[off + v] > max) {
            max = q[off + v];
            argQ = v;
          }
        }
        let s = 0;
        let px = 0;
        for (let v = 0; v < V; v++) {
          const x = q[off + v];
          s += Math.exp(x - max);
          px += p[po + v] * x;
        }
        const lse = max + Math.log(s);
        kls[k++] = Math.max(0, this.plogp[i][r] - px + lse * this.psum[i][r]);
        if (argQ === am[r]) agree++;
      }
    }
    let sum = 0;
    let max = 0;
    for (const v of kls) {
      sum += v;
      max = Math.max(max, v);
    }
    return { kl_mean: sum / k, kl_p99: percentile(kls, 99), kl_max: max, top1: agree / k, tokens: k };
  }
}

function logSoftmax(x: Float32Array, off: number, V: number, out: Float64Array): number {
  let max = -Infinity;
  let arg = 0;
  for (let v = 0; v < V; v++) {
    if (x[off + v] > max) {
      max = x[off + v];
      arg = v;
    }
  }
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(x[off + v] - max);
  const lse = max + Math.log(s);
  for (let v = 0; v < V; v++) out[v] = x[off + v] - lse;
  return arg;
}

/** One row of the table to measure: quantize `layers` (a role's, or one layer) at `setting`. */
export interface SensitivityTarget {
  target: string;
  by: "role" | "layer";
  layers: LinearLayer[];
  setting: Setting;
}

/** Targets for every role (layers of that role in all blocks) or every layer, at each setting. */
export function sensitivityTargets(layers: LinearLayer[], by: "role" | "layer", settings: Setting[]): SensitivityTarget[] {
  const out: SensitivityTarget[] = [];
  for (const setting of settings) {
    if (by === "layer") for (const l of layers) out.push({ target: l.name, by, layers: [l], setting });
    else {
      const roles = [...new Set(layers.map((l) => l.role))];
      for (const role of roles) out.push({ target: role, by, layers: layers.filter((l) => l.role === role), setting });
    }
  }
  return out;
}

export interface SensitivityOptions {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, row: SensitivityRow) => void;
}

/**
 * Measure each target: fake-quantize its layers (WeightBank), run the eval tokens through the
 * one session with those weights replaced, KL and top-1 against the cached fp reference. Ranked
 * by mean KL within each (by, method, bits, group).
 */
export async function measureSensitivity(
  session: VariantSession,
  ref: FpReference,
  bank: WeightBank,
  targets: SensitivityTarget[],
  evalInfo: { file: string; sequences: number },
  opts: SensitivityOptions = {},
): Promise<SensitivitySection> {
  const rows: SensitivityRow[] = [];
  let variantSeconds = 0;
  for (const [i, t] of targets.entries()) {
    const t0 = performance.now();
    const overrides = await bank.overrides(t.layers.map((layer) => ({ layer, setting: t.setting })), opts.signal);
    const m = await ref.compare(session, overrides, opts.signal);
    const seconds = (performance.now() - t0) / 1000;
    variantSeconds += seconds;
    const row: SensitivityRow = {
      target: t.target,
      by: t.by,
      layers: t.layers.map((l) => l.name),
      method: t.setting.method,
      bits: t.setting.bits,
      group: t.setting.group,
      kl_mean: m.kl_mean,
      kl_p99: m.kl_p99,
      top1: m.top1,
      rank: 0,
      seconds,
    };
    rows.push(row);
    opts.onProgress?.(i + 1, targets.length, row);
  }
  rankRows(rows);
  return {
    eval: { file: evalInfo.file, tokens: ref.tokens, sequences: evalInfo.sequences },
    fp_seconds: ref.seconds,
    seconds_per_variant: rows.length ? variantSeconds / rows.length : 0,
    rows,
  };
}

/** rank = 1 for the largest mean KL within each (by, method, bits, group). */
export function rankRows(rows: SensitivityRow[]): void {
  const groups = new Map<string, SensitivityRow[]>();
  for (const r of rows) {
    const k = `${r.by}|${r.method}|${r.bits}|${r.group}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const g of groups.values()) [...g].sort((a, b) => b.kl_mean - a.kl_mean).forEach((r, i) => (r.rank = i + 1));
}

export interface SensitivityRunOptions {
  /** Calibration data: Hessians for GPTQ settings. */
  data: TokenData;
  evalData: TokenData;
  by: "role" | "layer";
  settings: Setting[];
  percdamp?: number;
  calib?: Pick<CalibrationOptions, "batchSize" | "maxMemory" | "threads" | "executionProvider">;
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
}

/**
 * `quantlens sensitivity`: calibrate (only when a GPTQ setting needs Hessians), cache the fp
 * logits of the held-out tokens, then one run per (target, setting). lm_head stays float.
 */
export async function runSensitivity(model: OnnxModel, opts: SensitivityRunOptions): Promise<SensitivitySection & { calibration_seconds: number }> {
  const log = opts.onProgress ?? (() => undefined);
  const index = indexLinears(model);
  const layers = index.layers.filter((l) => ["float32", "float16", "bfloat16"].includes(l.dtype) && l.role !== "lm_head");
  const tapOf = new Map<string, string>();
  for (const t of planTaps(index)) for (const n of t.layers) tapOf.set(n, t.tensor);
  let hessians: Map<string, Float64Array> | null = null;
  let calibrationSeconds = 0;
  if (opts.settings.some((s) => s.method === "gptq")) {
    log("calibrating (GPTQ needs Hessians)");
    const h = new Map<string, Float64Array>();
    const c = await calibrate(model, opts.data, {
      ...opts.calib,
      tensors: [...new Set(layers.map((l) => tapOf.get(l.name)!))],
      signal: opts.signal,
      sink: (r) => {
        if (r.hessian) h.set(r.tap.tensor, r.hessian);
      },
    });
    hessians = h;
    calibrationSeconds = c.seconds;
  }
  const bank = new WeightBank(model, tapOf, hessians, opts.percdamp ?? 0.01);
  const session = await VariantSession.open(model, { layers, ...opts.calib });
  try {
    log("fp reference logits");
    const ref = await FpReference.build(session, opts.evalData, opts.signal);
    const targets = sensitivityTargets(layers, opts.by, opts.settings);
    const section = await measureSensitivity(session, ref, bank, targets, { file: opts.evalData.file, sequences: opts.evalData.sequences.length }, {
      signal: opts.signal,
      onProgress: (d, n, row) => log(`${d}/${n} ${row.target} ${row.method} W${row.bits}: KL ${row.kl_mean.toPrecision(3)}`),
    });
    return { ...section, calibration_seconds: calibrationSeconds };
  } finally {
    await session.release();
  }
}
