/**
 * Scale check (issue 9): a generated Llama of 7B dimensions whose external data passes 2.5 GB
 * goes through inspect, calibrate, GPTQ W4 g128 + MatMulNBits export, each command run as a
 * child process of the real CLI with its peak memory measured; then the per-block time split on
 * one 7B block and the numerical edge cases (singular H, dead inputs).
 *
 *   npm run scale                      # 7 blocks (2.83 GB of fp16 weights)
 *   npm run scale -- --layers 1 --keep # smaller; keep the folder to look at it
 *   npm run scale -- --dir /big/disk   # where the temp folder goes (default: the OS temp dir)
 *   npm run scale -- --max-memory 8G   # calibration budget passed to the CLI (default 8G)
 *   npm run scale -- --only quantize,block --full-method rtn --reuse DIR   # parts of it
 *
 * Prints one JSON object as its last stdout line. Not part of `npm test` (minutes, GBs of disk).
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeScaleModel } from "./model";

const ROOT = path.resolve(__dirname, "../..");
const BUILT_CLI = path.join(ROOT, "dist/cli.js");
/**
 * The steps run a private copy of the bundle (same folder, so modules and the addon resolve the
 * same way): a rebuild of dist/ during the run (tests rebuild it) would otherwise break a step.
 */
const CLI = path.join(ROOT, "dist", `cli.scale-${process.pid}.js`);

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const LAYERS = Number(arg("layers", "7"));
const BASE = arg("dir", os.tmpdir());
const KEEP = process.argv.includes("--keep");
const THREADS = arg("threads", String(os.cpus().length));
/** Calibration memory budget (statistics + the model's weights as onnxruntime holds them). */
const MAX_MEMORY = arg("max-memory", "8G");
/** Method of the full-size quantize step: gptq (with calibration) or rtn (weights streamed through RTN, no calibration). */
const FULL_METHOD = arg("full-method", "gptq");
/** Run only these steps (comma-separated: inspect, calibrate, quantize, block). */
const ONLY = new Set(arg("only", "inspect,calibrate,quantize,block").split(","));
/** Reuse a model folder from an earlier `--keep` run instead of generating one (it is kept). */
const REUSE = arg("reuse", "");

interface Measured {
  step: string;
  code: number | null;
  seconds: number;
  /** Peak resident set (VmHWM): anonymous + file-backed pages. */
  peak_rss_mib: number;
  /** Peaks of the anonymous (heap, arenas) and file-backed (mapped files) parts, sampled every 100 ms. */
  peak_anon_mib: number;
  peak_file_mib: number;
  json?: Record<string, unknown>;
  stderr: string;
}

const log = (m: string) => process.stderr.write(`scale: ${m}\n`);

function procStatus(pid: number): Record<string, number> | undefined {
  try {
    const out: Record<string, number> = {};
    for (const line of fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
      const m = /^(VmHWM|VmRSS|RssAnon|RssFile):\s+(\d+) kB/.exec(line);
      if (m) out[m[1]] = Number(m[2]) / 1024;
    }
    return out;
  } catch {
    return undefined;
  }
}

/** Run the CLI as a child, polling /proc for its memory until it exits. */
async function measure(step: string, args: string[]): Promise<Measured> {
  log(`${step}: quantlens ${args.join(" ")}`);
  const t0 = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ORT_DISABLE_TELEMETRY: "1" } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  let hwm = 0;
  let anon = 0;
  let file = 0;
  const timer = setInterval(() => {
    const s = procStatus(child.pid!);
    if (!s) return;
    hwm = Math.max(hwm, s.VmHWM ?? 0);
    anon = Math.max(anon, s.RssAnon ?? 0);
    file = Math.max(file, s.RssFile ?? 0);
  }, 100);
  const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
  clearInterval(timer);
  const seconds = (performance.now() - t0) / 1000;
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(stdout.trim().split("\n").pop() ?? "");
  } catch {
    json = undefined;
  }
  const r = { step, code, seconds, peak_rss_mib: Math.round(hwm), peak_anon_mib: Math.round(anon), peak_file_mib: Math.round(file), json, stderr: stderr.slice(-2000) };
  log(`${step}: exit ${code}, ${seconds.toFixed(1)} s, peak RSS ${r.peak_rss_mib} MiB (anon ${r.peak_anon_mib}, file ${r.peak_file_mib})`);
  if (code !== 0) log(stderr.slice(-2000));
  return r;
}

