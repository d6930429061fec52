// The VS Code face of QuantLens: thin glue over the headless engine (DESIGN.md). Commands live in
// commands/, the tree, the model inspector and the webview panels in views/; decisions are pure
// functions there, unit-tested without VS Code.
process.env.ORT_DISABLE_TELEMETRY = "1"; // before anything can load onnxruntime

import * as vscode from "vscode";
import { configureKernels } from "./engine/kernels/index";
import { setSessionHost } from "./engine/calib/session";
import { Host } from "./commands/host";
import { registerQuantizeCommands } from "./commands/quantize";
import { registerAnalyzeCommand } from "./commands/analyze";
import { registerReportCommands } from "./commands/reports";
import { PanelHost } from "./views/panels";
import { ModelTreeProvider, VIEW_ID } from "./views/model-tree";
import { ModelInspectorProvider } from "./views/inspector-editor";
import { openReportPanel, type ReportPanelsDeps } from "./views/report-panels";

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel("QuantLens");
  const host = new Host(context, output);
  // Restricted Mode: no native code until the workspace is trusted (the TypeScript kernels run,
  // and commands that run models refuse).
  configureKernels({ log: (m) => host.log(m), allowNative: vscode.workspace.isTrusted });
  // onnxruntime runs block their thread for the length of a batch: keep them off the extension
  // host's event loop (seconds per batch on a large model).
  setSessionHost("worker");
  const panels = new PanelHost(context.extensionUri, (l) => host.log(l));
  const tree = new ModelTreeProvider((l) => host.log(l));
  const deps: ReportPanelsDeps = {
    host,
    panels,
    openLayer: async (model, layer, report) => {
      await vscode.commands.executeCommand("quantlens.openLayer", model, layer, report);
    },
    compare: async (file) => {
      await vscode.commands.executeCommand("quantlens.compareWith", file);
    },
  };
  const openReport = async (file: string) => {
    await openReportPanel(deps, file);
  };
  context.subscriptions.push(
    output,
    panels,
    tree,
    vscode.window.registerTreeDataProvider(VIEW_ID, tree),
    ModelInspectorProvider.register(deps),
    ...registerQuantizeCommands(host, () => tree.refresh(), openReport),
    registerAnalyzeCommand(host, () => tree.refresh(), openReport),
    ...registerReportCommands(host, deps),
    vscode.commands.registerCommand("quantlens.refreshModels", () => tree.refresh()),
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      configureKernels({ allowNative: true });
      host.log("Workspace trusted: native kernels and model execution enabled.");
    }),
  );
}

export function deactivate(): void {}
