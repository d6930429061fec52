// Inspect Model, Open Report, Compare With… and the layer detail (tree selection, panel rows).
import fs from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import { inspectToReport, loadReport } from "../views/report-load";
import { openComparePanel, openReportPanel, type ReportPanelsDeps } from "../views/report-panels";
import { INSPECTOR_VIEW_TYPE } from "../views/inspector-editor";
import { inspectLayer, layerDetailMarkdown } from "../views/layer-detail";
import { readJsonReport, reportForModel } from "../views/model-source";
import { figuresFromReport } from "../views/tree-model";
import { inspectModel } from "../engine/inspect";
import { UsageError } from "../engine/errors";
import { asUri, targetModel, type Host } from "./host";
import { reportPathFor } from "./output-name";

export const LAYER_SCHEME = "quantlens-layer";

/** A report file or a model: what Open Report / Compare accept. */
function isReport(file: string): boolean {
  return /\.json$/i.test(file);
}

/** Resolve a model or report path to the report to open (the newest report describing a model: reportForModel). */
export function reportFor(file: string): string {
  if (isReport(file)) return file;
  const beside = reportForModel(file)?.file;
  if (!beside) throw new UsageError(`there is no report beside ${path.basename(file)} yet (${path.basename(reportPathFor(file))}); run “QuantLens: Analyze” or “QuantLens: Quantize” first`);
  return beside;
}

/** Layer detail as a read-only Markdown document: quantlens-layer:/<short>.md?<json {model, layer}>. */
class LayerDetailProvider implements vscode.TextDocumentContentProvider {
  constructor(private readonly host: Host) {}
  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const { model, layer, report: fromPanel } = JSON.parse(uri.query) as { model: string; layer: string; report?: string };
    try {
      // The report of the panel the layer was picked in, else the newest report describing the
      // model (its own analysis, or a quantization of it: then only the fp model's figures).
      let reportFile: string | null = null;
      let report: unknown = null;
      try {
        if (fromPanel && fs.existsSync(fromPanel)) {
          reportFile = fromPanel;
          report = readJsonReport(fromPanel);
        } else {
          const found = reportForModel(model);
          if (found) ({ file: reportFile, report } = found);
        }
      } catch (e) {
        this.host.log(`layer detail: ${(e as Error).message}`);
      }
      // A quantized model (MatMulNBits) no longer has the layer as a float linear: the report has it.
      const info = await inspectLayer(model, layer).catch((e) => {
        if (figuresFromReport(report).has(layer)) return { name: layer };
        throw e;
      });
      return layerDetailMarkdown(model, info, report, reportFile);
    } catch (e) {
      this.host.fail(e, "Layer detail");
      return `# ${layer}\n\nCould not read the layer: ${(e as Error).message}\n`;
    }
  }
}

