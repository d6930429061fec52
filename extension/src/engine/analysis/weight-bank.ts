import type { LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { readWeightOutIn, toStoredLayout } from "../quant/layer-weights";
import { fakeQuantize, type Setting } from "./fake-quant";

/**
 * Fake-quantized weights per (layer, setting), computed on first use and cached, in the
 * initializer's stored layout (ready to feed a VariantSession). GPTQ settings need the layer's
 * Hessian (`hessians`: tap tensor → H, float64). Memory: one float32 copy of each layer per
 * setting used; `clear()` drops them.
 */
export class WeightBank {
  private readonly cache = new Map<string, { stored: Float32Array; proxy: number | null }>();

  constructor(
    private readonly model: OnnxModel,
    /** Layer name → the tensor its Hessian is keyed by (its tap). */
    private readonly tapOf: Map<string, string>,
    private readonly hessians: Map<string, Float64Array> | null,
    private readonly percdamp = 0.01,
  ) {}

  hessianOf(l: LinearLayer): Float64Array | null {
    return this.hessians?.get(this.tapOf.get(l.name) ?? l.input) ?? null;
  }

  async get(l: LinearLayer, s: Setting, signal?: AbortSignal): Promise<{ stored: Float32Array; proxy: number | null }> {
    const key = `${l.name}|${s.method}|${s.bits}|${s.group}`;
    let e = this.cache.get(key);
    if (!e) {
      const w = readWeightOutIn(this.model, l);
      const h = this.hessianOf(l);
      if (s.method === "gptq" && !h) throw new Error(`no Hessian for '${l.name}' (input '${l.input}'): GPTQ needs calibration data`);
      const q = await fakeQuantize(w, l.out, l.in, s, h, signal, this.percdamp);
      e = { stored: toStoredLayout(l, q.deq), proxy: q.proxy };
      this.cache.set(key, e);
    }
    return e;
  }

  /** Overrides (weight initializer → values) quantizing `layers` at their settings. */
  async overrides(choices: { layer: LinearLayer; setting: Setting }[], signal?: AbortSignal): Promise<Map<string, Float32Array>> {
    const m = new Map<string, Float32Array>();
    for (const { layer, setting } of choices) m.set(layer.weight, (await this.get(layer, setting, signal)).stored);
    return m;
  }

  clear(): void {
    this.cache.clear();
  }
}
