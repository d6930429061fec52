import { describe, expect, it } from "vitest";
import { weightRow } from "../../../extension/src/engine/analysis/analyze";
import { DEFAULT_OUTLIER_RULE } from "../../../extension/src/engine/analysis/outliers";
import { decodeF32 } from "../../../extension/src/engine/report/schema";
import type { LinearLayer } from "../../../extension/src/engine/onnx/linear";

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
