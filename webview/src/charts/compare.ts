/**
 * Compare two reports (pure): layers matched by name, per-layer deltas b − a, and the summary
 * deltas of the evaluation metrics.
 */
import type { EvalSummary, LayerInfo } from "../../../extension/src/protocol";

export interface LayerDeltaRow {
  name: string;
  role: string;
  block: number | null;
  a: LayerInfo | null;
  b: LayerInfo | null;
  /** b − a; null when either side lacks the value. */
  bits: number | null;
  proxyLoss: number | null;
  sqnrDb: number | null;
  sensitivity: number | null;
}

function delta(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b)) return null;
  return b - a;
}

/** One row per layer in either report: a's order, then layers only in b. */
export function compareLayers(a: readonly LayerInfo[], b: readonly LayerInfo[]): LayerDeltaRow[] {
  const byName = new Map(b.map((l) => [l.name, l]));
  const rows: LayerDeltaRow[] = [];
  const seen = new Set<string>();
  const row = (la: LayerInfo | null, lb: LayerInfo | null): LayerDeltaRow => {
    const ref = (la ?? lb) as LayerInfo;
    return {
      name: ref.name,
      role: ref.role,
      block: ref.block,
      a: la,
      b: lb,
      bits: delta(la?.bits, lb?.bits),
      proxyLoss: delta(la?.proxyLoss, lb?.proxyLoss),
      sqnrDb: delta(la?.sqnrDb, lb?.sqnrDb),
      sensitivity: delta(la?.sensitivity, lb?.sensitivity),
    };
  };
  for (const la of a) {
    seen.add(la.name);
    rows.push(row(la, byName.get(la.name) ?? null));
  }
  for (const lb of b) if (!seen.has(lb.name)) rows.push(row(null, lb));
  return rows;
}

export interface MetricDelta {
  key: keyof EvalSummary;
  label: string;
  a: number | null;
  b: number | null;
  delta: number | null;
  /** Whether a larger value is better (top-1) or worse (KL, perplexity). */
  higherIsBetter: boolean;
}

const METRICS: { key: keyof EvalSummary; label: string; higherIsBetter: boolean }[] = [
  { key: "klMean", label: "KL mean", higherIsBetter: false },
  { key: "klP99", label: "KL p99", higherIsBetter: false },
  { key: "klMax", label: "KL max", higherIsBetter: false },
  { key: "top1", label: "Top-1 agreement", higherIsBetter: true },
  { key: "pplQuant", label: "Perplexity (quantized)", higherIsBetter: false },
  { key: "pplFp", label: "Perplexity (fp)", higherIsBetter: false },
];

export function compareEval(a: EvalSummary | null, b: EvalSummary | null): MetricDelta[] {
  return METRICS.map(({ key, label, higherIsBetter }) => {
    const va = a ? a[key] : null;
    const vb = b ? b[key] : null;
    return { key, label, a: va, b: vb, delta: delta(va, vb), higherIsBetter };
  });
}

/** "better" | "worse" | "same" | "unknown" for a delta of a metric. */
export function verdict(d: number | null, higherIsBetter: boolean, eps = 1e-12): "better" | "worse" | "same" | "unknown" {
  if (d === null) return "unknown";
  if (Math.abs(d) <= eps) return "same";
  return d > 0 === higherIsBetter ? "better" : "worse";
}
