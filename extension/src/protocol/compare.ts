/**
 * Compare panel: two reports side by side with per-layer deltas (b − a), computed in the webview.
 * host → webview: `load` (CompareData), `failed`.
 * webview → host: `ready`, `openLayer`, `webviewError`.
 */
import type { DidFailNotification, DidLoadNotification, OpenLayerCommand, ReadyMessage, WebviewErrorMessage } from "./common";
import type { OverviewData } from "./overview";

export interface CompareSide {
  /** What the user picked (file name of the report or model). */
  label: string;
  overview: OverviewData;
  /** Quantized linear weight bytes, when known. */
  sizeBytes: number | null;
}

export interface CompareData {
  a: CompareSide;
  b: CompareSide;
}

export type CompareToWebview = DidLoadNotification<"compare", CompareData> | DidFailNotification;
export type CompareFromWebview = ReadyMessage | OpenLayerCommand | WebviewErrorMessage;
