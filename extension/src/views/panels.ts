// The webview panel host: one webview per panel, HTML from html.ts, every incoming message
// validated (webviews are untrusted), data sent on `ready` and again when the files behind it
// change. Bulk arrays go out as the ArrayBuffers the panel data holds (never JSON arrays).
import path from "node:path";
import * as vscode from "vscode";
import type { PanelKind } from "../protocol/common";
import { validateWebviewMessage, type WebviewMessage } from "../protocol/validate";
import { classifyError } from "../commands/errors";
import { WEBVIEW_DIST, WEBVIEW_SCRIPT, WEBVIEW_STYLE, webviewHtml } from "./html";

/** Requests a panel may answer (`id`-matched responses). */
export type PanelRequest = Extract<WebviewMessage, { id: number }>;

export interface PanelSpec<D> {
  kind: PanelKind;
  title: string;
  /** Identity: opening the same key again reveals the existing panel. */
  key: string;
  /** The panel's data (called on `ready` and on every change of `watch`). */
  load: () => Promise<D>;
  /** Files whose change reloads the panel. */
  watch?: string[];
  onRequest?: (request: PanelRequest) => Promise<unknown>;
  onOpenLayer?: (layer: string) => void;
  onCompare?: () => void;
}

export class PanelHost implements vscode.Disposable {
  private readonly panels = new Map<string, vscode.WebviewPanel>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly log: (line: string) => void,
  ) {}

  /** The options every QuantLens webview gets: scripts on, resources only from dist/webview. */
  webviewOptions(): vscode.WebviewOptions {
    return { enableScripts: true, enableCommandUris: false, localResourceRoots: [this.assetRoot()] };
  }

  private assetRoot(): vscode.Uri {
    return vscode.Uri.joinPath(this.extensionUri, ...WEBVIEW_DIST);
  }

  /** Open (or reveal) a panel. Returns the webview panel (tests and commands may inspect it). */
  open<D>(spec: PanelSpec<D>, column: vscode.ViewColumn = vscode.ViewColumn.Active): vscode.WebviewPanel {
    const existing = this.panels.get(spec.key);
    if (existing) {
      existing.reveal(column);
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(`quantlens.${spec.kind}`, spec.title, column, this.webviewOptions());
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, "media", "quantlens.svg");
    this.panels.set(spec.key, panel);
    panel.onDidDispose(() => this.panels.delete(spec.key));
    this.attach(panel.webview, spec, panel);
    return panel;
  }

  /** Wire a webview (a panel, or a custom editor's) to a spec. */
  attach<D>(webview: vscode.Webview, spec: PanelSpec<D>, owner: { onDidDispose: vscode.Event<void> }): void {
    webview.options = this.webviewOptions();
    const root = this.assetRoot();
    webview.html = webviewHtml({
      panel: spec.kind,
      title: spec.title,
      cspSource: webview.cspSource,
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(root, WEBVIEW_SCRIPT)).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(root, WEBVIEW_STYLE)).toString(),
    });
    const disposables: vscode.Disposable[] = [];
    let ready = false;
    const send = async () => {
      try {
        const data = await spec.load();
        await webview.postMessage({ type: "load", panel: spec.kind, data });
      } catch (e) {
        const f = classifyError(e, `${spec.title}`);
        this.log(f.detail);
        await webview.postMessage({ type: "failed", message: f.kind === "internal" ? `internal error: ${(e as Error)?.message ?? e}` : (e as Error).message });
      }
    };
    disposables.push(
      webview.onDidReceiveMessage(async (raw: unknown) => {
        const v = validateWebviewMessage(spec.kind, raw);
        if (!v.ok) {
          this.log(`ignored a message from the ${spec.kind} webview: ${v.error}`);
          return;
        }
        const msg = v.message;
        switch (msg.type) {
          case "ready":
            ready = true;
            await send();
            return;
          case "webviewError":
            this.log(`${spec.kind} webview: ${msg.message}`);
            return;
          case "openLayer":
            spec.onOpenLayer?.(msg.layer);
            return;
          case "compare":
            spec.onCompare?.();
            return;
          case "tokenHeatmap":
          case "replan": {
            if (!spec.onRequest) {
              await webview.postMessage({ type: "response", id: msg.id, ok: false, error: `the ${spec.kind} panel cannot answer '${msg.type}' here` });
              return;
            }
            try {
              const result = await spec.onRequest(msg);
              await webview.postMessage({ type: "response", id: msg.id, ok: true, result });
            } catch (e) {
              const f = classifyError(e, msg.type);
              this.log(f.detail);
              await webview.postMessage({ type: "response", id: msg.id, ok: false, error: (e as Error)?.message ?? String(e) });
            }
            return;
          }
        }
      }),
    );
    for (const file of spec.watch ?? []) {
      const w = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(path.dirname(file)), path.basename(file)));
      const reload = () => {
        if (ready) void send();
      };
      disposables.push(w, w.onDidChange(reload), w.onDidCreate(reload));
    }
    owner.onDidDispose(() => disposables.forEach((d) => d.dispose()));
  }

  dispose(): void {
    for (const p of this.panels.values()) p.dispose();
    this.panels.clear();
  }
}
