/**
 * Every benchmark case, in the order they run. Add a case by writing `cases/<name>.ts` that
 * exports a `BenchCase` (see harness.ts) and listing it here; `--only <name>` selects by name.
 */
import { conversionCases } from "./cases/convert";
import { momentsCase } from "./cases/moments";
import { channelStatsCase } from "./cases/channel-stats";
import { tsReferenceSpeedup } from "./cases/ts-reference";
import { indexModelCase } from "./cases/index-model";
import { calibOverheadCase } from "./cases/calib-overhead";
import { fwhtCase } from "./cases/fwht";
import { orthoCase } from "./cases/ortho";
import { rtnCase } from "./cases/rtn";
import { eigenCase } from "./cases/eigen";
import { sgemmCase } from "./cases/sgemm";
import { hessianCase } from "./cases/hessian";
import { choleskyCase, gptqInverseCase } from "./cases/cholesky";
import { gptqClipCase, gptqLayerCase } from "./cases/gptq";
import type { BenchCase } from "./harness";

export const CASES: BenchCase[] = [
  // ---- native kernels (native-kernels/core) ----
  momentsCase,
  channelStatsCase,
  ...conversionCases,
  fwhtCase,
  orthoCase,
  rtnCase,
  eigenCase,
  sgemmCase,
  hessianCase,
  choleskyCase,
  gptqInverseCase,
  gptqLayerCase,
  gptqClipCase,
  // Later kernels go here, one case each: sgemm, hessian_update, cholesky, gptq_layer, fwht.

  // ---- native vs the TypeScript fallback ----
  tsReferenceSpeedup,

  // ---- engine-level cases ----
  indexModelCase,
  calibOverheadCase,
];
