import { emptyMoments, mergeMoments, moments, momentsExcessKurtosis, momentsStd, type Moments } from "../kernels/index";
import type { OnnxModel } from "../onnx/model";

/** Whole-tensor statistics of a weight, computed by streaming it in chunks. */
export interface WeightStats {
  absmax: number;
  mean: number;
  std: number;
  /** Excess kurtosis (0 for a Gaussian); heavy tails (outliers) make it large. */
  kurtosis: number;
  /** NaN or ±Inf entries (excluded from the statistics). */
  nonFinite: number;
}

export type MomentsFn = (x: Float32Array) => Moments | Promise<Moments>;

/**
 * Stream a float initializer in chunks (external data is read by offset, never whole) and merge
 * the per-chunk moments. `momentsOf` is the kernel to use (native or reference).
 */
export async function weightStats(
  model: OnnxModel,
  tensor: string,
  momentsOf: MomentsFn = moments,
  chunkElems = 1 << 22,
): Promise<WeightStats> {
  let m = emptyMoments();
  for (const chunk of model.floatChunks(tensor, chunkElems)) m = mergeMoments(m, await momentsOf(chunk));
  return {
    absmax: m.absmax,
    mean: m.mean,
    std: momentsStd(m),
    kurtosis: momentsExcessKurtosis(m),
    nonFinite: m.nonFinite,
  };
}
