import { describe, expect, it } from "vitest";
import { bitChoices, defaultBudget, formatChoices, groupChoices, methodChoices, parseBudget, recipeFromAnswers } from "../../../extension/src/commands/picks";
import { METHODS } from "../../../extension/src/engine/quant/config";
import { UsageError } from "../../../extension/src/engine/errors";

describe("Quantize… quick picks", () => {
  it("offers every engine method once, the configured one first", () => {
    const m = methodChoices("rtn");
    expect(m.map((c) => c.value).sort()).toEqual([...METHODS].sort());
    expect(m[0]).toMatchObject({ value: "rtn", description: "configured default" });
    expect(m.every((c) => c.detail)).toBe(true);
  });

  it("SmoothQuant offers 8-bit only; others 2/3/4/8", () => {
    expect(bitChoices("smoothquant", 4).map((c) => c.value)).toEqual([8]);
    expect(bitChoices("gptq", 4).map((c) => c.value).sort()).toEqual([2, 3, 4, 8]);
  });

  it("marks groups wider than the smallest layer input", () => {
    const g = groupChoices(128, 64);
    expect(g.map((c) => c.value)).toEqual([32, 64, 128, 256, 0]);
    expect(g.find((c) => c.value === 64)!.description).toBeUndefined();
    expect(g.find((c) => c.value === 128)!.description).toBe("configured default · layers with fewer than 128 inputs: one scale per output channel");
    expect(g.find((c) => c.value === 0)!.label).toBe("per output channel");
  });

  it("formats: the configured one first", () => {
    expect(formatChoices("qdq")[0].value).toBe("qdq");
  });

  it("answers → recipe; a plan carries its budget", () => {
    expect(recipeFromAnswers({ method: "gptq", bits: 3, group: 64, format: "fake" })).toMatchObject({ config: { method: "gptq", bits: 3, group: 64 }, format: "fake" });
    const p = recipeFromAnswers({ method: "gptq", bits: 4, group: 128, format: "matmulnbits", plan: 3.5 });
    expect(p.plan).toEqual({ budget: 3.5 });
  });

  it("budget box: 2–8.5 bits per weight, default the preset's size", () => {
    expect(parseBudget(" 3.25 ")).toBe(3.25);
    for (const bad of ["", "abc", "1.5", "9", "NaN"]) expect(() => parseBudget(bad), bad).toThrow(UsageError);
    // W4 g128: 4 + 20/128 = 4.15625.
    expect(defaultBudget(4, 128)).toBe("4.16");
    expect(defaultBudget(3, 32)).toBe((3 + 19 / 32).toFixed(2));
  });
});
