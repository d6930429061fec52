// What the Quantize notification says at each stage of a one-click run, and how far along it is.
// The engine logs terse messages ("gptq /model/layers.0/…/q_proj/MatMul", "spectrum of …",
// "sensitivity 3/42: …"); this turns them into "quantizing layer 3/35: block 0 v_proj",
// "analysing: Hessian spectra and proxy losses 7/36" with a fraction of the whole job. Pure (no
// `vscode`), so it is unit-tested.
import { shortLayerName } from "../views/tree-model";

export interface JobShape {
  /** Layers the quantization will quantize. */
  layers: number;
  /** Distinct tapped inputs (Hessians) and layers the analysis covers; 0 when no analysis follows. */
  analysisTaps: number;
  analysisLayers: number;
  /** Calibration sequences and tokens (null without calibration data). */
  sequences: number | null;
  tokens: number | null;
}

/** Where each stage sits in [0, 1] when an analysis follows the quantization (else quantize fills 0–0.9). */
const WITH_ANALYSIS = { quantize: [0.02, 0.3], export: 0.31, calib: [0.33, 0.42], proxy: [0.42, 0.55], outliers: 0.56, propagation: [0.57, 0.7], sensitivity: [0.7, 0.94], eval: 0.95 } as const;
const QUANTIZE_ONLY = { quantize: [0.02, 0.9], export: 0.92 } as const;

export interface ProgressStep {
  message: string;
  fraction?: number;
}

/**
 * A narrator for one job: `quantize(msg)` for the quantizer's messages, `export(format, file)`,
 * `analysis(msg)` for the report's analysis messages. Each returns the message to show and the
 * fraction done (undefined when the message adds nothing new).
 */
export class JobProgress {
  private quantized = 0;
  private spectra = 0;
  private proxied = 0;
  private readonly withAnalysis: boolean;

  constructor(private readonly shape: JobShape) {
    this.withAnalysis = shape.analysisLayers > 0;
  }

  start(): ProgressStep {
    return { message: "loading the model", fraction: 0 };
  }

  /** Before the quantizer starts: calibration runs first when there is data. */
  calibrating(): ProgressStep {
    const s = this.shape;
    const what = s.sequences !== null ? `calibrating on ${s.sequences} sequence${s.sequences === 1 ? "" : "s"}${s.tokens !== null ? ` (${s.tokens.toLocaleString("en-US")} tokens)` : ""}, then quantizing` : "quantizing";
    return { message: what, fraction: 0.01 };
  }

  quantize(msg: string): ProgressStep | undefined {
    const m = /^(rtn|gptq|awq|smoothquant|quip) (.+)$/.exec(msg);
    if (!m) {
      const b = /^calibrating block (\S+)/.exec(msg);
      return b ? { message: `calibrating block ${b[1]} through the quantized blocks before it` } : undefined;
    }
    this.quantized++;
    const [lo, hi] = this.withAnalysis ? WITH_ANALYSIS.quantize : QUANTIZE_ONLY.quantize;
    const n = Math.max(this.shape.layers, this.quantized);
    return { message: `quantizing layer ${this.quantized}/${n} (${m[1].toUpperCase()}): ${layerLabel(m[2])}`, fraction: lo + ((hi - lo) * this.quantized) / n };
  }

  export(format: string, file: string): ProgressStep {
    return { message: `exporting ${FORMAT_NAMES[format] ?? format} → ${file}`, fraction: this.withAnalysis ? WITH_ANALYSIS.export : QUANTIZE_ONLY.export };
  }

  analysis(msg: string): ProgressStep | undefined {
    const S = WITH_ANALYSIS;
    const s = this.shape;
    let m: RegExpExecArray | null;
    if (msg === "calibrating") return { message: "analysing: activation statistics and Hessians", fraction: S.calib[0] };
    if ((m = /^calibrating: (\d+)\/(\d+) tokens/.exec(msg))) {
      const done = Number(m[1]);
      const total = Math.max(1, Number(m[2]));
      return { message: `analysing: activation statistics and Hessians, ${done.toLocaleString("en-US")}/${total.toLocaleString("en-US")} tokens`, fraction: lerp(S.calib, Math.min(1, done / total)) };
    }
    if (/^spectrum of /.test(msg)) {
      this.spectra++;
      return { message: `analysing: Hessian spectrum ${this.spectra}/${Math.max(s.analysisTaps, this.spectra)}`, fraction: lerp(S.proxy, this.proxied / Math.max(1, s.analysisLayers)) };
    }
    if ((m = /^incoherence and proxy losses of (.+)$/.exec(msg))) {
      this.proxied++;
      const n = Math.max(s.analysisLayers, this.proxied);
      return { message: `analysing: incoherence and proxy losses, layer ${this.proxied}/${n} (${layerLabel(m[1])})`, fraction: lerp(S.proxy, this.proxied / n) };
    }
    if (msg === "counting outlier tokens") return { message: "analysing: counting outlier tokens", fraction: S.outliers };
    if ((m = /^error propagation \((.+)\)$/.exec(msg))) return { message: `analysing: error propagation through depth (${m[1]}, fp vs quantized, every layer tapped)`, fraction: S.propagation[0] };
    if (msg === "fp reference logits") return { message: "analysing: sensitivity, fp reference logits", fraction: S.propagation[1] };
    if ((m = /^sensitivity (\d+)\/(\d+): (\S+)/.exec(msg))) {
      const d = Number(m[1]);
      const n = Math.max(1, Number(m[2]));
      const target = m[3].includes("/") ? layerLabel(m[3]) : `role ${m[3]}`;
      return { message: `analysing: sensitivity ${d}/${n} (${target} alone quantized)`, fraction: lerp(S.sensitivity, d / n) };
    }
    if (msg === "fp vs quantized on held-out text") return { message: "evaluating: fp vs quantized on held-out text (KL, top-1, perplexity)", fraction: S.eval };
    return undefined;
  }
}

const FORMAT_NAMES: Record<string, string> = { matmulnbits: "MatMulNBits", qdq: "QDQ", fake: "fake-quant" };

function lerp([lo, hi]: readonly [number, number], t: number): number {
  return lo + (hi - lo) * Math.max(0, Math.min(1, t));
}

/** "block 0 q_proj" from "/model/layers.0/self_attn/q_proj/MatMul"; "lm_head" outside blocks. */
export function layerLabel(name: string): string {
  const b = /layers?[._](\d+)/.exec(name);
  return `${b ? `block ${b[1]} ` : ""}${shortLayerName(name)}`;
}
