// A layer's detail page (Markdown, shown in VS Code's preview when a layer is selected in the
// tree or a panel): what the model says about it, and what the report beside the model measured.
// No `vscode` here.
import { inspectModel, type InspectedLayer } from "../engine/inspect";
import { UsageError } from "../engine/errors";
import { OnnxModel } from "../engine/onnx/model";
import { floatDtype } from "../engine/onnx/dtype";
import { weightStats } from "../engine/analysis/weight-stats";
import type { QuantLensReport } from "../engine/report/schema";
import { decodeF32 } from "../engine/report/schema";
import { figuresFromReport, formatLoss } from "./tree-model";

const md = (s: string) => s.replace(/([\\`*_{}[\]<>|])/g, "\\$1");
const num = (x: number | null | undefined, digits = 4) => (x === null || x === undefined || !Number.isFinite(x) ? "—" : Number(x.toPrecision(digits)).toString());

/**
 * `layer` is what inspect says about it, or just its name when the model no longer holds it as a
 * float linear layer (a quantized model: MatMulNBits); the report then says the rest.
 */
export function layerDetailMarkdown(modelFile: string, layer: InspectedLayer | { name: string; input?: string }, report: unknown = null, reportFile: string | null = null): string {
  const out: string[] = [];
  out.push(`# ${md(layer.name)}`, "");
  out.push(`Model \`${modelFile}\``, "");
  if (!("role" in layer)) {
    out.push("_The model stores this layer in quantized form; the figures below are from its report._", "");
    return out.join("\n") + fromReport(layer, report, reportFile);
  }
  const row = (k: string, v: string) => out.push(`| ${k} | ${v} |`);
  out.push("| | |", "|---|---|");
  row("role", `${layer.role}${layer.role_source === "structure" ? " (from graph structure)" : ""}`);
  row("block", layer.block === null ? "—" : String(layer.block));
  row("shape", `${layer.out} × ${layer.in} (out × in): ${layer.in} inputs → ${layer.out} outputs, ${layer.params.toLocaleString("en-US")} weights`);
  row("dtype", layer.dtype);
  row("op", `${layer.op} (weight ${md(layer.weight)}, ${layer.layout})`);
  row("reads", `\`${layer.input}\` (share group ${layer.share_group})`);
  if (layer.tied_to) row("tied to", md(layer.tied_to));
  if (layer.stats) {
    row("weight absmax / std", `${num(layer.stats.absmax)} / ${num(layer.stats.std)}`);
    row("weight excess kurtosis", `${num(layer.stats.kurtosis, 3)}${layer.stats.kurtosis > 10 ? " — heavy tails: outlier weights" : ""}`);
    if (layer.stats.nonFinite) row("non-finite weights", `**${layer.stats.nonFinite}**`);
  }
  out.push("");

  return out.join("\n") + fromReport(layer, report, reportFile);
}

/** The report's part of the page. */
function fromReport(layer: { name: string; input?: string }, report: unknown, reportFile: string | null): string {
  const out: string[] = [""];
  const row = (k: string, v: string) => out.push(`| ${k} | ${v} |`);
  const f = figuresFromReport(report).get(layer.name);
  if (!report) {
    out.push("_No report describes this model yet: run **QuantLens: Analyze** or **QuantLens: Quantize** for outliers, proxy loss and sensitivity._");
    return out.join("\n") + "\n";
  }
  out.push(`## From the report`, "", `\`${reportFile ?? "report"}\``, "");
  if (!f) {
    out.push("_The report does not mention this layer._");
    return out.join("\n") + "\n";
  }
  out.push("| | |", "|---|---|");
  if (f.bits != null) row("quantized", `${f.method ?? "?"} ${f.bits}-bit, ${f.group ? `groups of ${f.group}` : "per output channel"}`);
  if (f.kept) row("kept in float", md(f.kept));
  if (f.proxyLoss != null) row("proxy loss", `${formatLoss(f.proxyLoss)} (tr((W−Q)H(W−Q)ᵀ)/tr(WHWᵀ); its square root ≈ relative RMS output error ${num(Math.sqrt(f.proxyLoss), 3)})`);
  if (f.outliers != null) row("outlier channels in its input", String(f.outliers));
  if (f.sensitivity != null) row("sensitivity", `${num(f.sensitivity, 3)} nats mean KL with only this layer quantized`);
  out.push("");

  const r = report as Partial<QuantLensReport>;
  if (r.format === "quantlens-report") {
    const input = layer.input ?? r.layers?.find((l) => l.name === layer.name)?.input;
    const act = r.activations?.find((a) => a.tensor === input);
    if (act?.outliers.length) {
      out.push("## Outlier channels of its input", "", "| channel | absmax | × median | robust z | tokens |", "|---:|---:|---:|---:|---:|");
      for (const o of act.outliers.slice(0, 16)) out.push(`| ${o.channel} | ${num(o.absmax)} | ${num(o.ratio, 3)} | ${num(o.score, 3)} | ${o.tokens ?? "—"} |`);
      if (act.outliers.length > 16) out.push(`| … | ${act.outliers.length - 16} more | | | |`);
      out.push("");
    }
    const sp = r.spectra?.find((s) => s.tensor === input);
    if (sp) {
      const ev = decodeF32(sp.eigenvalues);
      out.push("## Hessian of its input", "");
      out.push(`${sp.n}×${sp.n}; λ from ${num(ev[0], 3)} to ${num(ev[ev.length - 1], 3)}; condition number ${sp.condition_number === null ? "∞" : num(sp.condition_number, 3)} (damped ${num(sp.condition_number_damped, 3)}, λ = ${num(sp.damp, 3)}); effective rank ${num(sp.effective_rank, 3)}; dead inputs ${sp.dead_inputs}.`, "");
    }
    const inc = r.incoherence?.find((i) => i.layer === layer.name);
    if (inc) {
      out.push("## Incoherence (QuIP)", "");
      out.push(`μ_W ${num(inc.mu_w, 3)} → ${num(inc.mu_w_rotated, 3)} after rotation; μ_H ${num(inc.mu_h, 3)} → ${num(inc.mu_h_rotated, 3)}.`, "");
    }
    const sens = r.sensitivity?.rows.filter((s) => s.by === "layer" && s.target === layer.name) ?? [];
    if (sens.length) {
      out.push("## Sensitivity", "", "| method | bits | group | KL mean | top-1 | rank |", "|---|---:|---:|---:|---:|---:|");
      for (const s of sens) out.push(`| ${s.method} | ${s.bits} | ${s.group} | ${num(s.kl_mean, 3)} | ${num(100 * s.top1, 3)}% | ${s.rank} |`);
      out.push("");
    }
    const prop = r.propagation?.layers.find((p) => p.layer === layer.name);
    if (prop) out.push("## Error propagation", "", `Output SQNR ${num(prop.sqnr_db, 3)} dB in the quantized model (${num(prop.local_sqnr_db, 3)} dB alone on fp inputs).`, "");
  }
  return out.join("\n") + "\n";
}

/** One layer as `inspect` describes it, with its weight statistics (only this layer's weights are read). */
export async function inspectLayer(file: string, name: string): Promise<InspectedLayer> {
  const r = await inspectModel(file, { noStats: true });
  const layer = r.linears.find((l) => l.name === name);
  if (!layer) throw new UsageError(`${file} has no linear layer named '${name}'`);
  const model = await OnnxModel.load(file);
  try {
    const info = model.info(layer.weight);
    if (info && floatDtype(info.dataType)) layer.stats = await weightStats(model, layer.weight);
  } finally {
    model.close();
  }
  return layer;
}
