import { describe, expect, it } from "vitest";
import { JobProgress, layerLabel, type ProgressStep } from "../../../extension/src/commands/job-progress";

const Q = (i: number) => `gptq /model/layers.${Math.floor(i / 7)}/self_attn/${["q", "k", "v", "o"][i % 4]}_proj/MatMul`;

describe("Quantize progress messages", () => {
  it("names each stage with counts, and the fraction only grows", () => {
    const p = new JobProgress({ layers: 35, analysisTaps: 21, analysisLayers: 36, sequences: 16, tokens: 5750 });
    const steps: ProgressStep[] = [p.start(), p.calibrating()];
    expect(steps[1].message).toBe("calibrating on 16 sequences (5,750 tokens), then quantizing");
    for (let i = 0; i < 35; i++) steps.push(p.quantize(Q(i))!);
    expect(steps[2].message).toBe("quantizing layer 1/35 (GPTQ): block 0 q_proj");
    expect(steps[36].message).toBe("quantizing layer 35/35 (GPTQ): block 4 v_proj");
    steps.push(p.export("matmulnbits", "model.gptq-w4g32.onnx"));
    expect(steps.at(-1)!.message).toBe("exporting MatMulNBits → model.gptq-w4g32.onnx");
    const analysis = [
      "calibrating",
      "calibrating: 1024/5750 tokens",
      "calibrating: 5750/5750 tokens",
      "spectrum of /model/layers.0/input_layernorm/Mul_1_output_0 (64)",
      "incoherence and proxy losses of /model/layers.0/self_attn/q_proj/MatMul",
      "incoherence and proxy losses of /model/layers.0/self_attn/k_proj/MatMul",
      "counting outlier tokens",
      "error propagation (gptq W4)",
      "fp reference logits",
      "sensitivity 1/42: up kl 0.0134",
      "sensitivity 42/42: /model/layers.4/mlp/down_proj/MatMul kl 0.00200",
      "fp vs quantized on held-out text",
    ];
    for (const m of analysis) steps.push(p.analysis(m)!);
    const msgs = steps.map((s) => s.message);
    expect(msgs).toContain("analysing: activation statistics and Hessians, 1,024/5,750 tokens");
    expect(msgs).toContain("analysing: Hessian spectrum 1/21");
    expect(msgs).toContain("analysing: incoherence and proxy losses, layer 2/36 (block 0 k_proj)");
    expect(msgs).toContain("analysing: sensitivity 1/42 (role up alone quantized)");
    expect(msgs).toContain("analysing: sensitivity 42/42 (block 4 down_proj alone quantized)");
    expect(msgs.at(-1)).toBe("evaluating: fp vs quantized on held-out text (KL, top-1, perplexity)");
    // No stage says "loading the model" after the model is loaded.
    expect(msgs.slice(1).some((m) => /loading/.test(m))).toBe(false);
    const fractions = steps.map((s) => s.fraction).filter((f): f is number => f !== undefined);
    for (let i = 1; i < fractions.length; i++) expect(fractions[i]).toBeGreaterThanOrEqual(fractions[i - 1]);
    expect(fractions.at(-1)!).toBeLessThan(1);
    expect(fractions.at(-1)!).toBeGreaterThan(0.9);
  });

  it("without an analysis the quantization fills the bar; unknown messages add nothing", () => {
    const p = new JobProgress({ layers: 2, analysisTaps: 0, analysisLayers: 0, sequences: null, tokens: null });
    expect(p.calibrating().message).toBe("quantizing");
    expect(p.quantize("rtn /lm_head/MatMul")).toEqual({ message: "quantizing layer 1/2 (RTN): lm_head", fraction: 0.02 + 0.88 / 2 });
    expect(p.quantize("something else")).toBeUndefined();
    expect(p.quantize("calibrating block 3 through 14 quantized layers")!.message).toBe("calibrating block 3 through the quantized blocks before it");
    expect(p.export("qdq", "m.onnx").fraction).toBeGreaterThan(0.9);
    expect(p.analysis("what is this")).toBeUndefined();
  });

  it("layer labels", () => {
    expect(layerLabel("/model/layers.12/mlp/up_proj/MatMul")).toBe("block 12 up_proj");
    expect(layerLabel("/lm_head/MatMul")).toBe("lm_head");
  });
});
