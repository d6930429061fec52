import { CancelledError, UsageError } from "../errors";
import type { OnnxModel } from "../onnx/model";
import { equalLengthBatches, type TokenData } from "../calib/data";
import type { ExecutionProvider } from "../calib/session";
import { encodeF32, type TokenHeatmap } from "../report/schema";
import { VariantSession } from "./variant-session";

export interface ScanOptions {
  executionProvider?: ExecutionProvider;
  threads?: number;
  batchSize?: number;
  signal?: AbortSignal;
}

/**
 * Tokens carrying each outlier channel: for every tensor in `channels` (tensor → outlier channels
 * and the |x| threshold), count the tokens whose |x_c| exceeds the threshold, over `data`.
 * One fp pass with the tensors tapped.
 */
export async function countOutlierTokens(
  model: OnnxModel,
  data: TokenData,
  channels: Map<string, { channels: number[]; threshold: number }>,
  opts: ScanOptions = {},
): Promise<Map<string, Map<number, number>>> {
  const result = new Map<string, Map<number, number>>();
  const tensors = [...channels.keys()].filter((t) => channels.get(t)!.channels.length > 0);
  if (tensors.length === 0) return result;
  const s = await VariantSession.open(model, { layers: [], taps: tensors, executionProvider: opts.executionProvider, threads: opts.threads });
  try {
    for (const t of tensors) result.set(t, new Map(channels.get(t)!.channels.map((c) => [c, 0])));
    for (const batch of equalLengthBatches(data.sequences, opts.batchSize ?? 8)) {
      if (opts.signal?.aborted) throw new CancelledError("outlier token count");
      const out = await s.run(batch, new Map(), tensors);
      for (const t of tensors) {
        const { data: x, dims } = out[t];
        const C = dims[dims.length - 1];
        const rows = x.length / C;
        const { channels: chs, threshold } = channels.get(t)!;
        const counts = result.get(t)!;
        for (const c of chs) {
          let n = 0;
          for (let r = 0; r < rows; r++) if (Math.abs(x[r * C + c]) > threshold) n++;
          counts.set(c, counts.get(c)! + n);
        }
      }
    }
  } finally {
    await s.release();
  }
  return result;
}

/** Tokens × channels x of `tensor` over calibration sequence `sample` (the heatmap on request). */
export async function tokenHeatmap(
  model: OnnxModel,
  data: TokenData,
  tensor: string,
  sample: number,
  opts: ScanOptions & { decode?: (id: number) => string } = {},
): Promise<TokenHeatmap> {
  const ids = data.sequences[sample];
  if (!ids) throw new UsageError(`${data.file}: there is no sample ${sample} (it has ${data.sequences.length})`);
  const s = await VariantSession.open(model, { layers: [], taps: [tensor], executionProvider: opts.executionProvider, threads: opts.threads });
  try {
    const out = await s.run([ids], new Map(), [tensor]);
    const { data: x, dims } = out[tensor];
    const channels = dims[dims.length - 1];
    const tokens = x.length / channels;
    return {
      tensor,
      sample,
      token_ids: [...ids],
      ...(opts.decode ? { token_text: ids.map((id) => opts.decode!(id)) } : {}),
      tokens,
      channels,
      values: encodeF32(x),
    };
  } finally {
    await s.release();
  }
}
