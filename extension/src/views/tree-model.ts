// The QuantLens tree's content, built without `vscode`: a model → its transformer blocks → their
// linear layers, each with the bits, proxy loss and outlier badges the report beside the model
// gives. Two report shapes are read: the `quantlens-report` (engine/report/schema.ts) and the
// exporter's per-layer list (`format_version: 1`, layers with name/bits/group/rel_proxy_loss).
import type { LayerRow, QuantLensReport } from "../engine/report/schema";
import type { LayerInfo } from "../protocol/common";

/** What the tree needs of a linear layer (from the report, else from the model's index). */
export interface TreeLayerInput {
  name: string;
  role: string;
  block: number | null;
  in: number;
  out: number;
  dtype?: string;
}

/** Per-layer figures a report gives: the overview panel's, and why a layer stayed in float. */
export type LayerFigures = Pick<LayerInfo, "method" | "bits" | "group" | "proxyLoss" | "outliers" | "sensitivity"> & {
  kept?: string;
};

export interface LayerNode {
  kind: "layer";
  model: string;
  name: string;
  role: string;
  block: number | null;
  label: string;
  description: string;
  tooltip: string;
  /** The highest-priority badge, for the icon: outliers > quantized > float. */
  badge: "outliers" | "quantized" | "float";
  figures: LayerFigures | null;
}

export interface BlockNode {
  kind: "block";
  model: string;
  block: number | null;
  label: string;
  description: string;
  tooltip: string;
  layers: LayerNode[];
}

export interface ModelTree {
  blocks: BlockNode[];
  /** One line for the model row: "35 layers · 5 blocks · W4 · 12 outlier channels". */
  description: string;
  /** Report the figures came from, when one was read. */
  report: string | null;
}

/** Per-layer figures from a parsed report JSON (either shape); unknown shapes give an empty map. */
export function figuresFromReport(report: unknown): Map<string, LayerFigures> {
  const out = new Map<string, LayerFigures>();
  if (!report || typeof report !== "object") return out;
  const r = report as Record<string, unknown>;
  const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
  if (r.format === "quantlens-report" && Array.isArray(r.layers)) {
    const q = (r as unknown as QuantLensReport).quantization;
    const kept = new Map((q?.kept ?? []).map((k) => [k.name, k.reason]));
    for (const l of r.layers as LayerRow[]) {
      if (!l || typeof l.name !== "string") continue;
      out.set(l.name, {
        method: str(l.method),
        bits: num(l.bits),
        group: num(l.group),
        proxyLoss: num(l.proxy_loss),
        // Outliers are counted only where the report has activation statistics.
        outliers: Array.isArray(r.activations) ? num(l.outlier_count) : null,
        sensitivity: num(l.sensitivity),
        ...(kept.has(l.name) ? { kept: kept.get(l.name) } : {}),
      });
    }
    return out;
  }
  if (Array.isArray(r.layers)) {
    // The exporter's report: only quantized layers are listed; `kept` lists the others.
    for (const l of r.layers as Record<string, unknown>[]) {
      if (!l || typeof l.name !== "string") continue;
      out.set(l.name, {
        method: str(l.method),
        bits: num(l.bits),
        group: num(l.group),
        proxyLoss: num(l.rel_proxy_loss),
        outliers: null,
        sensitivity: null,
      });
    }
    if (Array.isArray(r.kept)) {
      for (const k of r.kept as Record<string, unknown>[]) {
        if (k && typeof k.name === "string") out.set(k.name, { method: null, bits: null, group: null, proxyLoss: null, outliers: null, sensitivity: null, kept: str(k.reason) ?? "kept in float" });
      }
    }
  }
  return out;
}

/** "q_proj" from "/model/layers.0/self_attn/q_proj/MatMul"; "lm_head" from "/lm_head/MatMul". */
export function shortLayerName(name: string): string {
  const parts = name.split(/[/.]/).filter((p) => p && !/^(MatMul|Gemm|MatMulNBits)(_\d+)?$/.test(p));
  return parts[parts.length - 1] ?? name;
}

export function formatLoss(x: number): string {
  if (x === 0) return "0";
  return x >= 0.01 && x < 1000 ? x.toFixed(x >= 1 ? 2 : 3) : x.toExponential(1);
}

