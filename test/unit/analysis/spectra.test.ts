import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import { calibrate, type TapResult } from "../../../extension/src/engine/calib/runner";
import { hessianSpectrum, ldlDiagonalSum } from "../../../extension/src/engine/analysis/spectra";
import { STORIES, STORIES_MODEL } from "../../helpers/paths";

/** Independent reference: cyclic Jacobi rotations in float64, written here (not the kernels'). */
function jacobiEigenvalues(a0: Float64Array, n: number): number[] {
  const a = Float64Array.from(a0);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i * n + j] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, i) => a[i * n + i]).sort((x, y) => x - y);
}

let taps: TapResult[];
beforeAll(async () => {
  const model = await OnnxModel.load(STORIES_MODEL);
  try {
    const data = loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 8, seqLen: 128 });
    taps = (await calibrate(model, data)).taps;
  } finally {
    model.close();
  }
});

describe("Hessian spectra", () => {
  it("equal the eigenvalues of H from an independent Jacobi reference (1e-4 relative) on stories260K", async () => {
    // One attention input (64), one o input (64) and one down input (172).
    for (const t of [taps[0], taps[1], taps[3]]) {
      const n = t.tap.channels;
      const h = t.hessian!;
      const sp = await hessianSpectrum(h, n);
      const ref = jacobiEigenvalues(h, n);
      const top = ref[n - 1];
      for (let i = 0; i < n; i++) {
        // Relative to each eigenvalue, with a floor for the tiniest (float rounding of H itself).
        expect(Math.abs(sp.values[i] - ref[i]), `${t.tap.tensor} λ${i}`).toBeLessThanOrEqual(1e-4 * Math.max(Math.abs(ref[i]), 1e-6 * top));
      }
      let trace = 0;
      for (let i = 0; i < n; i++) trace += h[i * n + i];
      expect(sp.trace).toBeCloseTo(trace, 9);
      expect(ref.reduce((s, v) => s + v, 0) / trace).toBeCloseTo(1, 9);
      expect(sp.conditionNumber).toBeCloseTo(ref[n - 1] / ref[0], 0);
      expect(sp.damp).toBeCloseTo((0.01 * trace) / n, 12);
      // Damped condition number: (λmax + λ)/(λmin + λ) (no dead inputs here).
      expect(sp.deadInputs).toBe(0);
      expect(sp.conditionNumberDamped / ((ref[n - 1] + sp.damp) / (ref[0] + sp.damp))).toBeCloseTo(1, 6);
      expect(sp.ldlTraceRatio).toBeGreaterThan(0);
      expect(sp.ldlTraceRatio).toBeLessThan(1);
      expect(sp.effectiveRank).toBeGreaterThan(1);
      expect(sp.effectiveRank).toBeLessThan(n);
    }
  });

  it("effective rank, condition number and LDL trace ratio on matrices with known answers", async () => {
    const n = 6;
    const eye = new Float64Array(n * n);
    for (let i = 0; i < n; i++) eye[i * n + i] = 1;
    const a = await hessianSpectrum(eye, n, { percdamp: 0.01 });
    expect(a.effectiveRank).toBeCloseTo(n, 12); // equal eigenvalues: entropy log n
    expect(a.conditionNumber).toBeCloseTo(1, 12);
    expect(a.ldlTraceRatio).toBeCloseTo(1, 12); // diagonal: D = H

    // Rank 2 with equal eigenvalues, one dead input: effective rank 2, singular, dead counted.
    const r2 = new Float64Array(n * n);
    r2[0] = 4;
    r2[1 * n + 1] = 4;
    const b = await hessianSpectrum(r2, n, { percdamp: 0.1 });
    expect(b.effectiveRank).toBeCloseTo(2, 12);
    expect(b.conditionNumber).toBeNull();
    expect(b.deadInputs).toBe(4);
    // GPTQ's matrix: dead diagonals set to 1, then λ = 0.1·mean(diag) = 0.1·(4+4+1+1+1+1)/6.
    const lambda = (0.1 * 12) / 6;
    expect(b.damp).toBeCloseTo(lambda, 12);
    expect(b.conditionNumberDamped).toBeCloseTo((4 + lambda) / (1 + lambda), 12);

    // A correlated 2×2: H = [[4, 2], [2, 2]] = L D Lᵀ with L = [[1, 0], [0.5, 1]], D = diag(4, 1).
    expect(await ldlDiagonalSum(Float64Array.of(4, 2, 2, 2), 2)).toBeCloseTo(5, 12);
  });
});
