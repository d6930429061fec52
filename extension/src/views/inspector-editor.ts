// The model inspector: a read-only custom editor for .onnx (priority "option": "Open With…").
// It shows the report panel for the model: the newest report describing it (model-source.ts
// reportForModel) when there is one, else the
// layer table from inspecting the model (weights are streamed; nothing runs the model).
import path from "node:path";
import * as vscode from "vscode";
import { inspectModel } from "../engine/inspect";
import { inspectToReport } from "./report-load";
import { reportForModel } from "./model-source";
import { validateReport } from "../engine/report/validate";
import type { QuantLensReport } from "../engine/report/schema";
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
    const { host, panels } = this.deps;
    // The newest report describing the model (its own, or a quantization's analysis of it), read
    // afresh on each load: a Quantize or Analyze run while the editor is open shows up.
    const found = (): { file: string; report: QuantLensReport } | null => {
      const f = reportForModel(file);
      return f ? { file: f.file, report: validateReport(JSON.parse(JSON.stringify(f.report)), f.file) } : null;
    };
    const answer = requestHandler(this.deps, file, async () => {
      const f = found();
      if (!f) throw new Error(`no report describes ${path.basename(file)} yet: run “QuantLens: Analyze” or “QuantLens: Quantize”`);
      return f.report;
    });
    panels.attach(
      panel.webview,
      {
        kind: "report",
        title: path.basename(file),
        key: `inspector:${file}`,
        watch: [file, path.join(path.dirname(file), "*.quantlens.json")],
        load: async () => {
          const f = found();
          if (f) {
            host.log(`Inspector: ${path.basename(file)} with ${f.file}`);
            return reportToPanels(f.report, { canReplan: canReplan(f.report), canRequestTokens: canRequestTokens(f.report) });
          }
          host.log(`Inspecting ${file}`);
          const t0 = performance.now();
          const result = await inspectModel(file);
          host.log(`Inspected ${result.linears.length} linear layers in ${((performance.now() - t0) / 1000).toFixed(2)} s (kernels: ${result.kernels.native ? result.kernels.simd : result.kernels.reason})`);
          return reportToPanels(inspectToReport(result, file));
        },
        onRequest: (req) => answer(req),
        onOpenLayer: (layer) => void host.guard("Open Layer", () => this.deps.openLayer(file, layer)),
        onCompare: () => void host.guard("Compare", () => this.deps.compare(file)),
      },
      panel,
    );
  }
}
