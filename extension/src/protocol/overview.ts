/**
 * Model overview panel: the layer table (sortable, filterable).
 * host → webview: `load` (OverviewData), `failed`.
 * webview → host: `ready`, `openLayer` (a row activated), `webviewError`.
 */
import type { DidFailNotification, DidLoadNotification, EvalSummary, LayerInfo, OpenLayerCommand, ReadyMessage, WebviewErrorMessage } from "./common";

export interface ModelInfo {
  /** Absolute path of the analysed model. */
  file: string;
  /** Short title (file name). */
  title: string;
  blocks: number;
  linears: number;
  linearParams: number;
  /** ISO 8601 time the report was written, and "quantlens <version>". */
  created: string;
  generator: string;
  calibration: { data: string; tokens: number; sequences: number } | null;
  /** Remarks from the report (skipped analyses and why). */
  notes: string[];
}

/** What the report's quantize run did (absent for an analysis-only report). */
export interface QuantizationInfo {
  method: string;
  bits: number;
  group: number;
  format: string;
  output: string;
  avgBits: number;
  seconds: number;
}

export interface OverviewData {
  model: ModelInfo;
  layers: LayerInfo[];
  quantization: QuantizationInfo | null;
  eval: EvalSummary | null;
}

export type OverviewToWebview = DidLoadNotification<"overview", OverviewData> | DidFailNotification;
export type OverviewFromWebview = ReadyMessage | OpenLayerCommand | WebviewErrorMessage;
