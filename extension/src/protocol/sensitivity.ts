/**
 * Sensitivity panel: KL when one role (one row per role) or one layer is quantized alone; error
 * propagation through depth (output SQNR per layer, residual-stream relative error per block).
 * host → webview: `load` (SensitivityData), `failed`.
 * webview → host: `ready`, `openLayer`, `webviewError`.
 */
import type { DidFailNotification, DidLoadNotification, OpenLayerCommand, ReadyMessage, RoleName, WebviewErrorMessage } from "./common";

export interface SensitivityEntry {
  /** A role with by = "role", a layer name with by = "layer". */
  target: string;
  by: "role" | "layer";
  layers: string[];
  method: string;
  bits: number;
  group: number;
  klMean: number;
  klP99: number;
  top1: number;
  /** 1 = most sensitive among rows of the same method/bits/by. */
  rank: number;
}

export interface PropagationData {
  method: string;
  bits: number;
  group: number;
  tokens: number;
  /** Mean KL of the final logits. */
  klMean: number;
  /** sqnrDb null: the output is identical to float (no error reaches it; infinite SQNR). */
  layers: { layer: string; block: number | null; role: RoleName; sqnrDb: number | null; localSqnrDb: number | null }[];
  /** ‖h_q − h_fp‖/‖h_fp‖ of the residual stream after each block. */
  blocks: { block: number; tensor: string; relError: number }[];
}

export interface SensitivityData {
  byRole: SensitivityEntry[];
  byLayer: SensitivityEntry[];
  propagation: PropagationData | null;
}

export type SensitivityToWebview = DidLoadNotification<"sensitivity", SensitivityData> | DidFailNotification;
export type SensitivityFromWebview = ReadyMessage | OpenLayerCommand | WebviewErrorMessage;
