import fs from "node:fs";
import path from "node:path";
import { Worker } from "node:worker_threads";

type Tensor = import("onnxruntime-node").Tensor;
type SessionOptions = import("onnxruntime-node").InferenceSession.SessionOptions;

/** What callers run: onnxruntime's `InferenceSession.run`, in this thread or on the worker. */
export interface OrtSession {
  run(feeds: Record<string, Tensor>, outputs: string[]): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
}

interface WireTensor {
  type: Tensor["type"];
  dims: number[];
  data: Tensor["data"];
}

/**
 * onnxruntime sessions hosted on one worker thread (ort-worker.cjs), so that a long
 * `session.run` (seconds per batch on a large model) leaves this thread's event loop free: the
 * extension host keeps answering VS Code while it calibrates. Feeds are copied to the worker and
 * outputs copied back (structured clone); requests run in order. The worker holds the process
 * open only while a request is in flight.
 */
class OrtWorker {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private next = 1;

  private start(): Worker {
    const file = path.join(__dirname, "ort-worker.cjs");
    if (!fs.existsSync(file)) throw new Error(`onnxruntime worker script missing: ${file} (rebuild: node scripts/build.mjs)`);
    const w = new Worker(file, { env: { ...process.env, ORT_DISABLE_TELEMETRY: "1" } });
    w.unref();
    const failAll = (e: Error) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    w.on("message", (m: { id: number; result?: unknown; error?: { message: string } }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (!this.pending.size) w.unref();
      if (m.error) p.reject(new Error(m.error.message));
      else p.resolve(m.result);
    });
    w.on("error", (e) => failAll(new Error(`onnxruntime worker failed: ${e.message}`)));
    w.on("exit", (code) => {
      if (this.worker === w) this.worker = null;
      failAll(new Error(`onnxruntime worker exited (code ${code})`));
    });
    return w;
  }

  request<T>(message: Record<string, unknown>): Promise<T> {
    const w = (this.worker ??= this.start());
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      w.ref();
      w.postMessage({ ...message, id });
    });
  }
}

let shared: OrtWorker | undefined;

/** A session created on the worker thread from the model's bytes. */
export async function createWorkerSession(ort: typeof import("onnxruntime-node"), bytes: Uint8Array, options: SessionOptions): Promise<OrtSession> {
  shared ??= new OrtWorker();
  const worker = shared;
  const { session } = await worker.request<{ session: number }>({ op: "create", bytes, options });
  const wire = (t: Tensor): WireTensor => ({ type: t.type, dims: [...t.dims], data: t.data });
  return {
    async run(feeds, outputs) {
      const sent: Record<string, WireTensor> = {};
      for (const [k, t] of Object.entries(feeds)) sent[k] = wire(t);
      const r = await worker.request<{ outputs: Record<string, WireTensor> }>({ op: "run", session, feeds: sent, outputs });
      const out: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(r.outputs)) out[k] = new ort.Tensor(t.type as "float32", t.data as Float32Array, t.dims);
      return out;
    },
    async release() {
      await worker.request({ op: "release", session });
    },
  };
}
