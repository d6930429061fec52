import { describe, expect, it } from "vitest";
import { bestWithin, itemsFromSection, makeChoice, paretoFrontier, planForBudget, planSettings, type PlanItem } from "../../../extension/src/engine/analysis/bit-plan";
import { bitsPerWeight } from "../../../extension/src/engine/analysis/fake-quant";
import { Xoshiro128 } from "../../fixtures/generator/random";

/** Uniform [0, 1) from the fixtures' seeded generator. */
function rng(seed: number): () => number {
  const r = new Xoshiro128(seed);
  return () => r.nextUint32() / 2 ** 32;
}

/** Random small instance: layers with random sizes, choices with random (cost, error) trade-offs. */
function instance(seed: number, layers: number, choices: number): PlanItem[] {
  const r = rng(seed);
  return Array.from({ length: layers }, (_, i) => {
    const cols = [32, 64, 96, 172][Math.floor(r() * 4)];
    const rows = 8 + Math.floor(r() * 56);
    const coefficient = 0.1 + r();
    const settings = planSettings(cols).sort(() => r() - 0.5).slice(0, choices);
    return {
      name: `layer${i}`,
      params: rows * cols,
      cols,
      coefficient,
      choices: settings.map((s) => makeChoice(s, rows * cols, cols, 2 ** -(s.bits * (0.8 + 0.4 * r())) * (s.method === "gptq" ? 0.7 : 1), coefficient)),
    };
  });
}

/** Every assignment: the true minimum under the budget and the true Pareto set. */
function bruteForce(items: PlanItem[], maxCost: number): { best: number; bestCost: number; all: { cost: number; error: number }[] } {
  const all: { cost: number; error: number }[] = [];
  let best = Infinity;
  let bestCost = NaN;
  const rec = (i: number, cost: number, error: number) => {
    if (i === items.length) {
      all.push({ cost, error });
      if (cost <= maxCost * (1 + 1e-12) && error < best) {
        best = error;
        bestCost = cost;
      }
      return;
    }
    for (const c of items[i].choices) rec(i + 1, cost + c.cost, error + c.error);
  };
  rec(0, 0, 0);
  return { best, bestCost, all };
}

describe("bit plan: multiple-choice knapsack", () => {
  it("bits per weight count a float16 scale and a bits-wide zero per group", () => {
    expect(bitsPerWeight(4, 32, 64)).toBeCloseTo(4 + (2 * 20) / 64, 12);
    expect(bitsPerWeight(3, 0, 172)).toBeCloseTo(3 + 19 / 172, 12); // per-channel: one group of 172
    expect(bitsPerWeight(2, 64, 172)).toBeCloseTo(2 + (3 * 18) / 172, 12); // ragged: 64 + 64 + 44
    expect(bitsPerWeight(8, 128, 64)).toBeCloseTo(8 + 24 / 64, 12); // group ≥ inputs: per-channel
  });

  it("is optimal against brute force on small instances and respects the budget", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const items = instance(seed, 2 + (seed % 4), 2 + (seed % 3));
      const params = items.reduce((s, it) => s + it.params, 0);
      const lo = items.reduce((s, it) => s + Math.min(...it.choices.map((c) => c.cost)), 0) / params;
      const hi = items.reduce((s, it) => s + Math.max(...it.choices.map((c) => c.cost)), 0) / params;
      for (const t of [0, 0.2, 0.5, 0.8, 1]) {
        const budget = lo + t * (hi - lo);
        const bf = bruteForce(items, budget * params);
        const { plan, section } = planForBudget(items, budget, "m.onnx");
        expect(section.predicted, `seed ${seed} budget ${budget}`).toBeCloseTo(bf.best, 12);
        // The plan's own accounting: its layers' costs sum to avg_bits, within the budget.
        const cost = plan.layers.reduce((s, l, i) => s + items[i].choices.find((c) => c.setting.method === l.method && c.setting.bits === l.bits && c.setting.group === l.group)!.cost, 0);
        expect(cost / params).toBeCloseTo(plan.avg_bits, 12);
        expect(plan.avg_bits).toBeLessThanOrEqual(budget * (1 + 1e-12));
        expect(section.layers.reduce((s, l) => s + l.predicted, 0)).toBeCloseTo(bf.best, 12);
      }
      // The frontier is exactly the brute force's Pareto set.
      const f = paretoFrontier(items);
      const pareto = bruteForce(items, Infinity)
        .all.sort((a, b) => a.cost - b.cost || a.error - b.error)
        .filter((p, i, arr) => arr.slice(0, i).every((q) => q.error > p.error && !(q.cost === p.cost)));
      expect(Array.from(f.cost)).toEqual(pareto.map((p) => p.cost));
      for (let i = 0; i < pareto.length; i++) expect(f.error[i]).toBeCloseTo(pareto[i].error, 12);
      for (let i = 1; i < f.cost.length; i++) expect(f.error[i]).toBeLessThan(f.error[i - 1]);
    }
  });

  it("a budget below the cheapest plan is a clear error; an ample one takes the least error", () => {
    const items = instance(7, 3, 4);
    expect(() => planForBudget(items, 0.5, "m.onnx")).toThrow(/--budget 0.5 is below the smallest plan possible/);
    const f = paretoFrontier(items);
    expect(bestWithin(f, Infinity)).toBe(f.cost.length - 1);
    const best = items.reduce((s, it) => s + Math.min(...it.choices.map((c) => c.error)), 0);
    expect(planForBudget(items, 100, "m.onnx").section.predicted).toBeCloseTo(best, 12);
    // Re-planning from the report's candidates (the budget slider) gives the same plans.
    const again = itemsFromSection(JSON.parse(JSON.stringify(planForBudget(items, 100, "m.onnx").section.candidates)));
    for (const b of [3, 4.5, 6]) {
      const x = (() => { try { return planForBudget(items, b, "m.onnx").plan; } catch { return null; } })();
      const y = (() => { try { return planForBudget(again, b, "m.onnx").plan; } catch { return null; } })();
      expect(y).toEqual(x);
    }
  });
});
