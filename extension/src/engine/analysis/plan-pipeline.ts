import path from "node:path";
import { CancelledError, UsageError } from "../errors";
import { indexLinears, type LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { calibrate, type CalibrationOptions } from "../calib/runner";
import type { TokenData } from "../calib/data";
import { planTaps } from "../calib/taps";
import { gptqQuantize } from "../kernels/gptq";
import { readWeightOutIn } from "../quant/layer-weights";
import type { Bits, PlanSection } from "../report/schema";
import { floatLayers } from "./analyze";
import { makeChoice, paretoFrontier, planForBudget, planSettings, PLAN_BITS, PLAN_GROUPS, PLAN_METHODS, type PlanItem, type PlanResult } from "./bit-plan";
import { bitsPerWeight, effectiveGroup, settingLabel, type Setting } from "./fake-quant";
import { FpReference } from "./sensitivity";
import { VariantSession } from "./variant-session";
import { WeightBank } from "./weight-bank";

export interface PlanOptions {
  data: TokenData;
  /** Held-out tokens for the sensitivity measurement (default: `data`). */
  evalData?: TokenData;
  budgets: number[];
  /** Settings at which each layer's sensitivity is measured (default RTN W3 per-channel). */
  reference?: Setting[];
  bits?: readonly Bits[];
  groups?: readonly number[];
  methods?: readonly ("rtn" | "gptq")[];
  percdamp?: number;
  /** Also measure mean KL of each plan, of uniform settings of about the same size, and of Pareto points. */
  measure?: boolean;
  /** Frontier points to measure besides the plans (default 4, spread from the cheapest to 5 bits). */
  measurePoints?: number;
  calib?: Pick<CalibrationOptions, "batchSize" | "maxMemory" | "threads" | "executionProvider">;
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
}

export interface PlanRun {
  items: PlanItem[];
  plans: PlanResult[];
  /** KL per unit proxy loss per layer, and the KL it came from. */
  sensitivity: { layer: string; kl_mean: number; proxy: number; coefficient: number; setting: Setting }[];
  timings: { calibration: number; proxy: number; fp_reference: number; per_variant: number; solve: number; measure: number };
  uniform: { setting: Setting; avg_bits: number; kl_mean?: number; top1?: number }[];
}

/**
 * `quantlens plan`: per-layer proxy losses for every choice of the grid (bits × group × method,
 * from the calibration Hessians, no model run), each layer's measured sensitivity at the
 * reference setting(s) turned into a coefficient (mean KL per unit normalised proxy loss, so a
 * choice's predicted KL is coefficient × its proxy loss), then the multiple-choice knapsack for
 * each budget (bit-plan.ts). With `measure`, each plan and the uniform settings are run on the
 * held-out tokens (fake-quantized weights fed to one onnxruntime session).
 */
export async function buildPlans(model: OnnxModel, opts: PlanOptions): Promise<PlanRun> {
  const log = opts.onProgress ?? (() => undefined);
  const percdamp = opts.percdamp ?? 0.01;
  const index = indexLinears(model);
  const layers = floatLayers(index);
  const taps = planTaps(index);
  const tapOf = new Map<string, string>();
  for (const t of taps) for (const n of t.layers) tapOf.set(n, t.tensor);
  const wantTaps = [...new Set(layers.map((l) => tapOf.get(l.name)!))];

  // A budget below the cheapest choice for every layer fails now, before any model run.
  const bitsGrid0 = opts.bits ?? PLAN_BITS;
  const groupGrid0 = opts.groups ?? PLAN_GROUPS;
  const totalParams = layers.reduce((s, l) => s + l.in * l.out, 0);
  const cheapest = layers.reduce((s, l) => s + Math.min(...planSettings(l.in, bitsGrid0, groupGrid0, ["rtn"]).map((x) => Math.round(l.in * l.out * bitsPerWeight(x.bits, x.group, l.in)))), 0) / totalParams;
  for (const b of opts.budgets) {
    if (!(b > 0)) throw new UsageError(`--budget must be a positive number of bits per weight, not ${b}`);
    if (b * (1 + 1e-12) < cheapest) throw new UsageError(`--budget ${b} is below the smallest plan possible here (${cheapest.toFixed(3)} bits per weight with the cheapest choice for every layer)`);
  }

  let t0 = performance.now();
  log("calibrating");
  const hessians = new Map<string, Float64Array>();
  const c = await calibrate(model, opts.data, {
    ...opts.calib,
    tensors: wantTaps,
    signal: opts.signal,
    sink: (r) => {
      if (r.hessian) hessians.set(r.tap.tensor, r.hessian);
    },
  });
  const calibration = c.seconds;

  t0 = performance.now();
  const proxy = new Map<string, number>(); // `${layer}|${method}|${bits}|${group}`
  const bitsGrid = opts.bits ?? PLAN_BITS;
  const groupGrid = opts.groups ?? PLAN_GROUPS;
  const methods = opts.methods ?? PLAN_METHODS;
  const refSettings = opts.reference ?? [{ method: "rtn", bits: 3, group: 0 }];
  for (const l of layers) {
    if (opts.signal?.aborted) throw new CancelledError("plan");
    log(`proxy losses of ${l.name}`);
    const w = readWeightOutIn(model, l);
    const h = Float32Array.from(hessians.get(tapOf.get(l.name)!)!);
    const needed = new Set<string>();
    for (const s of [...planSettings(l.in, bitsGrid, groupGrid, methods), ...refSettings]) needed.add(`${s.bits}|${effectiveGroup(s.group, l.in)}`);
    for (const key of needed) {
      const [b, g] = key.split("|").map(Number);
      const q = await gptqQuantize({ w, rows: l.out, cols: l.in, h, bits: b as Bits, group: g, symmetric: false, percdamp }, { signal: opts.signal });
      proxy.set(`${l.name}|rtn|${b}|${g}`, q.relProxyLossRtn);
      proxy.set(`${l.name}|gptq|${b}|${g}`, q.relProxyLoss);
    }
  }
  const proxyOf = (l: LinearLayer, s: Setting) => proxy.get(`${l.name}|${s.method}|${s.bits}|${effectiveGroup(s.group, l.in)}`)!;
  const proxySeconds = (performance.now() - t0) / 1000;

  const bank = new WeightBank(model, tapOf, hessians, percdamp);
  const evalData = opts.evalData ?? opts.data;
  const session = await VariantSession.open(model, { layers, ...opts.calib });
  try {
    log("fp reference logits");
    const ref = await FpReference.build(session, evalData, opts.signal);
    t0 = performance.now();
    const sensitivity: PlanRun["sensitivity"] = [];
    const coefficient = new Map<string, number>();
    for (const [i, l] of layers.entries()) {
      const ratios: number[] = [];
      for (const s of refSettings) {
        const m = await ref.compare(session, await bank.overrides([{ layer: l, setting: s }], opts.signal), opts.signal);
        const p = proxyOf(l, s);
        sensitivity.push({ layer: l.name, kl_mean: m.kl_mean, proxy: p, coefficient: p > 0 ? m.kl_mean / p : 0, setting: s });
        if (p > 0) ratios.push(m.kl_mean / p);
      }
      coefficient.set(l.name, ratios.length ? ratios.reduce((a, b) => a + b, 0) / ratios.length : 0);
      log(`sensitivity ${i + 1}/${layers.length}: ${l.name}`);
    }
    const perVariant = (performance.now() - t0) / 1000 / Math.max(1, layers.length * refSettings.length);

    t0 = performance.now();
    const items: PlanItem[] = layers.map((l) => ({
      name: l.name,
      params: l.in * l.out,
      cols: l.in,
      coefficient: coefficient.get(l.name)!,
      choices: planSettings(l.in, bitsGrid, groupGrid, methods).map((s) => makeChoice(s, l.in * l.out, l.in, proxyOf(l, s), coefficient.get(l.name)!)),
    }));
    const frontier = paretoFrontier(items);
    const modelName = path.basename(model.file);
    const plans = opts.budgets.map((b) => planForBudget(items, b, modelName, frontier));
    const solve = (performance.now() - t0) / 1000;

    const params = layers.reduce((s, l) => s + l.in * l.out, 0);
    const uniformSize = (s: Setting) => layers.reduce((acc, l) => acc + l.in * l.out * bitsPerWeight(s.bits, effectiveGroup(s.group, l.in), l.in), 0) / params;
    const uniform: PlanRun["uniform"] = [];
    for (const method of methods) for (const b of bitsGrid) for (const g of groupGrid) uniform.push({ setting: { method, bits: b, group: g }, avg_bits: uniformSize({ method, bits: b, group: g }) });
    uniform.sort((a, b) => a.avg_bits - b.avg_bits);

    t0 = performance.now();
    if (opts.measure) {
      const byName = new Map(layers.map((l) => [l.name, l]));
      const measureChoices = async (choices: { layer: LinearLayer; setting: Setting }[]) => ref.compare(session, await bank.overrides(choices, opts.signal), opts.signal);
      for (const p of plans) {
        log(`measuring the plan for ${p.plan.budget} bits`);
        const m = await measureChoices(p.plan.layers.map((x) => ({ layer: byName.get(x.name)!, setting: { method: x.method, bits: x.bits, group: x.group } })));
        const candidates = uniform.filter((u) => u.avg_bits <= p.plan.budget + 1e-9 && u.avg_bits > p.plan.budget - 1);
        for (const u of candidates) {
          if (u.kl_mean !== undefined) continue;
          log(`measuring uniform ${settingLabel(u.setting)}`);
          const mu = await measureChoices(layers.map((layer) => ({ layer, setting: u.setting })));
          u.kl_mean = mu.kl_mean;
          u.top1 = mu.top1;
        }
        const best = candidates.filter((u) => u.kl_mean !== undefined).sort((a, b) => a.kl_mean! - b.kl_mean!)[0];
        const section = p.section as PlanSection;
        section.comparisons = best
          ? [{ budget: p.plan.budget, plan_avg_bits: p.plan.avg_bits, plan_kl_mean: m.kl_mean, plan_top1: m.top1, uniform: { method: best.setting.method, bits: best.setting.bits, group: best.setting.group, avg_bits: best.avg_bits, kl_mean: best.kl_mean!, top1: best.top1! } }]
          : [];
        // The plan's own point on the Pareto curve, measured.
        section.pareto.push({ avg_bits: p.plan.avg_bits, predicted: section.predicted, kl_mean: m.kl_mean, top1: m.top1 });
      }
      // A few more frontier points, measured, from the cheapest plan up to 5 bits per weight.
      const n = opts.measurePoints ?? 4;
      const lo = frontier.cost[0] / params;
      const hi = Math.min(5, frontier.cost[frontier.cost.length - 1] / params);
      const measured: { avg_bits: number; predicted: number; kl_mean: number; top1: number }[] = [];
      for (let j = 0; j < n; j++) {
        const target = n === 1 ? hi : lo + ((hi - lo) * j) / (n - 1);
        let k = 0;
        for (let i = 0; i < frontier.cost.length; i++) if (frontier.cost[i] / params <= target + 1e-12) k = i;
        if (measured.some((x) => x.avg_bits === frontier.cost[k] / params)) continue;
        log(`measuring the Pareto point at ${(frontier.cost[k] / params).toFixed(3)} bits`);
        const picks = frontier.picks(k);
        const m = await measureChoices(items.map((it, i) => ({ layer: byName.get(it.name)!, setting: it.choices[picks[i]].setting })));
        measured.push({ avg_bits: frontier.cost[k] / params, predicted: frontier.error[k], kl_mean: m.kl_mean, top1: m.top1 });
      }
      for (const p of plans) {
        p.section.pareto.push(...measured.map((x) => ({ ...x })));
        p.section.pareto.sort((a, b) => a.avg_bits - b.avg_bits);
      }
    }
    return {
      items,
      plans,
      sensitivity,
      uniform,
      timings: { calibration, proxy: proxySeconds, fp_reference: ref.seconds, per_variant: perVariant, solve, measure: (performance.now() - t0) / 1000 },
    };
  } finally {
    await session.release();
  }
}
