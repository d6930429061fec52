import { describe, expect, it } from "vitest";
import { encodeF32, type F32Blob, type LayerRow, type QuantLensReport } from "../../../extension/src/engine/report/schema";
import { validateReport } from "../../../extension/src/engine/report/validate";
import { bitPlanOf, reportToBits, reportToCompare, reportToHeatmap, reportToOverview, reportToPanels, reportToSensitivity, reportToSpectrum, tokenHeatmapToResult } from "../../../extension/src/views/report-to-panels";
import { bitsPerWeight } from "../../../extension/src/protocol";

// A two-layer-input model: q/k/v read "x0" (8 channels), down reads "h0" (12 channels).
const layer = (name: string, role: LayerRow["role"], input: string, inF: number, outF: number, extra: Partial<LayerRow> = {}): LayerRow => ({
  name,
  role,
  block: 0,
  in: inF,
  out: outF,
  dtype: "float32",
  input,
  method: "gptq",
  bits: 4,
  group: 4,
  proxy_loss: 0.01,
  outlier_count: 0,
  sensitivity: null,
  mu_w: null,
  mu_h: null,
  ...extra,
});

const hist = { min_exp: -20, bins_per_octave: 1, counts: [0, 1] };
function activation(tensor: string, kind: "attn_in" | "mlp_hidden", layers: string[], roles: LayerRow["role"][], absmax: number[], outliers: number[]) {
  return {
    tensor,
    kind,
    block: 0,
    layers,
    roles,
    channels: absmax.length,
    tokens: 100,
    absmax: encodeF32(absmax),
    mean: encodeF32(absmax.map(() => 0)),
    kurtosis: encodeF32(absmax.map(() => 0)),
    median_absmax: 1,
    outlier_threshold: 4,
    outliers: outliers.map((c) => ({ channel: c, absmax: absmax[c], ratio: absmax[c], score: 10, tokens: null, token_fraction: null })),
    hist,
    token_norm: { median: 1, p99: 2, max: 3 },
    top_tokens: [],
  };
}

const x0 = [1, 1, 2, 40, 1, 1, 1, 1];
const h0 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 120];

function report(): QuantLensReport {
  const layers = [
    layer("q", "q", "x0", 8, 8, { sensitivity: 0.02, mu_w: 3, mu_h: 2 }),
    layer("k", "k", "x0", 8, 8),
    layer("v", "v", "x0", 8, 8, { bits: 3 }),
    layer("down", "down", "h0", 12, 8, { bits: 8, group: 0, proxy_loss: null, outlier_count: 1 }),
  ];
  const values = [...x0, NaN, NaN, NaN, NaN, ...h0];
  const r: QuantLensReport = {
    format: "quantlens-report",
    version: 1,
    created: "2026-01-01T00:00:00Z",
    generator: "quantlens test",
    model: { file: "/models/tiny/model.onnx", blocks: 1, linears: 4, linear_params: 3 * 64 + 96 },
    sections: ["activations", "heatmap", "token_heatmaps", "incoherence", "spectra", "sensitivity", "propagation", "quantization"],
    calibration: { data: "calib.jsonl", tokens: 100, sequences: 4, seconds: 1, provider: "cpu" },
    layers,
    activations: [activation("x0", "attn_in", ["q", "k", "v"], ["q", "k", "v"], x0, [3]), activation("h0", "mlp_hidden", ["down"], ["down"], h0, [11])],
    heatmap: {
      rows: [
        { tensor: "x0", kind: "attn_in", block: 0, channels: 8 },
        { tensor: "h0", kind: "mlp_hidden", block: 0, channels: 12 },
      ],
      width: 12,
      values: encodeF32(values),
      rule: { z_threshold: 6, min_ratio: 4 },
    },
    token_heatmaps: [{ tensor: "x0", sample: 1, token_ids: [5, 6], token_text: ["he", "llo"], tokens: 2, channels: 8, values: encodeF32([...x0, ...x0.map((v) => -v)]) }],
    incoherence: [
      {
        layer: "q",
        mu_w: 3,
        mu_h: 2,
        mu_w_rotated: 1.5,
        mu_h_rotated: 1.2,
        rotation: { kind: "hadamard", seed_u: 1, seed_v: 2, source: "analysis" },
        hist_before: { lo: -1, hi: 1, counts: [1, 5, 5, 1] },
        hist_after: { lo: -1, hi: 1, counts: [2, 4, 4, 2] },
      },
    ],
    spectra: [
      {
        tensor: "x0",
        block: 0,
        roles: ["q", "k", "v"],
        n: 8,
        eigenvalues: encodeF32([0, 0.1, 0.2, 0.5, 1, 2, 4, 8]),
        trace: 15.8,
        condition_number: null,
        condition_number_damped: 8.01 / 0.01,
        effective_rank: 4,
        ldl_trace_ratio: 0.5,
        damp: 0.01,
        percdamp: 0.01,
        dead_inputs: 1,
      },
    ],
    sensitivity: {
      eval: { file: "eval.jsonl", tokens: 50, sequences: 2 },
      fp_seconds: 1,
      seconds_per_variant: 1,
      rows: [
        { target: "q", by: "role", layers: ["q"], method: "rtn", bits: 4, group: 128, kl_mean: 0.02, kl_p99: 0.1, top1: 0.95, rank: 2, seconds: 1 },
        { target: "v", by: "role", layers: ["v"], method: "rtn", bits: 4, group: 128, kl_mean: 0.05, kl_p99: 0.2, top1: 0.9, rank: 1, seconds: 1 },
        { target: "q", by: "layer", layers: ["q"], method: "rtn", bits: 4, group: 128, kl_mean: 0.02, kl_p99: 0.1, top1: 0.95, rank: 1, seconds: 1 },
      ],
    },
    propagation: {
      method: "rtn",
      bits: 4,
      group: 128,
      tokens: 64,
      layers: [
        { layer: "q", block: 0, role: "q", sqnr_db: 25, local_sqnr_db: 27 },
        { layer: "down", block: 0, role: "down", sqnr_db: 18, local_sqnr_db: null },
      ],
      blocks: [{ block: 0, tensor: "res0", rel_error: 0.05 }],
      kl_mean: 0.04,
    },
    quantization: {
      method: "gptq",
      bits: 4,
      group: 4,
      format: "matmulnbits",
      output: "model.q4.onnx",
      seconds: 2,
      avg_bits: 5,
      plan: null,
      layers: layers.map((l) => ({ name: l.name, method: "gptq", bits: l.bits!, group: l.group!, proxy_loss: l.proxy_loss, proxy_loss_rtn: null, damp: 0.01, dead_columns: 0, seconds: 0.1 })),
      kept: [],
      eval: { tokens: 50, kl_mean: 0.03, kl_p99: 0.2, kl_max: 0.5, top1: 0.93, ppl_fp: 10, ppl_quant: 10.5 },
    },
    notes: ["lm_head kept in float"],
  };
  return r;
}

