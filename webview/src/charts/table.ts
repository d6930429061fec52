/**
 * The layer table's sort and filter (pure). Filter syntax: whitespace-separated terms, all must
 * match; `key:value` terms match one column (role:v, block:3, bits:4, method:gptq, outliers:>0,
 * loss:>0.01), bare terms match a substring of the name, role or input tensor (case-insensitive).
 */
import type { LayerInfo } from "../../../extension/src/protocol";
import { ROLE_ORDER } from "../../../extension/src/protocol";

export type LayerColumn = "name" | "role" | "block" | "shape" | "bits" | "proxyLoss" | "outliers" | "sensitivity" | "sqnrDb";
export const LAYER_COLUMNS: readonly LayerColumn[] = ["name", "role", "block", "shape", "bits", "proxyLoss", "outliers", "sensitivity", "sqnrDb"];
export type SortDir = "asc" | "desc";

function sortValue(l: LayerInfo, c: LayerColumn): number | string | null {
  switch (c) {
    case "name":
      return l.name;
    case "role":
      return ROLE_ORDER.indexOf(l.role);
    case "block":
      return l.block;
    case "shape":
      return l.in * l.out;
    case "bits":
      return l.bits;
    case "proxyLoss":
      return l.proxyLoss;
    case "outliers":
      return l.outliers;
    case "sensitivity":
      return l.sensitivity;
    case "sqnrDb":
      return l.sqnrDb;
  }
}

/** Stable sort; null/NaN values last in either direction; ties keep graph order. */
export function sortLayers(layers: readonly LayerInfo[], column: LayerColumn, dir: SortDir): LayerInfo[] {
  const sign = dir === "asc" ? 1 : -1;
  return layers
    .map((l, i) => ({ l, i, v: sortValue(l, column) }))
    .sort((a, b) => {
      const an = a.v === null || (typeof a.v === "number" && Number.isNaN(a.v));
      const bn = b.v === null || (typeof b.v === "number" && Number.isNaN(b.v));
      if (an || bn) return an && bn ? a.i - b.i : an ? 1 : -1;
      const c = typeof a.v === "string" ? (a.v as string).localeCompare(b.v as string, undefined, { numeric: true }) : (a.v as number) - (b.v as number);
      return c !== 0 ? sign * c : a.i - b.i;
    })
    .map((x) => x.l);
}

type Predicate = (l: LayerInfo) => boolean;

function numberTerm(get: (l: LayerInfo) => number | null, spec: string): Predicate | null {
  const m = /^(>=|<=|>|<|=)?(-?\d+(?:\.\d+)?(?:e-?\d+)?)$/i.exec(spec);
  if (!m) return null;
  const op = m[1] ?? "=";
  const v = Number(m[2]);
  return (l) => {
    const x = get(l);
    if (x === null || Number.isNaN(x)) return false;
    switch (op) {
      case ">":
        return x > v;
      case "<":
        return x < v;
      case ">=":
        return x >= v;
      case "<=":
        return x <= v;
      default:
        return x === v;
    }
  };
}

const NUMERIC: Record<string, (l: LayerInfo) => number | null> = {
  block: (l) => l.block,
  bits: (l) => l.bits,
  group: (l) => l.group,
  outliers: (l) => l.outliers,
  loss: (l) => l.proxyLoss,
  sensitivity: (l) => l.sensitivity,
  kl: (l) => l.sensitivity,
  sqnr: (l) => l.sqnrDb,
  in: (l) => l.in,
  out: (l) => l.out,
};

/** Parse the filter into predicates; an unparseable `key:value` term becomes a substring term. */
export function parseFilter(query: string): Predicate[] {
  const preds: Predicate[] = [];
  for (const raw of query.trim().split(/\s+/)) {
    if (!raw) continue;
    const term = raw.toLowerCase();
    const colon = term.indexOf(":");
    if (colon > 0) {
      const key = term.slice(0, colon);
      const val = term.slice(colon + 1);
      if (key === "role") {
        preds.push((l) => l.role === val);
        continue;
      }
      if (key === "method") {
        preds.push((l) => (l.method ?? "fp").toLowerCase() === val);
        continue;
      }
      const get = NUMERIC[key];
      const p = get ? numberTerm(get, val) : null;
      if (p) {
        preds.push(p);
        continue;
      }
    }
    preds.push((l) => l.name.toLowerCase().includes(term) || l.role === term || l.input.toLowerCase().includes(term));
  }
  return preds;
}

export function filterLayers(layers: readonly LayerInfo[], query: string): LayerInfo[] {
  const preds = parseFilter(query);
  return layers.filter((l) => preds.every((p) => p(l)));
}
