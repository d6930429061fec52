/**
 * `data-testid` values the webview renders, for the browser end-to-end tests (test/e2e) and the
 * host's HTML shell. Select with `[data-testid="…"]`; counts are stated where tests rely on them.
 */
export const TESTID = {
  /** Every panel's root: `[data-testid="panel-<kind>"]` with `data-state="ready" | "empty"`. */
  panel: (kind: string) => `panel-${kind}`,
  /** Report webview: `<vscode-tabs>`; its headers are `vscode-tab-header[data-tab="<tab>"]`. */
  reportTabs: "report-tabs",
  /** A section the report lacks: the explanation shown instead. */
  missing: "panel-missing",

  // overview
  layerTable: "layer-table",
  /** One `vscode-table-row` per visible layer, `data-layer` = layer name. */
  layerRow: "layer-row",
  layerFilter: "layer-filter",
  /** Header sort buttons: `sort-<column>` (name, role, block, shape, bits, proxyLoss, outliers, sensitivity). */
  sort: (column: string) => `sort-${column}`,
  evalSummary: "eval-summary",

  // heatmap
  /** `<canvas>` with `data-rows` = layer inputs, `data-cols` = max channels. */
  heatmapCanvas: "heatmap-canvas",
  /** One SVG mark per outlier cell (row, channel) in view. */
  heatmapOutlier: "heatmap-outlier",
  heatmapReadout: "heatmap-readout",
  heatmapResetZoom: "heatmap-reset-zoom",
  tokenTensorSelect: "token-tensor-select",
  tokenRequest: "token-request",
  /** `<canvas>` with `data-tokens`, `data-channels`. */
  tokenHeatmapCanvas: "token-heatmap-canvas",
  tokenReadout: "token-readout",
  /** `<input type="range">` for SmoothQuant α in [0, 1]. */
  smoothAlpha: "smooth-alpha",
  smoothXCanvas: "smooth-x-canvas",
  smoothWCanvas: "smooth-w-canvas",

  // spectrum
  spectrumSelect: "spectrum-select",
  /** The selected input's eigenvalue line (`data-points` = n) ... */
  spectrumLine: "spectrum-line",
  /** ... and one `<circle>` per eigenvalue. */
  spectrumPoint: "spectrum-point",
  spectrumStats: "spectrum-stats",
  /** μ before/after rotation: one `<g data-testid="incoherence-layer">` per layer. */
  incoherenceLayer: "incoherence-layer",
  histogramSelect: "histogram-select",
  histogramBefore: "weight-hist-before",
  histogramAfter: "weight-hist-after",

  // bits
  bitChart: "bit-chart",
  /** One `<rect>` per layer, `data-layer`, `data-bits`. */
  bitBar: "bit-bar",
  /** `<input type="range">`: average bits per weight. */
  budgetSlider: "budget-slider",
  budgetValue: "budget-value",
  avgBits: "avg-bits",
  modelSize: "model-size",
  /** `data-status="idle" | "pending" | "error"`. */
  planStatus: "plan-status",

  // sensitivity
  sensitivityRoleTable: "sensitivity-role-table",
  /** One row per role measured. */
  sensitivityRoleRow: "sensitivity-role-row",
  sensitivityLayerTable: "sensitivity-layer-table",
  sensitivityLayerRow: "sensitivity-layer-row",
  /** One `<circle>` per layer in the propagation section. */
  sqnrPoint: "sqnr-point",
  /** One `<rect>` per block. */
  residualBar: "residual-bar",

  // compare
  compareSummary: "compare-summary",
  compareTable: "compare-table",
  /** One row per layer present in either report. */
  compareRow: "compare-row",
} as const;
