/**
 * Benchmark plumbing shared by every case: what a case is, what it reports, how it is timed.
 * Benchmarks are measurements, not pass/fail tests (STYLE.md §12).
 */

/** One line of the `results` array in the bench JSON. Extra keys are welcome. */
export interface BenchResult {
  /** The case name (what `--only` selects). */
  name: string;
  /** Problem size, e.g. [elements] or [rows, cols]. */
  shape: number[];
  /** Median wall time of one run, seconds. */
  seconds: number;
  /** Useful floating-point operations per second / 1e9 (the flop count is stated per case). */
  gflops?: number;
  /** Memory traffic (bytes read + bytes written by the kernel) per second / 1e9. */
  gbps?: number;
  /** gflops / the measured FMA peak for the same number of threads. */
  ratio_to_peak?: number;
  [extra: string]: unknown;
}

export interface Timing {
  /** Median of the timed runs, seconds. */
  median: number;
  min: number;
  runs: number;
}

export interface TimeOptions {
  /** Untimed runs first (JIT, page faults, caches). Default 1. */
  warmup?: number;
  /** Timed runs; the median is reported. Default from the context (quick: 3, full: 7). */
  reps?: number;
}

export interface BenchContext {
  quick: boolean;
  /** Measured fp32 FMA peak, GFLOP/s; null without the native addon. */
  peak: { one: number; all: number } | null;
  /** Threads the native kernels use. */
  threads: number;
  /** memcpy traffic (read + write) in GB/s, the yardstick for memory-bound kernels (machine.ts). */
  memcpyGbps: { one: number; all: number };
  /** Progress to stderr (stdout carries only the final JSON). */
  log(message: string): void;
  time(run: () => unknown, options?: TimeOptions): Promise<Timing>;
  /** gflops / peak for `threads` threads (1 → the one-thread peak, else all); undefined without a peak. */
  ratioToPeak(gflops: number, threads: number): number | undefined;
  /** gbps / memcpy traffic for `threads` threads (1 → one thread, else all). */
  ratioToMemcpy(gbps: number, threads: number): number;
}

export interface BenchCase {
  /** Stable name, used by `--only` and as the result name. */
  name: string;
  /** One line for `--list` and the progress log. */
  description: string;
  /** Needs the native addon (skipped, with the reason, under QUANTLENS_NATIVE=0). */
  needsNative: boolean;
  run(ctx: BenchContext): Promise<BenchResult[]>;
}

/** Time `run` (sync or async): warm-up, then `reps` timed runs; median and min in seconds. */
export async function timeRuns(run: () => unknown, reps: number, warmup: number): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await run();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    samples.push((performance.now() - t0) / 1000);
  }
  samples.sort((a, b) => a - b);
  const mid = samples.length >> 1;
  const median = samples.length % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
  return { median, min: samples[0], runs: samples.length };
}

/** Round for the JSON (4 significant digits), keeping it readable. */
export function sig(x: number, digits = 4): number {
  return x === 0 || !Number.isFinite(x) ? x : Number(x.toPrecision(digits));
}
