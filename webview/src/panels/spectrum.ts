/**
 * Hessian spectrum panel: the selected input's eigenvalues on a log axis (one point each) with
 * the damping level, condition numbers; μ_W and μ_H before/after rotation per layer; weight
 * histograms before/after incoherence processing.
 */
import type { SpectrumData } from "../../../extension/src/protocol";
import { TESTID } from "../../../extension/src/protocol";
import { computeGroupedBarLayout } from "../charts/bars";
import { formatNumber, shortLayerName } from "../charts/format";
import { computeHistogramPair } from "../charts/histogram";
import { computeSpectrumLayout, conditionNumbers } from "../charts/spectrum";
import { clear, h, onResize, s, select } from "../dom";
import { post } from "../vscode";
import { loadState, saveState } from "../vscode";
import { axisLabel, facts, missingPanel, panelRoot, xAxis, yAxis } from "./common";

export function renderSpectrum(data: SpectrumData): HTMLElement {
  if (data.spectra.length === 0 && data.incoherence.length === 0) return missingPanel("spectrum", "Hessian spectrum", "No spectra in this report.");
  const st = loadState("spectrum", { tensor: data.spectra[0]?.tensor ?? "", layer: data.incoherence[0]?.layer ?? "" });
  const parts: (Node | null)[] = [];

  if (data.spectra.length) {
    const sel = select(
      data.spectra.map((sp) => ({ value: sp.tensor, label: `${sp.block === null ? "" : `b${sp.block} `}${sp.roles.join(",")} — ${sp.tensor} (n=${sp.n})` })),
      data.spectra.some((sp) => sp.tensor === st.tensor) ? st.tensor : data.spectra[0].tensor,
      { "data-testid": TESTID.spectrumSelect, "aria-label": "Layer input (Hessian)" },
    );
    const chart = h("div", { class: "chart" });
    chart.style.height = "300px";
    const stats = h("div", { "data-testid": TESTID.spectrumStats });
    const readout = h("div", { class: "readout", "aria-live": "polite" });
    let width = 0;
    const draw = () => {
      const sp = data.spectra.find((x) => x.tensor === sel.value) ?? data.spectra[0];
      const eig = new Float32Array(sp.eigenvalues);
      const cn = conditionNumbers(eig, sp.damp);
      clear(stats);
      stats.append(
        facts([
          ["Condition number λmax/λmin", sp.conditionNumber === null ? "∞ (λmin ≤ 0)" : formatNumber(sp.conditionNumber ?? cn.raw)],
          ["Damped (GPTQ factors H + λI)", formatNumber(sp.conditionNumberDamped)],
          ["Damping λ", `${formatNumber(sp.damp)} (percdamp ${formatNumber(sp.percdamp)} × mean diag H)`],
          ["Effective rank", `${formatNumber(sp.effectiveRank)} of ${sp.n}`],
          ["Dead inputs (H_ii = 0)", String(sp.deadInputs)],
          // The block is in the select above: the projections' own names are enough here.
          ["Layers", sp.layers.map((n) => shortLayerName(n).split("/").pop() ?? n).join(", ")],
        ]),
      );
      if (width <= 0) return;
      const L = computeSpectrumLayout(eig, sp.damp, { width, height: 300 });
      clear(chart);
      const svg = s("svg", {
        width,
        height: 300,
        tabindex: 0,
        role: "application",
        "aria-label": `Eigenvalues of H for ${sp.tensor}: ${sp.n} values, log scale. Left and right arrows step through them.`,
      });
      svg.append(yAxis(L.yTicks, L.plot.x, L.plot.x + L.plot.width));
      svg.append(xAxis(L.xTicks, L.plot.y + L.plot.height, L.plot.x, L.plot.x + L.plot.width));
      svg.append(axisLabel("eigenvalue index (ascending)", L.plot.x + L.plot.width / 2, 298));
      svg.append(axisLabel("λ", 12, L.plot.y + L.plot.height / 2, true));
      if (L.dampY !== null) {
        svg.append(s("line", { class: "damp", x1: L.plot.x, x2: L.plot.x + L.plot.width, y1: L.dampY, y2: L.dampY }));
        svg.append(s("text", { class: "damp-label", x: L.plot.x + L.plot.width - 4, y: L.dampY - 4, "text-anchor": "end" }, `damping λ = ${formatNumber(sp.damp)}`));
      }
      svg.append(s("path", { class: "series", d: L.path, "data-testid": TESTID.spectrumLine, "data-points": L.points.length }));
      const g = s("g", { class: "points" });
      const r = L.points.length > 1000 ? 1 : L.points.length > 300 ? 1.5 : 2.5;
      const cursor = s("circle", { class: "cursor-point", r: r + 3, visibility: "hidden" });
      const say = (i: number) => {
        const p = L.points[i];
        current = i;
        readout.textContent = `λ${p.i} = ${formatNumber(p.value)}${p.clamped ? " (≤ 0 or below the axis: drawn at the floor)" : ""}`;
        cursor.setAttribute("cx", String(p.x));
        cursor.setAttribute("cy", String(p.y));
        cursor.setAttribute("visibility", "visible");
      };
      let current = -1;
      for (const p of L.points) {
        const c = s("circle", { cx: p.x, cy: p.y, r, class: p.clamped ? "clamped" : null, "data-testid": TESTID.spectrumPoint });
        c.addEventListener("mouseenter", () => say(p.i));
        g.append(c);
      }
      svg.append(g, cursor);
      svg.addEventListener("keydown", (e) => {
        const n = L.points.length;
        if (n === 0) return;
        const step = e.shiftKey ? Math.max(1, Math.round(n / 16)) : 1;
        const next = e.key === "ArrowRight" ? current + step : e.key === "ArrowLeft" ? current - step : e.key === "Home" ? 0 : e.key === "End" ? n - 1 : null;
        if (next === null) return;
        e.preventDefault();
        say(Math.max(0, Math.min(n - 1, current < 0 ? n - 1 : next)));
      });
      chart.append(svg);
    };
    sel.addEventListener("change", () => {
      saveState("spectrum", { tensor: sel.value });
      draw();
    });
    onResize(chart, (w) => {
      width = Math.round(w);
      draw();
    });
    draw();
    parts.push(h("div", { class: "subsection" }, h("h3", undefined, "Eigenvalues of H = (2/N) Σ xᵀx"), h("div", { class: "toolbar" }, sel), h("div", { class: "with-side" }, chart, stats), readout));
  }

  if (data.incoherence.length) {
    // μ_W and μ_H before/after rotation, one band per layer.
    const inc = data.incoherence;
    const muChart = (title: string, get: (i: (typeof inc)[number]) => [number | null, number | null], bound: string) => {
      const holder = h("div", { class: "chart" });
      holder.style.height = "220px";
      onResize(holder, (w) => {
        const width = Math.round(w);
        if (width <= 0) return;
        clear(holder);
        const groups = inc.map((i) => get(i).map((v) => (v === null ? NaN : v)));
        const L = computeGroupedBarLayout(groups, inc.map((i) => i.layer), { width, height: 220 });
        const svg = s("svg", { width, height: 220, role: "img", "aria-label": `${title} per layer before and after rotation` });
        svg.append(yAxis(L.yTicks, L.plot.x, L.plot.x + L.plot.width));
        inc.forEach((row, i) => {
          const g = s("g", { "data-testid": TESTID.incoherenceLayer, "data-layer": row.layer, tabindex: 0, role: "listitem" });
          const [b, a] = get(row);
          g.setAttribute("aria-label", `${row.layer}: ${title} ${formatNumber(b)} before, ${formatNumber(a)} after`);
          for (let k = 0; k < 2; k++) {
            const bar = L.bars[i * 2 + k];
            g.append(s("rect", { class: k === 0 ? "bar before" : "bar after", x: bar.x, y: bar.y, width: bar.width, height: bar.height }, s("title", undefined, `${row.layer} ${k === 0 ? "before" : "after"}: ${formatNumber(bar.value)}`)));
          }
          g.addEventListener("click", () => post({ type: "openLayer", layer: row.layer }));
          g.addEventListener("keydown", (e) => {
            if (e.key === "Enter") post({ type: "openLayer", layer: row.layer });
          });
          svg.append(g);
        });
        if (L.bandWidth > 14) {
          inc.forEach((row, i) => svg.append(s("text", { class: "tick-label", x: L.bandCenters[i], y: L.plot.y + L.plot.height + 12, "text-anchor": "middle" }, String(i))));
        }
        svg.append(axisLabel(`layer (graph order); ${bound}`, L.plot.x + L.plot.width / 2, 214));
        holder.append(svg);
      });
      return h("div", undefined, h("h4", undefined, title), holder);
    };
    const legendRow = h("div", { class: "legend" }, h("span", { class: "swatch before" }), "before rotation", h("span", { class: "swatch after" }), "after (U W Vᵀ, V H Vᵀ)");
    parts.push(
      h(
        "div",
        { class: "subsection" },
        h("h3", undefined, "Incoherence (QuIP)"),
        h("p", { class: "muted" }, "μ_W = max|W_ij|·√(mn)/‖W‖_F and μ_H = max|Q_ij|·√n over the eigenvectors of H; smaller is more incoherent, easier to round."),
        legendRow,
        h("div", { class: "pair" }, muChart("μ_W", (i) => [i.muW, i.muWRotated], "√(mn) is the maximum"), muChart("μ_H", (i) => [i.muH, i.muHRotated], "√n is the maximum")),
      ),
    );

    // Weight histograms before/after for one layer.
    const hsel = select(
      inc.map((i) => ({ value: i.layer, label: `${shortLayerName(i.layer)} (${i.rotationKind} rotation)` })),
      inc.some((i) => i.layer === st.layer) ? st.layer : inc[0].layer,
      { "data-testid": TESTID.histogramSelect, "aria-label": "Layer for weight histograms" },
    );
    const holder = h("div", { class: "chart" });
    holder.style.height = "320px";
    let width = 0;
    const drawHist = () => {
      if (width <= 0) return;
      const row = inc.find((i) => i.layer === hsel.value) ?? inc[0];
      const L = computeHistogramPair(row.histBefore, row.histAfter, { width, height: 320 });
      clear(holder);
      const svg = s("svg", { width, height: 320, role: "img", "aria-label": `Weight histograms of ${row.layer} before and after incoherence processing` });
      for (const [name, bars, plot, testid] of [
        ["before", L.before, L.beforePlot, TESTID.histogramBefore],
        ["after", L.after, L.afterPlot, TESTID.histogramAfter],
      ] as const) {
        const g = s("g", { "data-testid": testid, "data-bins": bars.length });
        g.append(s("text", { class: "panel-label", x: plot.x, y: plot.y - 4 }, name === "before" ? "W before" : "U W Vᵀ after rotation"));
        for (const b of bars) g.append(s("rect", { class: `bar ${name}`, x: b.x, y: b.y, width: Math.max(0.5, b.width - 0.5), height: b.height }, s("title", undefined, `[${formatNumber(b.lo)}, ${formatNumber(b.hi)}): ${b.count}`)));
        g.append(xAxis(L.xTicks, plot.y + plot.height, plot.x, plot.x + plot.width));
        g.append(axisLabel("count (√)", 14, plot.y + plot.height / 2, true));
        svg.append(g);
      }
      holder.append(svg);
    };
    hsel.addEventListener("change", () => {
      saveState("spectrum", { layer: hsel.value });
      drawHist();
    });
    onResize(holder, (w) => {
      width = Math.round(w);
      drawHist();
    });
    parts.push(h("div", { class: "subsection" }, h("h3", undefined, "Weight histograms before/after incoherence processing"), h("div", { class: "toolbar" }, hsel), holder));
  }
  return panelRoot("spectrum", "Hessian spectrum and incoherence", ...parts);
}
