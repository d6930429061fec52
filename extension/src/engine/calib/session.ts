import fs from "node:fs";
import path from "node:path";
import { toBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, type ModelProto } from "../onnx/proto/onnx_pb";
import { isExternal } from "../onnx/external";
import type { OnnxModel } from "../onnx/model";
import { BadModelError } from "../errors";
import { createWorkerSession, type OrtSession } from "./ort-host";

// No telemetry leaves the machine: set before onnxruntime is first loaded.
process.env.ORT_DISABLE_TELEMETRY = "1";

export type Ort = typeof import("onnxruntime-node");
let ortModule: Ort | undefined;

/** onnxruntime-node, loaded on first use (it is large and not every command needs it). */
export function ort(): Ort {
  process.env.ORT_DISABLE_TELEMETRY = "1";
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ortModule ??= require("onnxruntime-node") as Ort;
  return ortModule;
}

const SESSION_CONFIG = { qdq_matmulnbits_accuracy_level: "0" };

export type ExecutionProvider = "auto" | "cpu" | "cuda";

export interface SessionOptions {
  executionProvider?: ExecutionProvider;
  /** Intra-op threads (default: onnxruntime's choice, all cores). */
  threads?: number;
  /** Disable graph optimizations (exact op-by-op results, e.g. for reference runs). */
  noOptimizations?: boolean;
  /**
   * Lean memory: no graph optimizations (fp16/bf16 weights are then not constant-folded into
   * float32 copies, and external data stays memory-mapped), no CPU arena, no weight pre-packing.
   * Slower per run; default on for models with at least `LOW_MEMORY_WEIGHT_BYTES` of weights.
   */
  lowMemory?: boolean;
}

/**
 * From this much weight data on, sessions are lean by default: measured on a 7B-dimension block
 * (430 MB of fp16 weights), a default session holds ~840 MB of anonymous memory, a lean one ~60 MB
 * (the weights stay in the page cache, file-backed).
 */
export const LOW_MEMORY_WEIGHT_BYTES = 2 ** 30;

/**
 * Where sessions run: "inline" (this thread; the CLI) or "worker" (one worker thread, so a long
 * run does not block this thread's event loop; the extension host). `QUANTLENS_ORT_WORKER=1`
 * selects the worker too.
 */
let sessionHost: "inline" | "worker" = process.env.QUANTLENS_ORT_WORKER === "1" ? "worker" : "inline";

export function setSessionHost(host: "inline" | "worker"): void {
  sessionHost = host;
}

export interface RunnerSession {
  session: OrtSession;
  provider: "cpu" | "cuda";
  /** Why CUDA was not used, when it was asked for or available. */
  note?: string;
  release(): Promise<void>;
}

/** Whether this onnxruntime-node install has its CUDA provider library (a device is checked at session creation). */
export function cudaProviderInstalled(): boolean {
  const o = ort();
  if (!o.listSupportedBackends().some((b) => b.name === "cuda")) return false;
  const dir = path.dirname(require.resolve("onnxruntime-node/package.json"));
  const bin = path.join(dir, "bin", "napi-v6", process.platform, process.arch);
  return fs.existsSync(path.join(bin, "libonnxruntime_providers_cuda.so")) || fs.existsSync(path.join(bin, "onnxruntime_providers_cuda.dll"));
}

/**
 * Create an onnxruntime session for `proto` (a possibly modified copy of `model`). The proto
 * goes in as bytes; external data is read by onnxruntime from the model's own folder.
 */
export async function createSession(model: OnnxModel, proto: ModelProto, opts: SessionOptions = {}): Promise<RunnerSession> {
  const o = ort();
  const wantCuda = opts.executionProvider === "cuda" || (opts.executionProvider ?? "auto") === "auto";
  let note: string | undefined;
  const lean = opts.lowMemory ?? model.weightBytes >= LOW_MEMORY_WEIGHT_BYTES;
  const config = lean ? { ...SESSION_CONFIG, disable_prepacking: "1" } : SESSION_CONFIG;
  const base: import("onnxruntime-node").InferenceSession.SessionOptions = {
    graphOptimizationLevel: opts.noOptimizations || lean ? "disabled" : "all",
    ...(lean ? { enableCpuMemArena: false } : {}),
    ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    logSeverityLevel: 3,
    // onnxruntime's graph optimizer rewrites DequantizeLinear→MatMul into MatMulNBits with
    // accuracy_level 4 by default (activations quantized to int8, 0.3–1% off); keep the exact
    // float computation so a qdq export evaluates as what it encodes.
    extra: { session: config },
  };
  const tryCreate = async (providers: string[]) => {
    const external = proto.graph!.initializer.some(isExternal);
    const make = (bytes: Uint8Array, options: import("onnxruntime-node").InferenceSession.SessionOptions): Promise<OrtSession> =>
      sessionHost === "worker" ? createWorkerSession(o, bytes, options) : o.InferenceSession.create(bytes, options);
    if (!external) return make(toBinary(ModelProtoSchema, proto), { ...base, executionProviders: providers });
    // The graph goes in as bytes; onnxruntime reads the external data itself, by offset, from
    // the model's folder (locations were checked to stay inside it when the model was loaded).
    // Links from a temp folder do not work: onnxruntime ≥ 1.2x refuses data that resolves
    // outside the folder it loads the model from.
    const extra = { session: { ...config, model_external_initializers_file_folder_path: model.dir } };
    return make(toBinary(ModelProtoSchema, proto), { ...base, extra, executionProviders: providers });
  };
  let session: OrtSession | undefined;
  let provider: "cpu" | "cuda" = "cpu";
  if (wantCuda) {
    if (cudaProviderInstalled()) {
      try {
        session = await tryCreate(["cuda", "cpu"]);
        provider = "cuda";
      } catch (e) {
        note = `CUDA provider failed (${(e as Error).message.split("\n")[0]}); running on the CPU`;
      }
    } else if (opts.executionProvider === "cuda") {
      note = "onnxruntime-node has no CUDA provider installed here; running on the CPU";
    }
  }
  if (!session) {
    try {
      session = await tryCreate(["cpu"]);
    } catch (e) {
      throw new BadModelError(model.file, `onnxruntime cannot load it: ${(e as Error).message.split("\n")[0]}`, { cause: e });
    }
  }
  const s = session;
  return { session: s, provider, note, release: () => s.release() };
}
