/**
 * Benchmarks: `npx tsx test/bench/run.ts [--quick] [--only NAME[,NAME]]... [--list]`
 * (or `npm run bench -- --quick`).
 *
 * Progress goes to stderr. The LAST stdout line is one JSON object:
 *   { fma_peak_gflops: {one, all} | null, machine: {...}, quick, results: [{name, shape, seconds,
 *     gflops?, gbps?, ratio_to_peak?, ...}] }
 * Each case reports the median of several runs after warm-up. The native addon is required
 * (build it with `npm run build:native`) unless QUANTLENS_NATIVE=0, which skips the native cases.
 */
import { configureKernels, fmaPeak, kernelBackend } from "../../extension/src/engine/kernels/index";
import { timeRuns, type BenchContext, type BenchResult } from "./harness";
import { describeMachine } from "./machine";
import { CASES } from "./registry";

interface Args {
  quick: boolean;
  only: string[];
  list: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, only: [], list: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quick") args.quick = true;
    else if (a === "--list") args.list = true;
    else if (a === "--only" || a.startsWith("--only=")) {
      const value = a === "--only" ? argv[++i] : a.slice("--only=".length);
      if (!value) throw new UsageError("--only needs a case name");
      args.only.push(...value.split(",").filter(Boolean));
    } else throw new UsageError(`unknown argument '${a}'`);
  }
  const known = new Set(CASES.map((c) => c.name));
  const unknown = args.only.filter((n) => !known.has(n));
  if (unknown.length) throw new UsageError(`unknown case ${unknown.map((n) => `'${n}'`).join(", ")}; cases: ${[...known].join(", ")}`);
  return args;
}

class UsageError extends Error {}

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.list) {
    for (const c of CASES) process.stderr.write(`${c.name.padEnd(24)} ${c.description}\n`);
    return;
  }
  configureKernels({ log });
  const backend = kernelBackend();
  const nativeDisabled = !backend.native && (process.env.QUANTLENS_NATIVE ?? "").trim() === "0";
  if (!backend.native && !nativeDisabled) {
    throw new UsageError(`the native addon is needed (${backend.reason}); set QUANTLENS_NATIVE=0 to run only the cases without it`);
  }

  log(`${args.quick ? "quick" : "full"} run, ${backend.native ? `native ${backend.simd}, ${backend.threads} threads` : "TypeScript only"}`);
  const machine = await describeMachine(backend, args.quick);
  log(`memcpy ${machine.memcpy_gbps.one.toFixed(1)} GB/s on one thread, ${machine.memcpy_gbps.all.toFixed(1)} on ${backend.threads} (read + write)`);
  let peak: { one: number; all: number } | null = null;
  if (backend.native) {
    const p = await fmaPeak({ seconds: args.quick ? 0.05 : 0.25 });
    peak = { one: round(p.one), all: round(p.all) };
    log(`fma peak ${peak.one} GFLOP/s on one thread, ${peak.all} on ${p.threads} (${p.simd})`);
  }

  const reps = args.quick ? 3 : 7;
  const ctx: BenchContext = {
    quick: args.quick,
    peak,
    threads: backend.threads,
    memcpyGbps: machine.memcpy_gbps,
    log,
    time: (run, options = {}) => timeRuns(run, options.reps ?? reps, options.warmup ?? 1),
    ratioToPeak: (gflops, threads) => (peak ? gflops / (threads === 1 ? peak.one : peak.all) : undefined),
    ratioToMemcpy: (gbps, threads) => gbps / (threads === 1 ? machine.memcpy_gbps.one : machine.memcpy_gbps.all),
  };

  const results: BenchResult[] = [];
  const selected = CASES.filter((c) => args.only.length === 0 || args.only.includes(c.name));
  for (const c of selected) {
    if (c.needsNative && !backend.native) {
      results.push({ name: c.name, shape: [], seconds: 0, skipped: `needs the native addon (${backend.reason})` });
      continue;
    }
    const started = performance.now();
    results.push(...(await c.run(ctx)));
    log(`${c.name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }

  const report = {
    fma_peak_gflops: peak,
    machine: { ...machine, memcpy_gbps: { one: round(machine.memcpy_gbps.one), all: round(machine.memcpy_gbps.all) } },
    quick: args.quick,
    results,
  };
  process.stdout.write(JSON.stringify(report) + "\n");
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}

main().catch((err: unknown) => {
  log(err instanceof Error ? err.message : String(err));
  process.exitCode = err instanceof UsageError ? 1 : 2;
});
