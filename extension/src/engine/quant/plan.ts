import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { BadDataError } from "../errors";
import type { LinearLayer } from "../onnx/linear";
import { Checker } from "../report/validate";
import type { PlanFile, PlanLayer } from "../report/schema";
import type { QuantConfig } from "./config";

export type { PlanFile, PlanLayer } from "../report/schema";

/**
 * The bit plan `quantlens plan` writes and `quantize --plan` executes (report/schema.ts PlanFile):
 *
 *   {"format": "quantlens-plan", "version": 1, "model": "model.onnx", "budget": 3.5,
 *    "avg_bits": 3.49, "layers": [{"name": "/model/layers.0/self_attn/q_proj/MatMul",
 *    "method": "gptq", "bits": 4, "group": 32}, …]}
 *
 * `name` is the linear layer's node name (`quantlens inspect`), `group` the inputs per scale
 * (0 = per output channel). Layers the plan does not list stay in float. avg_bits/budget count
 * one float16 scale and one `bits`-bit zero per group per row.
 */
export const PLAN_FORMAT = "quantlens-plan";
export const PLAN_VERSION = 1;

/** Validate a parsed plan; errors name the file and the field or layer at fault. */
export function validatePlan(value: unknown, file: string): PlanFile {
  const v = new Checker(file);
  const p = v.obj(value, "");
  if (p.format !== PLAN_FORMAT) v.fail("format", `expected "${PLAN_FORMAT}", got ${JSON.stringify(p.format)}; is this a QuantLens plan?`);
  if (p.version !== PLAN_VERSION) v.fail("version", `this QuantLens reads plan version ${PLAN_VERSION}, not ${JSON.stringify(p.version)}`);
  v.str(p.model, "model");
  v.num(p.budget, "budget");
  v.num(p.avg_bits, "avg_bits");
  const seen = new Set<string>();
  v.arr(p.layers, "layers").forEach((x, i) => {
    const l = v.obj(x, `layers[${i}]`);
    const name = v.str(l.name, `layers[${i}].name`);
    const at = `layers[${i}] ('${name}')`;
    if (seen.has(name)) v.fail(at, "is listed twice");
    seen.add(name);
    v.oneOf(l.method, ["rtn", "gptq"], `${at}.method`);
    v.oneOf(l.bits, [2, 3, 4, 8], `${at}.bits`);
    v.int(l.group, `${at}.group`);
  });
  return value as PlanFile;
}

export function readPlan(file: string): PlanFile {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new BadDataError(file, `cannot read the plan: ${(e as Error).message}`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new BadDataError(file, `not JSON: ${(e as Error).message}`, { cause: e });
  }
  return validatePlan(value, file);
}

/** Write a plan atomically (temp file + rename). */
export async function writePlan(file: string, plan: PlanFile): Promise<string> {
  validatePlan(JSON.parse(JSON.stringify(plan)), "plan (about to be written)");
  const out = path.resolve(file);
  const tmp = `${out}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  try {
    await fs.promises.writeFile(tmp, `${JSON.stringify(plan, null, 1)}\n`);
    await fs.promises.rename(tmp, out);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  return out;
}

/** Per-layer effective config of a plan: the layer's QuantConfig, or null to keep it in float. */
export type LayerPlan = (layer: LinearLayer, base: QuantConfig) => QuantConfig | null;

/**
 * The plan as quantizeModel's per-layer override. Every plan layer must exist in the model and
 * fit it (group < inputs or per-channel); errors name the plan file and layer.
 */
export function layerPlan(plan: PlanFile, layers: LinearLayer[], file = "plan"): LayerPlan {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const entries = new Map<string, PlanLayer>();
  plan.layers.forEach((p, i) => {
    const l = byName.get(p.name);
    if (!l) throw new BadDataError(file, `layers[${i}]: layer '${p.name}' is not a linear layer of this model (see \`quantlens inspect\`)`);
    if (p.group > l.in) throw new BadDataError(file, `layers[${i}] ('${p.name}'): group ${p.group} is larger than its ${l.in} inputs (use 0 for per-channel)`);
    entries.set(p.name, p);
  });
  return (layer, base) => {
    const p = entries.get(layer.name);
    return p ? { ...base, method: p.method, bits: p.bits, group: p.group } : null;
  };
}
