import { hessianSymmetrize, hessianUpdate } from "../kernels/linalg";
import { BadDataError } from "../errors";

/**
 * Accumulates the Hessian proxy of one tapped input, `H = (2/N) Σ_tokens xᵀx` (GPTQ's
 * `add_batch`), H: [C × C] in float64 so 10⁶ tokens add up without drift. The update runs in the
 * native SYRK kernel (TypeScript fallback without the addon).
 */
export class HessianAccumulator {
  readonly h: Float64Array;
  /** Tokens (rows) added. */
  n = 0;
  /**
   * Rows are gathered up to this many before one kernel call: every call reads and writes all of
   * the float64 H (237 MB at 5440 inputs), so calling once per 4096 rows instead of once per
   * onnxruntime batch (typically 512) keeps the update compute-bound.
   */
  readonly bufferRows: number;
  private buffer: Float32Array | null = null;
  private buffered = 0;

  constructor(
    readonly channels: number,
    /** Names the tensor in errors. */
    private readonly tensor = "activation",
    bufferRows = hessianBufferRows(channels),
  ) {
    this.h = new Float64Array(channels * channels);
    this.bufferRows = Math.max(1, Math.floor(bufferRows));
  }

  /** Add X [rows × C]. */
  async add(x: Float32Array, rows: number, signal?: AbortSignal): Promise<void> {
    const C = this.channels;
    if (this.buffered === 0 && rows >= this.bufferRows) return this.update(x, rows, signal);
    for (let r0 = 0; r0 < rows; ) {
      this.buffer ??= new Float32Array(this.bufferRows * C);
      const take = Math.min(rows - r0, this.bufferRows - this.buffered);
      this.buffer.set(x.subarray(r0 * C, (r0 + take) * C), this.buffered * C);
      this.buffered += take;
      r0 += take;
      if (this.buffered === this.bufferRows) await this.flush(signal);
    }
  }

  private async flush(signal?: AbortSignal): Promise<void> {
    if (!this.buffered) return;
    const rows = this.buffered;
    this.buffered = 0;
    await this.update(this.buffer!.subarray(0, rows * this.channels), rows, signal);
  }

  private async update(x: Float32Array, rows: number, signal?: AbortSignal): Promise<void> {
    try {
      // The lower triangle only: finish() mirrors once (no pass over all of H per update).
      await hessianUpdate(this.h, this.channels, x, rows, { signal, lowerOnly: true });
    } catch (e) {
      if ((e as { code?: string }).code === "ERR_QUANTLENS_NON_FINITE") {
        throw new BadDataError(this.tensor, `the model produces NaN/Inf in this activation on the calibration data (${(e as Error).message})`);
      }
      throw e;
    }
    this.n += rows;
  }

  /** `(2/N)·Σ xᵀx`; the accumulator is spent afterwards. */
  async finish(signal?: AbortSignal): Promise<Float64Array> {
    await this.flush(signal);
    this.buffer = null;
    await hessianSymmetrize(this.h, this.channels, this.n > 0 ? 2 / this.n : 0);
    return this.h;
  }
}

/**
 * Rows gathered per kernel call: 4096, fewer for wide inputs (the buffer stays ≤ 64 MiB). Up to
 * 1024 inputs H is at most 8 MiB and a call's fixed cost small: batches go to the kernel as they
 * come, without a copy into the buffer on the JS thread.
 */
export function hessianBufferRows(channels: number): number {
  if (channels <= 1024) return 1;
  return Math.max(256, Math.min(4096, Math.floor((64 * 2 ** 20) / (4 * Math.max(1, channels)))));
}
