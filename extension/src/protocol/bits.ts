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
  /** bits + ceil(in/group)·(16 + bits)/in: scale and zero overhead included (bitsPerWeight). */
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
 * Bits per weight of a layer at `bits` in groups of `group` inputs, overhead included: the codes
 * plus one fp16 scale and one `bits`-bit zero point per group per output row, with the exact
 * number of groups, ceil(in/group) (the last group of a ragged layer is shorter), so
 * bits + ceil(in/g)·(16 + bits)/in. Per-channel (group 0) and groups as wide as the layer or wider
 * are one group per row. The report schema's size accounting; the same formula as
 * engine/analysis/fake-quant.ts `bitsPerWeight` (the planner's), so a plan and the Bits panel agree.
 */
export function bitsPerWeight(bits: number, group: number, inFeatures: number): number {
  const groups = group > 0 && group < inFeatures ? Math.ceil(inFeatures / group) : 1;
  return bits + (groups * (16 + bits)) / inFeatures;
}

/** Re-plan the bit allocation under a new average-bits budget. */
export interface ReplanRequest {
  type: "replan";
  id: number;
  budget: number;
}

export type BitsToWebview = DidLoadNotification<"bits", BitsData> | ResponseMessage<BitPlan> | DidFailNotification;
export type BitsFromWebview = ReadyMessage | ReplanRequest | OpenLayerCommand | WebviewErrorMessage;
