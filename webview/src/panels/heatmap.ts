/**
 * Activation heatmap panel: layers × channels absmax (one row per layer input), the tokens ×
 * channels view of one activation (asked of the host), and the SmoothQuant α preview.
 */
import type { HeatmapData, TokenHeatmapResult } from "../../../extension/src/protocol";
import { TESTID } from "../../../extension/src/protocol";
import { logDomain } from "../charts/color";
import type { ColumnView, Matrix } from "../charts/heatmap";
import { formatNumber } from "../charts/format";
import { rowSpread, smoothMatrices } from "../charts/smoothquant";
import { clear, h, select, slider } from "../dom";
import { request, reportError } from "../messaging";
import { loadState, saveState } from "../vscode";
import { panelRoot } from "./common";
import { heatmapView, legend } from "./heatmap-view";

export function rowLabel(r: HeatmapData["rows"][number]): string {
  const roles = r.roles.length ? ` (${[...new Set(r.roles)].join(",")})` : "";
  return `${r.block === null ? "" : `b${r.block} `}${r.kind}${roles}`;
}

export function renderHeatmap(data: HeatmapData): HTMLElement {
  const st = loadState("heatmap", { c0: 0, c1: data.width, alpha: data.defaultAlpha, tensor: data.rows[0]?.tensor ?? "", sample: 0 });
  const x: Matrix = { rows: data.rows.length, cols: data.width, values: new Float32Array(data.xAbsmax) };
  const labels = data.rows.map(rowLabel);
  const outliers = data.rows.map((r) => r.outliers);
  const nOutliers = outliers.reduce((a, o) => a + o.length, 0);

  // ---- layers × channels
  const readout = h("div", { class: "readout", "data-testid": TESTID.heatmapReadout, "aria-live": "polite" });
  const domain = logDomain(x.values);
  const tokenSection = h("div");
  const selectTensor = (row: number) => {
    tensorSel.value = data.rows[row].tensor;
    saveState("heatmap", { tensor: data.rows[row].tensor });
    tensorSel.dispatchEvent(new Event("change"));
  };
  const main = heatmapView({
    matrix: x,
    rowLabels: labels,
    outliers,
    testid: TESTID.heatmapCanvas,
    outlierTestid: TESTID.heatmapOutlier,
    canvasAttrs: { "data-rows": x.rows, "data-cols": x.cols },
    ariaLabel: `Activation absmax, ${x.rows} layer inputs × ${x.cols} channels`,
    xLabel: "input channel",
    view: { c0: st.c0, c1: st.c1 },
    onView: (v: ColumnView) => saveState("heatmap", { c0: v.c0, c1: v.c1 }),
    readout,
    onSelectRow: selectTensor,
    describe: (r, c, v) => {
      const row = data.rows[r];
      if (c >= row.channels) return `${labels[r]} · channel ${c}: (this input has ${row.channels} channels)`;
      const o = row.outliers.includes(c) ? " · outlier channel" : "";
      return `${labels[r]} · ${row.tensor} · channel ${c} · max|x| = ${formatNumber(v)}${o}`;
    },
  });
  const reset = h("vscode-button", { secondary: true, "data-testid": TESTID.heatmapResetZoom }, "Reset zoom");
  reset.addEventListener("click", () => main.setView({ c0: 0, c1: data.width }));

  // ---- tokens × channels
  const tensorSel = select(
    data.rows.map((r, i) => ({ value: r.tensor, label: `${labels[i]} — ${r.tensor}` })),
    st.tensor,
    { "data-testid": TESTID.tokenTensorSelect, "aria-label": "Activation for tokens × channels" },
  );
  const sampleField = h("vscode-textfield", { type: "number", min: 0, max: Math.max(0, data.samples - 1), "aria-label": "Calibration sequence", class: "narrow" }) as HTMLElement & { value: string };
  sampleField.value = String(st.sample);
  const load = h("vscode-button", { "data-testid": TESTID.tokenRequest, disabled: !data.canRequestTokens }, "Show tokens × channels");
  const tokenReadout = h("div", { class: "readout", "data-testid": TESTID.tokenReadout, "aria-live": "polite" });
  const status = h("span", { class: "muted", role: "status" });
  const fetchTokens = async () => {
    const tensor = tensorSel.value;
    const sample = Math.max(0, Math.floor(Number(sampleField.value) || 0));
    saveState("heatmap", { tensor, sample });
    status.textContent = "Running the model on the calibration sequence…";
    try {
      const res = await request<TokenHeatmapResult>({ type: "tokenHeatmap", tensor, sample });
      status.textContent = "";
      showTokens(res);
    } catch (e) {
      status.textContent = `Could not get the token heatmap: ${(e as Error).message}`;
    }
  };
  load.addEventListener("click", () => void fetchTokens().catch(reportError));
  const showTokens = (res: TokenHeatmapResult) => {
    clear(tokenSection);
    const m: Matrix = { rows: res.tokens, cols: res.channels, values: new Float32Array(res.values) };
    const row = data.rows.find((r) => r.tensor === res.tensor);
    const marks = Array.from({ length: res.tokens }, () => row?.outliers ?? []);
    const tokenLabels = Array.from({ length: res.tokens }, (_, t) => `${t} ${res.tokenText[t] ?? ""}`.trim());
    const v = heatmapView({
      matrix: m,
      rowLabels: tokenLabels,
      outliers: marks,
      testid: TESTID.tokenHeatmapCanvas,
      canvasAttrs: { "data-tokens": res.tokens, "data-channels": res.channels },
      ariaLabel: `|x| of ${res.tensor}, ${res.tokens} tokens × ${res.channels} channels`,
      xLabel: "channel",
      rowPx: 8,
      marginLeft: 110,
      readout: tokenReadout,
      describe: (t, c, val) => `token ${t} ${JSON.stringify(res.tokenText[t] ?? "")} · channel ${c} · x = ${formatNumber(val)}`,
    });
    tokenSection.append(h("div", { class: "legend-row" }, legend(logDomain(m.values), "|x|")), v.root, tokenReadout);
  };
  const tokens = h(
    "div",
    { class: "subsection" },
    h("h3", undefined, "Tokens × channels"),
    data.canRequestTokens
      ? h("p", { class: "muted" }, "One calibration sequence through the model; the outlier channels of the layer input stay marked.")
      : h("p", { class: "muted" }, "Needs the model and its calibration data in a trusted workspace."),
    h("div", { class: "toolbar" }, tensorSel, h("label", undefined, "sequence "), sampleField, load, status),
    tokenSection,
  );

  // ---- SmoothQuant α preview
  const smooth = h("div", { class: "subsection" }, h("h3", undefined, "SmoothQuant α preview"));
  if (!data.wAbsmax) {
    smooth.append(h("p", { class: "muted" }, "This report has no per-input-channel weight absmax, so the preview cannot be computed."));
  } else {
    const w: Matrix = { rows: x.rows, cols: x.cols, values: new Float32Array(data.wAbsmax) };
    const sl = slider({ id: "smooth-alpha", label: "α (migration strength)", min: 0, max: 1, step: 0.05, value: st.alpha, testid: TESTID.smoothAlpha });
    const xHolder = h("div");
    const wHolder = h("div");
    const xRead = h("div", { class: "readout", "aria-live": "polite" });
    const wRead = h("div", { class: "readout", "aria-live": "polite" });
    const spreads = h("p", { class: "muted", "aria-live": "polite" });
    const drawSmooth = () => {
      const alpha = Number(sl.input.value);
      sl.output.textContent = alpha.toFixed(2);
      const sm = smoothMatrices(x, w, alpha);
      // One colour domain for both, so "flatter" is visible as well as measurable.
      const dom = logDomain(Float32Array.from([...sm.x.values, ...sm.w.values].filter((v) => Number.isFinite(v))));
      // Per row, max/median of the channels' absmax (1 = flat, easy to quantize per tensor).
      const worst = (a: Float64Array) => Math.max(...[...a].filter(Number.isFinite));
      const [x0, x1, w0, w1] = [rowSpread(x), rowSpread(sm.x), rowSpread(w), rowSpread(sm.w)].map(worst);
      spreads.textContent = `Worst row's max/median channel ratio (1 = flat, easy to quantize per tensor) — X: ${formatNumber(x0)} → ${formatNumber(x1)}; W: ${formatNumber(w0)} → ${formatNumber(w1)}.`;
      clear(xHolder);
      clear(wHolder);
      const common = { rowLabels: labels, outliers, xLabel: "input channel", domain: dom, rowPx: 12 };
      xHolder.append(
        h("h4", undefined, "max|X_j| / s_j  (activations after smoothing)"),
        heatmapView({ ...common, matrix: sm.x, testid: TESTID.smoothXCanvas, ariaLabel: `Smoothed activation absmax at alpha ${alpha}`, readout: xRead, describe: (r, c, v) => `${data.rows[r].tensor} · channel ${c} · max|x|/s = ${formatNumber(v)} (s = ${formatNumber(sm.s.values[r * x.cols + c])})` }).root,
        xRead,
      );
      wHolder.append(
        h("h4", undefined, "max|W_j| · s_j  (weights after smoothing)"),
        heatmapView({ ...common, matrix: sm.w, testid: TESTID.smoothWCanvas, ariaLabel: `Smoothed weight column absmax at alpha ${alpha}`, readout: wRead, describe: (r, c, v) => `${data.rows[r].tensor} · channel ${c} · max|w|·s = ${formatNumber(v)}` }).root,
        wRead,
      );
    };
    let frame = 0;
    sl.input.addEventListener("input", () => {
      saveState("heatmap", { alpha: Number(sl.input.value) });
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(drawSmooth);
    });
    smooth.append(
      h("p", { class: "muted" }, "s_j = max|X_j|^α / max|W_j|^(1−α): activation outliers migrate into the weights. Both heatmaps share one colour scale."),
      sl.root,
      spreads,
      h("div", { class: "pair" }, xHolder, wHolder),
    );
    drawSmooth();
  }

  const intro = h(
    "p",
    { class: "muted" },
    `max|x| per input channel over ${data.tokens} calibration tokens; ${nOutliers} outlier channel${nOutliers === 1 ? "" : "s"} outlined (robust z > ${data.rule.zThreshold} and > ${data.rule.minRatio}× the median). Drag to zoom into channels; click a row label to pick it below.`,
  );
  return panelRoot(
    "heatmap",
    "Activation heatmap",
    intro,
    h("div", { class: "toolbar" }, legend(domain, "max|x|"), reset),
    main.root,
    readout,
    tokens,
    smooth,
  );
}
