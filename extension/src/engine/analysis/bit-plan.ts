import { UsageError } from "../errors";
import type { Bits, ParetoPoint, PlanFile, PlanSection } from "../report/schema";
import { bitsPerWeight, type Setting } from "./fake-quant";

/**
 * Bit allocation as a multiple-choice knapsack: each layer takes exactly one choice (bits ×
 * group × method); a choice costs params · bits_per_weight bits (fake-quant.ts bitsPerWeight:
 * float16 scale + `bits`-bit zero per group per row) and is predicted to add
 * `sensitivity coefficient × normalised proxy loss` of KL. Minimise the summed prediction with
 * Σ cost ≤ budget · Σ params.
 *
 * Solver: dynamic programming over Pareto frontiers. After layer i, the frontier holds every
 * non-dominated (cost, error) pair of partial assignments (strictly lower error for higher cost);
 * combining it with layer i+1's choices and pruning dominated pairs is exact, so the final
 * frontier IS the Pareto curve and the best plan under any budget is its last point within the
 * budget. Costs are exact integers (bits). If a frontier grows beyond `maxFrontier` points it is
 * thinned to the best point per cost bucket (then approximate; `thinned` says so) — with 4
 * bits × 4 groups × 2 methods per layer this happens only for models with hundreds of layers.
 */
export interface PlanChoice {
  setting: Setting;
  bitsPerWeight: number;
  /** Bits the layer takes: params · bitsPerWeight. */
  cost: number;
  /** Normalised proxy loss at this setting. */
  proxy: number;
  /** Predicted error: coefficient · proxy. */
  error: number;
}

export interface PlanItem {
  name: string;
  params: number;
  /** Inputs (for the per-channel size) and the sensitivity coefficient (KL per unit proxy loss). */
  cols: number;
  coefficient: number;
  choices: PlanChoice[];
}

export interface Frontier {
  /** Ascending cost, strictly descending error. */
  cost: Float64Array;
  error: Float64Array;
  /** Choice index per item, per frontier point: picks(k) → number[]. */
  picks(k: number): number[];
  thinned: boolean;
}

export const PLAN_BITS: readonly Bits[] = [2, 3, 4, 8];
export const PLAN_GROUPS: readonly number[] = [32, 64, 128, 0];
export const PLAN_METHODS: readonly ("rtn" | "gptq")[] = ["rtn", "gptq"];

/** Every setting of the plan's grid that is distinct for a layer with `cols` inputs (groups ≥ cols are per-channel). */
export function planSettings(cols: number, bits = PLAN_BITS, groups = PLAN_GROUPS, methods = PLAN_METHODS): Setting[] {
  const out: Setting[] = [];
  for (const method of methods) for (const b of bits) for (const g of groups) if (g === 0 || g < cols) out.push({ method, bits: b, group: g });
  return out;
}

export function makeChoice(setting: Setting, params: number, cols: number, proxy: number, coefficient: number): PlanChoice {
  const bpw = bitsPerWeight(setting.bits, setting.group, cols);
  return { setting, bitsPerWeight: bpw, cost: Math.round(params * bpw), proxy, error: coefficient * proxy };
}

export function paretoFrontier(items: PlanItem[], maxFrontier = 20000): Frontier {
  let cost = Float64Array.of(0);
  let error = Float64Array.of(0);
  const back: { prev: Int32Array; choice: Int32Array }[] = [];
  let thinned = false;
  for (const item of items) {
    if (item.choices.length === 0) throw new UsageError(`bit plan: layer '${item.name}' has no admissible choice`);
    const n = cost.length * item.choices.length;
    const cc = new Float64Array(n);
    const ce = new Float64Array(n);
    const cp = new Int32Array(n);
    const ch = new Int32Array(n);
    let k = 0;
    for (let p = 0; p < cost.length; p++) {
      for (let c = 0; c < item.choices.length; c++) {
        cc[k] = cost[p] + item.choices[c].cost;
        ce[k] = error[p] + item.choices[c].error;
        cp[k] = p;
        ch[k] = c;
        k++;
      }
    }
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => cc[a] - cc[b] || ce[a] - ce[b]);
    let keep: number[] = [];
    let best = Infinity;
    for (const i of order) {
      if (ce[i] < best) {
        keep.push(i);
        best = ce[i];
      }
    }
    if (keep.length > maxFrontier) {
      thinned = true;
      const lo = cc[keep[0]];
      const hi = cc[keep[keep.length - 1]];
      const width = (hi - lo) / maxFrontier || 1;
      const thin: number[] = [];
      let bucket = -1;
      for (const i of keep) {
        const b = Math.floor((cc[i] - lo) / width);
        // Within a bucket the last point (highest cost) has the lowest error; keep the first,
        // which is cheapest, unless a later one is needed to reach the frontier's end.
        if (b !== bucket) {
          thin.push(i);
          bucket = b;
        }
      }
      if (thin[thin.length - 1] !== keep[keep.length - 1]) thin.push(keep[keep.length - 1]);
      keep = thin;
    }
    cost = Float64Array.from(keep, (i) => cc[i]);
    error = Float64Array.from(keep, (i) => ce[i]);
    back.push({ prev: Int32Array.from(keep, (i) => cp[i]), choice: Int32Array.from(keep, (i) => ch[i]) });
  }
  return {
    cost,
    error,
    thinned,
    picks(k: number): number[] {
      const picks = new Array<number>(items.length);
      for (let i = items.length - 1; i >= 0; i--) {
        picks[i] = back[i].choice[k];
        k = back[i].prev[k];
      }
      return picks;
    },
  };
}

