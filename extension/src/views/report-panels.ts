// Opening reports in panels: the report panel (every tab), the compare panel, and the requests a
// report panel sends back (re-plan, tokens × channels). Glue over report-load.ts,
// report-to-panels.ts and replan.ts.
import fs from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import { UsageError } from "../engine/errors";
import type { QuantLensReport } from "../engine/report/schema";
import type { Host } from "../commands/host";
import { calibOptions } from "../commands/settings";
import { loadReport } from "./report-load";
import { reportToCompare, reportToPanels } from "./report-to-panels";
import { tokenHeatmapForReport } from "./token-request";
import { canReplan, replanner } from "./replan";
import type { PanelHost, PanelRequest } from "./panels";

export interface ReportPanelsDeps {
  host: Host;
  panels: PanelHost;
  /** Open a layer's detail; `report`: the report the layer was picked in (else the one beside the model). */
  openLayer: (model: string, layer: string, report?: string) => Promise<void>;
  compare: (reportOrModel: string) => Promise<void>;
}

/** Whether tokens × channels can be computed for this report here (trusted, model and data present). */
export function canRequestTokens(r: QuantLensReport): boolean {
  return vscode.workspace.isTrusted && !!r.calibration?.data && fs.existsSync(r.calibration.data) && fs.existsSync(r.model.file);
}

/** The panel spec's request handler for one report file. */
export function requestHandler(deps: ReportPanelsDeps, file: string, load: () => Promise<QuantLensReport> = () => loadReport(file)): (req: PanelRequest) => Promise<unknown> {
  let cached: { report: QuantLensReport; replan: ReturnType<typeof replanner> } | undefined;
  const current = async () => {
    const report = await load();
    if (!cached || cached.report.created !== report.created) cached = { report, replan: replanner(report) };
    return cached;
  };
  return async (req) => {
    const { report, replan } = await current();
    if (req.type === "replan") return replan(req.budget);
    // tokenHeatmap: runs the model on one calibration sequence.
    if (!vscode.workspace.isTrusted) throw new UsageError("tokens × channels runs the model, which Restricted Mode does not allow; trust the workspace first");
    const s = deps.host.settings(vscode.Uri.file(report.model.file));
    return tokenHeatmapForReport(report, req.tensor, req.sample, { samples: s.samples, ...calibOptions(s) });
  };
}

/** Open (or reveal) the report panel for a report file. */
export async function openReportPanel(deps: ReportPanelsDeps, file: string): Promise<vscode.WebviewPanel> {
  const report = await loadReport(file); // fail here (a shown error), not inside an empty panel
  deps.host.log(`Opening report ${file}`);
  return deps.panels.open({
    kind: "report",
    title: `QuantLens: ${path.basename(file)}`,
    key: `report:${file}`,
    watch: [file],
    load: async () => {
      const r = await loadReport(file);
      return reportToPanels(r, { canReplan: canReplan(r), canRequestTokens: canRequestTokens(r) });
    },
    onRequest: requestHandler(deps, file),
    onOpenLayer: (layer) => void deps.host.guard("Open Layer", () => deps.openLayer(report.model.file, layer, file)),
    onCompare: () => void deps.host.guard("Compare", () => deps.compare(file)),
  });
}

/** Open the compare panel for two reports (either may be a model's inspect-only report). */
export function openComparePanel(deps: ReportPanelsDeps, a: { label: string; load: () => Promise<QuantLensReport>; file: string }, b: { label: string; load: () => Promise<QuantLensReport>; file: string }): vscode.WebviewPanel {
  return deps.panels.open({
    kind: "compare",
    title: `QuantLens: ${a.label} ↔ ${b.label}`,
    key: `compare:${a.file}:${b.file}`,
    watch: [a.file, b.file].filter((f) => f.endsWith(".json")),
    load: async () => {
      const [ra, rb] = await Promise.all([a.load(), b.load()]);
      return reportToCompare({ label: a.label, report: ra }, { label: b.label, report: rb });
    },
    onOpenLayer: (layer) => void deps.host.guard("Open Layer", async () => deps.openLayer((await a.load()).model.file, layer, a.file.endsWith(".json") ? a.file : undefined)),
  });
}
