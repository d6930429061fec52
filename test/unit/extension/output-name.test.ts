import path from "node:path";
import { describe, expect, it } from "vitest";
import { freeOutput, outputFiles, outputTaken, preferredOutput, recipeTag, reportPathFor } from "../../../extension/src/commands/output-name";
import { methodConfig } from "../../../extension/src/commands/settings";

const dir = path.join(path.sep, "models", "tiny");
const model = path.join(dir, "model.onnx");

describe("output naming", () => {
  it("names say what the model is", () => {
    expect(recipeTag({ config: methodConfig("gptq", 4, 128), format: "matmulnbits" })).toBe("gptq-w4g128");
    expect(recipeTag({ config: methodConfig("rtn", 8, 0), format: "qdq" })).toBe("rtn-w8-qdq");
    expect(recipeTag({ config: { ...methodConfig("awq", 4, 64), actBits: 8, actOrder: true }, format: "fake" })).toBe("awq-w4g64-act8-ao-fake");
    expect(recipeTag({ config: methodConfig("rtn", 4, 128), format: "matmulnbits", plan: { budget: 3.5 } })).toBe("plan-3.5b");
    expect(preferredOutput(model, "gptq-w4g128")).toBe(path.join(dir, "model.gptq-w4g128.onnx"));
    expect(preferredOutput(path.join(dir, "Model.ONNX"), "rtn-w4g32")).toBe(path.join(dir, "Model.rtn-w4g32.onnx"));
  });

  it("the report and external data travel with the model", () => {
    expect(reportPathFor(path.join(dir, "model.gptq-w4g128.onnx"))).toBe(path.join(dir, "model.gptq-w4g128.quantlens.json"));
    expect(outputFiles("/a/m.onnx")).toEqual(["/a/m.onnx", "/a/m.onnx.data", "/a/m.quantlens.json"]);
  });

  it("a name is taken when any of its files exists; the first free variant is -2, -3, …", () => {
    const existing = new Set([path.join(dir, "model.gptq-w4g128.onnx"), path.join(dir, "model.gptq-w4g128-2.quantlens.json")]);
    const exists = (p: string) => existing.has(p);
    const preferred = preferredOutput(model, "gptq-w4g128");
    expect(outputTaken(preferred, exists)).toBe(true);
    // -2 has a stray report: also taken.
    expect(freeOutput(preferred, exists)).toBe(path.join(dir, "model.gptq-w4g128-3.onnx"));
    expect(freeOutput(path.join(dir, "free.onnx"), exists)).toBe(path.join(dir, "free.onnx"));
  });

  it("never returns the input model", () => {
    const exists = () => false;
    expect(freeOutput(model, exists, model)).toBe(path.join(dir, "model-2.onnx"));
  });
});
