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
 * Cost: (coarse + 5) GPTQ runs' worth of rounding and updates per layer plus the final run (with
 * its proxy losses); candidates are stacked, so H is factorized a few times rather than 16.
 */
import { gptqQuantize, type GptqInput, type GptqResult } from "../kernels/gptq";

export interface GptqClipSearch {
  /** Coarse step of p (default 0.05). */
  step: number;
  /** The smallest p tried (default 0.5). */
  minShrink: number;
}

export const GPTQ_CLIP_SEARCH: Readonly<GptqClipSearch> = { step: 0.05, minShrink: 0.5 };

/** Bytes of stacked weight copies per GPTQ call (the call holds ~2× this: the copies and its working weights). */
const STACK_BYTES = 256 * 1024 * 1024;

export interface GptqClipResult extends GptqResult {
  /** The p kept for each row. */
  rowShrink: Float32Array;
  /** Candidates evaluated (p = 1 included). */
  runs: number;
}

/**
 * GPTQ with each row's range shrink chosen to minimize that row's proxy loss. `input.rowShrink`
 * is ignored (it is what is searched). The result is plain GPTQ's run with the chosen per-row
 * shrink (so its losses are the usual ones); `rowShrink` says what was chosen.
 */
export async function gptqClipQuantize(
  input: GptqInput,
  search: GptqClipSearch = GPTQ_CLIP_SEARCH,
  options: {
    signal?: AbortSignal;
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
  const bestLoss = new Float64Array(rows).fill(Infinity);
  const bestP = new Float32Array(rows).fill(1);
  let runs = 0;

  // Candidates run stacked: W repeated once per candidate, each copy with its own per-row shrink,
  // through ONE GPTQ call (rows are independent, so this is bit-identical to separate calls) —
  // H's factorization is done once per batch of candidates instead of once per candidate. Each
  // row's loss comes from GPTQ's own bookkeeping (GptqResult.rowLoss: O(rows·cols)).
  const copiesPerCall = Math.max(1, Math.min(16, Math.floor((options.stackBytes ?? STACK_BYTES) / (rows * cols * 4))));
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
      const r = await gptqQuantize({ ...input, w, rows: k * rows, rowShrink, losses: false }, { signal });
      runs += k;
      for (let c = 0; c < k; c++) {
        for (let i = 0; i < rows; i++) {
          const loss = r.rowLoss[c * rows + i];
          if (loss < bestLoss[i]) {
            bestLoss[i] = loss;
            bestP[i] = batch[c][i];
          }
        }
      }
    }
  };

  const coarse = Math.floor((1 - search.minShrink) / search.step + 1e-9);
  // p = 1 (plain GPTQ) first, so a row keeps it unless a shrink is strictly better.
  await tryShrinks(Array.from({ length: coarse + 1 }, (_, i) => new Float32Array(rows).fill(1 - i * search.step)));
  for (const d of [search.step / 2, search.step / 4]) {
    const center = bestP.slice();
    await tryShrinks([-1, 1].map((sign) => center.map((c) => Math.min(1, Math.max(search.minShrink, c + sign * d)))));
  }
  const final = await gptqQuantize({ ...input, rowShrink: bestP }, { signal });
  return { ...final, rowShrink: bestP, runs };
}
