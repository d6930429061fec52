import { UsageError } from "../errors";

export type Method = "rtn" | "gptq";
export const METHODS: readonly Method[] = ["rtn", "gptq"];

/**
 * One quantization setting (DESIGN.md "Algorithms"). `group` is the number of consecutive input
 * channels sharing a scale/zero (0 = one per output channel); the last group may be shorter.
 */
export interface QuantConfig {
  method: Method;
  bits: 2 | 3 | 4 | 8;
  group: number;
  /** Zero point fixed at 2^(bits−1) with a ±max|w| range (default false: min/max + zero point). */
  symmetric: boolean;
  /** GPTQ: quantize inputs by decreasing H_ii, with static groups (so groups stay contiguous). */
  actOrder: boolean;
  /** GPTQ damping λ = percdamp · mean(diag H). */
  percdamp: number;
  /** GPTQ lazy-batch width. */
  blockSize: number;
  /** RTN: MSE clipping search (GPTQ's grid). */
  clip: boolean;
  /** GPTQ: calibrate block by block through the already-quantized blocks. */
  sequential: boolean;
  /** Also quantize lm_head (default false: it stays in float, as GPTQ/AWQ do by default). */
  includeLmHead: boolean;
}

export const DEFAULT_CONFIG: QuantConfig = {
  method: "gptq",
  bits: 4,
  group: 128,
  symmetric: false,
  actOrder: false,
  percdamp: 0.01,
  blockSize: 128,
  clip: false,
  sequential: false,
  includeLmHead: false,
};

export function checkConfig(c: QuantConfig): QuantConfig {
  if (!METHODS.includes(c.method)) throw new UsageError(`--method must be one of ${METHODS.join(", ")}, not '${c.method}'`);
  if (![2, 3, 4, 8].includes(c.bits)) throw new UsageError(`--bits must be 2, 3, 4 or 8, not ${c.bits}`);
  if (!Number.isInteger(c.group) || c.group < 0) throw new UsageError(`--group must be 0 (per channel) or a positive integer, not ${c.group}`);
  if (!(c.percdamp > 0 && c.percdamp < 1)) throw new UsageError(`--percdamp must be in (0, 1), not ${c.percdamp}`);
  return c;
}
