/**
 * The QuantLens report: what `quantlens analyze` (and `quantize`, beside its output) writes, and
 * what the webview panels read. Format `quantlens-report`, version 1. This file is the contract:
 * it has no imports, so host, CLI and webview protocol code can all take its types.
 *
 * Conventions
 * - Keys are snake_case (like the CLI's `--json`); `in`/`out` are a linear layer's input/output
 *   features. Every section except `format`, `version`, `created`, `generator`, `model` and
 *   `layers` is optional: a report holds what was computed (`sections` lists them).
 * - Layers are named by their ONNX node name (`LinearLayer.name`); activations by the tensor a
 *   layer reads (`tensor`, one per share group: q/k/v share one, gate/up share one).
 * - `group` is the number of consecutive input channels sharing one scale/zero; 0 = one per
 *   output channel (per-channel).
 * - Bulk arrays are `F32Blob`s: `{encoding: "f32le-base64", length, data}` where `data` is the
 *   base64 (RFC 4648, with padding) of `length` little-endian IEEE-754 float32 values. The host
 *   decodes one with `decodeF32()` and posts the `Float32Array`'s buffer to the webview as an
 *   ArrayBuffer (no copy through JSON arrays). NaN marks "no value" (padding, undefined metric).
 *   Small, fixed-size series (histogram counts, per-block rows) are plain number arrays.
 * - Matrices are row-major; their shape is stated next to the blob (`rows`, `width`, …).
 * - Losses: `proxy_loss` is GPTQ's `tr((W−Q) H (W−Q)ᵀ)` normalised by `tr(W H Wᵀ)` (0 = exact,
 *   1 = as large as the layer's output energy), with H = (2/N) Σ xᵀx from calibration. Its
 *   square-root is the relative RMS error of the layer's output on the calibration tokens.
 * - KL is KL(p_fp ‖ p_quant) of next-token distributions in nats, averaged over held-out tokens.
 *
 * Size accounting (the bit plan's `avg_bits`, `bits_per_weight`): a layer with `in` inputs at
 * `bits` bits in groups of `g` inputs costs `bits + ceil(in/g)·(16 + bits)/in` bits per weight:
 * one float16 scale (2 bytes) and one zero point stored at `bits` bits (packed, as MatMulNBits
 * stores them) per group per output row, counting the exact number of groups (a ragged layer's
 * last group is shorter: 172 inputs at g 128 are 2 groups). Per-channel (group 0), and g ≥ in,
 * is one group per row. Layers left in float (lm_head by default) are not counted.
 */

export const REPORT_FORMAT = "quantlens-report";
export const REPORT_VERSION = 1;

/** Little-endian float32 values, base64-encoded (see the header comment). */
export interface F32Blob {
  encoding: "f32le-base64";
  length: number;
  data: string;
}

export type Role = "q" | "k" | "v" | "o" | "gate" | "up" | "down" | "lm_head" | "other";
export type QuantMethodName = "rtn" | "gptq" | "awq" | "smoothquant" | "quip";
export type Bits = 2 | 3 | 4 | 8;

/**
 * What an activation is, from the roles of the layers reading it:
 * `attn_in` (q/k/v: the normed residual stream), `attn_out` (o: attention output),
 * `mlp_in` (gate/up: the normed residual stream), `mlp_hidden` (down: the MLP's inner
 * activation), `head_in` (lm_head), `other`. Channels of `attn_in`/`mlp_in`/`head_in` are
 * residual-stream (hidden) channels, comparable across blocks.
 */
export type ActivationKind = "attn_in" | "attn_out" | "mlp_in" | "mlp_hidden" | "head_in" | "other";

export type ReportSection =
  | "activations"
  | "heatmap"
  | "token_heatmaps"
  | "persistence"
  | "weights"
  | "incoherence"
  | "spectra"
  | "proxy"
  | "sensitivity"
  | "propagation"
  | "plan"
  | "quantization";

export interface QuantLensReport {
  format: typeof REPORT_FORMAT;
  version: typeof REPORT_VERSION;
  /** ISO 8601 time the report was written. */
  created: string;
  /** "quantlens <version>". */
  generator: string;
  model: ModelSummary;
  /** The sections present (those computed), in the order below. */
  sections: ReportSection[];
  calibration: CalibrationSummary | null;
  /** One row per linear layer (quantized or not), in graph order: the inspector's table. */
  layers: LayerRow[];
  activations?: ActivationRow[];
  heatmap?: Heatmap;
  token_heatmaps?: TokenHeatmap[];
  persistence?: PersistentOutlier[];
  weights?: WeightRow[];
  incoherence?: IncoherenceRow[];
  spectra?: SpectrumRow[];
  proxy?: ProxyTable;
  sensitivity?: SensitivitySection;
  propagation?: PropagationSection;
  plan?: PlanSection;
  quantization?: QuantizationSection;
  /** Human-readable remarks (skipped analyses and why, fallbacks used). */
  notes: string[];
}

