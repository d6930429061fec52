/**
 * Bits panel: one bar per layer (height = bits per weight with overhead, colour = bits), the
 * average line, model size, and the budget slider that re-plans live in the host.
 */
import type { BitPlan, BitsData } from "../../../extension/src/protocol";
import { TESTID } from "../../../extension/src/protocol";
import { computeBitChart, initialReplanState, replanStep, snapBudget, type BudgetRange, type ReplanEvent, type ReplanState } from "../charts/bits";
import { formatBits, formatBytes, formatNumber, shortLayerName } from "../charts/format";
import { clear, h, onResize, s, slider } from "../dom";
import { requestWithId } from "../messaging";
import { loadState, post, saveState } from "../vscode";
import { axisLabel, panelRoot, yAxis } from "./common";

/** Colour class per bit width (CSS maps them to a fixed data palette). */
const bitClass = (bits: number) => `bits-${[2, 3, 4, 8].includes(bits) ? bits : "other"}`;

export function renderBits(data: BitsData): HTMLElement {
  const range: BudgetRange = { min: data.budgetMin, max: data.budgetMax, step: data.budgetStep };
  let plan: BitPlan = data.plan;
  const saved = loadState("bits", { budget: NaN });
  const chart = h("div", { class: "chart" });
  chart.style.height = "300px";
  const avg = h("span", { "data-testid": TESTID.avgBits });
  const size = h("span", { "data-testid": TESTID.modelSize });
  const predicted = h("span");
  const status = h("span", { "data-testid": TESTID.planStatus, "data-status": "idle", role: "status", class: "muted" });
  const readout = h("div", { class: "readout", "aria-live": "polite" });
  const sl = slider({
    id: "budget",
    label: "Budget (average bits per weight, scales and zeros included)",
    min: range.min,
    max: range.max,
    step: range.step,
    value: snapBudget(plan.budget || plan.avgBits, range),
    testid: TESTID.budgetSlider,
    disabled: !data.canReplan,
  });
  sl.output.setAttribute("data-testid", TESTID.budgetValue);
  let width = 0;

  const draw = () => {
    avg.textContent = `${formatNumber(plan.avgBits)} bits/weight`;
    size.textContent = `${formatBytes(plan.sizeBytes)} (fp: ${formatBytes(data.fpSizeBytes)}, ${formatNumber(data.fpSizeBytes / Math.max(1, plan.sizeBytes))}× smaller)`;
    predicted.textContent = plan.predicted === null ? "" : `predicted error ${formatNumber(plan.predicted)}`;
    sl.output.textContent = Number(sl.input.value).toFixed(2);
    if (width <= 0) return;
    const H = 300;
    const L = computeBitChart(plan, { width, height: H });
    clear(chart);
    const svg = s("svg", { width, height: H, role: "list", "aria-label": `Bits per weight of ${plan.layers.length} layers`, "data-testid": TESTID.bitChart });
    svg.append(yAxis(L.yTicks, L.plot.x, L.plot.x + L.plot.width));
    svg.append(axisLabel("bits / weight", 12, L.plot.y + L.plot.height / 2, true));
    L.bars.forEach((b, i) => {
      const l = plan.layers[i];
      const rect = s("rect", {
        class: `bar ${bitClass(l.bits)}`,
        x: b.x,
        y: b.y,
        width: b.width,
        height: b.height,
        tabindex: 0,
        role: "listitem",
        "data-testid": TESTID.bitBar,
        "data-layer": l.name,
        "data-bits": l.bits,
        "aria-label": `${l.name}: ${formatBits(l.bits, l.group)} ${l.method}, ${formatNumber(l.bitsPerWeight)} bits per weight`,
      });
      const describe = () => {
        readout.textContent = `${shortLayerName(l.name)} · ${l.role}${l.block === null ? "" : ` · block ${l.block}`} · ${formatBits(l.bits, l.group)} ${l.method} · ${formatNumber(l.bitsPerWeight)} bits/weight · proxy loss ${formatNumber(l.proxyLoss)}`;
      };
      rect.addEventListener("mouseenter", describe);
      rect.addEventListener("focus", describe);
      rect.addEventListener("keydown", (e) => {
        if (e.key === "Enter") post({ type: "openLayer", layer: l.name });
      });
      rect.addEventListener("dblclick", () => post({ type: "openLayer", layer: l.name }));
      svg.append(rect);
    });
    svg.append(s("line", { class: "avg", x1: L.plot.x, x2: L.plot.x + L.plot.width, y1: L.avgY, y2: L.avgY }));
    svg.append(s("text", { class: "avg-label", x: L.plot.x + L.plot.width - 4, y: L.avgY - 4, "text-anchor": "end" }, `average ${formatNumber(plan.avgBits)}`));
    // Block labels under the first layer of each block.
    let prev: number | null = -1;
    plan.layers.forEach((l, i) => {
      if (l.block !== prev && l.block !== null && L.bandWidth * 3 > 10) svg.append(s("text", { class: "tick-label", x: L.bars[i].x, y: L.plot.y + L.plot.height + 14 }, `b${l.block}`));
      prev = l.block;
    });
    svg.append(axisLabel("layers in graph order", L.plot.x + L.plot.width / 2, H - 4));
    chart.append(svg);
  };

  // Live re-planning: one request in flight, the latest slider value wins (charts/bits.ts).
  let rs: ReplanState = initialReplanState(snapBudget(plan.budget || plan.avgBits, range));
  let lastError: string | null = null;
  const showStatus = () => {
    const state = rs.inFlight ? "pending" : lastError ? "error" : "idle";
    status.setAttribute("data-status", state);
    status.textContent = rs.inFlight ? `Re-planning at ${rs.inFlight.budget.toFixed(2)} bits…` : lastError ? `Re-plan failed: ${lastError}` : "";
  };
  const dispatch = (e: ReplanEvent) => {
    const { state, send } = replanStep(rs, e, range);
    rs = state;
    showStatus();
    if (!send) return;
    const req = send;
    requestWithId<BitPlan>({ ...req }).then(
      (p) => {
        plan = p;
        lastError = null;
        draw();
        dispatch({ kind: "reply", id: req.id, ok: true, budget: snapBudget(p.budget, range) });
      },
      (err: Error) => {
        lastError = err.message;
        dispatch({ kind: "reply", id: req.id, ok: false });
      },
    );
  };
  sl.input.addEventListener("input", () => {
    sl.output.textContent = Number(sl.input.value).toFixed(2);
    saveState("bits", { budget: Number(sl.input.value) });
    dispatch({ kind: "slide", budget: Number(sl.input.value) });
  });

  onResize(chart, (w) => {
    width = Math.round(w);
    draw();
  });
  draw();
  // A budget saved from an earlier session of this panel: ask for it again.
  if (data.canReplan && Number.isFinite(saved.budget) && snapBudget(saved.budget, range) !== rs.shown) {
    sl.input.value = String(snapBudget(saved.budget, range));
    dispatch({ kind: "slide", budget: saved.budget });
  }

  const legendRow = h("div", { class: "legend" }, ...[2, 3, 4, 8].flatMap((b) => [h("span", { class: `swatch ${bitClass(b)}` }), `${b}-bit`]));
  return panelRoot(
    "bits",
    "Bit assignment",
    h("div", { class: "facts-inline" }, h("strong", undefined, "Average: "), avg, h("strong", undefined, " · Size: "), size, " ", predicted),
    sl.root,
    data.canReplan ? status : h("p", { class: "muted" }, "Re-planning needs the report's proxy table and a trusted workspace; the slider is disabled."),
    legendRow,
    chart,
    readout,
  );
}
