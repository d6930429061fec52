import path from "node:path";
import fs from "node:fs";
import { BadModelError } from "./errors";
import { weightStats, type MomentsFn, type WeightStats } from "./analysis/weight-stats";
import { floatDtype } from "./onnx/dtype";
import { assertFiniteWeights, indexLinears, requireLinears, type LinearLayer, type Role, type ShareGroup, type Embedding } from "./onnx/linear";
import { OnnxModel } from "./onnx/model";
import { kernelBackend, type KernelBackend } from "./kernels/index";

export interface InspectedLayer {
  name: string;
  role: Role;
  role_source: LinearLayer["roleSource"];
  block: number | null;
  in: number;
  out: number;
  dtype: string;
  /** The activation tensor the layer reads. */
  input: string;
  weight: string;
  op: LinearLayer["op"];
  layout: LinearLayer["layout"];
  weight_path: string[];
  params: number;
  share_group: number;
  tied_to?: string;
  /** Weight statistics; `null` for weights that are not float (already quantized). */
  stats: WeightStats | null;
}

export interface InspectResult {
  model: string;
  ir_version: number;
  opset: number;
  producer: string;
  file_bytes: number;
  weight_bytes: number;
  external_data: boolean;
  nodes: number;
  blocks: number;
  linears: InspectedLayer[];
  share_groups: ShareGroup[];
  embeddings: Embedding[];
  totals: {
    linears: number;
    linear_params: number;
    /** Every initializer element, a tied lm_head counted once. */
    all_params: number;
    by_role: Record<string, { count: number; params: number }>;
  };
  ops: Record<string, number>;
  timing: { load_s: number; index_s: number; stats_s: number };
  /** Which kernels computed the statistics (native addon or the TypeScript fallback). */
  kernels: KernelBackend;
}

export interface InspectOptions {
  /** Skip weight statistics (index only). */
  noStats?: boolean;
  moments?: MomentsFn;
  onProgress?: (done: number, total: number, layer: string) => void;
  signal?: AbortSignal;
}

/** Load a model, index its linear layers and compute per-layer weight statistics. */
export async function inspectModel(file: string, opts: InspectOptions = {}): Promise<InspectResult> {
  const t0 = performance.now();
  const model = await OnnxModel.load(file);
  try {
    const t1 = performance.now();
    const index = indexLinears(model);
    const t2 = performance.now();
    requireLinears(model, index);
    // Statistics of NaN/Inf weights would be meaningless: name the corrupt tensor instead.
    if (!opts.noStats) assertFiniteWeights(model, index.layers);
    const linears: InspectedLayer[] = [];
    for (const [i, l] of index.layers.entries()) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error("cancelled");
      opts.onProgress?.(i, index.layers.length, l.name);
      const info = model.info(l.weight)!;
      const stats =
        opts.noStats || !floatDtype(info.dataType) ? null : await weightStats(model, l.weight, opts.moments);
      linears.push({
        name: l.name,
        role: l.role,
        role_source: l.roleSource,
        block: l.block,
        in: l.in,
        out: l.out,
        dtype: l.dtype,
        input: l.input,
        weight: l.weight,
        op: l.op,
        layout: l.layout,
        weight_path: l.weightPath,
        params: l.in * l.out,
        share_group: l.shareGroup,
        ...(l.tiedTo ? { tied_to: l.tiedTo } : {}),
        stats,
      });
    }
    const t3 = performance.now();
    const byRole: Record<string, { count: number; params: number }> = {};
    for (const l of linears) {
      const r = (byRole[l.role] ??= { count: 0, params: 0 });
      r.count++;
      r.params += l.params;
    }
    // Parameters counted once: a tied lm_head repeats the embedding table.
    let allParams = 0;
    for (const t of model.initializers()) allParams += model.info(t.name)!.count;
    for (const l of linears) if (l.tied_to && l.weight !== l.tied_to) allParams -= l.params;
    return {
      model: path.relative(process.cwd(), model.file) || model.file,
      ir_version: model.irVersion,
      opset: model.opset,
      producer: [model.proto.producerName, model.proto.producerVersion].filter(Boolean).join(" "),
      file_bytes: model.fileSize,
      weight_bytes: model.weightBytes,
      external_data: [...model.initializers()].some((t) => model.info(t.name)!.external),
      nodes: model.graph.node.length,
      blocks: index.blocks,
      linears,
      share_groups: index.shareGroups,
      embeddings: index.embeddings,
      totals: {
        linears: linears.length,
        linear_params: linears.reduce((s, l) => s + l.params, 0),
        all_params: allParams,
        by_role: byRole,
      },
      ops: index.graph.opHistogram(),
      timing: { load_s: (t1 - t0) / 1000, index_s: (t2 - t1) / 1000, stats_s: (t3 - t2) / 1000 },
      kernels: kernelBackend(),
    };
  } finally {
    model.close();
  }
}

/** Is `file` plausibly an ONNX model path (for friendlier CLI errors before decoding)? */
export function assertReadableFile(file: string): void {
  if (!fs.existsSync(file)) throw new BadModelError(path.resolve(file), "does not exist");
}
