import type { Command } from "commander";
import { OnnxModel } from "../engine/onnx/model";
import { loadModelData } from "../engine/calib/model-data";
import { quantizeModel } from "../engine/quant/quantize";
import { DEFAULT_CONFIG, type QuantConfig } from "../engine/quant/config";
import { exportQuantized, layerReport, type ExportFormat } from "../engine/export/export";
import { UsageError } from "../engine/errors";
import { progress, progressDone } from "./format";
import { withInterrupt } from "./interrupt";
import { parseCount, parseSize } from "./options";

interface QuantizeFlags {
  method: string;
  bits: string;
  group: string;
  sym?: boolean;
  actOrder?: boolean;
  percdamp: string;
  format: string;
  data?: string;
  samples?: string;
  seqLen?: string;
  sequential?: boolean;
  includeLmHead?: boolean;
  clip?: boolean;
  maxMemory?: string;
  threads?: string;
  output: string;
  json?: boolean;
}

export function registerQuantize(program: Command): void {
  program
    .command("quantize")
    .description("Quantize the linear layers (RTN or GPTQ) and export an ONNX model onnxruntime runs")
    .argument("<model>", "path to a .onnx file (never modified)")
    .option("--method <m>", "rtn or gptq", DEFAULT_CONFIG.method)
    .option("--bits <n>", "2, 3, 4 or 8", String(DEFAULT_CONFIG.bits))
    .option("--group <n>", "input channels per scale (32/64/128…; 0 = per output channel)", String(DEFAULT_CONFIG.group))
    .option("--sym", "symmetric (zero point fixed at 2^(bits-1))")
    .option("--act-order", "GPTQ: quantize inputs by decreasing Hessian diagonal (static groups)")
    .option("--percdamp <x>", "GPTQ damping as a fraction of mean(diag H)", String(DEFAULT_CONFIG.percdamp))
    .option("--format <f>", "matmulnbits, qdq or fake", "matmulnbits")
    .option("--data <file>", "calibration data (required by GPTQ)")
    .option("--samples <n>", "calibration documents to use (default 128)")
    .option("--seq-len <l>", "truncate calibration documents to L tokens")
    .option("--sequential", "GPTQ: calibrate block by block through the already-quantized blocks")
    .option("--include-lm-head", "quantize lm_head too")
    .option("--clip", "RTN: MSE clipping search")
    .option("--max-memory <size>", "memory budget for calibration statistics")
    .option("--threads <n>", "onnxruntime intra-op threads")
    .requiredOption("-o, --output <file>", "the quantized .onnx to write (a .quantlens.json report goes beside it)")
    .option("--json", "print one JSON object on stdout")
    .action(async (modelPath: string, f: QuantizeFlags) => {
      const bits = Number(f.bits);
      const group = Number(f.group);
      if (!/^\d+$/.test(f.group)) throw new UsageError(`--group must be 0 or a positive integer, not '${f.group}'`);
      const config: QuantConfig = {
        ...DEFAULT_CONFIG,
        method: f.method as QuantConfig["method"],
        bits: bits as QuantConfig["bits"],
        group,
        symmetric: !!f.sym,
        actOrder: !!f.actOrder,
        percdamp: Number(f.percdamp),
        sequential: !!f.sequential,
        includeLmHead: !!f.includeLmHead,
        clip: !!f.clip,
      };
      const model = await OnnxModel.load(modelPath);
      try {
        const data = f.data ? loadModelData(model, f.data, { samples: parseCount("--samples", f.samples) ?? 128, seqLen: parseCount("--seq-len", f.seqLen) }) : undefined;
        for (const note of data?.notes ?? []) process.stderr.write(`quantlens: note: ${note}\n`);
        const t0 = performance.now();
        const result = await withInterrupt(async (signal) => {
          const q = await quantizeModel(model, config, {
            data,
            signal,
            calib: { maxMemory: parseSize("--max-memory", f.maxMemory), threads: parseCount("--threads", f.threads) },
            onProgress: (m) => progress(`quantize: ${m}`),
          });
          return { q, exported: await exportQuantized(model, q, f.output, f.format as ExportFormat) };
        });
        progressDone();
        const { q, exported } = result;
        const seconds = (performance.now() - t0) / 1000;
        for (const n of exported.notes) process.stderr.write(`quantlens: note: ${n}\n`);
        const layers = q.layers.map((lq, i) => layerReport(lq, exported.layers[i].form, exported.layers[i].note));
        if (f.json) {
          process.stdout.write(`${JSON.stringify({ output: exported.output, report: exported.report, seconds, format: exported.format, layers, kept: q.kept, notes: exported.notes })}\n`);
        } else {
          const total = q.layers.reduce((s, l) => s + (l.proxyLoss ?? 0), 0);
          const rtn = q.layers.reduce((s, l) => s + (l.proxyLossRtn ?? 0), 0);
          process.stdout.write(
            [
              `Quantized ${q.layers.length} layers (${config.method} W${config.bits} ${config.group ? `g${config.group}` : "per-channel"}${config.actOrder ? " act-order" : ""}) in ${seconds.toFixed(2)} s; ${q.kept.length} kept in float`,
              ...(q.layers[0]?.proxyLoss !== null ? [`proxy loss Σ tr((W−Q)H(W−Q)ᵀ): ${total.toPrecision(4)} (RTN at the same settings: ${rtn.toPrecision(4)})`] : []),
              `Wrote ${exported.output} (${exported.format}) and ${exported.report}`,
              "",
            ].join("\n"),
          );
        }
      } finally {
        model.close();
      }
    });
}
