import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { readReport, validateReport } from "../../../extension/src/engine/report/write";
import { decodeF32, encodeF32 } from "../../../extension/src/engine/report/schema";
import { readPlan } from "../../../extension/src/engine/quant/plan";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import { buildCli, quantlens } from "../../helpers/cli";
import { listDir, STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";

beforeAll(buildCli);
let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

const CALIB = path.join(STORIES, "calib.jsonl");
const SMALL = ["--samples", "4", "--seq-len", "64", "--threads", "1"];

/** Short held-out sequences (3 × 48 tokens of the calibration documents) as a .json id file. */
async function shortEval(): Promise<string> {
  const model = await OnnxModel.load(STORIES_MODEL);
  try {
    const file = path.join(dir, "eval.json");
    fs.writeFileSync(file, JSON.stringify(loadModelData(model, CALIB, { samples: 3, seqLen: 48 }).sequences));
    return file;
  } finally {
    model.close();
  }
}

describe("quantlens analyze / sensitivity / plan (--json contract)", () => {
  it("analyze: outliers, incoherence, spectra keys; writes a valid report", () => {
    const out = path.join(dir, "report.json");
    const r = quantlens("analyze", STORIES_MODEL, "--data", CALIB, ...SMALL, "-o", out, "--json");
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.outliers).toHaveLength(21);
    for (const o of j.outliers) {
      expect(typeof o.tensor).toBe("string");
      expect(Array.isArray(o.channels)).toBe(true);
    }
    expect(j.incoherence).toHaveLength(36);
    for (const i of j.incoherence) for (const k of ["layer", "mu_w", "mu_h", "mu_w_rotated", "mu_h_rotated"]) expect(i).toHaveProperty(k);
    expect(j.spectra).toHaveLength(21);
    for (const s of j.spectra) {
      expect(typeof s.tensor).toBe("string");
      expect(s.eigenvalues.length === 64 || s.eigenvalues.length === 172).toBe(true);
      for (let k = 1; k < s.eigenvalues.length; k++) expect(s.eigenvalues[k]).toBeGreaterThanOrEqual(s.eigenvalues[k - 1]);
    }
    const report = readReport(out);
    const anyOutlier = report.activations!.some((a) => a.outliers.length > 0);
    expect(report.sections).toEqual(["activations", "heatmap", ...(anyOutlier ? ["token_heatmaps"] : []), "persistence", "weights", "incoherence", "spectra", "proxy", "propagation"]);
    if (anyOutlier) expect(decodeF32(report.token_heatmaps![0].values)).toHaveLength(report.token_heatmaps![0].tokens * report.token_heatmaps![0].channels);
    expect(report.layers).toHaveLength(36);
    expect(report.heatmap!.rows).toHaveLength(21);
    expect(decodeF32(report.spectra![0].eigenvalues)).toHaveLength(report.spectra![0].n);
    // Every layer's reference proxy loss (RTN W4 g128) is in the table.
    for (const l of report.layers) expect(l.proxy_loss, l.name).toBeGreaterThan(0);
    expect(listDir(dir)).toEqual(["report.json"]);

    // A tampered report is refused, naming the field.
    const bad = JSON.parse(fs.readFileSync(out, "utf8"));
    bad.layers[2].bits = "4";
    expect(() => validateReport(bad, "r.json")).toThrow(/r\.json: layers\[2\]\.bits: expected a number or null, got "4"/);
    bad.layers[2].bits = null;
    bad.spectra[0].eigenvalues = encodeF32([1, 2, 3]);
    expect(() => validateReport(bad, "r.json")).toThrow(/spectra\[0\]\.eigenvalues\.length: is 3, expected \d+ from the stated shape/);

    // Existing output without --force: exit 1, untouched.
    const again = quantlens("analyze", STORIES_MODEL, "--data", CALIB, ...SMALL, "-o", out);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists; pass --force/);
  });

  it("sensitivity: rows with target, bits, method, kl_mean, top1", async () => {
    const r = quantlens("sensitivity", STORIES_MODEL, "--data", CALIB, "--eval", await shortEval(), ...SMALL, "--method", "rtn", "--bits", "3,4", "--json");
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.rows).toHaveLength(14);
    for (const row of j.rows) {
      for (const k of ["target", "bits", "method", "kl_mean", "top1"]) expect(row).toHaveProperty(k);
      expect(row.kl_mean).toBeGreaterThan(0);
    }
    // Fewer bits, more damage, role by role.
    for (const role of ["q", "k", "v", "o", "gate", "up", "down"]) {
      const at = (b: number) => j.rows.find((x: { target: string; bits: number }) => x.target === role && x.bits === b).kl_mean;
      expect(at(3), role).toBeGreaterThan(at(4));
    }
    const bad = quantlens("sensitivity", STORIES_MODEL, "--data", CALIB, "--eval", CALIB, "--by", "head");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--by must be role or layer, not 'head'");
  });

  it("plan: budget, avg_bits ≤ budget, layers; writes the plan file", async () => {
    const out = path.join(dir, "plan.json");
    const r = quantlens("plan", STORIES_MODEL, "--data", CALIB, "--eval", await shortEval(), ...SMALL, "--budget", "3.5", "--measure", "-o", out, "--json");
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.budget).toBe(3.5);
    expect(j.avg_bits).toBeLessThanOrEqual(3.5);
    expect(j.avg_bits).toBeGreaterThan(3);
    expect(j.layers).toHaveLength(35);
    for (const l of j.layers) for (const k of ["name", "method", "bits", "group"]) expect(l).toHaveProperty(k);
    expect(readPlan(out).layers).toEqual(j.layers);
    // --measure: the plan against the best uniform setting no larger than the budget.
    expect(j.comparisons).toHaveLength(1);
    const c = j.comparisons[0];
    expect(c.plan_kl_mean).toBeGreaterThan(0);
    expect(c.uniform.avg_bits).toBeLessThanOrEqual(3.5);
    expect(c.uniform.kl_mean).toBeGreaterThan(0);
    expect(j.pareto.some((p: { kl_mean?: number }) => p.kl_mean === c.plan_kl_mean)).toBe(true);
    const measured = j.pareto.filter((p: { kl_mean?: number }) => p.kl_mean !== undefined);
    expect(measured.length).toBeGreaterThanOrEqual(4); // the plan + frontier points
    expect(measured[measured.length - 1].kl_mean).toBeLessThan(measured[0].kl_mean); // more bits, less KL

    const bad = quantlens("plan", STORIES_MODEL, "--data", CALIB, "--budget", "lots");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--budget must be a positive number of bits per weight, not 'lots'");
    const tiny = quantlens("plan", STORIES_MODEL, "--data", CALIB, ...SMALL, "--eval-samples", "1", "--budget", "1");
    expect(tiny.code).toBe(1);
    expect(tiny.stderr).toMatch(/--budget 1 is below the smallest plan possible here \(2\.\d+ bits per weight/);
  });
});