export interface ModelSummary {
  /** Absolute path of the analysed model. */
  file: string;
  /** Transformer blocks found. */
  blocks: number;
  /** Linear layers found. */
  linears: number;
  /** Weights in linear layers (Σ in·out). */
  linear_params: number;
}

export interface CalibrationSummary {
  data: string;
  tokens: number;
  sequences: number;
  seconds: number;
  provider: string;
}

export interface LayerRow {
  name: string;
  role: Role;
  block: number | null;
  in: number;
  out: number;
  dtype: string;
  /** The activation tensor it reads (key into `activations`, `spectra`). */
  input: string;
  /** Settings of the quantization this report describes (a quantize run, else the plan), null = float. */
  method: QuantMethodName | null;
  bits: number | null;
  group: number | null;
  /** Normalised proxy loss at those settings (else at the analysis default, 4-bit RTN g128); null without calibration. */
  proxy_loss: number | null;
  /** Outlier channels in its input activation. */
  outlier_count: number;
  /** Mean KL when only this layer is quantized (from `sensitivity` by layer), null when not measured. */
  sensitivity: number | null;
  mu_w: number | null;
  mu_h: number | null;
}

/** A histogram with equal-width bins over [lo, hi): counts.length bins. */
export interface Histogram {
  lo: number;
  hi: number;
  counts: number[];
}

/**
 * A log2-magnitude histogram (calibration's): bin 0 counts |x| < 2^min_exp (zeros included);
 * bin i ≥ 1 counts 2^(min_exp + (i−1)/bins_per_octave) ≤ |x| < 2^(min_exp + i/bins_per_octave);
 * the last bin also takes everything above.
 */
export interface LogHistogram {
  min_exp: number;
  bins_per_octave: number;
  counts: number[];
}

export interface OutlierChannelRow {
  channel: number;
  absmax: number;
  /** absmax / median channel absmax. */
  ratio: number;
  /** Robust z-score (absmax − median) / (1.4826·MAD). */
  score: number;
  /** Tokens whose |x_c| exceeds `ActivationRow.outlier_threshold` (null when not counted). */
  tokens: number | null;
  /** tokens / tokens seen. */
  token_fraction: number | null;
}

/** One tapped activation: per-channel statistics and its outlier channels. */
export interface ActivationRow {
  tensor: string;
  kind: ActivationKind;
  block: number | null;
  layers: string[];
  roles: Role[];
  channels: number;
  tokens: number;
  /** Per-channel max |x|, [channels]. */
  absmax: F32Blob;
  /** Per-channel mean and excess kurtosis, [channels]. */
  mean: F32Blob;
  kurtosis: F32Blob;
  median_absmax: number;
  /**
   * The magnitude a value must exceed to count as an outlier token of an outlier channel:
   * min_ratio × median channel absmax (the rule's ratio floor, in activation units).
   */
  outlier_threshold: number;
  /** Outlier channels (rule in `heatmap.rule`), largest first. */
  outliers: OutlierChannelRow[];
  hist: LogHistogram;
  /** Per-token L2 norms: median, p99 and max. */
  token_norm: { median: number; p99: number; max: number };
  /** Tokens holding the largest |x| (calibration sample index, position, token id). */
  top_tokens: { sample: number; position: number; token: number; channel: number; value: number; norm: number }[];
}

/**
 * Layers × channels absmax, for the activation heatmap: row r is `rows[r]` (the same order as
 * `activations`), `values` is [rows.length × width] row-major, rows shorter than `width` padded
 * with NaN. Outlier cells: `activations[r].outliers[*].channel`.
 */
export interface Heatmap {
  rows: { tensor: string; kind: ActivationKind; block: number | null; channels: number }[];
  width: number;
  values: F32Blob;
  rule: { z_threshold: number; min_ratio: number };
}

/** Tokens × channels signed x of one activation over one calibration sequence (on request). */
export interface TokenHeatmap {
  tensor: string;
  /** Calibration sequence index. */
  sample: number;
  /** Token ids of the sequence, [tokens]. */
  token_ids: number[];
  /** Decoded token strings when the model folder has a tokenizer, else absent. */
  token_text?: string[];
  tokens: number;
  channels: number;
  /** [tokens × channels] row-major. */
  values: F32Blob;
}

/** A residual-stream channel flagged as an outlier in more than one block. */
export interface PersistentOutlier {
  channel: number;
  /** Blocks where it is flagged (any residual-stream activation of the block), ascending. */
  blocks: number[];
  /** The activations where it is flagged. */
  tensors: string[];
  /** Largest ratio to the median absmax across those. */
  max_ratio: number;
}

