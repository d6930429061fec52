import { describe, expect, it } from "vitest";
import { bitsPerWeight, type BitLayer, type BitPlan } from "../../../extension/src/protocol";
import { computeBarLayout, computeGroupedBarLayout } from "../../../webview/src/charts/bars";
import { bitsPerWeight as engineBitsPerWeight } from "../../../extension/src/engine/analysis/fake-quant";
import { makeChoice, planForBudget, type PlanItem } from "../../../extension/src/engine/analysis/bit-plan";
import { planSectionToBitPlan } from "../../../extension/src/views/report-to-panels";
import type { LayerRow } from "../../../extension/src/engine/report/schema";
import { averageBits, computeBitChart, initialReplanState, planBytes, replanStep, snapBudget, type ReplanEvent, type ReplanState } from "../../../webview/src/charts/bits";

const margin = { top: 0, right: 0, bottom: 0, left: 0 };

function layer(name: string, bits: number, group: number, inF: number, outF: number): BitLayer {
  return { name, role: "q", block: 0, params: inF * outF, method: "gptq", bits, group, bitsPerWeight: bitsPerWeight(bits, group, inF), proxyLoss: 0.01 };
}

describe("size accounting", () => {
  it("charges an fp16 scale and a bits-wide zero per group", () => {
    expect(bitsPerWeight(4, 128, 4096)).toBeCloseTo(4 + 20 / 128, 12);
    expect(bitsPerWeight(4, 0, 64)).toBeCloseTo(4 + 20 / 64, 12);
    // 172 inputs at g 32: 6 groups per row (the last one 12 wide), not 172/32.
    expect(bitsPerWeight(8, 32, 172)).toBeCloseTo(8 + (6 * 24) / 172, 12);
    // A group as wide as the layer or wider is per-channel.
    expect(bitsPerWeight(4, 128, 64)).toBeCloseTo(bitsPerWeight(4, 0, 64), 12);
  });
  it("sums bytes and averages by parameters", () => {
    const layers = [layer("a", 4, 128, 128, 8), layer("b", 8, 0, 64, 16)];
    const bitsA = 128 * 8 * (4 + 20 / 128);
    const bitsB = 64 * 16 * (8 + 24 / 64);
    expect(planBytes(layers)).toBeCloseTo((bitsA + bitsB) / 8, 9);
    expect(averageBits(layers)).toBeCloseTo((bitsA + bitsB) / (128 * 8 + 64 * 16), 12);
    expect(averageBits([])).toBeNaN();
  });
});

describe("bar layouts", () => {
  it("gives one bar per value with heights proportional to the value", () => {
    const L = computeBarLayout([2, 4, 8], ["a", "b", "c"], { width: 300, height: 100, margin });
    expect(L.bars).toHaveLength(3);
    expect(L.yMax).toBe(8);
    expect(L.bars[2].height).toBeCloseTo(100, 9);
    expect(L.bars[1].height).toBeCloseTo(50, 9);
    expect(L.bars[0].height).toBeCloseTo(25, 9);
    for (const b of L.bars) expect(b.y + b.height).toBeCloseTo(100, 9);
    expect(L.bars[0].x).toBeLessThan(L.bars[1].x);
    expect(L.bars[1].x + L.bars[1].width).toBeLessThanOrEqual(L.bars[2].x);
    expect(L.bars.map((b) => b.key)).toEqual(["a", "b", "c"]);
  });
  it("draws NaN and negative values as empty bars and keeps them", () => {
    const L = computeBarLayout([NaN, -1, 3], ["a", "b", "c"], { width: 300, height: 100, margin });
    expect(L.bars.map((b) => b.height)).toEqual([0, 0, expect.closeTo(100, 9)]);
  });
  it("splits each band into its group's bars", () => {
    const L = computeGroupedBarLayout([[4, 2], [1, 3]], ["x", "y"], { width: 200, height: 80, margin });
    expect(L.bars).toHaveLength(4);
    expect(L.bars[0].width).toBeCloseTo(L.bandWidth / 2, 9);
    expect(L.bars[1].x).toBeCloseTo(L.bars[0].x + L.bars[0].width, 9);
    expect(L.bars[1].height).toBeCloseTo(40, 9);
    expect(L.bars[2].key).toBe("y");
  });
});

describe("bit chart", () => {
  it("draws one bar per layer at bits per weight, with the average line", () => {
    const layers = [layer("a", 4, 128, 128, 8), layer("b", 2, 32, 128, 8), layer("c", 8, 0, 64, 16)];
    const plan: BitPlan = { budget: 5, avgBits: averageBits(layers), predicted: 1, sizeBytes: planBytes(layers), layers };
    const L = computeBitChart(plan, { width: 330, height: 110, margin });
    expect(L.bars).toHaveLength(3);
    expect(L.bits).toEqual([4, 2, 8]);
    expect(L.yMax).toBeGreaterThanOrEqual(8.375);
    for (let i = 0; i < 3; i++) expect(L.bars[i].height).toBeCloseTo((layers[i].bitsPerWeight / L.yMax) * 110, 9);
    expect(L.avgY).toBeCloseTo(110 - (plan.avgBits / L.yMax) * 110, 9);
  });
});

