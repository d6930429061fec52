// What every command shares: the output channel, workspace trust, progress with cancel, and how
// failures are shown. The only place commands touch `window.withProgress` and error messages.
import * as vscode from "vscode";
import { classifyError } from "./errors";
import { readSettings, SECTION, type QuantLensSettings } from "./settings";

export class Host {
  constructor(
    readonly context: vscode.ExtensionContext,
    readonly output: vscode.OutputChannel,
  ) {}

  log(line: string): void {
    this.output.appendLine(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
  }

  /** Validated settings for a resource's folder (a bad value is a user error naming the setting). */
  settings(resource?: vscode.Uri): QuantLensSettings {
    const cfg = vscode.workspace.getConfiguration(SECTION, resource);
    return readSettings((key) => {
      // Only values the user set (at any level: user, remote, workspace, folder, language); the
      // rest falls back to DEFAULT_SETTINGS, which a unit test keeps equal to package.json's.
      const i = cfg.inspect(key) as Record<string, unknown> | undefined;
      const set = !!i && Object.entries(i).some(([k, v]) => v !== undefined && k !== "key" && !k.startsWith("default"));
      return set ? cfg.get(key) : undefined;
    });
  }

  /**
   * Restricted Mode: running a model or native code needs a trusted workspace. Returns false (and
   * says so, with a way out) when the workspace is not trusted; the caller then does nothing.
   */
  requireTrust(action: string): boolean {
    if (vscode.workspace.isTrusted) return true;
    this.log(`${action}: refused in Restricted Mode (the workspace is not trusted)`);
    void vscode.window
      .showWarningMessage(
        `QuantLens: ${action} runs the model and native code, which Restricted Mode does not allow. Trust this workspace to ${action.toLowerCase()}.`,
        "Manage Workspace Trust",
      )
      .then((choice) => {
        if (choice) void vscode.commands.executeCommand("workbench.trust.manage");
      });
    return false;
  }

  /**
   * Long work in a cancellable notification. Cancelling aborts the signal the engine watches; the
   * engine then throws CancelledError and the job removes what it wrote.
   */
  progress<T>(title: string, work: (signal: AbortSignal, report: (message: string, fraction?: number) => void) => Promise<T>): Thenable<T> {
    return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `QuantLens: ${title}`, cancellable: true }, (progress, token) => {
      const abort = new AbortController();
      const sub = token.onCancellationRequested(() => {
        this.log(`${title}: cancel requested`);
        abort.abort();
      });
      let last = 0;
      const report = (message: string, fraction?: number) => {
        if (fraction === undefined) return progress.report({ message });
        const pct = Math.max(0, Math.min(100, fraction * 100));
        progress.report({ message, increment: Math.max(0, pct - last) });
        last = Math.max(last, pct);
      };
      return work(abort.signal, report).finally(() => sub.dispose());
    });
  }

  /** Show a failure: cancellations quietly, user errors as what to fix, internal errors with details in the log. */
  fail(e: unknown, what: string): void {
    const f = classifyError(e, what);
    this.log(f.detail);
    if (f.kind === "cancelled") {
      void vscode.window.showInformationMessage(`QuantLens: ${f.message}`);
    } else if (f.kind === "user") {
      void vscode.window.showErrorMessage(`QuantLens: ${f.message}`);
    } else {
      void vscode.window.showErrorMessage(`QuantLens: ${f.message}`, "Show Output").then((c) => {
        if (c) this.output.show(true);
      });
    }
  }

  /** Run a command body, turning any throw into a shown failure (a command never crashes the host). */
  async guard(what: string, body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (e) {
      this.fail(e, what);
    }
  }
}

/** The .onnx a command targets: the explorer/tree argument, else the active editor's, else ask. */
export async function targetModel(arg: unknown, openLabel = "Select"): Promise<vscode.Uri | undefined> {
  const uri = asUri(arg);
  if (uri) return uri;
  const active = activeModelUri();
  if (active) return active;
  const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { "ONNX model": ["onnx"] }, openLabel });
  return picked?.[0];
}

/** A Uri from a command argument: a Uri, a tree node with `model` (path), or a path string. */
export function asUri(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri) return arg;
  if (typeof arg === "string" && arg) return vscode.Uri.file(arg);
  if (arg && typeof arg === "object") {
    const o = arg as { model?: unknown; resourceUri?: unknown; fsPath?: unknown };
    if (o.resourceUri instanceof vscode.Uri) return o.resourceUri;
    if (typeof o.model === "string") return vscode.Uri.file(o.model);
  }
  return undefined;
}

function activeModelUri(): vscode.Uri | undefined {
  const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
  const input = tab?.input;
  if (input instanceof vscode.TabInputCustom || input instanceof vscode.TabInputText) {
    if (input.uri.fsPath.toLowerCase().endsWith(".onnx")) return input.uri;
  }
  return undefined;
}