export interface WeightRow {
  layer: string;
  absmax: number;
  mean: number;
  std: number;
  /** Excess kurtosis of all weights. */
  kurtosis: number;
  /** Per output channel (row of W [out × in]) absmax, std and excess kurtosis, [out]. */
  row_absmax: F32Blob;
  row_std: F32Blob;
  row_kurtosis: F32Blob;
  /**
   * Per input channel (column of W) max_i |W_ij|, [in]: SmoothQuant's max|W_j| for this layer (the
   * α preview takes the max over the layers sharing the input). Optional: reports written before
   * it was added lack it (same format version).
   */
  col_absmax?: F32Blob;
  /** Output channels whose absmax is an outlier among rows (same MAD rule as activations). */
  outlier_rows: { channel: number; absmax: number; ratio: number; score: number }[];
}

/** QuIP incoherence of one layer, before and after the rotation QuIP applies. */
export interface IncoherenceRow {
  layer: string;
  /** μ_W = max|W_ij|·√(mn)/‖W‖_F. */
  mu_w: number;
  /** μ_H = max|Q_ij|·√n over the eigenvectors Q of H (null without calibration). */
  mu_h: number | null;
  mu_w_rotated: number;
  mu_h_rotated: number | null;
  /** The rotation: W ← U W Vᵀ, H ← V H Vᵀ; U: [out × out] seed_u, V: [in × in] seed_v. */
  rotation: { kind: string; seed_u: number; seed_v: number; source: "quip" | "analysis"; /** draws compared (absent: 1) */ tries?: number };
  /** Weights before/after, on one shared symmetric range so the two compare bin by bin. */
  hist_before: Histogram;
  hist_after: Histogram;
}

/** Eigen-analysis of one distinct Hessian H = (2/N) Σ xᵀx. */
export interface SpectrumRow {
  tensor: string;
  block: number | null;
  roles: Role[];
  n: number;
  /** All eigenvalues, ascending, [n]. */
  eigenvalues: F32Blob;
  trace: number;
  /** λ_max / λ_min (Infinity → null when λ_min ≤ 0). */
  condition_number: number | null;
  /** Condition number of the damped H + λI that GPTQ factors. */
  condition_number_damped: number;
  /** exp(entropy of λ_i/Σλ) (Roy & Vetterli), in [1, n]. */
  effective_rank: number;
  /** tr(D)/tr(H) for the LDL factorisation H + λI = L D Lᵀ (L unit lower). */
  ldl_trace_ratio: number;
  /** GPTQ's damping λ = percdamp · mean(diag H), and percdamp. */
  damp: number;
  percdamp: number;
  /** Inputs with H_ii = 0 (GPTQ zeroes their weights). */
  dead_inputs: number;
}

/** Proxy loss per layer × method × bits × group (computed from weights and H, no model run). */
export interface ProxyTable {
  methods: QuantMethodName[];
  bits: number[];
  groups: number[];
  rows: { layer: string; method: QuantMethodName; bits: number; group: number; proxy_loss: number; seconds: number }[];
}

export interface SensitivityRow {
  /** A role ("v", "o", …) with `by: "role"`, a layer name with `by: "layer"`. */
  target: string;
  by: "role" | "layer";
  /** Layers quantized for this row. */
  layers: string[];
  method: QuantMethodName;
  bits: number;
  group: number;
  kl_mean: number;
  kl_p99: number;
  top1: number;
  /** Rank by kl_mean within rows of the same method/bits/by (1 = most sensitive). */
  rank: number;
  seconds: number;
}

export interface SensitivitySection {
  eval: { file: string; tokens: number; sequences: number };
  /** Seconds to compute and cache the fp logits (once). */
  fp_seconds: number;
  /** Seconds per quantized variant (weights + one pass over the eval tokens), mean. */
  seconds_per_variant: number;
  rows: SensitivityRow[];
}

/** fp vs quantized run on the same tokens, with every linear output and block output tapped. */
export interface PropagationSection {
  method: QuantMethodName;
  bits: number;
  group: number;
  tokens: number;
  layers: {
    layer: string;
    block: number | null;
    role: Role;
    /** 10·log10(Σ y_fp² / Σ (y_q − y_fp)²) of the layer's output in the full quantized model; null = identical (no error reaches it). */
    sqnr_db: number | null;
    /** The same for this layer alone on fp inputs: −10·log10(proxy_loss); null without it. */
    local_sqnr_db: number | null;
  }[];
  /** ‖h_q − h_fp‖/‖h_fp‖ of the residual stream after each block (Frobenius over tokens). */
  blocks: { block: number; tensor: string; rel_error: number }[];
  /** Mean KL of the final logits (the end of the chain). */
  kl_mean: number;
}

