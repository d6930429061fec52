import { describe, expect, it } from "vitest";
import { canReplan, planItemsFromReport, replanLayers, replanner, sensitivityCoefficients } from "../../../extension/src/views/replan";
import { reportToBits } from "../../../extension/src/views/report-to-panels";
import { newReport, setSection } from "../../../extension/src/engine/report/write";
import { bitsPerWeight } from "../../../extension/src/engine/analysis/fake-quant";
import type { LayerRow, QuantLensReport, SensitivityRow } from "../../../extension/src/engine/report/schema";
import { UsageError } from "../../../extension/src/engine/errors";

const shapes = [
  { name: "a", in: 64, out: 64 },
  { name: "b", in: 64, out: 172 },
  { name: "c", in: 172, out: 64 },
];
const BITS = [2, 3, 4, 8] as const;
const GROUPS = [32, 0];

function report(withSensitivity: boolean): QuantLensReport {
  const r = newReport({ file: "/m/model.onnx", blocks: 1, linears: 3, linear_params: 0 }, "test");
  r.layers = shapes.map((s): LayerRow => ({ name: s.name, role: "other", block: 0, in: s.in, out: s.out, dtype: "float32", input: "x", method: null, bits: null, group: null, proxy_loss: null, outlier_count: 0, sensitivity: null, mu_w: null, mu_h: null }));
  const rows: NonNullable<QuantLensReport["proxy"]>["rows"] = [];
  shapes.forEach((s, i) => {
    for (const method of ["rtn", "gptq"] as const)
      for (const bits of BITS)
        for (const group of GROUPS) {
          // Error ~ 4^-bits, grouped better than per-channel, GPTQ better than RTN, layers differ.
          const proxy = (1 + i) * 4 ** -bits * (group ? 0.6 : 1) * (method === "gptq" ? 0.7 : 1);
          rows.push({ layer: s.name, method, bits, group, proxy_loss: proxy, seconds: 0 });
        }
  });
  setSection(r, "proxy", { methods: ["rtn", "gptq"], bits: [...BITS], groups: GROUPS, rows });
  if (withSensitivity) {
    const sens = (target: string, kl: number): SensitivityRow => ({ target, by: "layer", layers: [target], method: "rtn", bits: 4, group: 32, kl_mean: kl, kl_p99: kl, top1: 0.99, rank: 1, seconds: 0 });
    setSection(r, "sensitivity", { eval: { file: "e", tokens: 1, sequences: 1 }, fp_seconds: 0, seconds_per_variant: 0, rows: [sens("a", 0.5), sens("c", 0.001)] });
  }
  return r;
}

/** Exhaustive search over every per-layer choice: the reference the knapsack must match. */
function bruteForce(r: QuantLensReport, budget: number): number {
  const items = planItemsFromReport(r);
  const params = items.reduce((s, it) => s + it.params, 0);
  let best = Infinity;
  const rec = (i: number, cost: number, err: number) => {
    if (i === items.length) {
      if (cost <= budget * params * (1 + 1e-12)) best = Math.min(best, err);
      return;
    }
    for (const c of items[i].choices) rec(i + 1, cost + c.cost, err + c.error);
  };
  rec(0, 0, 0);
  return best;
}

describe("re-plan from a report (the bits panel's budget slider)", () => {
  it("needs a proxy table", () => {
    const r = report(false);
    expect(canReplan(r)).toBe(true);
    delete r.proxy;
    r.sections = r.sections.filter((s) => s !== "proxy");
    expect(canReplan(r)).toBe(false);
    expect(() => planItemsFromReport(r)).toThrow(UsageError);
  });

  it("coefficients: measured KL ÷ proxy loss at the same setting; the median of those for unmeasured layers", () => {
    const r = report(true);
    const c = sensitivityCoefficients(r);
    const proxyA = 1 * 4 ** -4 * 0.6;
    const proxyC = 3 * 4 ** -4 * 0.6;
    expect(c.get("a")).toBeCloseTo(0.5 / proxyA, 9);
    expect(c.get("c")).toBeCloseTo(0.001 / proxyC, 9);
    expect(c.has("b")).toBe(false);
    const items = planItemsFromReport(r);
    // Two known values: the upper median.
    expect(items.find((i) => i.name === "b")!.coefficient).toBeCloseTo(Math.max(0.5 / proxyA, 0.001 / proxyC), 6);
    expect(items.every((i) => i.choices.length === BITS.length * GROUPS.length * 2)).toBe(true);
  });

  it.each([2.7, 3.3, 4.2, 5.5, 8.6])("budget %s: within budget and as good as exhaustive search", (budget) => {
    for (const r of [report(false), report(true)]) {
      const plan = replanner(r)(budget);
      expect(plan.avgBits).toBeLessThanOrEqual(budget + 1e-9);
      expect(plan.layers.map((l) => l.name)).toEqual(["a", "b", "c"]);
      for (const l of plan.layers) expect(l.bitsPerWeight).toBeCloseTo(bitsPerWeight(l.bits, l.group, shapes.find((s) => s.name === l.name)!.in), 12);
      expect(plan.predicted!).toBeCloseTo(bruteForce(r, budget), 12);
    }
  });

  it("a budget below the cheapest plan is a user error", () => {
    expect(() => replanner(report(false))(2.0)).toThrow(UsageError);
  });

  it("re-plans only the layers the quantization quantized: kept layers (lm_head) stay out", () => {
    const r = report(true);
    // The proxy table covers every layer; the quantize run kept "c" in float.
    setSection(r, "quantization", {
      method: "gptq", bits: 4, group: 32, format: "matmulnbits", output: "/m/model.q.onnx", seconds: 1, avg_bits: 0, plan: null,
      layers: ["a", "b"].map((name) => ({ name, method: "gptq", bits: 4, group: 32, proxy_loss: 0.01, proxy_loss_rtn: 0.02, damp: null, dead_columns: null, seconds: 0 })),
      kept: [{ name: "c", reason: "stays in float" }],
    });
    expect([...replanLayers(r)]).toEqual(["a", "b"]);
    const bits = reportToBits(r, { canReplan: true })!;
    const before = bits.plan.layers.map((l) => l.name);
    expect(before).toEqual(["a", "b"]);
    for (const budget of [2.7, 4.2, 8.6]) {
      const plan = replanner(r)(budget);
      // The same bars before and after: one per quantized layer.
      expect(plan.layers.map((l) => l.name)).toEqual(before);
      const params = shapes.filter((s) => before.includes(s.name)).reduce((n, s) => n + s.in * s.out, 0);
      expect(plan.layers.reduce((n, l) => n + l.params, 0)).toBe(params);
    }
  });

  it("an analysis-only report re-plans every layer but lm_head", () => {
    const r = report(false);
    r.layers[2].role = "lm_head";
    expect([...replanLayers(r)]).toEqual(["a", "b"]);
    expect(replanner(r)(4.2).layers.map((l) => l.name)).toEqual(["a", "b"]);
    expect(reportToBits(r)!.plan.layers.map((l) => l.name)).toEqual(["a", "b"]);
  });
});
