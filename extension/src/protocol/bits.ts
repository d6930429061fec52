/**
 * Bits panel: per-layer bit assignment (one bar per layer), model size, and a budget slider that
 * asks the host to re-plan (the knapsack runs in the host; the webview only builds requests).
 * host → webview: `load` (BitsData), `response` to `replan` (BitPlan), `failed`.
 * webview → host: `ready`, `replan` (request), `openLayer`, `webviewError`.
 */
import type { DidFailNotification, DidLoadNotification, OpenLayerCommand, ReadyMessage, ResponseMessage, RoleName, WebviewErrorMessage } from "./common";

export interface BitLayer {
  name: string;
  role: RoleName;
  block: number | null;
  /** in·out weights. */
  params: number;
  method: string;
  bits: number;
  /** Inputs per scale group; 0 = per output channel. */
  group: number;
  /** bits + (16 + bits)/group: scale and zero overhead included. */
  bitsPerWeight: number;
  proxyLoss: number | null;
}

export interface BitPlan {
  /** The budget asked for (average bits per weight, overhead included). */
  budget: number;
  avgBits: number;
  /** Σ sensitivity-weighted proxy loss; null when not predicted (a uniform quantize run). */
  predicted: number | null;
  /** Bytes of the quantized linear weights (codes + scales + zeros). */
  sizeBytes: number;
  layers: BitLayer[];
}

export interface ParetoPointInfo {
  avgBits: number;
  predicted: number;
  klMean: number | null;
}

export interface BitsData {
  plan: BitPlan;
  /** Bytes of the same linear weights in their float dtype. */
  fpSizeBytes: number;
  /** Slider range and step (average bits per weight). */
  budgetMin: number;
  budgetMax: number;
  budgetStep: number;
  pareto: ParetoPointInfo[];
  /** Whether the host can answer `replan` (needs the model's proxy table). */
  canReplan: boolean;
}

/**
 * Bits per weight of a layer at `bits` in groups of `group` inputs, overhead included:
 * bits + (16 + bits)/g (an fp16 scale and a `bits`-bit zero point per group; g = in for
 * per-channel, group 0, and for groups as wide as the layer or wider). The report schema's size
 * accounting.
 */
export function bitsPerWeight(bits: number, group: number, inFeatures: number): number {
  const g = group > 0 && group < inFeatures ? group : inFeatures;
  return bits + (16 + bits) / g;
}

/** Re-plan the bit allocation under a new average-bits budget. */
export interface ReplanRequest {
  type: "replan";
  id: number;
  budget: number;
}

export type BitsToWebview = DidLoadNotification<"bits", BitsData> | ResponseMessage<BitPlan> | DidFailNotification;
export type BitsFromWebview = ReadyMessage | ReplanRequest | OpenLayerCommand | WebviewErrorMessage;
