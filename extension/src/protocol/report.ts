/**
 * Report panel: every single-report panel as tabs of one webview (overview, heatmap, spectrum,
 * bits, sensitivity). A section the report lacks is null and `missing` says why.
 * host → webview: `load` (ReportData), `response` to `tokenHeatmap` / `replan`, `failed`.
 * webview → host: `ready`, `openLayer`, `tokenHeatmap`, `replan`, `compare`, `webviewError`.
 */
import type { DidFailNotification, DidLoadNotification, OpenLayerCommand, ReadyMessage, ResponseMessage, WebviewErrorMessage } from "./common";
import type { BitPlan, BitsData, ReplanRequest } from "./bits";
import type { HeatmapData, TokenHeatmapRequest, TokenHeatmapResult } from "./heatmap";
import type { OverviewData } from "./overview";
import type { SensitivityData } from "./sensitivity";
import type { SpectrumData } from "./spectrum";

export type ReportTab = "overview" | "heatmap" | "spectrum" | "bits" | "sensitivity";
export const REPORT_TABS: readonly ReportTab[] = ["overview", "heatmap", "spectrum", "bits", "sensitivity"];

export interface ReportData {
  overview: OverviewData;
  heatmap: HeatmapData | null;
  spectrum: SpectrumData | null;
  bits: BitsData | null;
  sensitivity: SensitivityData | null;
  /** Why a null section is missing ("run analyze with --data …"), shown in its tab. */
  missing: Partial<Record<Exclude<ReportTab, "overview">, string>>;
}

/** Ask the host to pick another report/model and open the compare panel against this one. */
export interface CompareCommand {
  type: "compare";
}

export type ReportToWebview =
  | DidLoadNotification<"report", ReportData>
  | ResponseMessage<TokenHeatmapResult | BitPlan>
  | DidFailNotification;
export type ReportFromWebview =
  | ReadyMessage
  | OpenLayerCommand
  | TokenHeatmapRequest
  | ReplanRequest
  | CompareCommand
  | WebviewErrorMessage;
