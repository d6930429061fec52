/** Compare panel: two reports' summaries side by side and per-layer deltas (b − a). */
import type { CompareData } from "../../../extension/src/protocol";
import { TESTID } from "../../../extension/src/protocol";
import { compareEval, compareLayers, verdict } from "../charts/compare";
import { formatBits, formatBytes, formatDelta, formatNumber, shortLayerName } from "../charts/format";
import { h, table } from "../dom";
import { post } from "../vscode";
import { panelRoot } from "./common";

export function renderCompare(data: CompareData): HTMLElement {
  const { a, b } = data;
  const metrics = compareEval(a.overview.eval, b.overview.eval);
  const summaryRows = [
    ...metrics.map((m) => ({
      cells: [m.label, formatNumber(m.a), formatNumber(m.b), h("span", { class: `delta ${verdict(m.delta, m.higherIsBetter)}` }, formatDelta(m.delta))] as (Node | string)[],
    })),
    {
      cells: [
        "Quantized weights",
        a.sizeBytes === null ? "–" : formatBytes(a.sizeBytes),
        b.sizeBytes === null ? "–" : formatBytes(b.sizeBytes),
        a.sizeBytes === null || b.sizeBytes === null ? "–" : formatBytes(b.sizeBytes - a.sizeBytes),
      ] as (Node | string)[],
    },
  ];
  const rows = compareLayers(a.overview.layers, b.overview.layers);
  const side = (l: (typeof rows)[number]["a"]) => (l ? `${formatBits(l.bits, l.group)}${l.method ? ` ${l.method}` : ""} · ${formatNumber(l.proxyLoss)}` : "absent");
  const d = (v: number | null, higherIsBetter: boolean) => h("span", { class: `delta ${verdict(v, higherIsBetter)}` }, formatDelta(v));
  return panelRoot(
    "compare",
    `Compare — ${a.label} vs ${b.label}`,
    h("p", { class: "muted" }, "Deltas are B − A. Green: B is better; red: B is worse."),
    table([{ label: "Metric", width: "34%" }, { label: `A: ${a.label}` }, { label: `B: ${b.label}` }, { label: "Δ (B − A)" }], summaryRows, { "data-testid": TESTID.compareSummary, class: "short-table" }),
    h("h3", undefined, "Per layer"),
    table(
      [
        { label: "Layer", width: "24%" },
        { label: "A: bits · proxy loss", width: "17%" },
        { label: "B: bits · proxy loss", width: "17%" },
        { label: "Δ bits", width: "9%" },
        { label: "Δ proxy loss", width: "11%" },
        { label: "Δ SQNR dB", width: "11%" },
        { label: "Δ KL alone", width: "11%" },
      ],
      rows.map((r) => ({
        attrs: { "data-testid": TESTID.compareRow, "data-layer": r.name, title: r.name },
        cells: [shortLayerName(r.name), side(r.a), side(r.b), formatDelta(r.bits), d(r.proxyLoss, false), d(r.sqnrDb, true), d(r.sensitivity, false)],
        onActivate: () => post({ type: "openLayer", layer: r.name }),
      })),
      { "data-testid": TESTID.compareTable },
    ),
  );
}
