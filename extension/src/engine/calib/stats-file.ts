import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { BadDataError, CancelledError } from "../errors";
import type { OnnxModel } from "../onnx/model";
import { BINS_PER_OCTAVE, HIST_BINS, HIST_MAX_EXP, HIST_MIN_EXP, type OutlierToken } from "./channel-stats";
import type { TokenData } from "./data";
import { calibrate, selectTaps, type CalibrationOptions, type CalibrationResult, type TapResult } from "./runner";
import { openSafetensors, SafetensorsWriter, type SafeTensorSpec } from "./safetensors";
import type { Tap } from "./taps";

/**
 * The calibration stats file (`quantlens calibrate -o STATS`), a safetensors file that other
 * commands reuse instead of re-running the model. Format `quantlens-calib` version 1:
 *
 * `__metadata__.quantlens` holds a JSON `StatsHeader`. For each tap (tensor name `T`, C channels,
 * N tokens):
 *
 * | tensor            | dtype | shape  | meaning                                                    |
 * |-------------------|-------|--------|------------------------------------------------------------|
 * | `T::absmax`       | F32   | [C]    | max |x| per input channel                                 |
 * | `T::mean`         | F64   | [C]    | mean per channel                                           |
 * | `T::variance`     | F64   | [C]    | population variance per channel                            |
 * | `T::kurtosis`     | F64   | [C]    | excess kurtosis per channel (0 for a Gaussian)             |
 * | `T::hist`         | F64   | [B]    | counts of log2|x| (bin 0: |x| < 2^min_exp; then bins_per_octave per octave) |
 * | `T::token_norms`  | F32   | [N]    | L2 norm of each token's activation, in data order          |
 * | `T::top_tokens`   | I64   | [K, 4] | tokens with the largest |x|: sample, position, token id, channel (−1 padded) |
 * | `T::top_values`   | F64   | [K, 2] | their x and L2 norm                                        |
 * | `T::hessian`      | F32   | [C, C] | `H = (2/N) Σ xᵀx` (absent with `--no-hessian`)             |
 */
export const STATS_FORMAT = "quantlens-calib";
export const STATS_VERSION = 1;
const TOP_K = 32;

export interface StatsHeader {
  format: typeof STATS_FORMAT;
  version: number;
  model: string;
  model_sha256: string;
  data: string;
  tokens: number;
  sequences: number;
  seconds: number;
  passes: number;
  provider: string;
  notes: string[];
  hist: { min_exp: number; max_exp: number; bins_per_octave: number; bins: number };
  taps: { tensor: string; channels: number; layers: string[]; roles: string[]; block: number | null; rows: number; non_finite: number; hessian: boolean }[];
}

function specsFor(taps: Tap[], tokens: number, hessian: boolean): SafeTensorSpec[] {
  const specs: SafeTensorSpec[] = [];
  for (const t of taps) {
    const C = t.channels;
    specs.push(
      { name: `${t.tensor}::absmax`, dtype: "F32", shape: [C] },
      { name: `${t.tensor}::mean`, dtype: "F64", shape: [C] },
      { name: `${t.tensor}::variance`, dtype: "F64", shape: [C] },
      { name: `${t.tensor}::kurtosis`, dtype: "F64", shape: [C] },
      { name: `${t.tensor}::hist`, dtype: "F64", shape: [HIST_BINS] },
      { name: `${t.tensor}::token_norms`, dtype: "F32", shape: [tokens] },
      { name: `${t.tensor}::top_tokens`, dtype: "I64", shape: [TOP_K, 4] },
      { name: `${t.tensor}::top_values`, dtype: "F64", shape: [TOP_K, 2] },
    );
    if (hessian) specs.push({ name: `${t.tensor}::hessian`, dtype: "F32", shape: [C, C] });
  }
  return specs;
}

/**
 * Calibrate and write the stats file, tap by tap as passes finish (bounded memory). The file
 * appears only when complete: it is written to a temp file beside `out` and renamed; on error or
 * cancellation the temp file is removed.
 */
