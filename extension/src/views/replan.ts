// The bits panel's budget slider: re-solve the bit allocation for a new budget from what the
// report already holds (its proxy table, and the sensitivity coefficients its plan used). Runs in
// the host in milliseconds; nothing is re-measured. No `vscode` here.
import { makeChoice, paretoFrontier, planForBudget, type Frontier, type PlanItem } from "../engine/analysis/bit-plan";
import type { Setting } from "../engine/analysis/fake-quant";
import type { PlanSection, QuantLensReport } from "../engine/report/schema";
import { UsageError } from "../engine/errors";
import type { BitPlan } from "../protocol/bits";
import { planSectionToBitPlan, replanLayers } from "./report-to-panels";

export { replanLayers };

/** Whether a report carries what a re-plan needs. */
export function canReplan(r: QuantLensReport): boolean {
  return Boolean(r.proxy?.rows.some((row) => row.method === "rtn" || row.method === "gptq"));
}

/**
 * Each layer's sensitivity coefficient (mean KL per unit normalised proxy loss, plan-pipeline.ts's
 * definition): the weight the report's plan used, else measured KL by layer ÷ the proxy loss at
 * the same setting, else none (the layer then counts its plain proxy loss).
 */
export function sensitivityCoefficients(r: QuantLensReport): Map<string, number> {
  const out = new Map<string, number>();
  for (const row of r.sensitivity?.rows ?? []) {
    if (row.by !== "layer") continue;
    const p = r.proxy?.rows.find((x) => x.layer === row.target && x.method === row.method && x.bits === row.bits && x.group === row.group);
    if (p && p.proxy_loss > 0 && Number.isFinite(row.kl_mean)) out.set(row.target, Math.max(row.kl_mean, 0) / p.proxy_loss);
  }
  for (const l of r.plan?.layers ?? []) out.set(l.name, l.weight);
  return out;
}

/**
 * Knapsack items from the report (only replanLayers' layers): one per layer of the proxy table, choices = its (rtn|gptq) ×
 * bits × group rows, coefficient from sensitivityCoefficients (the median of the known ones
 * where a layer has none, so every layer's predicted error is on the same scale; 1 when none is known).
 */
export function planItemsFromReport(r: QuantLensReport): PlanItem[] {
  if (!r.proxy) throw new UsageError("this report has no proxy table to re-plan from; run “QuantLens: Analyze” with calibration data");
  const planned = replanLayers(r);
  const layers = new Map(r.layers.filter((l) => planned.has(l.name)).map((l) => [l.name, l]));
  const weights = sensitivityCoefficients(r);
  const known = [...weights.values()].sort((a, b) => a - b);
  const fallback = known.length ? known[Math.floor(known.length / 2)] : 1;
  const items = new Map<string, PlanItem>();
  for (const row of r.proxy.rows) {
    if (row.method !== "rtn" && row.method !== "gptq") continue;
    if (![2, 3, 4, 8].includes(row.bits) || !Number.isFinite(row.proxy_loss)) continue;
    const l = layers.get(row.layer);
    if (!l) continue;
    let it = items.get(row.layer);
    if (!it) items.set(row.layer, (it = { name: row.layer, params: l.in * l.out, cols: l.in, coefficient: weights.get(row.layer) ?? fallback, choices: [] }));
    const setting: Setting = { method: row.method, bits: row.bits as Setting["bits"], group: row.group };
    it.choices.push(makeChoice(setting, it.params, it.cols, row.proxy_loss, it.coefficient));
  }
  if (!items.size) throw new UsageError("the report's proxy table has no RTN/GPTQ rows to plan with");
  return [...items.values()];
}

/** The plan section for `budget` from what the report holds (Analyze adds one at the preset's size). */
export function planSectionFor(r: QuantLensReport, budget: number): PlanSection {
  return planForBudget(planItemsFromReport(r), budget, r.model.file).section;
}

/** A re-planner bound to one report: the Pareto frontier is built once, each budget is a lookup. */
export function replanner(r: QuantLensReport): (budget: number) => BitPlan {
  let items: PlanItem[] | undefined;
  let frontier: Frontier | undefined;
  return (budget) => {
    items ??= planItemsFromReport(r);
    frontier ??= paretoFrontier(items);
    const { section } = planForBudget(items, budget, r.model.file, frontier);
    return planSectionToBitPlan(section, r.layers);
  };
}
