import { CancelledError, UsageError } from "../errors";
import { indexLinears, type LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { calibrate, type CalibrationOptions, type TapResult } from "../calib/runner";
import type { TokenData } from "../calib/data";
import { planTaps } from "../calib/taps";
import { rtnDequantizeSync, rtnQuantize } from "../kernels/quant";
import { gptqQuantize } from "../kernels/gptq";
import { checkConfig, type QuantConfig } from "./config";
import { proxyLoss } from "./proxy";
import { readWeightOutIn, toStoredLayout } from "./layer-weights";

/** One quantized linear layer: W ≈ scale·(code − zero) per group of input channels. */
export interface LayerQuant {
  layer: LinearLayer;
  method: QuantConfig["method"];
  bits: number;
  group: number;
  symmetric: boolean;
  /** [out × in] codes in [0, 2^bits), original column order. */
  codes: Uint8Array;
  /** [out × ngroups]. */
  scales: Float32Array;
  zeros: Float32Array;
  /** tr((W−Q) H (W−Q)ᵀ), normalised by tr(W H Wᵀ); the same for RTN; null without calibration. */
  proxyLoss: number | null;
  relProxyLoss: number | null;
  proxyLossRtn: number | null;
  damp?: number;
  deadColumns?: number;
  seconds: number;
}

export interface QuantizedModel {
  config: QuantConfig;
  layers: LayerQuant[];
  /** Linear layers left in float, with why. */
  kept: { name: string; reason: string }[];
  calibration: { tokens: number; seconds: number; passes: number } | null;
  seconds: number;
}

export interface QuantizeOptions {
  /** Calibration data (needed by GPTQ; gives RTN its proxy loss). */
  data?: TokenData;
  calib?: Pick<CalibrationOptions, "batchSize" | "maxMemory" | "threads" | "executionProvider">;
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
}

/** Dequantized W [out × in] of a layer's result. */
export function dequantized(q: LayerQuant): Float32Array {
  return rtnDequantizeSync({ codes: q.codes, scales: q.scales, zeros: q.zeros }, q.layer.out, q.layer.in, q.group);
}

/**
 * Quantize every linear layer of `model` (lm_head only when asked). GPTQ takes each layer's
 * Hessian from calibration: all at once by default (one run of the fp model), or block by block
 * through the already-quantized blocks with `sequential` (the GPTQ paper's procedure).
 */
export async function quantizeModel(model: OnnxModel, config: QuantConfig, opts: QuantizeOptions = {}): Promise<QuantizedModel> {
  checkConfig(config);
  const t0 = performance.now();
  const index = indexLinears(model);
  const kept: QuantizedModel["kept"] = [];
  const targets = index.layers.filter((l) => {
    if (l.role === "lm_head" && !config.includeLmHead) return keep(kept, l, "lm_head stays in float (use --include-lm-head)");
    if (!["float32", "float16", "bfloat16"].includes(l.dtype)) return keep(kept, l, `already quantized (${l.dtype})`);
    if (config.group > 0 && config.group > l.in) return keep(kept, l, `group ${config.group} is larger than its ${l.in} inputs`);
    return true;
  });
  if (config.method === "gptq" && !opts.data) throw new UsageError("GPTQ needs calibration data (--data FILE)");
  const results = new Map<string, LayerQuant>();
  let calibration: QuantizedModel["calibration"] = null;
  const log = opts.onProgress ?? (() => undefined);
  const quantizeTap = async (r: TapResult | null, layers: LinearLayer[]) => {
    for (const l of layers) {
      if (opts.signal?.aborted) throw new CancelledError("quantization");
      log(`${config.method} ${l.name}`);
      results.set(l.name, await quantizeLayer(model, l, config, r?.hessian ?? null, opts.signal));
    }
  };
  const taps = planTaps(index);
  const layersOf = (tensor: string) => targets.filter((l) => taps.find((t) => t.tensor === tensor)?.layers.includes(l.name));

  if (!opts.data) {
    await quantizeTap(null, targets);
  } else if (!config.sequential) {
    const wanted = taps.filter((t) => layersOf(t.tensor).length > 0);
    const c = await calibrate(model, opts.data, {
      ...opts.calib,
      tensors: wanted.map((t) => t.tensor),
      signal: opts.signal,
      // Quantize as each pass ends, then drop its Hessians: memory stays bounded.
      sink: (r) => quantizeTap(r, layersOf(r.tap.tensor)),
    });
    calibration = { tokens: c.tokens, seconds: c.seconds, passes: c.passes };
  } else {
    const blocks = [...new Set(targets.map((l) => l.block))];
    const overrides = new Map<string, Float32Array>();
    let tokens = 0;
    let seconds = 0;
    let passes = 0;
    for (const block of blocks) {
      const wanted = taps.filter((t) => layersOf(t.tensor).some((l) => l.block === block));
      log(`calibrating block ${block ?? "-"} through ${overrides.size} quantized layers`);
      const c = await calibrate(model, opts.data, {
        ...opts.calib,
        tensors: wanted.map((t) => t.tensor),
        weightOverrides: overrides,
        signal: opts.signal,
        sink: (r) => quantizeTap(r, layersOf(r.tap.tensor).filter((l) => l.block === block)),
      });
      tokens = c.tokens;
      seconds += c.seconds;
      passes += c.passes;
      for (const l of targets.filter((x) => x.block === block)) {
        overrides.set(l.weight, toStoredLayout(l, dequantized(results.get(l.name)!)));
      }
    }
    calibration = { tokens, seconds, passes };
  }
  return {
    config,
    layers: targets.map((l) => results.get(l.name)!).filter(Boolean),
    kept,
    calibration,
    seconds: (performance.now() - t0) / 1000,
  };
}

function keep(kept: QuantizedModel["kept"], l: LinearLayer, reason: string): false {
  kept.push({ name: l.name, reason });
  return false;
}

async function quantizeLayer(
  model: OnnxModel,
  l: LinearLayer,
  config: QuantConfig,
  hessian: Float64Array | null,
  signal: AbortSignal | undefined,
): Promise<LayerQuant> {
  const t0 = performance.now();
  const w = readWeightOutIn(model, l); // W: [out × in]
  const base = { layer: l, method: config.method, bits: config.bits, group: config.group, symmetric: config.symmetric };
  if (config.method === "gptq") {
    if (!hessian) throw new UsageError(`GPTQ needs the Hessian of '${l.input}' (calibration did not produce it)`);
    const g = await gptqQuantize(
      {
        w,
        rows: l.out,
        cols: l.in,
        h: Float32Array.from(hessian),
        bits: config.bits,
        group: config.group,
        symmetric: config.symmetric,
        blockSize: config.blockSize,
        percdamp: config.percdamp,
        actOrder: config.actOrder,
        // Static groups keep every group a contiguous run of inputs, which MatMulNBits and
        // blocked DequantizeLinear need.
        staticGroups: config.actOrder && config.group > 0,
      },
      { signal },
    );
    return {
      ...base,
      codes: g.codes,
      scales: g.scales,
      zeros: g.zeros,
      proxyLoss: g.proxyLoss,
      relProxyLoss: g.relProxyLoss,
      proxyLossRtn: g.proxyLossRtn,
      damp: g.damp,
      deadColumns: g.deadColumns,
      seconds: (performance.now() - t0) / 1000,
    };
  }
  const q = await rtnQuantize(w, l.out, l.in, {
    bits: config.bits,
    symmetric: config.symmetric,
    group: config.group,
    ...(config.clip ? { clip: { grid: 100, maxShrink: 0.8, norm: 2.4 } } : {}),
  }, { signal });
  let loss: { loss: number; energy: number } | null = null;
  if (hessian) loss = await proxyLoss(w, rtnDequantizeSync(q, l.out, l.in, config.group), hessian, l.out, l.in, signal);
  return {
    ...base,
    codes: q.codes,
    scales: q.scales,
    zeros: q.zeros,
    proxyLoss: loss?.loss ?? null,
    relProxyLoss: loss ? (loss.energy > 0 ? loss.loss / loss.energy : 0) : null,
    proxyLossRtn: loss?.loss ?? null,
    seconds: (performance.now() - t0) / 1000,
  };
}
