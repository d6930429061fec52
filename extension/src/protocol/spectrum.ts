/**
 * Hessian spectrum panel: log eigenvalues per layer input (one point per eigenvalue), condition
 * number and damping; μ_H and μ_W before/after rotation; weight histograms before/after
 * incoherence processing.
 * host → webview: `load` (SpectrumData), `failed`.
 * webview → host: `ready`, `openLayer`, `webviewError`.
 */
import type { DidFailNotification, DidLoadNotification, F32Buffer, Histogram, OpenLayerCommand, ReadyMessage, RoleName, WebviewErrorMessage } from "./common";

/** Eigen-analysis of one H = (2/N) Σ xᵀx. */
export interface SpectrumSeries {
  tensor: string;
  block: number | null;
  roles: RoleName[];
  /** Layers reading this input. */
  layers: string[];
  n: number;
  /** All n eigenvalues, ascending. */
  eigenvalues: F32Buffer;
  trace: number;
  /** λ_max/λ_min; null when λ_min ≤ 0. */
  conditionNumber: number | null;
  /** Of the damped H + λI GPTQ factors. */
  conditionNumberDamped: number;
  effectiveRank: number;
  /** GPTQ's damping λ = percdamp·mean(diag H). */
  damp: number;
  percdamp: number;
  deadInputs: number;
}

export interface IncoherenceInfo {
  layer: string;
  muW: number;
  muH: number | null;
  muWRotated: number;
  muHRotated: number | null;
  rotationKind: string;
  /** Weights before/after on one shared range (bins compare one to one). */
  histBefore: Histogram;
  histAfter: Histogram;
}

export interface SpectrumData {
  spectra: SpectrumSeries[];
  incoherence: IncoherenceInfo[];
}

export type SpectrumToWebview = DidLoadNotification<"spectrum", SpectrumData> | DidFailNotification;
export type SpectrumFromWebview = ReadyMessage | OpenLayerCommand | WebviewErrorMessage;
