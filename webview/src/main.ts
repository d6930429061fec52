/**
 * Webview entry: picks the panel from `<body data-panel>`, says `ready`, renders the data the
 * host sends with `load`, routes `response`s to pending requests. The contract with the host is
 * extension/src/protocol/index.ts.
 */
import "./styles.css";
import "@vscode-elements/elements/dist/vscode-button/index.js";
import "@vscode-elements/elements/dist/vscode-option/index.js";
import "@vscode-elements/elements/dist/vscode-single-select/index.js";
import "@vscode-elements/elements/dist/vscode-tab-header/index.js";
import "@vscode-elements/elements/dist/vscode-tab-panel/index.js";
import "@vscode-elements/elements/dist/vscode-tabs/index.js";
import "@vscode-elements/elements/dist/vscode-table/index.js";
import "@vscode-elements/elements/dist/vscode-table-body/index.js";
import "@vscode-elements/elements/dist/vscode-table-cell/index.js";
import "@vscode-elements/elements/dist/vscode-table-header/index.js";
import "@vscode-elements/elements/dist/vscode-table-header-cell/index.js";
import "@vscode-elements/elements/dist/vscode-table-row/index.js";
import "@vscode-elements/elements/dist/vscode-textfield/index.js";
import type { PanelKind, ResponseMessage } from "../../extension/src/protocol";
import { PANEL_KINDS } from "../../extension/src/protocol";
import { clear, h } from "./dom";
import { handleResponse, rejectAll, reportError } from "./messaging";
import { renderBits } from "./panels/bits";
import { renderCompare } from "./panels/compare";
import { renderHeatmap } from "./panels/heatmap";
import { renderOverview } from "./panels/overview";
import { renderReport } from "./panels/report";
import { renderSensitivity } from "./panels/sensitivity";
import { renderSpectrum } from "./panels/spectrum";
import { onThemeChange } from "./theme";
import { post } from "./vscode";

// Lit adopts constructable stylesheets (not governed by CSP); should it ever fall back to <style>
// tags it stamps them with window.litNonce, which must be our script's nonce.
const script = document.currentScript as HTMLScriptElement | null;
if (script?.nonce) (window as { litNonce?: string }).litNonce = script.nonce;

const app = document.getElementById("app") ?? document.body.appendChild(h("div", { id: "app" }));
const panel = document.body.dataset.panel as PanelKind;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each renderer takes its own panel's data
const RENDER: Record<PanelKind, (data: any) => HTMLElement> = {
  report: renderReport,
  overview: renderOverview,
  heatmap: renderHeatmap,
  spectrum: renderSpectrum,
  bits: renderBits,
  sensitivity: renderSensitivity,
  compare: renderCompare,
};

let lastData: unknown = null;

function show(data: unknown): void {
  lastData = data;
  clear(app);
  try {
    app.append(RENDER[panel](data));
    app.setAttribute("data-state", "ready");
  } catch (e) {
    reportError(e);
    fail(`Could not render this panel: ${(e as Error).message}`);
  }
}

function fail(message: string): void {
  clear(app);
  app.append(h("p", { class: "error", role: "alert" }, message));
  app.setAttribute("data-state", "failed");
}

type HostMessage = { type: "load"; panel: PanelKind; data: unknown } | { type: "failed"; message: string } | ResponseMessage<unknown>;

window.addEventListener("message", (ev: MessageEvent) => {
  const msg = ev.data as HostMessage;
  if (!msg || typeof msg !== "object") return;
  switch (msg.type) {
    case "load":
      if (msg.panel !== panel) {
        reportError(new Error(`load for panel '${msg.panel}' arrived in the '${panel}' webview`));
        return;
      }
      rejectAll("the panel reloaded");
      show(msg.data);
      return;
    case "failed":
      fail(msg.message);
      return;
    case "response":
      handleResponse(msg);
      return;
  }
});

window.addEventListener("error", (e) => reportError(e.error ?? e.message));
window.addEventListener("unhandledrejection", (e) => reportError(e.reason));

// Canvas colours come from theme variables read at draw time: redraw on a theme switch.
onThemeChange(() => {
  if (lastData !== null) show(lastData);
});

if (!PANEL_KINDS.includes(panel)) fail(`Unknown panel '${String(panel)}' (body data-panel).`);
else {
  app.setAttribute("data-state", "loading");
  app.append(h("p", { class: "muted" }, "Loading…"));
  post({ type: "ready" });
}
