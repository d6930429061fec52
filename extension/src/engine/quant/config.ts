import { UsageError } from "../errors";

export type Method = "rtn" | "gptq" | "quip" | "awq" | "smoothquant";
export const METHODS: readonly Method[] = ["rtn", "gptq", "quip", "awq", "smoothquant"];

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
  /** GPTQ: quantize inputs by decreasing H_ii (groups: see `actOrderGroups`). */
  actOrder: boolean;
  /**
   * GPTQ with act-order and groups: "static" (default) — groups are runs of the original inputs,
   * their scales taken up front from W; "permuted" — groups are runs of the act-order permutation
   * (gptq.py's default), taken as each group starts; the export then reads the layer's input
   * through a Gather by the permutation (one per distinct input), `fake` needs none.
   */
  actOrderGroups?: "static" | "permuted";
  /**
   * GPTQ groups taken as they start: "batch-start" (default) — scale/zero from the weights as of the
   * start of the group's lazy batch, as gptq.py's find_params reads them; "updated" — from the
   * weights with every earlier column's error feedback applied. Measured on stories260K (W4/W3
   * g32 act-order, permuted groups): batch-start KL 0.0552/0.342, updated 0.0571/0.358.
   */
  groupParams?: "batch-start" | "updated";
  /** GPTQ damping λ = percdamp · mean(diag H). */
  percdamp: number;
  /** GPTQ lazy-batch width. */
  blockSize: number;
  /**
   * Clipping search. RTN: GPTQ's MSE grid per group. GPTQ: each row's min/max range shrunk by the
   * p that minimises that row's proxy loss after GPTQ (quant/gptq-clip.ts; exact per row, ~15
   * GPTQ runs per layer). QuIP: ρ of the per-tensor grid, or as GPTQ with "group" scales.
   */
  clip: boolean;
  /** GPTQ: calibrate block by block through the already-quantized blocks. */
  sequential: boolean;
  /** Also quantize lm_head (default false: it stays in float, as GPTQ/AWQ do by default). */
  includeLmHead: boolean;
  /** AWQ: a fixed α of s = mean|x|^α instead of the grid search; SmoothQuant: the migration strength (default 0.5). */
  alpha?: number;
  /** SmoothQuant: smooth the norm-fed inputs only ("norm", the reference smooth_lm) or also down_proj through up_proj's rows ("exact", default). */
  smoothScope?: "norm" | "exact";
  /** AWQ: the clipping search after the scale search (default true). */
  awqClip?: boolean;
  /**
   * AWQ: what the scale search minimises for q/k/v and gate/up. "layers" (default): the output
   * error of the layers sharing the input, exact through the Hessian; "module": the error of the
   * block's attention or MLP output, re-running the block per candidate (AWQ's code).
   */
  awqLoss?: "layers" | "module";
  /** Calibrated static int8 activation quantization of every quantized layer's input (W8A8); SmoothQuant implies 8. */
  actBits?: 8;
  /** QuIP (quant/quip.ts): base seed of U and V (default 0; the convention is in quip.ts). */
  quipSeed?: number;
  /** QuIP: "kron" (default, the paper's two-factor Kronecker), "hadamard" (randomized Hadamard; dense ⊗ Hadamard for non-powers of two) or "auto". */
  quipRotation?: "kron" | "hadamard" | "auto";
  /** QuIP: draws of U and V per input tensor, the most incoherent kept (default 16; 1 = the single draw of the seed convention; quip.ts chooseQuipRotations). */
  quipRotationTries?: number;
  /** QuIP: greedy coordinate-descent passes after LDLQ (default 0). */
  quipRefine?: number;
  /** QuIP: the paper's diagonal rescaling D̃ = ⁴√(diag H / diag WᵀW) (default true). */
  quipRescale?: boolean;
  /** QuIP: "tensor" (default: one scale ρ‖W‖_F/√(mn), the paper's code) or "group" (`group`/`symmetric` scales; 0 = per row). `clip` searches ρ or each group's range. */
  quipScale?: "tensor" | "group";
  /** QuIP: ρ of the per-tensor scale (default 2.4). */
  quipRho?: number;
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
  if (c.quipSeed !== undefined && !(Number.isInteger(c.quipSeed) && c.quipSeed >= 0 && c.quipSeed <= 0xffffffff)) throw new UsageError(`--seed must be an integer in [0, 2^32), not ${c.quipSeed}`);
  if (c.quipRotation !== undefined && !["kron", "hadamard", "auto"].includes(c.quipRotation)) throw new UsageError(`--rotation must be hadamard, kron or auto, not '${c.quipRotation}'`);
  if (c.quipRotationTries !== undefined && !(Number.isInteger(c.quipRotationTries) && c.quipRotationTries >= 1 && c.quipRotationTries <= 256)) throw new UsageError(`--rotation-tries must be an integer in 1..256, not ${c.quipRotationTries}`);
  if (c.quipRefine !== undefined && !(Number.isInteger(c.quipRefine) && c.quipRefine >= 0 && c.quipRefine <= 100)) throw new UsageError(`--refine must be an integer in 0..100, not ${c.quipRefine}`);
  if (c.quipScale !== undefined && !["tensor", "group"].includes(c.quipScale)) throw new UsageError(`--quip-scale must be tensor or group, not '${c.quipScale}'`);
  if (c.quipRho !== undefined && !(c.quipRho > 0 && c.quipRho <= 16)) throw new UsageError(`--rho must be in (0, 16], not ${c.quipRho}`);
  if (c.alpha !== undefined && !(c.alpha >= 0 && c.alpha <= 1)) throw new UsageError(`--alpha must be in [0, 1], not ${c.alpha}`);
  if (c.smoothScope !== undefined && !["norm", "exact"].includes(c.smoothScope)) throw new UsageError(`smoothScope must be norm or exact, not '${c.smoothScope}'`);
  if (c.actOrderGroups !== undefined && !["static", "permuted"].includes(c.actOrderGroups)) throw new UsageError(`--act-order-groups must be static or permuted, not '${c.actOrderGroups}'`);
  if (c.groupParams !== undefined && !["batch-start", "updated"].includes(c.groupParams)) throw new UsageError(`--group-params must be batch-start or updated, not '${c.groupParams}'`);
  if (c.awqLoss !== undefined && !["layers", "module"].includes(c.awqLoss)) throw new UsageError(`--awq-loss must be layers or module, not '${c.awqLoss}'`);
  if (c.actBits !== undefined && c.actBits !== 8) throw new UsageError(`--act-bits must be 8 (static int8 activations), not ${c.actBits}`);
  return c;
}