/** The frontier point with the least error whose cost is within `maxCost` (null if none is). */
export function bestWithin(f: Frontier, maxCost: number): number | null {
  let k: number | null = null;
  for (let i = 0; i < f.cost.length; i++) if (f.cost[i] <= maxCost * (1 + 1e-12)) k = i;
  return k;
}

export interface PlanResult {
  plan: PlanFile;
  section: PlanSection;
}

/** Solve for `budget` average bits per weight and build the plan file and report section. */
export function planForBudget(items: PlanItem[], budget: number, model: string, frontier = paretoFrontier(items)): PlanResult {
  if (!(budget > 0)) throw new UsageError(`--budget must be a positive number of bits per weight, not ${budget}`);
  const params = items.reduce((s, it) => s + it.params, 0);
  const k = bestWithin(frontier, budget * params);
  if (k === null) {
    const min = frontier.cost[0] / params;
    throw new UsageError(`--budget ${budget} is below the smallest plan possible here (${min.toFixed(3)} bits per weight with the cheapest choice for every layer)`);
  }
  const picks = frontier.picks(k);
  const layers = items.map((it, i) => {
    const c = it.choices[picks[i]];
    return { name: it.name, method: c.setting.method, bits: c.setting.bits, group: c.setting.group, bits_per_weight: c.bitsPerWeight, weight: it.coefficient, proxy_loss: c.proxy, predicted: c.error };
  });
  const avg = frontier.cost[k] / params;
  const plan: PlanFile = {
    format: "quantlens-plan",
    version: 1,
    model,
    budget,
    avg_bits: avg,
    layers: layers.map((l) => ({ name: l.name, method: l.method, bits: l.bits, group: l.group })),
  };
  return {
    plan,
    section: { plan, predicted: frontier.error[k], layers, pareto: paretoCurve(frontier, params), candidates: candidatesOf(items), overhead: { scale_bytes: 2, zero_bits: "bits" } },
  };
}

/** The knapsack's input as the report stores it (PlanSection.candidates). */
export function candidatesOf(items: PlanItem[]): NonNullable<PlanSection["candidates"]> {
  return items.map((it) => ({
    name: it.name,
    params: it.params,
    cols: it.cols,
    coefficient: it.coefficient,
    choices: it.choices.map((c) => ({ method: c.setting.method, bits: c.setting.bits, group: c.setting.group, bits_per_weight: c.bitsPerWeight, proxy_loss: c.proxy, predicted: c.error })),
  }));
}

/** Back from the report: re-plan for another budget with planForBudget(itemsFromSection(s), budget, …). */
export function itemsFromSection(candidates: NonNullable<PlanSection["candidates"]>): PlanItem[] {
  return candidates.map((c) => ({
    name: c.name,
    params: c.params,
    cols: c.cols,
    coefficient: c.coefficient,
    choices: c.choices.map((x) => makeChoice({ method: x.method, bits: x.bits, group: x.group }, c.params, c.cols, x.proxy_loss, c.coefficient)),
  }));
}

/** The frontier as (avg bits, predicted) points, thinned to at most `points` for charts. */
export function paretoCurve(f: Frontier, params: number, points = 400): ParetoPoint[] {
  const n = f.cost.length;
  const step = Math.max(1, Math.ceil(n / points));
  const out: ParetoPoint[] = [];
  for (let i = 0; i < n; i += step) out.push({ avg_bits: f.cost[i] / params, predicted: f.error[i] });
  if ((n - 1) % step !== 0) out.push({ avg_bits: f.cost[n - 1] / params, predicted: f.error[n - 1] });
  return out;
}