function freeBytes(dir: string): number {
  const r = spawnSync("df", ["-Pk", dir], { encoding: "utf8" });
  const cols = r.stdout.trim().split("\n").pop()!.split(/\s+/);
  return Number(cols[3]) * 1024;
}

/** Short calibration sequences: few tokens, so H (rank ≤ tokens ≪ 4096) is singular. */
function writeCalib(dir: string, sequences: number, length: number): string {
  const file = path.join(dir, "calib.json");
  const seqs = Array.from({ length: sequences }, (_, s) => Array.from({ length }, (_, t) => (s * 131 + t * 17 + 1) % 1024));
  fs.writeFileSync(file, JSON.stringify(seqs));
  return file;
}

type Layer = { name: string; seconds: number; dead_columns?: number; damp?: number; damp_retries?: number; proxy_loss: number; proxy_loss_rtn: number };

async function fullRun(dir: string) {
  const t0 = performance.now();
  const m = REUSE
    ? { file: path.join(REUSE, "model.onnx"), dataBytes: fs.statSync(path.join(REUSE, "model.onnx.data")).size }
    : writeScaleModel(dir, { layers: LAYERS, deadLayer: 1 % LAYERS, deadChannels: 16 }, log);
  const genSeconds = (performance.now() - t0) / 1000;
  log(`model: ${m.file}, external data ${(m.dataBytes / 1e9).toFixed(2)} GB in ${genSeconds.toFixed(0)} s`);
  const calib = writeCalib(dir, 4, 16);
  const steps: Measured[] = [];
  if (REUSE) log(`reusing ${m.file} (${(m.dataBytes / 1e9).toFixed(2)} GB of external data)`);
  if (ONLY.has("inspect")) steps.push(await measure("inspect", ["inspect", m.file, "--json"]));
  if (ONLY.has("calibrate")) {
    steps.push(await measure("calibrate", ["calibrate", m.file, "--data", calib, "--threads", THREADS, "--max-memory", MAX_MEMORY, "-o", path.join(dir, "stats.safetensors"), "--json"]));
    fs.rmSync(path.join(dir, "stats.safetensors"), { force: true });
  }
  const out = path.join(dir, "model-w4.onnx");
  let q: { layers?: Layer[] } | undefined;
  if (ONLY.has("quantize")) {
    const data = FULL_METHOD === "rtn" ? [] : ["--data", calib, "--threads", THREADS, "--max-memory", MAX_MEMORY];
    const step = await measure(`quantize_${FULL_METHOD}_w4_g128_matmulnbits`, ["quantize", m.file, "--method", FULL_METHOD, "--bits", "4", "--group", "128", ...data, "--format", "matmulnbits", "-o", out, "--json"]);
    steps.push(step);
    q = step.json as typeof q;
  }
  const dead = (q?.layers ?? []).filter((l) => (l.dead_columns ?? 0) > 0).map((l) => ({ name: l.name, dead_columns: l.dead_columns }));
  const outBytes = fs.existsSync(out) ? fs.statSync(out).size + (fs.existsSync(`${out}.data`) ? fs.statSync(`${out}.data`).size : 0) : 0;
  return {
    layers: LAYERS,
    external_data_bytes: m.dataBytes,
    generate_seconds: genSeconds,
    steps: steps.map(({ json: _json, stderr, ...s }) => ({ ...s, ...(s.code !== 0 ? { stderr } : {}) })),
    quantized_bytes: outBytes,
    dead_inputs: dead,
    gptq_seconds_total: (q?.layers ?? []).reduce((s, l) => s + l.seconds, 0),
  };
}

