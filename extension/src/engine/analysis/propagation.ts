import { CancelledError } from "../errors";
import type { LinearIndex, LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { equalLengthBatches, type TokenData } from "../calib/data";
import type { ExecutionProvider } from "../calib/session";
import type { PropagationSection } from "../report/schema";
import type { Setting } from "./fake-quant";
import { VariantSession } from "./variant-session";
import type { WeightBank } from "./weight-bank";

const SHAPE_ONLY = new Set(["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose", "Cast"]);

/**
 * The residual stream after each block: block b's last linear layer (its `down`, else the last
 * in graph order) writes into the residual `Add` (through shape-only ops); that Add's output is
 * h_b. Blocks where no such Add is found are left out.
 */
export function residualTensors(index: LinearIndex): { block: number; tensor: string }[] {
  const g = index.graph;
  const out: { block: number; tensor: string }[] = [];
  for (let b = 0; b < index.blocks; b++) {
    const inBlock = index.layers.filter((l) => l.block === b);
    if (!inBlock.length) continue;
    const last = inBlock.find((l) => l.role === "down") ?? inBlock.reduce((a, l) => (l.nodeIndex > a.nodeIndex ? l : a));
    let tensor = last.output;
    for (let hops = 0; hops < 8; hops++) {
      const next = g.consumersOf(tensor);
      const add = next.find((n) => n.opType === "Add");
      if (add) {
        out.push({ block: b, tensor: add.output[0] });
        break;
      }
      const pass = next.find((n) => SHAPE_ONLY.has(n.opType));
      if (!pass) break;
      tensor = pass.output[0];
    }
  }
  return out;
}

export interface PropagationOptions {
  executionProvider?: ExecutionProvider;
  threads?: number;
  batchSize?: number;
  signal?: AbortSignal;
}

/**
 * Run the fp model and the model with every layer in `layers` fake-quantized at `setting` on
 * the same tokens, with every linear output and every block's residual stream tapped:
 * per-layer output SQNR (error carried in + introduced) next to the layer's own proxy-loss SQNR
 * (introduced alone), the relative residual-stream error after each block, and the logits' KL.
 */
export async function errorPropagation(
  model: OnnxModel,
  index: LinearIndex,
  layers: LinearLayer[],
  setting: Setting,
  bank: WeightBank,
  data: TokenData,
  opts: PropagationOptions = {},
): Promise<PropagationSection> {
  const residual = residualTensors(index);
  const taps = [...new Set([...layers.map((l) => l.output), ...residual.map((r) => r.tensor)])];
  const session = await VariantSession.open(model, { layers, taps, executionProvider: opts.executionProvider, threads: opts.threads });
  const overrides = await bank.overrides(layers.map((layer) => ({ layer, setting })), opts.signal);
  const proxies = new Map<string, number | null>();
  for (const l of layers) proxies.set(l.name, (await bank.get(l, setting, opts.signal)).proxy);
  const signal = new Map<string, number>();
  const noise = new Map<string, number>();
  let klSum = 0;
  let tokens = 0;
  const outputs = [...taps, session.logits];
  try {
    for (const batch of equalLengthBatches(data.sequences, opts.batchSize ?? 8)) {
      if (opts.signal?.aborted) throw new CancelledError("error propagation");
      const fp = await session.run(batch, new Map(), outputs);
      const q = await session.run(batch, overrides, outputs);
      for (const t of taps) {
        const a = fp[t].data;
        const b = q[t].data;
        let s = 0;
        let n = 0;
        for (let i = 0; i < a.length; i++) {
          s += a[i] * a[i];
          const d = b[i] - a[i];
          n += d * d;
        }
        signal.set(t, (signal.get(t) ?? 0) + s);
        noise.set(t, (noise.get(t) ?? 0) + n);
      }
      const { data: lp, dims } = fp[session.logits];
      const lq = q[session.logits].data;
      const V = dims[dims.length - 1];
      for (let r = 0; r < lp.length / V; r++) {
        klSum += klRow(lp, lq, r * V, V);
        tokens++;
      }
    }
  } finally {
    await session.release();
  }
  const sqnr = (t: string) => (noise.get(t)! > 0 ? 10 * Math.log10(signal.get(t)! / noise.get(t)!) : null);
  return {
    method: setting.method,
    bits: setting.bits,
    group: setting.group,
    tokens,
    layers: layers.map((l) => {
      const p = proxies.get(l.name);
      return { layer: l.name, block: l.block, role: l.role, sqnr_db: sqnr(l.output), local_sqnr_db: p === null || p === undefined || p <= 0 ? null : -10 * Math.log10(p) };
    }),
    blocks: residual.map((r) => ({ block: r.block, tensor: r.tensor, rel_error: Math.sqrt(noise.get(r.tensor)! / Math.max(signal.get(r.tensor)!, 1e-300)) })),
    kl_mean: tokens ? klSum / tokens : 0,
  };
}

function klRow(p: Float32Array, q: Float32Array, off: number, V: number): number {
  const lse = (x: Float32Array) => {
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, x[off + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(x[off + v] - m);
    return m + Math.log(s);
  };
  const a = lse(p);
  const b = lse(q);
  let kl = 0;
  for (let v = 0; v < V; v++) {
    const lp = p[off + v] - a;
    kl += Math.exp(lp) * (lp - (q[off + v] - b));
  }
  return Math.max(0, kl);
}
