/**
 * Sensitivity panel: one table row per role, a layer table, and error propagation through depth
 * (output SQNR per layer, residual-stream relative error per block).
 */
import type { SensitivityData, SensitivityEntry } from "../../../extension/src/protocol";
import { TESTID } from "../../../extension/src/protocol";
import { computeBarLayout } from "../charts/bars";
import { formatBits, formatNumber, shortLayerName } from "../charts/format";
import { computeSqnrLayout, measuredBits, roleRows } from "../charts/sensitivity";
import { clear, h, onResize, s, table } from "../dom";
import { post } from "../vscode";
import { axisLabel, missingPanel, panelRoot, xAxis, yAxis } from "./common";

function klBar(v: number, max: number): HTMLElement {
  const outer = h("span", { class: "inline-bar", "aria-hidden": "true" });
  const inner = h("span");
  inner.style.width = `${max > 0 ? Math.max(1, (100 * v) / max) : 0}%`;
  outer.append(inner);
  return outer;
}

function entryCells(e: SensitivityEntry, max: number, label: string): (Node | string)[] {
  return [label, `${e.method} ${formatBits(e.bits, e.group)}`, h("span", { class: "kl" }, klBar(e.klMean, max), formatNumber(e.klMean)), formatNumber(e.klP99), `${formatNumber(e.top1 * 100)} %`, String(e.rank)];
}

const COLUMNS = (first: string) => [
  { label: first, width: "28%" },
  { label: "Quantized as", width: "14%" },
  { label: "KL mean (nats)", width: "26%" },
  { label: "KL p99", width: "11%" },
  { label: "Top-1", width: "11%" },
  { label: "Rank", width: "10%" },
];

export function renderSensitivity(data: SensitivityData): HTMLElement {
  const parts: (Node | null)[] = [];
  if (data.byRole.length) {
    const bits = measuredBits(data.byRole);
    const rows = roleRows(data.byRole, bits[0]);
    const max = Math.max(...rows.map((r) => r.klMean));
    parts.push(
      h(
        "div",
        { class: "subsection" },
        h("h3", undefined, "By role"),
        h("p", { class: "muted" }, `Each row quantizes only the layers of one role (${rows[0]?.method} ${formatBits(bits[0], rows[0]?.group ?? null)}) and measures KL to the float model. Most sensitive first.`),
        table(COLUMNS("Role"), rows.map((e) => ({ attrs: { "data-testid": TESTID.sensitivityRoleRow, "data-role": e.target }, cells: entryCells(e, max, `${e.target} (${e.layers.length} layers)`) })), { "data-testid": TESTID.sensitivityRoleTable, class: "short-table" }),
      ),
    );
  }
  if (data.byLayer.length) {
    const rows = [...data.byLayer].sort((a, b) => b.klMean - a.klMean);
    const max = Math.max(...rows.map((r) => r.klMean));
    parts.push(
      h(
        "div",
        { class: "subsection" },
        h("h3", undefined, "By layer"),
        table(
          COLUMNS("Layer"),
          rows.map((e) => ({ attrs: { "data-testid": TESTID.sensitivityLayerRow, "data-layer": e.target, title: e.target }, cells: entryCells(e, max, shortLayerName(e.target)), onActivate: () => post({ type: "openLayer", layer: e.target }) })),
          { "data-testid": TESTID.sensitivityLayerTable, class: "medium-table" },
        ),
      ),
    );
  }
  const p = data.propagation;
  if (p) {
    const sq = h("div", { class: "chart" });
    sq.style.height = "260px";
    const readout = h("div", { class: "readout", "aria-live": "polite" });
    onResize(sq, (w) => {
      const width = Math.round(w);
      if (width <= 0) return;
      const L = computeSqnrLayout(p, { width, height: 260 });
      clear(sq);
      const svg = s("svg", { width, height: 260, role: "img", "aria-label": `Output SQNR of ${p.layers.length} layers through depth` });
      L.blockBands.forEach((b, i) => {
        if (i % 2 === 0) svg.append(s("rect", { class: "band", x: b.x0, y: L.plot.y, width: b.x1 - b.x0, height: L.plot.height }));
        svg.append(s("text", { class: "tick-label", x: (b.x0 + b.x1) / 2, y: L.plot.y + L.plot.height + 14, "text-anchor": "middle" }, `b${b.block}`));
      });
      svg.append(yAxis(L.yTicks, L.plot.x, L.plot.x + L.plot.width));
      svg.append(axisLabel("SQNR (dB)", 12, L.plot.y + L.plot.height / 2, true));
      if (L.localPath) svg.append(s("path", { class: "series local", d: L.localPath }));
      svg.append(s("path", { class: "series", d: L.path }));
      for (const q of L.points) {
        const c = s("circle", { cx: q.x, cy: q.y, r: 3, tabindex: 0, "data-testid": TESTID.sqnrPoint, "data-layer": q.layer });
        const l = p.layers.find((x) => x.layer === q.layer);
        const say = () => {
          readout.textContent = `${shortLayerName(q.layer)} · SQNR ${q.value === null ? "∞ (exact)" : `${formatNumber(q.value)} dB`} in the quantized model${l?.localSqnrDb != null ? ` · ${formatNumber(l.localSqnrDb)} dB alone on fp inputs` : ""}`;
        };
        c.addEventListener("mouseenter", say);
        c.addEventListener("focus", say);
        svg.append(c);
      }
      svg.append(axisLabel("layers through depth", L.plot.x + L.plot.width / 2, 256));
      sq.append(svg);
    });
    const res = h("div", { class: "chart" });
    res.style.height = "200px";
    onResize(res, (w) => {
      const width = Math.round(w);
      if (width <= 0) return;
      const L = computeBarLayout(p.blocks.map((b) => b.relError), p.blocks.map((b) => `b${b.block}`), { width, height: 200 });
      clear(res);
      const svg = s("svg", { width, height: 200, role: "img", "aria-label": "Residual-stream relative error after each block" });
      svg.append(yAxis(L.yTicks.map((t) => ({ ...t, label: formatNumber(t.value) })), L.plot.x, L.plot.x + L.plot.width));
      L.bars.forEach((b, i) => {
        svg.append(s("rect", { class: "bar residual", x: b.x, y: b.y, width: b.width, height: b.height, "data-testid": TESTID.residualBar, "data-block": p.blocks[i].block }, s("title", undefined, `block ${p.blocks[i].block}: ‖h_q − h_fp‖/‖h_fp‖ = ${formatNumber(b.value)}`)));
      });
      svg.append(xAxis(p.blocks.map((b, i) => ({ x: L.bandCenters[i], label: `b${b.block}` })), L.plot.y + L.plot.height, L.plot.x, L.plot.x + L.plot.width));
      svg.append(axisLabel("‖h_q − h_fp‖ / ‖h_fp‖ after each block", L.plot.x + L.plot.width / 2, 196));
      res.append(svg);
    });
    parts.push(
      h(
        "div",
        { class: "subsection" },
        h("h3", undefined, "Error propagation through depth"),
        h("p", { class: "muted" }, `${p.method} ${formatBits(p.bits, p.group)} on ${p.tokens} tokens; final KL ${formatNumber(p.klMean)} nats. Solid: SQNR in the quantized model; dashed: the layer alone on float inputs.`),
        sq,
        readout,
        res,
      ),
    );
  }
  if (parts.length === 0) return missingPanel("sensitivity", "Sensitivity", "No sensitivity rows or propagation in this report.");
  return panelRoot("sensitivity", "Sensitivity and error propagation", ...parts);
}
