// The model inspector: a read-only custom editor for .onnx (priority "option": "Open With…").
// It shows the report panel for the model: the report beside it when there is one, else the
// layer table from inspecting the model (weights are streamed; nothing runs the model).
import path from "node:path";
import fs from "node:fs";
import * as vscode from "vscode";
import { inspectModel } from "../engine/inspect";
import { reportPathFor } from "../commands/output-name";
import { inspectToReport, loadReport } from "./report-load";
import { reportToPanels } from "./report-to-panels";
import { canReplan } from "./replan";
import { canRequestTokens, requestHandler, type ReportPanelsDeps } from "./report-panels";

export const INSPECTOR_VIEW_TYPE = "quantlens.modelInspector";

class ModelDocument implements vscode.CustomDocument {
  constructor(readonly uri: vscode.Uri) {}
  dispose(): void {}
}

export class ModelInspectorProvider implements vscode.CustomReadonlyEditorProvider<ModelDocument> {
  constructor(private readonly deps: ReportPanelsDeps) {}

  static register(deps: ReportPanelsDeps): vscode.Disposable {
    return vscode.window.registerCustomEditorProvider(INSPECTOR_VIEW_TYPE, new ModelInspectorProvider(deps), {
      supportsMultipleEditorsPerDocument: true,
    });
  }

  openCustomDocument(uri: vscode.Uri): ModelDocument {
    return new ModelDocument(uri);
  }

  resolveCustomEditor(document: ModelDocument, panel: vscode.WebviewPanel): void {
    const file = document.uri.fsPath;
    const report = reportPathFor(file);
    const { host, panels } = this.deps;
    const answer = requestHandler(this.deps, report);
    panels.attach(
      panel.webview,
      {
        kind: "report",
        title: path.basename(file),
        key: `inspector:${file}`,
        watch: [file, report],
        load: async () => {
          if (fs.existsSync(report)) {
            const r = await loadReport(report);
            return reportToPanels(r, { canReplan: canReplan(r), canRequestTokens: canRequestTokens(r) });
          }
          host.log(`Inspecting ${file}`);
          const t0 = performance.now();
          const result = await inspectModel(file);
          host.log(`Inspected ${result.linears.length} linear layers in ${((performance.now() - t0) / 1000).toFixed(2)} s (kernels: ${result.kernels.native ? result.kernels.simd : result.kernels.reason})`);
          return reportToPanels(inspectToReport(result, file));
        },
        onRequest: (req) => {
          if (!fs.existsSync(report)) throw new Error(`no report beside ${path.basename(file)} to answer '${req.type}'`);
          return answer(req);
        },
        onOpenLayer: (layer) => void host.guard("Open Layer", () => this.deps.openLayer(file, layer)),
        onCompare: () => void host.guard("Compare", () => this.deps.compare(file)),
      },
      panel,
    );
  }
}
