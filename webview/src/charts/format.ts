/** Number and size formatting for labels and readouts (pure). */

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Math.abs(bytes);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const s = u === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${bytes < 0 ? "-" : ""}${s} ${units[u]}`;
}

/** Three significant digits, exponent notation outside [1e-3, 1e5); "–" for null/NaN. */
export function formatNumber(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "-∞";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(digits - 1);
  return String(Number(v.toPrecision(digits)));
}

/** Signed delta: "+0.12", "-3", "0", "–". */
export function formatDelta(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const s = formatNumber(v, digits);
  return v > 0 ? `+${s}` : s;
}

/** Parameter counts: 4096 → "4.1K", 6.7e9 → "6.7B". */
export function formatCount(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${formatNumber(n / 1e9, 2)}B`;
  if (a >= 1e6) return `${formatNumber(n / 1e6, 2)}M`;
  if (a >= 1e3) return `${formatNumber(n / 1e3, 2)}K`;
  return String(n);
}

/** "4b g128", "8b per-channel", "fp" (float, not quantized). */
export function formatBits(bits: number | null, group: number | null): string {
  if (bits === null) return "fp";
  if (group === null) return `${bits}b`;
  return group === 0 ? `${bits}b per-ch` : `${bits}b g${group}`;
}

/**
 * A layer's ONNX node name without the export's boilerplate, for narrow columns:
 * "/model/layers.0/self_attn/q_proj/MatMul" → "layers.0/self_attn/q_proj". The full name stays
 * available as a tooltip.
 */
export function shortLayerName(name: string): string {
  let s = name.replace(/^\/?model\//, "").replace(/^\//, "");
  s = s.replace(/\/(MatMul|Gemm|MatMulNBits|MatMul_\d+|Gemm_\d+)$/, "");
  return s || name;
}
