/**
 * Next-token metrics between a reference (fp) and a quantized model's logits at one position.
 * logits: [V] each. Computed in float64 with log-sum-exp for stability.
 */
export interface PositionMetrics {
  /** KL(p_fp ‖ p_quant) in nats. */
  kl: number;
  /** −log p(target) under each model. */
  nllFp: number;
  nllQuant: number;
  /** Whether both models' argmax agree. */
  top1: boolean;
}

function logSoftmaxInto(logits: Float32Array, off: number, V: number, out: Float64Array): number {
  let max = -Infinity;
  let arg = 0;
  for (let v = 0; v < V; v++) {
    const x = logits[off + v];
    if (x > max) {
      max = x;
      arg = v;
    }
  }
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[off + v] - max);
  const lse = max + Math.log(sum);
  for (let v = 0; v < V; v++) out[v] = logits[off + v] - lse;
  return arg;
}

/** Metrics at every position of a sequence: logits [T × V] of both models, targets [T]. */
export function sequenceMetrics(fp: Float32Array, quant: Float32Array, targets: ArrayLike<number>, V: number): PositionMetrics[] {
  const T = targets.length;
  const lp = new Float64Array(V);
  const lq = new Float64Array(V);
  const out: PositionMetrics[] = [];
  for (let t = 0; t < T; t++) {
    const argP = logSoftmaxInto(fp, t * V, V, lp);
    const argQ = logSoftmaxInto(quant, t * V, V, lq);
    let kl = 0;
    for (let v = 0; v < V; v++) {
      const p = Math.exp(lp[v]);
      if (p > 0) kl += p * (lp[v] - lq[v]);
    }
    out.push({ kl: Math.max(0, kl), nllFp: -lp[targets[t]], nllQuant: -lq[targets[t]], top1: argP === argQ });
  }
  return out;
}

/** The p-th percentile (0..100) by linear interpolation between order statistics. */
export function percentile(values: Float64Array, p: number): number {
  if (values.length === 0) return NaN;
  const a = Float64Array.from(values).sort();
  const pos = (p / 100) * (a.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(a.length - 1, lo + 1);
  return a[lo] + (a[hi] - a[lo]) * (pos - lo);
}
