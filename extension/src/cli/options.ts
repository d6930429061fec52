import type { Command } from "commander";
import { UsageError } from "../engine/errors";

/** A positive integer flag, or undefined when absent. */
export function parseCount(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`${flag} must be a positive integer, not '${value}'`);
  return Number(value);
}

/** A size like 512M, 4G, 1.5GiB, 1000000 (bytes). */
export function parseSize(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(value.trim());
  if (!m) throw new UsageError(`${flag} must be a size such as 512M or 4G, not '${value}'`);
  const unit = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2].toLowerCase() as "" | "k" | "m" | "g" | "t"];
  return Math.floor(Number(m[1]) * unit);
}

export function parseEp(ep: string): "auto" | "cpu" | "cuda" {
  if (!["auto", "cpu", "cuda"].includes(ep)) throw new UsageError(`--ep must be auto, cpu or cuda, not '${ep}'`);
  return ep as "auto" | "cpu" | "cuda";
}

/** Flags every command that calibrates and runs the model takes (addRunOptions). */
export interface RunFlags {
  samples?: string;
  seqLen?: string;
  percdamp: string;
  threads?: string;
  maxMemory?: string;
  ep: string;
}

/** Declare the calibration/run flags shared by analyze, sensitivity and plan. */
export function addRunOptions(cmd: Command): Command {
  return cmd
    .option("--samples <n>", "calibration documents to use", "128")
    .option("--seq-len <l>", "truncate calibration documents to L tokens")
    .option("--percdamp <x>", "GPTQ damping as a fraction of mean(diag H)", "0.01")
    .option("--threads <n>", "onnxruntime intra-op threads")
    .option("--max-memory <size>", "memory budget for calibration statistics")
    .option("--ep <provider>", "execution provider: auto, cpu or cuda", "auto");
}

/** The parsed RunFlags: calibration data options, GPTQ damping and the run's calibration options. */
export function parseRunFlags(f: RunFlags) {
  const ep = parseEp(f.ep);
  const percdamp = Number(f.percdamp);
  if (!(percdamp > 0 && percdamp < 1)) throw new UsageError(`--percdamp must be in (0, 1), not '${f.percdamp}'`);
  return {
    percdamp,
    data: { samples: parseCount("--samples", f.samples), seqLen: parseCount("--seq-len", f.seqLen) },
    calib: { threads: parseCount("--threads", f.threads), maxMemory: parseSize("--max-memory", f.maxMemory), executionProvider: ep },
  };
}
