import { describe, expect, it } from "vitest";
import type { EvalSummary, LayerInfo, PropagationData, SensitivityEntry } from "../../../extension/src/protocol";
import { filterLayers, parseFilter, sortLayers } from "../../../webview/src/charts/table";
import { compareEval, compareLayers, verdict } from "../../../webview/src/charts/compare";
import { computeSqnrLayout, DEPTH_MARGIN, measuredBits, roleRows } from "../../../webview/src/charts/sensitivity";
import { formatBits, formatBytes, formatCount, formatDelta, formatNumber } from "../../../webview/src/charts/format";

function L(name: string, o: Partial<LayerInfo>): LayerInfo {
  return { name, role: "q", block: 0, in: 64, out: 64, dtype: "float32", input: `${name}_in`, method: null, bits: null, group: null, proxyLoss: null, outliers: 0, sensitivity: null, muW: null, muH: null, sqnrDb: null, ...o };
}

const layers = [
  L("blk0.q", { role: "q", block: 0, bits: 4, group: 128, method: "gptq", proxyLoss: 0.02, outliers: 2 }),
  L("blk0.o", { role: "o", block: 0, bits: 4, group: 128, method: "gptq", proxyLoss: 0.05, outliers: 0, sensitivity: 0.3 }),
  L("blk1.v", { role: "v", block: 1, bits: 8, group: 0, method: "rtn", proxyLoss: null, outliers: 1, sensitivity: 0.1 }),
  L("blk1.down", { role: "down", block: 1, in: 172, bits: 3, group: 32, method: "gptq", proxyLoss: 0.11, outliers: 5 }),
  L("lm_head", { role: "lm_head", block: null, in: 64, out: 512 }),
];

describe("layer table sort", () => {
  it("sorts numbers both ways with nulls last, ties in graph order", () => {
    expect(sortLayers(layers, "proxyLoss", "desc").map((l) => l.name)).toEqual(["blk1.down", "blk0.o", "blk0.q", "blk1.v", "lm_head"]);
    expect(sortLayers(layers, "proxyLoss", "asc").map((l) => l.name)).toEqual(["blk0.q", "blk0.o", "blk1.down", "blk1.v", "lm_head"]);
    expect(sortLayers(layers, "block", "asc").map((l) => l.name)).toEqual(["blk0.q", "blk0.o", "blk1.v", "blk1.down", "lm_head"]);
    expect(sortLayers(layers, "sensitivity", "desc").map((l) => l.name)).toEqual(["blk0.o", "blk1.v", "blk0.q", "blk1.down", "lm_head"]);
  });
  it("sorts roles in model order, names naturally, shapes by size", () => {
    expect(sortLayers(layers, "role", "asc").map((l) => l.role)).toEqual(["q", "v", "o", "down", "lm_head"]);
    const named = [L("layers.10.q", {}), L("layers.2.q", {}), L("layers.1.q", {})];
    expect(sortLayers(named, "name", "asc").map((l) => l.name)).toEqual(["layers.1.q", "layers.2.q", "layers.10.q"]);
    expect(sortLayers(layers, "shape", "desc")[0].name).toBe("lm_head");
    expect(layers[0].name).toBe("blk0.q"); // input untouched
  });
});

describe("layer table filter", () => {
  const names = (q: string) => filterLayers(layers, q).map((l) => l.name);
  it("matches substrings of name, role and input, case-insensitively", () => {
    expect(names("BLK1")).toEqual(["blk1.v", "blk1.down"]);
    expect(names("down_in")).toEqual(["blk1.down"]);
    expect(names("")).toHaveLength(5);
  });
  it("understands key:value terms and combines terms with AND", () => {
    expect(names("role:v")).toEqual(["blk1.v"]);
    expect(names("block:1")).toEqual(["blk1.v", "blk1.down"]);
    expect(names("bits:4")).toEqual(["blk0.q", "blk0.o"]);
    expect(names("outliers:>0")).toEqual(["blk0.q", "blk1.v", "blk1.down"]);
    expect(names("loss:>=0.05")).toEqual(["blk0.o", "blk1.down"]);
    expect(names("method:rtn")).toEqual(["blk1.v"]);
    expect(names("method:fp")).toEqual(["lm_head"]);
    expect(names("block:1 outliers:>2")).toEqual(["blk1.down"]);
    expect(names("kl:<0.2")).toEqual(["blk1.v"]);
  });
  it("treats an unparseable key:value as a substring", () => {
    expect(parseFilter("bits:many")).toHaveLength(1);
    expect(names("bits:many")).toEqual([]);
  });
});

