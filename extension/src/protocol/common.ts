/**
 * Messages and data shapes every panel shares. Dependency-free (see ./index.ts for the contract
 * between the host, the HTML shell and the webview bundle).
 */

/** Which panel a webview shows: `<body data-panel="…">` in the HTML shell. */
export type PanelKind = "report" | "overview" | "heatmap" | "spectrum" | "bits" | "sensitivity" | "compare";
export const PANEL_KINDS: readonly PanelKind[] = ["report", "overview", "heatmap", "spectrum", "bits", "sensitivity", "compare"];

/**
 * Little-endian float32 values: a `Float32Array`'s exact `.buffer` (byteOffset 0, byteLength =
 * 4·length). NaN marks "no value" (padding). Posted as an ArrayBuffer, never as a JSON array.
 */
export type F32Buffer = ArrayBuffer;

/** Linear-layer roles (the engine's `Role`). */
export type RoleName = "q" | "k" | "v" | "o" | "gate" | "up" | "down" | "lm_head" | "other";
export const ROLE_ORDER: readonly RoleName[] = ["q", "k", "v", "o", "gate", "up", "down", "lm_head", "other"];

// ---- webview → host ----------------------------------------------------------------------------

/** First message of every webview, once its script runs: the host answers with `load`. */
export interface ReadyMessage {
  type: "ready";
}

/** Reveal a layer (tree view selection / layer detail). */
export interface OpenLayerCommand {
  type: "openLayer";
  layer: string;
}

/** The webview failed to render something; the host logs it to the output channel. */
export interface WebviewErrorMessage {
  type: "webviewError";
  message: string;
}

// ---- host → webview ----------------------------------------------------------------------------

/** The panel's data. Sent after `ready`, and again whenever the underlying report changes. */
export interface DidLoadNotification<P extends PanelKind, D> {
  type: "load";
  panel: P;
  data: D;
}

/** The host could not produce the panel's data (bad report, missing file …). */
export interface DidFailNotification {
  type: "failed";
  message: string;
}

/** Reply to a request, matched by `id` (the webview numbers its requests). */
export type ResponseMessage<T> =
  | { type: "response"; id: number; ok: true; result: T }
  | { type: "response"; id: number; ok: false; error: string };

// ---- shared data shapes ------------------------------------------------------------------------

/** Equal-width bins over [lo, hi): counts.length bins. */
export interface Histogram {
  lo: number;
  hi: number;
  counts: number[];
}

/** fp vs quantized on held-out tokens. */
export interface EvalSummary {
  tokens: number;
  klMean: number;
  klP99: number;
  klMax: number;
  top1: number;
  pplFp: number;
  pplQuant: number;
}

/** One linear layer: a row of the model overview table. */
export interface LayerInfo {
  name: string;
  role: RoleName;
  block: number | null;
  in: number;
  out: number;
  dtype: string;
  /** The activation tensor it reads. */
  input: string;
  method: string | null;
  bits: number | null;
  /** Inputs per scale group; 0 = per output channel. */
  group: number | null;
  /** Normalised proxy loss tr((W−Q)H(W−Q)ᵀ)/tr(WHWᵀ). */
  proxyLoss: number | null;
  /** Outlier channels of its input activation; null when the report has no activation statistics. */
  outliers: number | null;
  /** Mean KL (nats) with only this layer quantized. */
  sensitivity: number | null;
  muW: number | null;
  muH: number | null;
  /** Output SQNR (dB) of this layer in the full quantized model. */
  sqnrDb: number | null;
}
