/**
 * Activation heatmap panel: layers × channels absmax (one row per distinct layer input), tokens ×
 * channels of one activation (requested), and the SmoothQuant α preview (computed in the webview
 * from the X and W column absmax).
 * host → webview: `load` (HeatmapData), `response` to `tokenHeatmap` (TokenHeatmapResult), `failed`.
 * webview → host: `ready`, `tokenHeatmap` (request), `openLayer`, `webviewError`.
 */
import type { DidFailNotification, DidLoadNotification, F32Buffer, OpenLayerCommand, ReadyMessage, ResponseMessage, RoleName, WebviewErrorMessage } from "./common";

export type ActivationKindName = "attn_in" | "attn_out" | "mlp_in" | "mlp_hidden" | "head_in" | "other";

export interface HeatmapRow {
  /** The activation tensor (input of `layers`). */
  tensor: string;
  kind: ActivationKindName;
  block: number | null;
  /** Real channels of this row (≤ HeatmapData.width; the rest is NaN padding). */
  channels: number;
  layers: string[];
  roles: RoleName[];
  /** Outlier channels, largest first. */
  outliers: number[];
}

export interface HeatmapData {
  rows: HeatmapRow[];
  width: number;
  /** max|X_j| per channel, [rows.length × width] row-major, NaN padded. */
  xAbsmax: F32Buffer;
  /**
   * max_i |W_ij| per input channel j over every layer reading the row's tensor (the W column
   * absmax SmoothQuant divides by), same layout; null when the report has no weight columns —
   * the α preview is then unavailable. report-to-panels.ts reads `weights[].col_absmax` ([in]
   * F32Blob) when the report has it, else asks `PanelOptions.weightColumns` (the host can compute
   * it from the model's weights).
   */
  wAbsmax: F32Buffer | null;
  /** The outlier rule the report used. */
  rule: { zThreshold: number; minRatio: number };
  /** Calibration tokens behind the statistics. */
  tokens: number;
  /** Whether the host can answer `tokenHeatmap` (needs the model and calibration data). */
  canRequestTokens: boolean;
  /** Calibration sequences available to `tokenHeatmap.sample`. */
  samples: number;
  /** SmoothQuant migration strength to start the α slider at. */
  defaultAlpha: number;
}

/** Tokens × channels x of one activation over one calibration sequence. */
export interface TokenHeatmapRequest {
  type: "tokenHeatmap";
  id: number;
  tensor: string;
  /** Calibration sequence index. */
  sample: number;
}

export interface TokenHeatmapResult {
  tensor: string;
  sample: number;
  tokens: number;
  channels: number;
  /** Signed x, [tokens × channels] row-major. */
  values: F32Buffer;
  /** Decoded tokens when a tokenizer is known, else []. */
  tokenText: string[];
}

export type HeatmapToWebview =
  | DidLoadNotification<"heatmap", HeatmapData>
  | ResponseMessage<TokenHeatmapResult>
  | DidFailNotification;
export type HeatmapFromWebview = ReadyMessage | TokenHeatmapRequest | OpenLayerCommand | WebviewErrorMessage;