/** One 7B block: time split and the singular-H damping escalation. */
async function blockRun(dir: string) {
  const m = writeScaleModel(dir, { layers: 1, deadLayer: 0, deadChannels: 16 }, log);
  const calib = writeCalib(dir, 4, 16);
  const stats = path.join(dir, "stats.safetensors");
  const noH = await measure("block_calibrate_no_hessian", ["calibrate", m.file, "--data", calib, "--threads", THREADS, "--max-memory", MAX_MEMORY, "--no-hessian", "-o", stats, "--json"]);
  fs.rmSync(stats, { force: true });
  const withH = await measure("block_calibrate", ["calibrate", m.file, "--data", calib, "--threads", THREADS, "--max-memory", MAX_MEMORY, "-o", stats, "--json"]);
  fs.rmSync(stats, { force: true });
  const q = await measure("block_quantize", ["quantize", m.file, "--method", "gptq", "--bits", "4", "--group", "128", "--data", calib, "--threads", THREADS, "--max-memory", MAX_MEMORY, "-o", path.join(dir, "q.onnx"), "--json"]);
  const layers = ((q.json?.layers as Layer[]) ?? []);
  const gptq = layers.reduce((s, l) => s + l.seconds, 0);
  const calibS = Number(noH.json?.seconds ?? NaN);
  const calibH = Number(withH.json?.seconds ?? NaN);
  const quantS = Number(q.json?.seconds ?? NaN);
  // The report beside the output has quantizeModel's own time and its calibration's.
  const report = q.json?.report ? (JSON.parse(fs.readFileSync(String(q.json.report), "utf8")) as { seconds: number; calibration: { seconds: number } | null }) : undefined;
  // Singular H with almost no damping: the factorization fails and damping must escalate.
  const tiny = await measure("block_quantize_percdamp_1e-9", ["quantize", m.file, "--method", "gptq", "--bits", "4", "--group", "128", "--percdamp", "1e-9", "--data", calib, "--threads", THREADS, "--max-memory", MAX_MEMORY, "-o", path.join(dir, "q2.onnx"), "--json"]);
  const tinyLayers = ((tiny.json?.layers as Layer[]) ?? []);
  return {
    split_seconds: {
      // Standalone calibrate runs: the forward passes + statistics alone, and the Hessians' extra.
      calibration_forward: calibS,
      hessian: calibH - calibS,
      // Inside quantize: its calibration (forward + Hessians; GPTQ runs in calibration's per-pass
      // sink, so its time is taken out), GPTQ over the 7 layers, the export.
      quantize_calibration: (report?.calibration?.seconds ?? NaN) - gptq,
      gptq,
      export: report ? quantS - report.seconds : NaN,
      quantize_total: quantS,
    },
    per_layer_gptq_seconds: Object.fromEntries(layers.map((l) => [l.name.replace("/model/layers.0/", ""), l.seconds])),
    dead_inputs: layers.filter((l) => (l.dead_columns ?? 0) > 0).map((l) => ({ name: l.name, dead_columns: l.dead_columns })),
    singular_h: {
      exit: tiny.code,
      notes: tiny.stderr.split("\n").filter((l) => /damp|singular|positive definite/i.test(l)),
      layers: tinyLayers.map((l) => ({ name: l.name, damp: l.damp, damp_retries: l.damp_retries })),
    },
    steps: [noH, withH, q, tiny].map(({ json: _json, stderr, ...s }) => ({ ...s, ...(s.code !== 0 ? { stderr } : {}) })),
  };
}

async function main() {
  if (!fs.existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run node scripts/build.mjs first`);
  fs.copyFileSync(BUILT_CLI, CLI);
  const need = LAYERS * 0.45e9 * 2.2 + 2e9;
  const free = freeBytes(BASE);
  if (free < need) throw new Error(`${BASE} has ${(free / 1e9).toFixed(1)} GB free; the scale run needs about ${(need / 1e9).toFixed(1)} GB (use --dir)`);
  const dir = fs.mkdtempSync(path.join(BASE, "quantlens-scale-"));
  const blockDir = fs.mkdtempSync(path.join(BASE, "quantlens-scale-block-"));
  log(`working in ${dir} (${(free / 1e9).toFixed(0)} GB free), ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB memory`);
  try {
    const full = ["inspect", "calibrate", "quantize"].some((x) => ONLY.has(x)) ? await fullRun(dir) : null;
    if (full) log(`full: ${JSON.stringify(full)}`);
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
    const block = ONLY.has("block") ? await blockRun(blockDir) : null;
    const result = { machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, mem_gib: Math.round(os.totalmem() / 2 ** 30) }, full, block };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    fs.rmSync(CLI, { force: true });
    if (!KEEP) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(blockDir, { recursive: true, force: true });
    }
  }
}

main().catch((e) => {
  process.stderr.write(`scale: ${e instanceof Error ? (e.stack ?? e.message) : e}\n`);
  process.exitCode = 1;
});
