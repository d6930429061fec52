import { hessianUpdate } from "../kernels/linalg";
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

  constructor(
    readonly channels: number,
    /** Names the tensor in errors. */
    private readonly tensor = "activation",
  ) {
    this.h = new Float64Array(channels * channels);
  }

  /** Add X [rows × C]. */
  async add(x: Float32Array, rows: number, signal?: AbortSignal): Promise<void> {
    try {
      await hessianUpdate(this.h, this.channels, x, rows, { signal });
    } catch (e) {
      if ((e as { code?: string }).code === "ERR_QUANTLENS_NON_FINITE") {
        throw new BadDataError(this.tensor, `the model produces NaN/Inf in this activation on the calibration data (${(e as Error).message})`);
      }
      throw e;
    }
    this.n += rows;
  }

  /** `(2/N)·Σ xᵀx`; the accumulator is spent afterwards. */
  finish(): Float64Array {
    const s = this.n > 0 ? 2 / this.n : 0;
    for (let i = 0; i < this.h.length; i++) this.h[i] *= s;
    return this.h;
  }
}
