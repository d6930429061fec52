import { describe, expect, it } from "vitest";
import { LIMITS, PANEL_KINDS, PANEL_MESSAGES, validateWebviewMessage, type PanelKind } from "../../../extension/src/protocol";

const VALID: Record<string, unknown> = {
  ready: { type: "ready" },
  compare: { type: "compare" },
  openLayer: { type: "openLayer", layer: "/model/layers.0/attn/q_proj/MatMul" },
  webviewError: { type: "webviewError", message: "boom" },
  tokenHeatmap: { type: "tokenHeatmap", id: 3, tensor: "/model/layers.0/input_layernorm/Mul_1_output_0", sample: 0 },
  replan: { type: "replan", id: 7, budget: 4.25 },
};

function error(panel: PanelKind, msg: unknown): string {
  const r = validateWebviewMessage(panel, msg);
  if (r.ok) throw new Error(`expected ${JSON.stringify(msg)} to be rejected`);
  return r.error;
}

describe("validateWebviewMessage", () => {
  it("accepts every message each panel may send, and returns it", () => {
    for (const panel of PANEL_KINDS) {
      for (const type of PANEL_MESSAGES[panel]) {
        const r = validateWebviewMessage(panel, VALID[type]);
        expect(r, `${panel}/${type}`).toEqual({ ok: true, message: VALID[type] });
      }
    }
  });

  it("rejects messages a panel does not send (per-panel allow lists)", () => {
    expect(error("overview", VALID.replan)).toMatch(/overview webview message: unknown type "replan"/);
    expect(error("bits", VALID.tokenHeatmap)).toMatch(/unknown type "tokenHeatmap".*sends ready, openLayer, webviewError, replan/);
    expect(error("heatmap", VALID.compare)).toMatch(/unknown type "compare"/);
    expect(validateWebviewMessage("report", VALID.replan).ok).toBe(true);
  });

  it("rejects unknown types and non-objects", () => {
    expect(error("report", { type: "runShell", command: "rm -rf /" })).toMatch(/unknown type "runShell"/);
    expect(error("report", null)).toMatch(/must be an object, got null/);
    expect(error("report", [1, 2])).toMatch(/must be an object, got an array/);
    expect(error("report", "ready")).toMatch(/must be an object, got string/);
    expect(error("report", { kind: "ready" })).toMatch(/field "type" must be a string, got undefined/);
    expect(error("report", { type: "x".repeat(5000) })).toMatch(/unknown type "x{64}…"/);
  });

  it("rejects missing, extra and wrongly typed fields, naming the field", () => {
    expect(error("bits", { type: "replan", id: 1 })).toMatch(/"replan": missing field "budget"/);
    expect(error("bits", { type: "replan", id: 1, budget: "4" })).toMatch(/field "budget" must be a number, got string/);
    expect(error("bits", { type: "replan", id: 1, budget: 4, extra: true })).toMatch(/unexpected field "extra"/);
    expect(error("report", { type: "ready", sneaky: 1 })).toMatch(/unexpected field "sneaky"/);
    expect(error("report", JSON.parse('{"type":"ready","__proto__":{"polluted":true}}'))).toMatch(/unexpected field "__proto__"/);
    expect(error("bits", { type: "replan", id: 1, budget: 4, constructor: 1 })).toMatch(/unexpected field "constructor"/);
    expect(error("overview", { type: "openLayer", layer: 12 })).toMatch(/field "layer" must be a string, got number/);
    expect(error("overview", { type: "openLayer", layer: "" })).toMatch(/field "layer" must not be empty/);
    expect(error("heatmap", { type: "tokenHeatmap", id: 1, tensor: "t", sample: null })).toMatch(/field "sample" must be a number, got null/);
  });

  it("rejects out-of-range numbers", () => {
    expect(error("bits", { type: "replan", id: 1, budget: 0.5 })).toMatch(/field "budget" = 0.5 is out of range \[1, 16\]/);
    expect(error("bits", { type: "replan", id: 1, budget: 17 })).toMatch(/out of range/);
    expect(error("bits", { type: "replan", id: 1, budget: NaN })).toMatch(/finite number, got NaN/);
    expect(error("bits", { type: "replan", id: 1, budget: Infinity })).toMatch(/finite number/);
    expect(error("bits", { type: "replan", id: -1, budget: 4 })).toMatch(/field "id" = -1 is out of range/);
    expect(error("bits", { type: "replan", id: 1.5, budget: 4 })).toMatch(/field "id" must be an integer, got 1.5/);
    expect(error("bits", { type: "replan", id: LIMITS.maxId + 1, budget: 4 })).toMatch(/out of range/);
    expect(error("heatmap", { type: "tokenHeatmap", id: 1, tensor: "t", sample: LIMITS.maxSample + 1 })).toMatch(/"sample".*out of range/);
    expect(validateWebviewMessage("bits", { type: "replan", id: LIMITS.maxId, budget: LIMITS.maxBudget }).ok).toBe(true);
  });

  it("rejects oversized strings", () => {
    expect(error("overview", { type: "openLayer", layer: "a".repeat(LIMITS.maxNameLength + 1) })).toMatch(/field "layer" is 1025 characters long \(at most 1024\)/);
    expect(validateWebviewMessage("overview", { type: "openLayer", layer: "a".repeat(LIMITS.maxNameLength) }).ok).toBe(true);
    expect(error("overview", { type: "webviewError", message: "e".repeat(LIMITS.maxErrorLength + 1) })).toMatch(/"message" is 4097 characters/);
  });

  it("rejects an unknown panel", () => {
    expect(error("terminal" as PanelKind, VALID.ready)).toMatch(/unknown panel "terminal"/);
  });
});
