import { CancelledError, UsageError } from "../errors";
import type { OnnxModel } from "../onnx/model";
import { createSession, type ExecutionProvider } from "../calib/session";
import { f16ToF32 } from "../kernels/index";
import { buildFeeds } from "../calib/runner";
import { tappedProto } from "../calib/taps";
import { indexLinears } from "../onnx/linear";
import type { TokenData } from "../calib/data";
import { percentile, sequenceMetrics } from "./metrics";

export interface EvalOptions {
  executionProvider?: ExecutionProvider;
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /**
   * Also tap every linear layer's output in both models (same tensor names: the exporters keep
   * them) and report each layer's output SQNR = 10·log10(Σ y_fp² / Σ (y_q − y_fp)²), the error
   * introduced there plus the error carried in from earlier layers.
   */
  perLayer?: boolean;
}

export interface LayerSqnr {
  layer: string;
  role: string;
  block: number | null;
  /** null when the outputs are identical (no error reaches this layer). */
  sqnr_db: number | null;
}

/**
 * fp vs quantized on held-out text. Each sequence (BOS + story, already truncated to the model's
 * context + 1) gives inputs ids[0..n−2] and targets ids[1..n−1]; metrics pool over all targets
 * (the stories260K README's per-story perplexity protocol).
 */
export interface EvalResult {
  tokens: number;
  sequences: number;
  ppl_fp: number;
  ppl_quant: number;
  nll_fp: number;
  nll_quant: number;
  kl_mean: number;
  kl_p99: number;
  kl_max: number;
  /** Fraction of positions where both models' argmax agree. */
  top1: number;
  seconds: number;
  provider: string;
  /** With `perLayer`: per linear layer present in both models, in graph order. */
  layers?: LayerSqnr[];
}

export async function evaluate(fp: OnnxModel, quant: OnnxModel | null, data: TokenData, opts: EvalOptions = {}): Promise<EvalResult> {
  const t0 = performance.now();
  const logitsName = outputName(fp);
  // Per-layer taps: fp linear outputs that the quantized graph also produces.
  const linears = opts.perLayer && quant ? indexLinears(fp).layers : [];
  const produced = new Set(quant ? quant.graph.node.flatMap((n) => n.output) : []);
  const tapped = linears.filter((l) => produced.has(l.output) && l.output !== logitsName);
  const taps = [...new Set(tapped.map((l) => l.output))].filter((t) => t !== logitsName);
  const a = await createSession(fp, taps.length ? tappedProto(fp.proto, taps) : fp.proto, { executionProvider: opts.executionProvider, threads: opts.threads });
  const b = quant
    ? await createSession(quant, taps.length ? tappedProto(quant.proto, taps) : quant.proto, { executionProvider: opts.executionProvider, threads: opts.threads })
    : a;
  const signal = new Float64Array(taps.length);
  const noise = new Float64Array(taps.length);
  if (quant && outputName(quant) !== logitsName) {
    throw new UsageError(`${quant.file}: its first output is '${outputName(quant)}', the fp model's is '${logitsName}'; are they the same model?`);
  }
  const initializerNames = new Map([fp, quant ?? fp].map((m) => [m, new Set(m.graph.initializer.map((t) => t.name))]));
  const kls: number[] = [];
  let nllFp = 0;
  let nllQ = 0;
  let agree = 0;
  try {
    const sequences = data.sequences.filter((s) => s.length >= 2);
    for (const [i, ids] of sequences.entries()) {
      if (opts.signal?.aborted) throw new CancelledError("evaluation");
      const inputs = ids.slice(0, -1);
      const targets = ids.slice(1);
      const float = (t: { type: string; data: unknown }) => (t.type === "float16" ? f16ToF32(t.data as Uint16Array) : (t.data as Float32Array));
      const run = async (m: OnnxModel, s: typeof a) => {
        const out = await s.session.run(buildFeeds(m.graph.input, initializerNames.get(m)!, [inputs]), [logitsName, ...taps]);
        const t = out[logitsName];
        return { data: float(t), V: t.dims[t.dims.length - 1], taps: taps.map((name) => float(out[name])) };
      };
      const p = await run(fp, a);
      const q = quant ? await run(quant, b) : p;
      for (let k = 0; k < taps.length; k++) {
        const x = p.taps[k];
        const y = q.taps[k];
        let sx = 0;
        let se = 0;
        for (let i = 0; i < x.length; i++) {
          sx += x[i] * x[i];
          const d = y[i] - x[i];
          se += d * d;
        }
        signal[k] += sx;
        noise[k] += se;
      }
      if (p.V !== q.V) throw new UsageError(`vocabulary sizes differ: ${p.V} (fp) vs ${q.V} (quantized)`);
      for (const m of sequenceMetrics(p.data, q.data, targets, p.V)) {
        kls.push(m.kl);
        nllFp += m.nllFp;
        nllQ += m.nllQuant;
        if (m.top1) agree++;
      }
      opts.onProgress?.(i + 1, sequences.length);
    }
  } finally {
    await a.release();
    if (b !== a) await b.release();
  }
  const n = kls.length;
  if (n === 0) throw new UsageError(`${data.file}: no sequence has two or more tokens to evaluate`);
  const klArr = Float64Array.from(kls);
  return {
    tokens: n,
    sequences: data.sequences.length,
    ppl_fp: Math.exp(nllFp / n),
    ppl_quant: Math.exp(nllQ / n),
    nll_fp: nllFp / n,
    nll_quant: nllQ / n,
    kl_mean: klArr.reduce((s, v) => s + v, 0) / n,
    kl_p99: percentile(klArr, 99),
    kl_max: klArr.reduce((m, v) => Math.max(m, v), 0),
    top1: agree / n,
    seconds: (performance.now() - t0) / 1000,
    provider: a.provider,
    ...(opts.perLayer
      ? {
          layers: tapped.map((l) => {
            const k = taps.indexOf(l.output);
            return { layer: l.name, role: l.role, block: l.block ?? null, sqnr_db: noise[k] > 0 ? 10 * Math.log10(signal[k] / noise[k]) : null };
          }),
        }
      : {}),
  };
}

function outputName(m: OnnxModel): string {
  const o = m.graph.output.find((x) => x.name === "logits") ?? m.graph.output[0];
  return o.name;
}
