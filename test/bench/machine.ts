/** What the numbers were measured on: CPU, cores, SIMD path, and memory-bandwidth yardsticks. */
import os from "node:os";
import { Worker } from "node:worker_threads";
import type { KernelBackend } from "../../extension/src/engine/kernels/index";
import { timeRuns } from "./harness";

export interface Machine {
  cpu: string;
  cores: number;
  /** Threads the native kernels use. */
  threads: number;
  simd: string;
  native: boolean;
  native_reason?: string;
  node: string;
  platform: string;
  arch: string;
  /**
   * memcpy traffic (bytes read + bytes written per second / 1e9) of 64 MiB copies with
   * TypedArray.prototype.set: on one thread, and on `threads` worker threads at once (each its
   * own buffers). `ratio_to_memcpy` divides by the figure for the kernel's thread count.
   */
  memcpy_gbps: { one: number; all: number };
}

const COPY_BYTES = 64 << 20; // well past any last-level cache

export async function describeMachine(backend: KernelBackend, quick: boolean): Promise<Machine> {
  const reps = quick ? 3 : 7;
  return {
    cpu: os.cpus()[0]?.model.trim() ?? "unknown",
    cores: os.availableParallelism(),
    threads: backend.threads,
    simd: backend.simd,
    native: backend.native,
    ...(backend.reason ? { native_reason: backend.reason } : {}),
    node: process.version,
    platform: os.platform(),
    arch: os.arch(),
    memcpy_gbps: {
      one: await memcpyOneThread(reps),
      all: backend.threads > 1 ? await memcpyThreads(backend.threads, reps) : await memcpyOneThread(reps),
    },
  };
}

async function memcpyOneThread(reps: number): Promise<number> {
  const src = new Uint8Array(COPY_BYTES).fill(1);
  const dst = new Uint8Array(COPY_BYTES);
  const t = await timeRuns(() => dst.set(src), reps, 1);
  return (2 * COPY_BYTES) / t.median / 1e9;
}

// Each worker: own buffers, one warm-up copy, then waits on a shared flag so all start together,
// copies `reps` times and reports.
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { bytes, reps, flag } = workerData;
const src = new Uint8Array(bytes).fill(1), dst = new Uint8Array(bytes);
dst.set(src);
parentPort.postMessage("ready");
Atomics.wait(flag, 0, 0);
for (let i = 0; i < reps; i++) dst.set(src);
parentPort.postMessage("done");
`;

/** Aggregate traffic of `threads` workers copying at once (wall time from release to last done). */
async function memcpyThreads(threads: number, reps: number): Promise<number> {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const workers = Array.from({ length: threads }, () => new Worker(WORKER, { eval: true, workerData: { bytes: COPY_BYTES, reps, flag } }));
  const next = (w: Worker) => new Promise<unknown>((resolve, reject) => {
    w.once("message", resolve);
    w.once("error", reject);
  });
  try {
    await Promise.all(workers.map(next));
    const done = Promise.all(workers.map(next));
    const t0 = performance.now();
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    await done;
    const seconds = (performance.now() - t0) / 1000;
    return (2 * COPY_BYTES * reps * threads) / seconds / 1e9;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