export async function calibrateToFile(
  model: OnnxModel,
  data: TokenData,
  out: string,
  opts: CalibrationOptions = {},
): Promise<CalibrationResult> {
  const abs = path.resolve(out);
  if (abs === model.file) throw new BadDataError(abs, "is the model itself; choose another output path");
  const hessian = opts.hessian ?? true;
  const taps = selectTaps(model, opts.tensors);
  const tmp = `${abs}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  await fs.promises.mkdir(path.dirname(abs), { recursive: true });
  const writer = SafetensorsWriter.create(tmp, specsFor(taps, data.tokens, hessian), (1 << 16) + taps.length * 2048);
  let finished = false;
  try {
    const result = await calibrate(model, data, {
      ...opts,
      tensors: taps.map((t) => t.tensor),
      sink: (r) => writeTap(writer, r, data.tokens),
    });
    if (opts.signal?.aborted) throw new CancelledError("calibration");
    const header: StatsHeader = {
      format: STATS_FORMAT,
      version: STATS_VERSION,
      model: model.file,
      model_sha256: await sha256(model.file),
      data: data.file,
      tokens: result.tokens,
      sequences: result.sequences,
      seconds: result.seconds,
      passes: result.passes,
      provider: result.provider,
      notes: result.notes,
      hist: { min_exp: HIST_MIN_EXP, max_exp: HIST_MAX_EXP, bins_per_octave: BINS_PER_OCTAVE, bins: HIST_BINS },
      taps: result.taps.map((r) => ({
        tensor: r.tap.tensor,
        channels: r.tap.channels,
        layers: r.tap.layers,
        roles: r.tap.roles,
        block: r.tap.block,
        rows: r.stats.n,
        non_finite: r.stats.nonFinite,
        hessian,
      })),
    };
    writer.finish({ quantlens: JSON.stringify(header) });
    finished = true;
    await fs.promises.rename(tmp, abs);
    return result;
  } catch (e) {
    if (!finished) writer.abandon();
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
}

function writeTap(w: SafetensorsWriter, r: TapResult, tokens: number): void {
  const t = r.tap.tensor;
  const s = r.stats;
  w.write(`${t}::absmax`, s.absmax);
  w.write(`${t}::mean`, s.mean);
  w.write(`${t}::variance`, s.variance());
  w.write(`${t}::kurtosis`, s.kurtosis());
  w.write(`${t}::hist`, s.hist);
  const norms = new Float32Array(tokens);
  norms.set(s.tokenNorms.slice(0, tokens));
  w.write(`${t}::token_norms`, norms);
  const ids = new BigInt64Array(TOP_K * 4).fill(-1n);
  const vals = new Float64Array(TOP_K * 2);
  s.topTokens().forEach((o, i) => {
    ids.set([BigInt(o.sample), BigInt(o.position), BigInt(o.token), BigInt(o.channel)], i * 4);
    vals.set([o.value, o.norm], i * 2);
  });
  w.write(`${t}::top_tokens`, ids);
  w.write(`${t}::top_values`, vals);
  if (r.hessian) w.write(`${t}::hessian`, Float32Array.from(r.hessian));
}

async function sha256(file: string): Promise<string> {
  const h = crypto.createHash("sha256");
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** A stats file opened for reading; arrays are read on demand. */
export interface CalibrationStats {
  header: StatsHeader;
  tap(tensor: string): {
    absmax: Float32Array;
    mean: Float64Array;
    variance: Float64Array;
    kurtosis: Float64Array;
    hist: Float64Array;
    tokenNorms: Float32Array;
    topTokens: OutlierToken[];
    /** Float32 [C × C], or null when calibrated without Hessians. */
    hessian(): Float32Array | null;
  };
  close(): void;
}

export function readStatsFile(file: string): CalibrationStats {
  const abs = path.resolve(file);
  const st = openSafetensors(abs);
  let header: StatsHeader;
  try {
    header = JSON.parse(st.metadata.quantlens ?? "null");
  } catch {
    st.close();
    throw new BadDataError(abs, "is not a QuantLens stats file (bad metadata)");
  }
  if (!header || header.format !== STATS_FORMAT) {
    st.close();
    throw new BadDataError(abs, "is not a QuantLens stats file (made by `quantlens calibrate`)");
  }
  if (header.version > STATS_VERSION) {
    st.close();
    throw new BadDataError(abs, `is stats format version ${header.version}; this QuantLens reads up to ${STATS_VERSION}`);
  }
  return {
    header,
    tap(tensor) {
      if (!st.has(`${tensor}::absmax`)) throw new BadDataError(abs, `has no statistics for tensor '${tensor}'`);
      const ids = st.read(`${tensor}::top_tokens`) as BigInt64Array;
      const vals = st.read(`${tensor}::top_values`) as Float64Array;
      const topTokens: OutlierToken[] = [];
      for (let i = 0; i < ids.length / 4 && ids[i * 4] >= 0n; i++) {
        topTokens.push({
          sample: Number(ids[i * 4]),
          position: Number(ids[i * 4 + 1]),
          token: Number(ids[i * 4 + 2]),
          channel: Number(ids[i * 4 + 3]),
          value: vals[i * 2],
          norm: vals[i * 2 + 1],
        });
      }
      return {
        absmax: st.read(`${tensor}::absmax`) as Float32Array,
        mean: st.read(`${tensor}::mean`) as Float64Array,
        variance: st.read(`${tensor}::variance`) as Float64Array,
        kurtosis: st.read(`${tensor}::kurtosis`) as Float64Array,
        hist: st.read(`${tensor}::hist`) as Float64Array,
        tokenNorms: st.read(`${tensor}::token_norms`) as Float32Array,
        topTokens,
        hessian: () => (st.has(`${tensor}::hessian`) ? (st.read(`${tensor}::hessian`) as Float32Array) : null),
      };
    },
    close: () => st.close(),
  };
}
