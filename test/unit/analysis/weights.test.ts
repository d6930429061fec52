import { describe, expect, it } from "vitest";
import { weightRow } from "../../../extension/src/engine/analysis/analyze";
import { DEFAULT_OUTLIER_RULE } from "../../../extension/src/engine/analysis/outliers";
import path from "node:path";
import { decodeF32, encodeF32, type LayerRow, type WeightRow } from "../../../extension/src/engine/report/schema";
import { indexLinears, type LinearLayer } from "../../../extension/src/engine/onnx/linear";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { readWeightOutIn } from "../../../extension/src/engine/quant/layer-weights";
import { newReport, setSection } from "../../../extension/src/engine/report/write";
import { validateReport } from "../../../extension/src/engine/report/validate";
import { reportToHeatmap } from "../../../extension/src/views/report-to-panels";
import { STORIES } from "../../helpers/paths";

describe("weight statistics", () => {
  it("per layer and per output channel absmax, std, kurtosis; outlier rows by the MAD rule", () => {
    const rows = 20;
    const cols = 8;
    const w = new Float32Array(rows * cols);
    // Rows alternate ±(1 + c/8)·0.1 patterns; row 13 carries one large weight.
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) w[r * cols + c] = (c % 2 ? 1 : -1) * 0.1 * (1 + c / 8) * (1 + (r % 3) * 0.05);
    w[13 * cols + 4] = 3;
    const row = weightRow({ name: "L", in: cols, out: rows } as LinearLayer, w, DEFAULT_OUTLIER_RULE);
    const absmax = decodeF32(row.row_absmax);
    const std = decodeF32(row.row_std);
    const kurt = decodeF32(row.row_kurtosis);
    for (let r = 0; r < rows; r++) {
      const x = Array.from(w.subarray(r * cols, (r + 1) * cols));
      const mean = x.reduce((s, v) => s + v, 0) / cols;
      const m2 = x.reduce((s, v) => s + (v - mean) ** 2, 0) / cols;
      const m4 = x.reduce((s, v) => s + (v - mean) ** 4, 0) / cols;
      expect(absmax[r]).toBeCloseTo(Math.max(...x.map(Math.abs)), 6);
      expect(std[r]).toBeCloseTo(Math.sqrt(m2), 6);
      expect(kurt[r]).toBeCloseTo(m4 / (m2 * m2) - 3, 4);
    }
    expect(row.absmax).toBeCloseTo(3, 6);
    expect(row.outlier_rows.map((o) => o.channel)).toEqual([13]);
    expect(row.kurtosis).toBeGreaterThan(50); // one spike among 160 values: heavy tail
  });
});

describe("per-input-channel weight absmax (SmoothQuant's max|W_j|) on stories260K", () => {
  it("col_absmax equals max over output rows read straight from the initializer; the α preview takes the max over q/k/v", async () => {
    const model = await OnnxModel.load(path.join(STORIES, "model.onnx"));
    try {
      const index = indexLinears(model);
      const qkv = index.layers.filter((l) => l.block === 0 && ["q", "k", "v"].includes(l.role));
      const picked = [...qkv, ...index.layers.filter((l) => l.block === 1 && l.role === "down"), ...index.layers.filter((l) => l.role === "lm_head")];
      expect(picked.map((l) => l.role)).toEqual(["q", "k", "v", "down", "lm_head"]);
      const rows = new Map<string, WeightRow>();
      for (const l of picked) {
        const row = weightRow(l, readWeightOutIn(model, l), DEFAULT_OUTLIER_RULE);
        rows.set(l.name, row);
        // Independent: the raw float32 bytes as stored ([in × out] for MatMul's B, [out × in] for Gemm transB).
        const raw = model.readRaw(l.weight);
        const stored = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
        expect(stored.length).toBe(l.in * l.out);
        const want = new Float64Array(l.in);
        for (let i = 0; i < l.in; i++)
          for (let o = 0; o < l.out; o++) {
            const v = Math.abs(l.layout === "out_in" ? stored[o * l.in + i] : stored[i * l.out + o]);
            if (v > want[i]) want[i] = v;
          }
        const got = decodeF32(row.col_absmax!);
        expect(got.length).toBe(l.in);
        for (let i = 0; i < l.in; i++) expect(got[i]).toBe(Math.fround(want[i]));
        // The largest column absmax is the layer's absmax; columns differ (not a constant).
        expect(Math.max(...got)).toBeCloseTo(row.absmax, 6);
        expect(new Set(got).size).toBeGreaterThan(l.in / 2);
      }
      // The panels' W absmax for the q/k/v input: per channel, the max over the three layers.
      const report = newReport({ file: model.file, blocks: 1, linears: qkv.length, linear_params: 0 }, "test");
      const tensor = qkv[0].input;
      expect(qkv.every((l) => l.input === tensor)).toBe(true);
      report.layers = qkv.map((l): LayerRow => ({ name: l.name, role: l.role as LayerRow["role"], block: l.block, in: l.in, out: l.out, dtype: l.dtype, input: l.input, method: null, bits: null, group: null, proxy_loss: null, outlier_count: 0, sensitivity: null, mu_w: null, mu_h: null }));
      setSection(report, "heatmap", { rows: [{ tensor, kind: "attn_in", block: 0, channels: 64 }], width: 64, values: encodeF32(new Float32Array(64).fill(1)), rule: { z_threshold: 6, min_ratio: 4 } });
      setSection(report, "weights", qkv.map((l) => rows.get(l.name)!));
      const w = new Float32Array(reportToHeatmap(validateReport(JSON.parse(JSON.stringify(report))))!.wAbsmax!);
      for (let c = 0; c < 64; c++) expect(w[c]).toBe(Math.max(...qkv.map((l) => decodeF32(rows.get(l.name)!.col_absmax!)[c])));
    } finally {
      model.close();
    }
  });

  it("the validator checks col_absmax's length against the layer's inputs", () => {
    const report = newReport({ file: "/m/model.onnx", blocks: 1, linears: 1, linear_params: 0 }, "test");
    report.layers = [{ name: "L", role: "q", block: 0, in: 8, out: 4, dtype: "float32", input: "x", method: null, bits: null, group: null, proxy_loss: null, outlier_count: 0, sensitivity: null, mu_w: null, mu_h: null }];
    const w = weightRow({ name: "L", in: 8, out: 4 } as LinearLayer, new Float32Array(32).map((_, i) => i - 16), DEFAULT_OUTLIER_RULE);
    expect(Array.from(decodeF32(w.col_absmax!))).toEqual([16, 15, 14, 13, 12, 11, 10, 9].map((v, i) => Math.max(v, Math.abs(i + 8))));
    setSection(report, "weights", [w]);
    expect(() => validateReport(JSON.parse(JSON.stringify(report)))).not.toThrow();
    setSection(report, "weights", [{ ...w, col_absmax: encodeF32([1, 2, 3]) }]);
    expect(() => validateReport(JSON.parse(JSON.stringify(report)))).toThrow(/weights\[0\]\.col_absmax.*3 values.*8 inputs/);
    // Optional: reports written before it existed still load.
    const { col_absmax: _drop, ...old } = w;
    setSection(report, "weights", [old]);
    expect(() => validateReport(JSON.parse(JSON.stringify(report)))).not.toThrow();
  });
});
