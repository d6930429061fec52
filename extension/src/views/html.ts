// The one HTML builder for every QuantLens webview (STYLE.md §3; the shell contract is in
// extension/src/protocol/index.ts). Strict CSP with a fresh nonce per render; the only resources
// are the built bundle in dist/webview. No `vscode` at run time: the glue passes the URIs as strings.
import crypto from "node:crypto";
import type { PanelKind } from "../protocol/common";
import { PANEL_KINDS } from "../protocol/common";

/** Built webview assets, relative to the extension root (scripts/build.mjs writes them). */
export const WEBVIEW_DIST = ["dist", "webview"] as const;
export const WEBVIEW_SCRIPT = "main.js";
export const WEBVIEW_STYLE = "main.css";

export interface WebviewHtmlOptions {
  panel: PanelKind;
  /** Page title (model or report file name). */
  title: string;
  /** `webview.cspSource`. */
  cspSource: string;
  /** `webview.asWebviewUri(dist/webview/main.js)` as a string. */
  scriptUri: string;
  /** `webview.asWebviewUri(dist/webview/main.css)` as a string, when the bundle has one. */
  styleUri?: string;
  /** Fresh per render; tests pass one to pin the output. */
  nonce?: string;
}

/** 128 random bits, base64 (CSP nonces must be unguessable and new for every page). */
export function makeNonce(): string {
  return crypto.randomBytes(16).toString("base64");
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
/** For double-quoted attribute values (the CSP's single quotes stay readable). */
const escapeAttr = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/** The Content-Security-Policy of a panel page. */
export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
  ].join("; ");
}

/** The page shell: CSP, the stylesheet and the script (both with the nonce), `#app`. */
export function webviewHtml(o: WebviewHtmlOptions): string {
  if (!PANEL_KINDS.includes(o.panel)) throw new RangeError(`webviewHtml: unknown panel '${o.panel}'`);
  const nonce = o.nonce ?? makeNonce();
  if (!/^[A-Za-z0-9+/=_-]{16,}$/.test(nonce)) throw new RangeError("webviewHtml: the nonce must be at least 16 base64 characters");
  const csp = contentSecurityPolicy(o.cspSource, nonce);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${escapeAttr(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
${o.styleUri ? `<link rel="stylesheet" nonce="${nonce}" href="${escapeAttr(o.styleUri)}">\n` : ""}<title>${escapeHtml(o.title)}</title>
</head>
<body data-panel="${o.panel}">
<div id="app" data-state="loading"></div>
<script nonce="${nonce}" src="${escapeAttr(o.scriptUri)}"></script>
</body>
</html>
`;
}