/** The plan file `quantize --plan` executes (quant/plan.ts reads and validates it). */
export interface PlanFile {
  format: "quantlens-plan";
  version: 1;
  /** The model it was planned for (file name; informative). */
  model: string;
  /** Budget in average bits per weight, scale/zero overhead included. */
  budget: number;
  /** Achieved average bits per weight (≤ budget). */
  avg_bits: number;
  layers: PlanLayer[];
}

export interface PlanLayer {
  name: string;
  method: "rtn" | "gptq";
  bits: Bits;
  group: number;
}

export interface ParetoPoint {
  avg_bits: number;
  /** Σ sensitivity-weighted proxy loss (the knapsack's objective). */
  predicted: number;
  /** Measured quantize → eval mean KL and top-1, for the points that were measured. */
  kl_mean?: number;
  top1?: number;
}

export interface PlanSection {
  plan: PlanFile;
  predicted: number;
  /** Per layer: the choice, its cost and predicted error. */
  layers: { name: string; method: "rtn" | "gptq"; bits: Bits; group: number; bits_per_weight: number; weight: number; proxy_loss: number; predicted: number }[];
  /** Minimal predicted error for each size on the achievable frontier, ascending avg_bits. */
  pareto: ParetoPoint[];
  /**
   * Every layer's choices (the knapsack's input), so a host can re-plan for another budget
   * without the model (analysis/bit-plan.ts itemsFromSection + planForBudget): the budget slider.
   */
  candidates?: {
    name: string;
    params: number;
    cols: number;
    /** KL per unit normalised proxy loss (measured sensitivity). */
    coefficient: number;
    choices: { method: "rtn" | "gptq"; bits: Bits; group: number; bits_per_weight: number; proxy_loss: number; predicted: number }[];
  }[];
  /** Plan vs uniform quantization at the same size, measured (when run). */
  comparisons?: { budget: number; plan_avg_bits: number; plan_kl_mean: number; plan_top1: number; uniform: { method: string; bits: number; group: number; avg_bits: number; kl_mean: number; top1: number } }[];
  overhead: { scale_bytes: 2; zero_bits: "bits" };
}

/** The per-layer result of a quantize run (the report written beside the quantized model). */
export interface QuantizationSection {
  method: string;
  bits: number;
  group: number;
  format: string;
  output: string;
  seconds: number;
  avg_bits: number;
  plan: string | null;
  layers: {
    name: string;
    method: string;
    bits: number;
    group: number;
    proxy_loss: number | null;
    proxy_loss_rtn: number | null;
    damp: number | null;
    dead_columns: number | null;
    seconds: number;
  }[];
  kept: { name: string; reason: string }[];
  eval?: { tokens: number; kl_mean: number; kl_p99: number; kl_max: number; top1: number; ppl_fp: number; ppl_quant: number };
}

// ---- F32Blob codec (no dependencies: Buffer in Node, atob/btoa elsewhere) ----

interface BufferLike {
  from(data: ArrayBufferView | string, encodingOrOffset?: string | number, length?: number): { toString(enc: string): string; buffer: ArrayBuffer; byteOffset: number; byteLength: number };
}
const NodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Encode numbers as an F32Blob (values are rounded to float32). */
export function encodeF32(values: ArrayLike<number>): F32Blob {
  const f = values instanceof Float32Array ? values : Float32Array.from(values);
  const bytes = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  const le = littleEndian ? bytes : swap4(bytes);
  let data: string;
  if (NodeBuffer) data = NodeBuffer.from(le).toString("base64");
  else {
    let s = "";
    for (let i = 0; i < le.length; i += 0x8000) s += String.fromCharCode(...le.subarray(i, i + 0x8000));
    data = btoa(s);
  }
  return { encoding: "f32le-base64", length: f.length, data };
}

/** Decode an F32Blob into a fresh Float32Array (its `.buffer` is exactly the values). */
export function decodeF32(blob: F32Blob): Float32Array {
  let bytes: Uint8Array;
  if (NodeBuffer) {
    const b = NodeBuffer.from(blob.data, "base64");
    bytes = new Uint8Array(b.byteLength);
    bytes.set(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  } else {
    const s = atob(blob.data);
    bytes = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  }
  if (bytes.length !== blob.length * 4) throw new RangeError(`F32Blob: ${bytes.length} bytes of data for length ${blob.length} (expected ${blob.length * 4})`);
  const out = new Float32Array(littleEndian ? bytes.buffer : swap4(bytes).buffer);
  return out;
}

function swap4(b: Uint8Array): Uint8Array {
  const o = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i += 4) {
    o[i] = b[i + 3];
    o[i + 1] = b[i + 2];
    o[i + 2] = b[i + 1];
    o[i + 3] = b[i];
  }
  return o;
}
