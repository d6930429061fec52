/** Model overview: summary facts and the layer table (sortable headers, filter box). */
import type { LayerInfo, OverviewData } from "../../../extension/src/protocol";
import { TESTID } from "../../../extension/src/protocol";
import { LAYER_COLUMNS, filterLayers, sortLayers, type LayerColumn, type SortDir } from "../charts/table";
import { formatBits, formatCount, formatNumber, shortLayerName } from "../charts/format";
import { clear, h, table } from "../dom";
import { loadState, saveState } from "../vscode";
import { post } from "../vscode";
import { facts, panelRoot } from "./common";

const LABELS: Record<LayerColumn, string> = {
  name: "Layer",
  role: "Role",
  block: "Block",
  shape: "out × in",
  bits: "Bits",
  proxyLoss: "Proxy loss",
  outliers: "Outliers",
  sensitivity: "KL alone",
  sqnrDb: "SQNR dB",
};
/** What each header means (its tooltip and accessible name). */
const TITLES: Record<LayerColumn, string> = {
  name: "Layer (ONNX node name)",
  role: "Role in the transformer block",
  block: "Transformer block",
  shape: "Weight shape: output features × input features (W is [out × in])",
  bits: "Bits, group size and method of the quantization (fp = kept in float)",
  proxyLoss: "Proxy loss tr((W−Q)H(W−Q)ᵀ)/tr(WHWᵀ)",
  outliers: "Outlier channels in the layer's input activation (– = no activation statistics)",
  sensitivity: "Mean KL (nats) to the float model with only this layer quantized",
  sqnrDb: "Output SQNR (dB) of the layer in the quantized model",
};
// Readable at 1280×800 (an ~890 px wide table): every header fits, sort arrow included.
const WIDTHS: Record<LayerColumn, string> = {
  name: "21%",
  role: "6%",
  block: "8%",
  shape: "10%",
  bits: "14%",
  proxyLoss: "11%",
  outliers: "10%",
  sensitivity: "10%",
  sqnrDb: "10%",
};

function cell(l: LayerInfo, c: LayerColumn): string {
  switch (c) {
    case "name":
      return shortLayerName(l.name);
    case "role":
      return l.role;
    case "block":
      return l.block === null ? "–" : String(l.block);
    case "shape":
      return `${l.out} × ${l.in}`;
    case "bits":
      return l.bits === null ? "fp" : `${formatBits(l.bits, l.group)}${l.method ? ` ${l.method}` : ""}`;
    case "proxyLoss":
      return formatNumber(l.proxyLoss);
    case "outliers":
      return l.outliers === null ? "–" : String(l.outliers);
    case "sensitivity":
      return formatNumber(l.sensitivity);
    case "sqnrDb":
      return formatNumber(l.sqnrDb);
  }
}

export function renderOverview(data: OverviewData): HTMLElement {
  const st = loadState("overview", { sort: "block" as string, dir: "asc" as string, filter: "" });
  const m = data.model;
  const items: [string, string][] = [
    ["Model", m.title],
    ["Blocks", String(m.blocks)],
    ["Linear layers", `${m.linears} (${formatCount(m.linearParams)} weights)`],
    ["Calibration", m.calibration ? `${m.calibration.tokens} tokens, ${m.calibration.sequences} sequences` : "none"],
  ];
  if (data.quantization) {
    const q = data.quantization;
    items.push(["Quantization", `${q.method} ${formatBits(q.bits, q.group)} → ${q.format}, ${formatNumber(q.avgBits)} bits/weight`]);
  }
  const summary = facts(items);
  let evalBox: HTMLElement | null = null;
  if (data.eval) {
    const e = data.eval;
    evalBox = facts(
      [
        ["KL mean / p99 / max", `${formatNumber(e.klMean)} / ${formatNumber(e.klP99)} / ${formatNumber(e.klMax)} nats`],
        ["Top-1 agreement", `${formatNumber(e.top1 * 100)} %`],
        ["Perplexity fp → quantized", `${formatNumber(e.pplFp)} → ${formatNumber(e.pplQuant)}`],
        ["Eval tokens", String(e.tokens)],
      ],
      { "data-testid": TESTID.evalSummary },
    );
  }
  const filter = h("vscode-textfield", {
    placeholder: "Filter: name, role:v, block:3, bits:4, outliers:>0, loss:>0.01",
    "data-testid": TESTID.layerFilter,
    "aria-label": "Filter layers",
    class: "filter",
  }) as HTMLElement & { value: string };
  filter.value = st.filter;
  const count = h("span", { class: "muted", "aria-live": "polite" });
  const holder = h("div", { class: "table-holder" });

  let sort = (LAYER_COLUMNS as readonly string[]).includes(st.sort) ? (st.sort as LayerColumn) : "block";
  let dir: SortDir = st.dir === "desc" ? "desc" : "asc";

  const draw = () => {
    const rows = sortLayers(filterLayers(data.layers, filter.value ?? ""), sort, dir);
    count.textContent = `${rows.length} of ${data.layers.length} layers`;
    clear(holder);
    const columns = LAYER_COLUMNS.map((c) => {
      const arrow = c === sort ? (dir === "asc" ? " ▲" : " ▼") : "";
      const btn = h("button", { class: "sort", type: "button", "data-testid": TESTID.sort(c), "aria-label": `Sort by ${TITLES[c]}`, title: TITLES[c], "aria-pressed": c === sort ? "true" : "false" }, LABELS[c] + arrow);
      btn.addEventListener("click", () => {
        if (sort === c) dir = dir === "asc" ? "desc" : "asc";
        else {
          sort = c;
          dir = c === "name" || c === "role" || c === "block" ? "asc" : "desc";
        }
        saveState("overview", { sort, dir });
        draw();
        holder.querySelector<HTMLButtonElement>(`[data-testid="${TESTID.sort(c)}"]`)?.focus();
      });
      return { label: btn, width: WIDTHS[c] };
    });
    holder.append(
      table(
        columns,
        rows.map((l) => ({
          attrs: { "data-testid": TESTID.layerRow, "data-layer": l.name, title: `${l.name}\ninput: ${l.input}\nEnter: reveal the layer` },
          cells: LAYER_COLUMNS.map((c) => cell(l, c)),
          onActivate: () => post({ type: "openLayer", layer: l.name }),
        })),
        { "data-testid": TESTID.layerTable },
      ),
    );
  };
  filter.addEventListener("input", () => {
    saveState("overview", { filter: filter.value ?? "" });
    draw();
  });
  draw();
  const notes = data.model.notes.length ? h("details", { class: "notes" }, h("summary", undefined, `Notes (${data.model.notes.length})`), h("ul", undefined, ...data.model.notes.map((n) => h("li", undefined, n)))) : null;
  return panelRoot("overview", `Model overview — ${m.title}`, h("div", { class: "row" }, summary, evalBox), notes, h("div", { class: "toolbar" }, filter, count), holder);
}