export function registerReportCommands(host: Host, deps: ReportPanelsDeps): vscode.Disposable[] {
  const openLayer = async (model: string, layer: string, report?: string) => {
    const short = layer.split("/").filter(Boolean).slice(-3).join(".").replace(/[^\w.-]+/g, "_") || "layer";
    const uri = vscode.Uri.from({ scheme: LAYER_SCHEME, path: `/${short}.md`, query: JSON.stringify({ model, layer, ...(report ? { report } : {}) }) });
    // The preview renders the Markdown; fall back to the text if the Markdown extension is absent.
    try {
      await vscode.commands.executeCommand("markdown.showPreview", uri);
    } catch {
      await vscode.window.showTextDocument(uri, { preview: true });
    }
  };

  const openReport = async (arg?: unknown): Promise<string | undefined> => {
    let opened: string | undefined;
    await host.guard("Open Report", async () => {
      let file = asUri(arg)?.fsPath;
      if (!file) {
        const reports = await vscode.workspace.findFiles("**/*.quantlens.json", "**/node_modules/**", 200);
        if (!reports.length) throw new UsageError("there are no QuantLens reports in this workspace yet; run “QuantLens: Analyze” or “QuantLens: Quantize” on a model");
        const picked = await vscode.window.showQuickPick(
          reports.map((u) => ({ label: path.basename(u.fsPath), description: vscode.workspace.asRelativePath(path.dirname(u.fsPath)), file: u.fsPath })),
          { title: "QuantLens: open report" },
        );
        if (!picked) return;
        file = picked.file;
      }
      const report = reportFor(file);
      await openReportPanel(deps, report);
      opened = report;
    });
    return opened;
  };

  /** A side of a comparison: a report, a model's report beside it, or a model inspected on the spot. */
  const side = (file: string) => {
    // A model's own report only: a quantization's report describes the quantized model.
    const own = reportPathFor(file);
    const report = isReport(file) ? file : fs.existsSync(own) ? own : null;
    if (report) return { label: path.basename(report).replace(/\.quantlens\.json$/i, ""), file: report, load: () => loadReport(report) };
    return { label: path.basename(file), file, load: async () => inspectToReport(await inspectModel(file, { noStats: true }), file) };
  };

  const compareWith = async (arg?: unknown, other?: unknown): Promise<boolean> => {
    let done = false;
    await host.guard("Compare", async () => {
      const a = (asUri(arg) ?? (await targetModel(undefined, "Compare")))?.fsPath;
      if (!a) return;
      let b = asUri(other)?.fsPath;
      if (!b) {
        const dir = path.dirname(a);
        const near = fs.readdirSync(dir).filter((n) => /\.onnx$/i.test(n) || /\.quantlens\.json$/i.test(n)).map((n) => path.join(dir, n));
        const ws = (await vscode.workspace.findFiles("**/*.{onnx,quantlens.json}", "**/node_modules/**", 200)).map((u) => u.fsPath);
        const candidates = [...new Set([...near, ...ws])].filter((f) => f !== a && f !== reportPathFor(a) && !(isReport(a) && f.replace(/\.onnx$/i, ".quantlens.json") === a));
        type Item = vscode.QuickPickItem & { file?: string };
        const items: Item[] = candidates
          // A model and its own report are one entry (the report).
          .filter((f) => isReport(f) || !candidates.includes(reportPathFor(f)))
          .map((f) => ({ label: path.basename(f), description: vscode.workspace.asRelativePath(path.dirname(f)), detail: isReport(f) ? "report" : "model (inspected, no report yet)", file: f }));
        items.push({ label: "$(folder-opened) Browse…" });
        const picked = await vscode.window.showQuickPick(items, { title: `QuantLens: compare ${path.basename(a)} with…`, matchOnDescription: true });
        if (!picked) return;
        b = picked.file;
        if (!b) {
          const chosen = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { "Model or report": ["onnx", "json"] }, openLabel: "Compare" });
          b = chosen?.[0]?.fsPath;
          if (!b) return;
        }
      }
      const sa = side(a);
      const sb = side(b);
      // Load both now so a bad file is an error message, not an empty panel.
      await Promise.all([sa.load(), sb.load()]);
      openComparePanel(deps, sa, sb);
      done = true;
    });
    return done;
  };

  const inspect = async (arg?: unknown) => {
    await host.guard("Inspect Model", async () => {
      const uri = await targetModel(arg, "Inspect");
      if (!uri) return;
      await vscode.commands.executeCommand("vscode.openWith", uri, INSPECTOR_VIEW_TYPE);
    });
  };

  return [
    vscode.workspace.registerTextDocumentContentProvider(LAYER_SCHEME, new LayerDetailProvider(host)),
    vscode.commands.registerCommand("quantlens.inspectModel", inspect),
    vscode.commands.registerCommand("quantlens.openReport", openReport),
    vscode.commands.registerCommand("quantlens.compareWith", compareWith),
    vscode.commands.registerCommand("quantlens.openLayer", (model: unknown, layer: unknown, report?: unknown) =>
      host.guard("Open Layer", async () => {
        if (typeof model !== "string" || typeof layer !== "string") throw new UsageError("quantlens.openLayer needs a model path and a layer name");
        await openLayer(model, layer, typeof report === "string" ? report : undefined);
      }),
    ),
  ];
}