describe("budget slider → re-plan requests", () => {
  const range = { min: 2.25, max: 8.5, step: 0.05 };

  it("snaps to the grid and clamps", () => {
    expect(snapBudget(4.1234, range)).toBe(4.1);
    expect(snapBudget(4.126, range)).toBe(4.15);
    expect(snapBudget(1, range)).toBe(2.25);
    expect(snapBudget(99, range)).toBe(8.5);
    expect(snapBudget(NaN, range)).toBe(2.25);
  });

  function run(events: ReplanEvent[], start: ReplanState = initialReplanState(4.15)) {
    let s = start;
    const sent: { id: number; budget: number }[] = [];
    for (const e of events) {
      const r = replanStep(s, e, range);
      s = r.state;
      if (r.send) {
        expect(r.send.type).toBe("replan");
        sent.push({ id: r.send.id, budget: r.send.budget });
      }
    }
    return { s, sent };
  }

  it("sends nothing for the budget already shown", () => {
    expect(run([{ kind: "slide", budget: 4.15 }]).sent).toEqual([]);
  });

  it("keeps one request in flight and sends only the latest value next", () => {
    const { s, sent } = run([
      { kind: "slide", budget: 3.5 },
      { kind: "slide", budget: 3.4 },
      { kind: "slide", budget: 3.3 },
      { kind: "slide", budget: 3.2 },
      { kind: "reply", id: 1, ok: true, budget: 3.5 },
      { kind: "reply", id: 2, ok: true, budget: 3.2 },
    ]);
    expect(sent).toEqual([
      { id: 1, budget: 3.5 },
      { id: 2, budget: 3.2 },
    ]);
    expect(s.shown).toBe(3.2);
    expect(s.inFlight).toBeNull();
  });

  it("drops a queued value equal to the one in flight or the one shown, ignores stale replies", () => {
    const back = run([
      { kind: "slide", budget: 3.5 },
      { kind: "slide", budget: 3.0 },
      { kind: "slide", budget: 3.5 },
      { kind: "reply", id: 1, ok: true },
    ]);
    expect(back.sent).toEqual([{ id: 1, budget: 3.5 }]);
    expect(back.s.shown).toBe(3.5);
    const stale = run([
      { kind: "slide", budget: 3.5 },
      { kind: "reply", id: 99, ok: true },
    ]);
    expect(stale.s.inFlight).toEqual({ id: 1, budget: 3.5 });
  });

  it("keeps the old plan on a failed reply and sends what was queued", () => {
    const { s, sent } = run([
      { kind: "slide", budget: 3.5 },
      { kind: "slide", budget: 5 },
      { kind: "reply", id: 1, ok: false },
    ]);
    expect(sent).toEqual([
      { id: 1, budget: 3.5 },
      { id: 2, budget: 5 },
    ]);
    expect(s.shown).toBe(4.15);
  });
});

describe("ragged groups: one size formula for the planner, the report and the Bits panel", () => {
  it("a 172-input layer at g 128 has two groups per row (128 + 44), not 172/128", () => {
    const exact = 4 + (2 * 20) / 172;
    expect(bitsPerWeight(4, 128, 172)).toBeCloseTo(exact, 12);
    expect(engineBitsPerWeight(4, 128, 172)).toBeCloseTo(exact, 12);
    // Not the old bits + (16 + bits)/g, which undercounts the short last group.
    expect(Math.abs(bitsPerWeight(4, 128, 172) - (4 + 20 / 128))).toBeGreaterThan(0.07);
    for (const bits of [2, 3, 4, 8])
      for (const g of [0, 16, 32, 64, 128, 256])
        for (const cols of [64, 172, 4096, 11008]) expect(bitsPerWeight(bits, g, cols)).toBeCloseTo(engineBitsPerWeight(bits, g, cols), 12);
  });

  it("a 3.5-bit plan shows the same average in the plan and in the Bits panel", () => {
    const shapes = [
      { name: "gate", in: 64, out: 172 },
      { name: "down", in: 172, out: 64 },
      { name: "q", in: 64, out: 64 },
    ];
    const items: PlanItem[] = shapes.map((s, i) => ({
      name: s.name,
      params: s.in * s.out,
      cols: s.in,
      coefficient: 1 + i,
      choices: ([2, 3, 4, 8] as const).flatMap((bits) =>
        [32, 128, 0].map((group) => makeChoice({ method: "rtn", bits, group: group >= s.in ? 0 : group }, s.in * s.out, s.in, 4 ** -bits * (group ? 0.8 : 1), 1 + i)),
      ),
    }));
    const { section } = planForBudget(items, 3.5, "/m/model.onnx");
    expect(section.layers.some((l) => l.name === "down" && l.group === 128)).toBe(true);
    const rows: LayerRow[] = shapes.map((s) => ({ name: s.name, role: "other", block: 0, in: s.in, out: s.out, dtype: "float32", input: "x", method: null, bits: null, group: null, proxy_loss: null, outlier_count: 0, sensitivity: null, mu_w: null, mu_h: null }));
    const panel = planSectionToBitPlan(section, rows);
    expect(panel.avgBits).toBeCloseTo(section.plan.avg_bits, 12);
    expect(panel.avgBits).toBeLessThanOrEqual(3.5 + 1e-12);
    // Each bar's bits/weight is what the protocol's formula gives for its layer.
    for (const l of panel.layers) {
      const s = shapes.find((x) => x.name === l.name)!;
      expect(l.bitsPerWeight).toBeCloseTo(bitsPerWeight(l.bits, l.group, s.in), 12);
    }
    expect(averageBits(panel.layers)).toBeCloseTo(section.plan.avg_bits, 12);
  });
});
