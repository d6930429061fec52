import { describe, expect, it } from "vitest";
import { classifyError } from "../../../extension/src/commands/errors";
import { BadDataError, BadModelError, CancelledError, UsageError } from "../../../extension/src/engine/errors";

describe("how failures are shown", () => {
  it("cancellation is quiet and says nothing was written", () => {
    expect(classifyError(new CancelledError("quantization"), "Quantize")).toMatchObject({ kind: "cancelled", message: "Quantize cancelled; nothing was written." });
    const abort = new Error("aborted");
    abort.name = "AbortError";
    expect(classifyError(abort, "Analyze").kind).toBe("cancelled");
  });

  it("user errors (bad model, data, setting) show the engine's message, which names what to fix", () => {
    const f = classifyError(new BadModelError("/m/model.onnx", "not an ONNX model", { tensor: "w" }), "Quantize");
    expect(f).toEqual({ kind: "user", message: "Quantize failed: /m/model.onnx (tensor 'w'): not an ONNX model", detail: "Quantize failed: /m/model.onnx (tensor 'w'): not an ONNX model" });
    expect(classifyError(new BadDataError("/d/c.jsonl", "is empty"), "Analyze").kind).toBe("user");
    expect(classifyError(new UsageError("quantlens.bits must be 2, 3, 4 or 8"), "Quantize").message).toBe("Quantize failed: quantlens.bits must be 2, 3, 4 or 8");
  });

  it("anything else is an internal error: a short message, the stack in the log", () => {
    const e = new TypeError("x is undefined");
    const f = classifyError(e, "Open Report");
    expect(f.kind).toBe("internal");
    expect(f.message).toBe("Open Report failed with an internal error: x is undefined. Details are in the QuantLens output.");
    expect(f.detail).toContain(e.stack!);
    expect(classifyError("a string", "X")).toMatchObject({ kind: "internal", message: "X failed with an internal error: a string. Details are in the QuantLens output." });
  });
});
