/**
 * Bits panel logic (pure): size accounting, the per-layer bar chart, and the budget slider's
 * re-plan requests (the knapsack runs in the host; here only snapping, de-duplication and
 * coalescing: one request in flight, the latest slider value wins).
 */
import type { BitLayer, BitPlan, ReplanRequest } from "../../../extension/src/protocol";
import { computeBarLayout, type BarLayout, type BarOptions } from "./bars";

/** Bytes of a plan's layers at their bits per weight. */
export function planBytes(layers: readonly Pick<BitLayer, "params" | "bitsPerWeight">[]): number {
  let bits = 0;
  for (const l of layers) bits += l.params * l.bitsPerWeight;
  return bits / 8;
}

/** Parameter-weighted average bits per weight. */
export function averageBits(layers: readonly Pick<BitLayer, "params" | "bitsPerWeight">[]): number {
  let p = 0;
  let b = 0;
  for (const l of layers) {
    p += l.params;
    b += l.params * l.bitsPerWeight;
  }
  return p > 0 ? b / p : NaN;
}

export interface BitChartLayout extends BarLayout {
  /** Bits of each bar (the colour category), in layer order. */
  bits: number[];
  /** y of the average-bits line. */
  avgY: number;
}

/** One bar per layer, height = bits per weight (overhead included), colour by bits. */
export function computeBitChart(plan: BitPlan, o: BarOptions): BitChartLayout {
  const layout = computeBarLayout(
    plan.layers.map((l) => l.bitsPerWeight),
    plan.layers.map((l) => l.name),
    { ...o, minYMax: Math.max(8, o.minYMax ?? 0) },
  );
  const { plot } = layout;
  const avgY = plot.y + plot.height - (Math.min(plan.avgBits, layout.yMax) / layout.yMax) * plot.height;
  return { ...layout, bits: plan.layers.map((l) => l.bits), avgY };
}

export interface BudgetRange {
  min: number;
  max: number;
  step: number;
}

/** Snap a slider value to the range's grid (avoids 4.1000000001 budgets). */
export function snapBudget(value: number, r: BudgetRange): number {
  if (!Number.isFinite(value)) return r.min;
  const v = Math.min(r.max, Math.max(r.min, value));
  const k = Math.round((v - r.min) / r.step);
  const snapped = Math.min(r.max, r.min + k * r.step);
  const decimals = Math.max(0, -Math.floor(Math.log10(r.step)) + 1);
  return Number(snapped.toFixed(decimals));
}

/**
 * The re-plan client as a pure state machine. `slide` when the slider moves, `reply` when the
 * response for the in-flight request arrives. At most one request is in flight; slider moves in
 * between are coalesced and only the latest is sent next. A budget equal to the plan shown (or
 * the one in flight) sends nothing.
 */
export interface ReplanState {
  nextId: number;
  /** Budget of the plan on screen. */
  shown: number;
  inFlight: { id: number; budget: number } | null;
  queued: number | null;
}

export type ReplanEvent = { kind: "slide"; budget: number } | { kind: "reply"; id: number; ok: boolean; budget?: number };

export function initialReplanState(shown: number, nextId = 1): ReplanState {
  return { nextId, shown, inFlight: null, queued: null };
}

export function replanStep(s: ReplanState, e: ReplanEvent, range: BudgetRange): { state: ReplanState; send: ReplanRequest | null } {
  if (e.kind === "slide") {
    const budget = snapBudget(e.budget, range);
    if (s.inFlight) {
      const queued = budget === s.inFlight.budget ? null : budget;
      return { state: { ...s, queued }, send: null };
    }
    if (budget === s.shown) return { state: { ...s, queued: null }, send: null };
    const req: ReplanRequest = { type: "replan", id: s.nextId, budget };
    return { state: { ...s, nextId: s.nextId + 1, inFlight: { id: req.id, budget } }, send: req };
  }
  // A reply: ignore stale ids.
  if (!s.inFlight || e.id !== s.inFlight.id) return { state: s, send: null };
  const shown = e.ok ? (e.budget ?? s.inFlight.budget) : s.shown;
  const next: ReplanState = { ...s, shown, inFlight: null };
  if (next.queued !== null && next.queued !== shown) {
    const req: ReplanRequest = { type: "replan", id: next.nextId, budget: next.queued };
    return { state: { ...next, nextId: next.nextId + 1, inFlight: { id: req.id, budget: req.budget }, queued: null }, send: req };
  }
  return { state: { ...next, queued: null }, send: null };
}
