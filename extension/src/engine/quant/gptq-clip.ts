/**
 * GPTQ with a clipping search judged on GPTQ's own objective.
 *
 * GPTQ quantizes each row of W independently: row r's codes depend only on W[r, :], H and row
 * r's scales and zeros. Shrinking a row's min/max range to [p·min, p·max] (GPTQ's clipping
 * candidates) therefore changes row r's proxy loss e_r H e_rᵀ (e = w − q after GPTQ's error
 * feedback) and nothing else. So running GPTQ once per candidate p and keeping, row by row, the
 * candidate with the lowest proxy loss gives the best of those candidates for EVERY row at once —
 * exactly, not greedily. The layer's proxy loss is then never above plain GPTQ's (p = 1 is a
 * candidate) and is usually well below it at 2–4 bits, where min/max ranges waste grid points on
 * a few large weights.
 *
 * The weight-only MSE search of GPTQ's quantizer (`mse=True`, RTN's `clip`) picks p per group
 * before the error feedback, blind to H; this one sees the loss GPTQ minimizes.
 *
 * Candidates: a coarse grid p = 1, 1 − step, …, down to minShrink, then per-row refinement at
 * ±step/2 and ±step/4 around each row's best (one GPTQ run per offset: p is a per-row vector).
 * Cost: (coarse + 5) GPTQ runs' worth of rounding and updates per layer, plus one rows·cols²
 * product each for the row losses; candidates are stacked so H is factorized ~3 times, not 15.
 */
import { gptqQuantize, type GptqInput, type GptqResult } from "../kernels/gptq";
import { sgemm } from "../kernels/linalg";
import { rtnDequant } from "../kernels/reference-quant";

export interface GptqClipSearch {
  /** Coarse step of p (default 0.05). */
  step: number;
  /** The smallest p tried (default 0.5). */
  minShrink: number;
}

export const GPTQ_CLIP_SEARCH: Readonly<GptqClipSearch> = { step: 0.05, minShrink: 0.5 };

/** Bytes of stacked weight copies per GPTQ call (the call's peak is ~4× this). */
const STACK_BYTES = 256 * 1024 * 1024;

export interface GptqClipResult extends GptqResult {
  /** The p kept for each row. */
  rowShrink: Float32Array;
  /** Candidates evaluated (p = 1 included). */
  runs: number;
}

/** Per-row proxy losses e_r H e_rᵀ of a GPTQ result (float32 product, float64 sums). */
async function rowLosses(input: GptqInput, h: Float32Array, r: GptqResult, signal: AbortSignal | undefined): Promise<Float64Array> {
  const { w, rows, cols } = input;
  const e = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const g = i * r.ngroups + r.groupIndex[j];
      e[i * cols + j] = w[i * cols + j] - rtnDequant(r.codes[i * cols + j], r.scales[g], r.zeros[g]);
    }
  }
  const eh = new Float32Array(rows * cols);
  await sgemm({ transA: false, transB: false, m: rows, n: cols, k: cols, alpha: 1, a: e, b: h, beta: 0, c: eh }, { signal });
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += eh[i * cols + j] * e[i * cols + j];
    out[i] = s;
  }
  return out;
}

/**
 * GPTQ with each row's range shrink chosen to minimize that row's proxy loss. `input.rowShrink`
 * is ignored (it is what is searched). The result is GPTQ's layout; proxyLoss is the kept rows'
 * loss, proxyLossRtn and weightEnergy are plain GPTQ's (RTN min/max, no clipping).
 */
export async function gptqClipQuantize(
  input: GptqInput,
  search: GptqClipSearch = GPTQ_CLIP_SEARCH,
  options: {
    signal?: AbortSignal;
    /** The H rows are judged with (default input.h; QuIP passes its undamped H, LDLQ runs on a damped one). */
    lossH?: Float32Array;
    /** Bytes of stacked weight copies per GPTQ call (default 256 MiB; the result does not depend on it). */
    stackBytes?: number;
  } = {},
): Promise<GptqClipResult> {
  if (!(search.step > 0 && search.step < 1)) throw new RangeError(`gptq clip search: step must be in (0, 1), got ${search.step}`);
  if (!(search.minShrink > 0 && search.minShrink <= 1)) {
    throw new RangeError(`gptq clip search: minShrink must be in (0, 1], got ${search.minShrink}`);
  }
  const { rows, cols } = input;
  const signal = options.signal;
  const lossH = options.lossH ?? input.h;
  if (lossH.length !== cols * cols) throw new RangeError(`gptq clip search: lossH has ${lossH.length} values, expected ${cols * cols}`);

  // p = 1 first: plain GPTQ, which also gives the RTN loss and the weight energy.
  const first = await gptqQuantize({ ...input, rowShrink: undefined, losses: true }, { signal });
  const best = { ...first, codes: first.codes.slice(), scales: first.scales.slice(), zeros: first.zeros.slice() };
  const bestLoss = await rowLosses(input, lossH, first, signal);
  const bestP = new Float32Array(rows).fill(1);
  let runs = 1;

  // Candidates run stacked: W repeated once per candidate, each copy with its own per-row shrink,
  // through ONE GPTQ call (rows are independent, so this is bit-identical to separate calls) —
  // H's factorization is done once per batch of candidates instead of once per candidate.
  const perCopy = rows * cols * 4;
  const copiesPerCall = Math.max(1, Math.min(16, Math.floor((options.stackBytes ?? STACK_BYTES) / perCopy)));
  const tryShrinks = async (candidates: Float32Array[]) => {
    for (let c0 = 0; c0 < candidates.length; c0 += copiesPerCall) {
      const batch = candidates.slice(c0, c0 + copiesPerCall);
      const k = batch.length;
      const w = new Float32Array(k * rows * cols);
      const rowShrink = new Float32Array(k * rows);
      for (let c = 0; c < k; c++) {
        w.set(input.w, c * rows * cols);
        rowShrink.set(batch[c], c * rows);
      }
      const stacked: GptqInput = { ...input, w, rows: k * rows, rowShrink, losses: false };
      const r = await gptqQuantize(stacked, { signal });
      runs += k;
      const loss = await rowLosses(stacked, lossH, r, signal);
      const n = r.ngroups;
      for (let c = 0; c < k; c++) {
        for (let i = 0; i < rows; i++) {
          const s = c * rows + i;
          if (!(loss[s] < bestLoss[i])) continue;
          bestLoss[i] = loss[s];
          bestP[i] = batch[c][i];
          best.codes.set(r.codes.subarray(s * cols, (s + 1) * cols), i * cols);
          best.scales.set(r.scales.subarray(s * n, (s + 1) * n), i * n);
          best.zeros.set(r.zeros.subarray(s * n, (s + 1) * n), i * n);
        }
      }
    }
  };

  const coarse = Math.floor((1 - search.minShrink) / search.step + 1e-9);
  await tryShrinks(Array.from({ length: coarse }, (_, i) => new Float32Array(rows).fill(1 - (i + 1) * search.step)));
  for (const d of [search.step / 2, search.step / 4]) {
    const center = bestP.slice();
    await tryShrinks([-1, 1].map((sign) => center.map((c) => Math.min(1, Math.max(search.minShrink, c + sign * d)))));
  }

  let proxy = 0;
  for (let i = 0; i < rows; i++) proxy += bestLoss[i];
  const rel = (loss: number) => (best.weightEnergy > 0 ? loss / best.weightEnergy : 0);
  return { ...best, proxyLoss: proxy, relProxyLoss: rel(proxy), rowShrink: bestP, runs };
}