describe("compare", () => {
  it("matches layers by name and computes b − a, with rows for layers in only one report", () => {
    const a = [L("x", { bits: 4, proxyLoss: 0.1, sqnrDb: 20 }), L("y", { bits: 4, proxyLoss: 0.2 }), L("onlyA", {})];
    const b = [L("y", { bits: 3, proxyLoss: 0.5 }), L("x", { bits: 8, proxyLoss: 0.01, sqnrDb: 35 }), L("onlyB", { bits: 2 })];
    const rows = compareLayers(a, b);
    expect(rows.map((r) => r.name)).toEqual(["x", "y", "onlyA", "onlyB"]);
    expect(rows[0].bits).toBe(4);
    expect(rows[0].proxyLoss).toBeCloseTo(-0.09, 12);
    expect(rows[0].sqnrDb).toBe(15);
    expect(rows[1].bits).toBe(-1);
    expect(rows[1].sqnrDb).toBeNull();
    expect(rows[2].b).toBeNull();
    expect(rows[2].bits).toBeNull();
    expect(rows[3].a).toBeNull();
  });
  it("compares evaluation metrics and judges the direction", () => {
    const ea: EvalSummary = { tokens: 100, klMean: 0.2, klP99: 1, klMax: 2, top1: 0.8, pplFp: 10, pplQuant: 12 };
    const eb: EvalSummary = { ...ea, klMean: 0.1, top1: 0.7 };
    const d = compareEval(ea, eb);
    const kl = d.find((m) => m.key === "klMean")!;
    expect(kl.delta).toBeCloseTo(-0.1, 12);
    expect(verdict(kl.delta, kl.higherIsBetter)).toBe("better");
    const top1 = d.find((m) => m.key === "top1")!;
    expect(verdict(top1.delta, top1.higherIsBetter)).toBe("worse");
    expect(verdict(0, true)).toBe("same");
    expect(compareEval(ea, null).every((m) => m.delta === null && m.b === null)).toBe(true);
  });
});

describe("sensitivity", () => {
  const e = (target: string, bits: number, kl: number): SensitivityEntry => ({ target, by: "role", layers: [target], method: "rtn", bits, group: 128, klMean: kl, klP99: kl * 3, top1: 0.9, rank: 0 });
  it("gives one row per role at the lowest measured bits, most sensitive first", () => {
    const entries = [e("q", 4, 0.01), e("v", 4, 0.2), e("o", 4, 0.3), e("q", 3, 0.05), e("v", 3, 0.9), e("down", 4, 0.05), { ...e("blk.0.q", 4, 5), by: "layer" as const }];
    expect(measuredBits(entries)).toEqual([3, 4]);
    expect(roleRows(entries).map((r) => [r.target, r.bits])).toEqual([
      ["v", 3],
      ["q", 3],
    ]);
    expect(roleRows(entries, 4).map((r) => r.target)).toEqual(["o", "v", "down", "q"]);
    expect(roleRows([])).toEqual([]);
  });
  it("lays out SQNR through depth: one point per layer, block bands, local SQNR path", () => {
    const p: PropagationData = {
      method: "rtn",
      bits: 4,
      group: 128,
      tokens: 256,
      klMean: 0.1,
      layers: [
        { layer: "a", block: 0, role: "q", sqnrDb: 30, localSqnrDb: 32 },
        { layer: "b", block: 0, role: "o", sqnrDb: 20, localSqnrDb: null },
        { layer: "c", block: 1, role: "q", sqnrDb: 10, localSqnrDb: 25 },
        { layer: "d", block: null, role: "lm_head", sqnrDb: null, localSqnrDb: null },
      ],
      blocks: [],
    };
    const size = { width: 460, height: 238 };
    const L2 = computeSqnrLayout(p, size);
    expect(L2.points).toHaveLength(4);
    const step = (size.width - DEPTH_MARGIN.left - DEPTH_MARGIN.right) / 4;
    expect(L2.points[1].x - L2.points[0].x).toBeCloseTo(step, 9);
    // Linear in dB: 30 → 20 → 10 equally spaced.
    expect(L2.points[1].y - L2.points[0].y).toBeCloseTo(L2.points[2].y - L2.points[1].y, 9);
    expect(L2.points[0].y).toBeLessThan(L2.points[2].y);
    // An exact layer (infinite SQNR) sits at the top of the axis.
    expect(L2.points[3].y).toBeCloseTo(DEPTH_MARGIN.top, 9);
    expect(L2.blockBands.map((b) => [b.block, b.x1 - b.x0])).toEqual([
      [0, expect.closeTo(2 * step, 9)],
      [1, expect.closeTo(step, 9)],
    ]);
    expect((L2.localPath.match(/[ML]/g) ?? []).length).toBe(2);
  });
});

describe("format", () => {
  it("formats numbers, deltas, bytes, counts and bit settings", () => {
    expect(formatNumber(0.012345)).toBe("0.0123");
    expect(formatNumber(123456)).toBe("1.23e+5");
    expect(formatNumber(null)).toBe("–");
    expect(formatNumber(Infinity)).toBe("∞");
    expect(formatDelta(0.5)).toBe("+0.5");
    expect(formatDelta(-2)).toBe("-2");
    expect(formatBytes(1536)).toBe("1.50 KiB");
    expect(formatBytes(3 * 1024 * 1024 * 1024)).toBe("3.00 GiB");
    expect(formatBytes(100)).toBe("100 B");
    expect(formatCount(6.7e9)).toBe("6.7B");
    expect(formatCount(260000)).toBe("260K");
    expect(formatBits(4, 128)).toBe("4b g128");
    expect(formatBits(8, 0)).toBe("8b per-ch");
    expect(formatBits(null, null)).toBe("fp");
  });
});

describe("short layer names", () => {
  it("drops the export's /model/ prefix and the op suffix, keeps anything else", async () => {
    const { shortLayerName } = await import("../../../webview/src/charts/format");
    expect(shortLayerName("/model/layers.0/self_attn/q_proj/MatMul")).toBe("layers.0/self_attn/q_proj");
    expect(shortLayerName("/lm_head/MatMul")).toBe("lm_head");
    expect(shortLayerName("/model/layers.3/mlp/down_proj/Gemm")).toBe("layers.3/mlp/down_proj");
    expect(shortLayerName("MatMul_12")).toBe("MatMul_12");
    expect(shortLayerName("fc1")).toBe("fc1");
  });
});
