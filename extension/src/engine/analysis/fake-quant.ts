import { gptqQuantize } from "../kernels/gptq";
import { rtnDequantizeSync, rtnQuantize } from "../kernels/quant";
import { proxyLoss } from "../quant/proxy";
import type { Bits } from "../report/schema";

/** One per-layer quantization choice the analyses compare (asymmetric, no act-order, no clipping). */
export interface Setting {
  method: "rtn" | "gptq";
  bits: Bits;
  /** Inputs per scale/zero; 0 = per output channel. */
  group: number;
}

export const settingLabel = (s: Setting): string => `${s.method} W${s.bits} ${s.group ? `g${s.group}` : "per-channel"}`;

/** A group as wide as the layer's inputs (or wider) is one group per row: per-channel. */
export function effectiveGroup(group: number, cols: number): number {
  return group >= cols ? 0 : group;
}

export interface FakeQuant {
  /** Dequantized W [rows × cols]. */
  deq: Float32Array;
  /** tr((W−Q)H(W−Q)ᵀ)/tr(WHWᵀ); null without H. */
  proxy: number | null;
}

/**
 * Fake-quantize W [rows × cols] with `s` (GPTQ needs H [cols × cols]); the result's proxy loss is
 * normalised by tr(W H Wᵀ). Same kernels and defaults as quantizeModel (percdamp 0.01, block 128).
 */
export async function fakeQuantize(w: Float32Array, rows: number, cols: number, s: Setting, h: Float64Array | null, signal?: AbortSignal, percdamp = 0.01): Promise<FakeQuant> {
  const group = effectiveGroup(s.group, cols);
  if (s.method === "gptq") {
    if (!h) throw new Error("fakeQuantize: GPTQ needs a Hessian");
    const g = await gptqQuantize({ w, rows, cols, h: Float32Array.from(h), bits: s.bits, group, symmetric: false, percdamp, batchStartGroups: true }, { signal });
    return { deq: rtnDequantizeSync({ codes: g.codes, scales: g.scales, zeros: g.zeros }, rows, cols, group), proxy: g.relProxyLoss };
  }
  const q = await rtnQuantize(w, rows, cols, { bits: s.bits, symmetric: false, group }, { signal });
  const deq = rtnDequantizeSync(q, rows, cols, group);
  if (!h) return { deq, proxy: null };
  const { loss, energy } = await proxyLoss(w, deq, h, rows, cols, signal);
  return { deq, proxy: energy > 0 ? loss / energy : 0 };
}

/**
 * Bits per weight of a layer at `bits` with groups of `group` inputs (0 = per-channel): the codes
 * plus one float16 scale (16 bits) and one zero point at `bits` bits per group per output row
 * (the last group may be shorter: ceil(cols/group) groups).
 */
export function bitsPerWeight(bits: number, group: number, cols: number): number {
  const ngroups = group === 0 || group >= cols ? 1 : Math.ceil(cols / group);
  return bits + (ngroups * (16 + bits)) / cols;
}
