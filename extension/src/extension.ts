// The VS Code face of QuantLens: thin glue over the headless engine (DESIGN.md). The panels,
// tree view and quantize commands arrive with their issues; today it offers "Inspect Model".
process.env.ORT_DISABLE_TELEMETRY = "1"; // before anything can load onnxruntime

import * as vscode from "vscode";
import { inspectModel } from "./engine/inspect";
import { QuantLensError } from "./engine/errors";
import { formatInspect } from "./cli/inspect";
import { configureKernels } from "./engine/kernels/index";

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel("QuantLens");
  // Restricted Mode: no native code until the workspace is trusted (the TypeScript kernels run).
  configureKernels({ log: (m) => output.appendLine(m), allowNative: vscode.workspace.isTrusted });
  context.subscriptions.push(
    output,
    vscode.commands.registerCommand("quantlens.inspectModel", async (uri?: vscode.Uri) => {
      const target = uri ?? (await pickModel());
      if (!target) return;
      try {
        const result = await vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: "QuantLens: inspecting", cancellable: true },
          (progress, token) => {
            const abort = new AbortController();
            token.onCancellationRequested(() => abort.abort());
            return inspectModel(target.fsPath, {
              signal: abort.signal,
              onProgress: (done, total, layer) => progress.report({ message: `${done + 1}/${total} ${layer}` }),
            });
          },
        );
        output.appendLine(formatInspect(result));
        output.show(true);
      } catch (e) {
        const msg = e instanceof QuantLensError ? e.message : `internal error: ${(e as Error).message}`;
        output.appendLine(`Inspect failed: ${msg}`);
        void vscode.window.showErrorMessage(`QuantLens: ${msg}`);
      }
    }),
  );
}

export function deactivate(): void {}

async function pickModel(): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({
    canSelectMany: false,
    filters: { "ONNX model": ["onnx"] },
    openLabel: "Inspect",
  });
  return picked?.[0];
}
