/** Report panel: the single-report panels as tabs; a compare button asks the host for a second report. */
import type { ReportData, ReportTab } from "../../../extension/src/protocol";
import { REPORT_TABS, TESTID } from "../../../extension/src/protocol";
import { h } from "../dom";
import { reportError } from "../messaging";
import { loadState, post, saveState } from "../vscode";
import { renderBits } from "./bits";
import { missingPanel } from "./common";
import { renderHeatmap } from "./heatmap";
import { renderOverview } from "./overview";
import { renderSensitivity } from "./sensitivity";
import { renderSpectrum } from "./spectrum";

const TITLES: Record<ReportTab, string> = {
  overview: "Overview",
  heatmap: "Activations",
  spectrum: "Hessian",
  bits: "Bits",
  sensitivity: "Sensitivity",
};

function renderTab(tab: ReportTab, data: ReportData): HTMLElement {
  const missing = (t: Exclude<ReportTab, "overview">) => missingPanel(t, TITLES[t], data.missing[t] ?? "Not in this report.");
  try {
    switch (tab) {
      case "overview":
        return renderOverview(data.overview);
      case "heatmap":
        return data.heatmap ? renderHeatmap(data.heatmap) : missing("heatmap");
      case "spectrum":
        return data.spectrum ? renderSpectrum(data.spectrum) : missing("spectrum");
      case "bits":
        return data.bits ? renderBits(data.bits) : missing("bits");
      case "sensitivity":
        return data.sensitivity ? renderSensitivity(data.sensitivity) : missing("sensitivity");
    }
  } catch (e) {
    reportError(e);
    return h("p", { class: "error" }, `Could not render ${TITLES[tab]}: ${(e as Error).message}`);
  }
}

export function renderReport(data: ReportData): HTMLElement {
  const st = loadState("report", { tab: "overview" as string });
  const selected = Math.max(0, REPORT_TABS.indexOf(st.tab as ReportTab));
  const tabs = h("vscode-tabs", { "data-testid": TESTID.reportTabs, "selected-index": selected });
  const compare = h("vscode-button", { slot: "addons", secondary: true, title: "Compare this report with another report or model" }, "Compare with…");
  compare.addEventListener("click", () => post({ type: "compare" }));
  tabs.append(compare);
  REPORT_TABS.forEach((tab) => {
    const empty = tab !== "overview" && data[tab] === null;
    tabs.append(h("vscode-tab-header", { slot: "header", "data-tab": tab, class: empty ? "empty-tab" : null }, TITLES[tab]));
    tabs.append(h("vscode-tab-panel", { "data-tab": tab }, renderTab(tab, data)));
  });
  tabs.addEventListener("vsc-tabs-select", (e) => {
    const i = (e as CustomEvent<{ selectedIndex: number }>).detail.selectedIndex;
    saveState("report", { tab: REPORT_TABS[i] ?? "overview" });
  });
  return h("div", { class: "report" }, tabs);
}