function layerNode(model: string, l: TreeLayerInput, f: LayerFigures | undefined): LayerNode {
  // The role only where the name does not already say it (q_proj is q; an anonymous MatMul_3 is not).
  // Weight shape as W is stored, [out × in], labelled (the overview table's convention).
  const label = shortLayerName(l.name);
  const parts = [...(label === l.role || label.startsWith(`${l.role}_`) ? [] : [l.role]), `${l.out} out × ${l.in} in`];
  if (f?.bits != null) parts.push(`W${f.bits}${f.group ? ` g${f.group}` : f.group === 0 ? " per-ch" : ""}`);
  else if (f?.kept) parts.push("float");
  if (f?.proxyLoss != null) parts.push(`loss ${formatLoss(f.proxyLoss)}`);
  if (f?.sensitivity != null) parts.push(`KL ${formatLoss(f.sensitivity)}`);
  if (f?.outliers) parts.push(`⚠ ${f.outliers} outlier${f.outliers === 1 ? "" : "s"}`);
  const tip = [
    l.name,
    `role ${l.role}${l.block !== null ? `, block ${l.block}` : ""}, weight ${l.out} × ${l.in} (out × in): ${l.in} inputs → ${l.out} outputs${l.dtype ? `, ${l.dtype}` : ""}`,
    ...(f?.bits != null ? [`quantized: ${f.method ?? "?"} ${f.bits}-bit, ${f.group ? `groups of ${f.group}` : "per output channel"}`] : []),
    ...(f?.kept ? [`kept in float: ${f.kept}`] : []),
    ...(f?.proxyLoss != null ? [`proxy loss tr((W−Q)H(W−Q)ᵀ)/tr(WHWᵀ) = ${f.proxyLoss.toPrecision(3)}`] : []),
    ...(f?.outliers != null ? [`outlier channels in its input: ${f.outliers}`] : []),
    ...(f?.sensitivity != null ? [`sensitivity (mean KL, this layer alone quantized): ${f.sensitivity.toPrecision(3)}`] : []),
  ];
  return {
    kind: "layer",
    model,
    name: l.name,
    role: l.role,
    block: l.block,
    label: shortLayerName(l.name),
    description: parts.join(" · "),
    tooltip: tip.join("\n"),
    badge: f?.outliers ? "outliers" : f?.bits != null ? "quantized" : "float",
    figures: f ?? null,
  };
}

/**
 * Blocks in ascending order, layers in the given (graph) order within each; layers outside any
 * block (lm_head, …) go last under "other layers".
 */
export function buildModelTree(model: string, layers: TreeLayerInput[], report: unknown = null, reportFile: string | null = null): ModelTree {
  const figures = figuresFromReport(report);
  const byBlock = new Map<number | null, LayerNode[]>();
  for (const l of layers) {
    const list = byBlock.get(l.block) ?? [];
    list.push(layerNode(model, l, figures.get(l.name)));
    byBlock.set(l.block, list);
  }
  const keys = [...byBlock.keys()].sort((a, b) => (a === null ? 1 : b === null ? -1 : a - b));
  const blocks: BlockNode[] = keys.map((block) => {
    const ls = byBlock.get(block)!;
    return { kind: "block", model, block, label: block === null ? "other layers" : `block ${block}`, ...summary(ls), layers: ls };
  });
  const all = blocks.flatMap((b) => b.layers);
  const nBlocks = keys.filter((k) => k !== null).length;
  const s = summary(all);
  // How many of the layers a quantization covers, when it leaves some in float (lm_head by default).
  const quantized = all.filter((l) => l.figures?.bits != null).length;
  const split = quantized > 0 && quantized < all.length ? ` · ${quantized} quantized, ${all.length - quantized} float` : "";
  return { blocks, description: `${plural(all.length, "layer")} · ${plural(nBlocks, "block")}${split}${s.description ? ` · ${s.description}` : ""}`, report: figures.size ? reportFile : null };
}

/** "1 layer", "36 layers". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function summary(layers: LayerNode[]): { description: string; tooltip: string } {
  const bits = new Map<number, number>();
  let outliers = 0;
  let withOutliers = 0;
  let loss = 0;
  let lossCount = 0;
  for (const l of layers) {
    const f = l.figures;
    if (f?.bits != null) bits.set(f.bits, (bits.get(f.bits) ?? 0) + 1);
    if (f?.outliers) {
      outliers = Math.max(outliers, f.outliers);
      withOutliers++;
    }
    if (f?.proxyLoss != null) {
      loss = Math.max(loss, f.proxyLoss);
      lossCount++;
    }
  }
  const parts: string[] = [];
  if (bits.size) parts.push([...bits.keys()].sort((a, b) => a - b).map((b) => `W${b}`).join("/"));
  if (lossCount) parts.push(`max loss ${formatLoss(loss)}`);
  if (withOutliers) parts.push(`⚠ outliers in ${withOutliers} layer${withOutliers === 1 ? "" : "s"}`);
  const tip = [
    plural(layers.length, "linear layer"),
    ...(bits.size ? [`quantized: ${[...bits].map(([b, n]) => `${n} at ${b} bits`).join(", ")}`] : []),
    ...(lossCount ? [`largest proxy loss: ${loss.toPrecision(3)}`] : []),
    ...(withOutliers ? [`${plural(withOutliers, "layer")} read${withOutliers === 1 ? "s" : ""} an input with outlier channels (up to ${outliers})`] : []),
  ];
  return { description: parts.join(" · "), tooltip: tip.join("\n") };
}
