import { hessianUpdateRef } from "./hessian-ref";

/**
 * Accumulates the Hessian proxy of one tapped input, `H = (2/N) Σ_tokens xᵀx` (GPTQ's
 * `add_batch`), H: [C × C] in float64 so 10⁶ tokens add up without drift.
 */
export class HessianAccumulator {
  readonly h: Float64Array;
  /** Tokens (rows) added. */
  n = 0;

  constructor(readonly channels: number) {
    this.h = new Float64Array(channels * channels);
  }

  /** Add X [rows × C]. */
  async add(x: Float32Array, rows: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return;
    hessianUpdateRef(this.h, this.channels, x, rows);
    this.n += rows;
  }

  /** `(2/N)·Σ xᵀx`; the accumulator is spent afterwards. */
  finish(): Float64Array {
    const s = this.n > 0 ? 2 / this.n : 0;
    for (let i = 0; i < this.h.length; i++) this.h[i] *= s;
    return this.h;
  }
}
