import type { QuantizedModel } from "../quant/quantize";
import { indexLinears } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { bitsPerWeight } from "../analysis/fake-quant";
import { layerRows } from "../analysis/analyze";
import type { QuantLensReport, QuantizationSection } from "./schema";
import { newReport, setSection } from "./write";

/**
 * The `quantization` section of a quantize run (schema.ts): per layer the settings and the
 * normalised proxy losses (GPTQ's and RTN's at the same settings), and the average bits per
 * weight with scale/zero overhead (fake-quant.ts bitsPerWeight) over the quantized layers.
 */
export function quantizationSection(q: QuantizedModel, output: { output: string; format: string; plan?: string | null }, evalResult?: QuantizationSection["eval"]): QuantizationSection {
  const params = q.layers.reduce((s, l) => s + l.layer.in * l.layer.out, 0);
  const bits = q.layers.reduce((s, l) => s + l.layer.in * l.layer.out * bitsPerWeight(l.bits, l.group, l.layer.in), 0);
  return {
    method: q.config.method,
    bits: q.config.bits,
    group: q.config.group,
    format: output.format,
    output: output.output,
    seconds: q.seconds,
    avg_bits: params ? bits / params : 0,
    plan: output.plan ?? null,
    layers: q.layers.map((l) => ({
      name: l.layer.name,
      method: l.method,
      bits: l.bits,
      group: l.group,
      proxy_loss: l.relProxyLoss,
      // tr((W−Q_rtn)H(W−Q_rtn)ᵀ) normalised by the same tr(WHWᵀ).
      proxy_loss_rtn: l.relProxyLoss !== null && l.proxyLoss && l.proxyLossRtn !== null ? (l.relProxyLoss * l.proxyLossRtn) / l.proxyLoss : l.relProxyLoss !== null && l.proxyLoss === 0 ? 0 : null,
      damp: l.damp ?? null,
      dead_columns: l.deadColumns ?? null,
      seconds: l.seconds,
    })),
    kept: q.kept,
    ...(evalResult ? { eval: evalResult } : {}),
  };
}

/** A report holding a quantize run (layers table + quantization section), ready for writeReport. */
export function quantizationReport(model: OnnxModel, q: QuantizedModel, output: { output: string; format: string; plan?: string | null }, generator = "quantlens"): QuantLensReport {
  const index = indexLinears(model);
  const report = newReport({ file: model.file, blocks: index.blocks, linears: index.layers.length, linear_params: index.layers.reduce((s, l) => s + l.in * l.out, 0) }, generator);
  setSection(report, "quantization", quantizationSection(q, output));
  report.layers = layerRows(index, report);
  return report;
}