describe("report → panel data", () => {
  it("starts from a report the engine's validator accepts", () => {
    expect(() => validateReport(JSON.parse(JSON.stringify(report())))).not.toThrow();
  });

  it("overview: one row per layer, camelCase, SQNR from propagation, eval from the quantize run", () => {
    const o = reportToOverview(report());
    expect(o.model.title).toBe("model.onnx");
    expect(o.layers.map((l) => l.name)).toEqual(["q", "k", "v", "down"]);
    expect(o.layers[0]).toMatchObject({ role: "q", proxyLoss: 0.01, sensitivity: 0.02, muW: 3, muH: 2, sqnrDb: 25, input: "x0" });
    expect(o.layers[1].sqnrDb).toBeNull();
    expect(o.layers[3]).toMatchObject({ bits: 8, group: 0, outliers: 1, proxyLoss: null, sqnrDb: 18 });
    expect(o.eval).toEqual({ tokens: 50, klMean: 0.03, klP99: 0.2, klMax: 0.5, top1: 0.93, pplFp: 10, pplQuant: 10.5 });
    expect(o.quantization).toMatchObject({ method: "gptq", format: "matmulnbits", avgBits: 5 });
    expect(o.model.notes).toEqual(["lm_head kept in float"]);
  });

  it("overview: without an activation section the outlier column is unknown (null, shown as –), not 0", () => {
    const r = report();
    delete r.activations;
    r.sections = r.sections.filter((s) => s !== "activations");
    const o = reportToOverview(r);
    expect(o.layers.every((l) => l.outliers === null)).toBe(true);
    expect(reportToOverview(report()).layers.map((l) => l.outliers)).toEqual(report().layers.map((l) => l.outlier_count));
  });

  it("heatmap: values as an ArrayBuffer of float32, rows with their layers and outliers", () => {
    const h = reportToHeatmap(report(), { canRequestTokens: true })!;
    expect(h.xAbsmax).toBeInstanceOf(ArrayBuffer);
    expect(h.xAbsmax.byteLength).toBe(2 * 12 * 4);
    const v = new Float32Array(h.xAbsmax);
    expect(v[3]).toBe(40);
    expect(v[8]).toBeNaN();
    expect(v[12 + 11]).toBe(120);
    expect(h.rows.map((r) => [r.tensor, r.layers, r.outliers])).toEqual([
      ["x0", ["q", "k", "v"], [3]],
      ["h0", ["down"], [11]],
    ]);
    expect(h.rule).toEqual({ zThreshold: 6, minRatio: 4 });
    expect(h).toMatchObject({ tokens: 100, samples: 4, canRequestTokens: true, wAbsmax: null });
  });

  it("heatmap: W column absmax is the max over the layers sharing an input, when the report has it", () => {
    const r = report();
    const col = (vals: number[]): F32Blob => encodeF32(vals);
    const w = (layer: string, vals: number[]) => ({ layer, absmax: 1, mean: 0, std: 1, kurtosis: 0, row_absmax: col([]), row_std: col([]), row_kurtosis: col([]), outlier_rows: [], col_absmax: col(vals) });
    r.weights = [w("q", [1, 1, 1, 1, 1, 1, 1, 9]), w("k", [2, 1, 1, 1, 1, 1, 1, 1]), w("v", [1, 1, 3, 1, 1, 1, 1, 1]), w("down", h0.map(() => 0.5))];
    const m = new Float32Array(reportToHeatmap(r)!.wAbsmax!);
    expect([...m.slice(0, 8)]).toEqual([2, 1, 3, 1, 1, 1, 1, 9]);
    expect(m[8]).toBeNaN();
    expect(m[12]).toBe(0.5);
    // One layer without columns: no preview rather than a partial one.
    r.weights.pop();
    expect(reportToHeatmap(r)!.wAbsmax).toBeNull();
  });

  it("heatmap: W columns from the host when the report lacks them", () => {
    const cols: Record<string, number[]> = { q: [1, 2, 1, 1, 1, 1, 1, 1], k: [1, 1, 1, 1, 1, 1, 1, 1], v: [1, 1, 1, 1, 1, 1, 5, 1], down: h0.map((v) => v / 10) };
    const h = reportToHeatmap(report(), { weightColumns: (l) => Float32Array.from(cols[l]) })!;
    const m = new Float32Array(h.wAbsmax!);
    expect([...m.slice(0, 8)]).toEqual([1, 2, 1, 1, 1, 1, 5, 1]);
    expect(m[12 + 11]).toBeCloseTo(12, 5);
    // A wrong length (not the row's channel count) disables the preview.
    expect(reportToHeatmap(report(), { weightColumns: () => new Float32Array(3) })!.wAbsmax).toBeNull();
  });

  it("token heatmap: signed values and token text", () => {
    const t = tokenHeatmapToResult(report().token_heatmaps![0]);
    expect(t).toMatchObject({ tensor: "x0", sample: 1, tokens: 2, channels: 8, tokenText: ["he", "llo"] });
    expect(new Float32Array(t.values)[8 + 3]).toBe(-40);
    const bad = { ...report().token_heatmaps![0], tokens: 3 };
    expect(() => tokenHeatmapToResult(bad)).toThrow(/16 values for 3 tokens × 8 channels/);
  });

  it("spectrum: eigenvalues as ArrayBuffer, layers reading the tensor, incoherence", () => {
    const s = reportToSpectrum(report())!;
    expect(s.spectra).toHaveLength(1);
    expect(s.spectra[0].layers).toEqual(["q", "k", "v"]);
    expect([...new Float32Array(s.spectra[0].eigenvalues)]).toHaveLength(8);
    expect(s.spectra[0]).toMatchObject({ conditionNumber: null, damp: 0.01, deadInputs: 1, n: 8 });
    expect(s.incoherence[0]).toMatchObject({ layer: "q", muW: 3, muWRotated: 1.5, rotationKind: "hadamard" });
    expect(s.incoherence[0].histAfter.counts).toEqual([2, 4, 4, 2]);
  });

  it("bits: the quantize run's assignment with sizes from the schema's accounting", () => {
    const b = reportToBits(report())!;
    expect(b.plan.layers.map((l) => [l.name, l.bits, l.group])).toEqual([
      ["q", 4, 4],
      ["k", 4, 4],
      ["v", 3, 4],
      ["down", 8, 0],
    ]);
    const bpw = [bitsPerWeight(4, 4, 8), bitsPerWeight(4, 4, 8), bitsPerWeight(3, 4, 8), bitsPerWeight(8, 0, 12)];
    expect(b.plan.layers.map((l) => l.bitsPerWeight)).toEqual(bpw);
    const bits = 64 * (bpw[0] + bpw[1] + bpw[2]) + 96 * bpw[3];
    expect(b.plan.sizeBytes).toBeCloseTo(bits / 8, 9);
    expect(b.plan.avgBits).toBeCloseTo(bits / (3 * 64 + 96), 12);
    expect(b.fpSizeBytes).toBe((3 * 64 + 96) * 4);
    expect(b.canReplan).toBe(false); // no proxy table
    expect(b.budgetMin).toBeLessThanOrEqual(b.plan.avgBits);
    expect(b.budgetMax).toBeGreaterThanOrEqual(8);
  });

  it("bits: a plan section wins over the quantize run, and its pareto front sets the slider range", () => {
    const r = report();
    r.plan = {
      plan: { format: "quantlens-plan", version: 1, model: "model.onnx", budget: 4.5, avg_bits: 4.4, layers: [] },
      predicted: 0.3,
      layers: [{ name: "q", method: "gptq", bits: 2, group: 4, bits_per_weight: 6.5, weight: 1, proxy_loss: 0.2, predicted: 0.2 }],
      pareto: [
        { avg_bits: 2.52, predicted: 1 },
        { avg_bits: 8.33, predicted: 0.01, kl_mean: 0.001 },
      ],
      overhead: { scale_bytes: 2, zero_bits: "bits" },
    };
    r.proxy = { methods: ["rtn"], bits: [4], groups: [4], rows: [] };
    const b = reportToBits(r, { canReplan: true })!;
    expect(b.plan).toMatchObject({ budget: 4.5, predicted: 0.3, avgBits: 6.5 });
    expect(b.plan.layers[0]).toMatchObject({ name: "q", bits: 2, bitsPerWeight: 6.5 });
    expect([b.budgetMin, b.budgetMax]).toEqual([2.55, 8.3]);
    expect(b.pareto[1]).toEqual({ avgBits: 8.33, predicted: 0.01, klMean: 0.001 });
    expect(b.canReplan).toBe(true);
    r.plan.layers[0].name = "nope";
    expect(() => bitPlanOf(r)).toThrow(/plan layer "nope" is not a layer of the report/);
  });

  it("bits: an analysis-only report starts from the proxy table's RTN W4 g128 baseline", () => {
    const r = report();
    delete r.quantization;
    for (const l of r.layers) l.bits = null;
    expect(reportToBits(r)).toBeNull();
    r.proxy = {
      methods: ["rtn", "gptq"],
      bits: [3, 4],
      groups: [128],
      rows: [
        { layer: "q", method: "gptq", bits: 3, group: 128, proxy_loss: 0.5, seconds: 0 },
        { layer: "q", method: "rtn", bits: 4, group: 0, proxy_loss: 0.1, seconds: 0 },
        { layer: "q", method: "rtn", bits: 4, group: 4, proxy_loss: 0.05, seconds: 0 },
        { layer: "down", method: "rtn", bits: 4, group: 128, proxy_loss: 0.2, seconds: 0 },
        { layer: "down", method: "rtn", bits: 4, group: 0, proxy_loss: 0.2, seconds: 0 },
      ],
    };
    const b = reportToBits(r, { canReplan: true })!;
    // g128 is wider than both layers: their per-channel rows (the table stores those as group 0).
    expect(b.plan.layers.map((l) => [l.name, l.method, l.bits, l.group, l.proxyLoss])).toEqual([
      ["q", "rtn", 4, 0, 0.1],
      ["down", "rtn", 4, 0, 0.2],
    ]);
    expect(b.plan.layers[0].bitsPerWeight).toBeCloseTo(4 + 20 / 8, 12);
    expect(b.plan.predicted).toBeNull();
    expect(b.canReplan).toBe(true);
  });

  it("sensitivity: rows split by role and layer; propagation in camelCase", () => {
    const s = reportToSensitivity(report())!;
    expect(s.byRole.map((e) => e.target)).toEqual(["q", "v"]);
    expect(s.byLayer.map((e) => e.target)).toEqual(["q"]);
    expect(s.propagation?.layers[0]).toEqual({ layer: "q", block: 0, role: "q", sqnrDb: 25, localSqnrDb: 27 });
    expect(s.propagation?.blocks).toEqual([{ block: 0, tensor: "res0", relError: 0.05 }]);
  });

  it("report: null sections with a reason when the report lacks them", () => {
    const bare = report();
    for (const k of ["activations", "heatmap", "token_heatmaps", "incoherence", "spectra", "sensitivity", "propagation", "quantization"] as const) delete bare[k];
    bare.sections = [];
    for (const l of bare.layers) l.bits = null;
    const p = reportToPanels(bare);
    expect(p.heatmap).toBeNull();
    expect(p.spectrum).toBeNull();
    expect(p.bits).toBeNull();
    expect(p.sensitivity).toBeNull();
    expect(p.missing.heatmap).toMatch(/analyze/);
    expect(p.missing.bits).toMatch(/quantize|plan/);
    expect(p.overview.layers).toHaveLength(4);
    const full = reportToPanels(report());
    expect(full.missing).toEqual({});
  });

  it("compare: both sides' overviews and sizes", () => {
    const c = reportToCompare({ label: "A", report: report() }, { label: "B", report: report() });
    expect(c.a.label).toBe("A");
    expect(c.b.overview.layers).toHaveLength(4);
    expect(c.a.sizeBytes).toBeCloseTo(reportToBits(report())!.plan.sizeBytes, 9);
  });
});
