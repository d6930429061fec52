/**
 * Never lose data: the input folder is byte- and mtime-identical after every command; outputs
 * appear whole or not at all (Ctrl-C, an AbortSignal mid-write, a forced second Ctrl-C); two
 * quantizations of one model at once do not corrupt each other.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import { checkOutput, removeOwnTempFiles } from "../../../extension/src/cli/outputs";
import { CancelledError } from "../../../extension/src/engine/errors";
import { buildCli, CLI, quantlens } from "../../helpers/cli";
import { listDir, STORIES, tempDir } from "../../helpers/paths";
import { copyStories, fingerprint, fingerprintDir } from "./helpers";

let root: string;
let cleanup: () => void;
/** The user's model folder (embedded weights) and a copy with external data. */
let input: string;
let model: string;
let extModel: string;
let outDir: string;
let data: string;

beforeAll(async () => {
  buildCli();
  ({ dir: root, cleanup } = tempDir("quantlens-lifecycle-"));
  input = path.join(root, "input");
  outDir = path.join(root, "out");
  fs.mkdirSync(input);
  fs.mkdirSync(outDir);
  model = copyStories(input);
  const src = await OnnxModel.load(model);
  extModel = path.join(input, "ext.onnx");
  await saveModel(src.proto, extModel, { externalData: true, source: src });
  src.close();
  data = path.join(input, "calib.jsonl");
  fs.copyFileSync(path.join(STORIES, "calib.jsonl"), data);
  // mtimes a second in the past: a rewrite of identical bytes would still show.
  const past = new Date(Date.now() - 60_000);
  for (const f of fs.readdirSync(input)) fs.utimesSync(path.join(input, f), past, past);
});
afterAll(() => cleanup());

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ORT_DISABLE_TELEMETRY: "1", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("the input is never modified", () => {
  it("inspect, calibrate, quantize (rtn, gptq; every format) and eval leave the input folder byte- and mtime-identical", () => {
    const before = fingerprintDir(input);
    const o = (name: string) => path.join(outDir, name);
    const commands: string[][] = [];
    for (const m of [model, extModel]) {
      const tag = path.basename(m, ".onnx");
      commands.push(
        ["inspect", m, "--json"],
        ["calibrate", m, "--data", data, "--samples", "4", "--seq-len", "64", "-o", o(`${tag}.safetensors`)],
        ["quantize", m, "--method", "rtn", "--group", "32", "-o", o(`${tag}-rtn.onnx`)],
        ["quantize", m, "--method", "gptq", "--group", "32", "--data", data, "--samples", "4", "--seq-len", "64", "--format", "qdq", "-o", o(`${tag}-gptq.onnx`)],
        ["quantize", m, "--method", "rtn", "--bits", "8", "--group", "0", "--format", "fake", "-o", o(`${tag}-fake.onnx`)],
        ["eval", m, o(`${tag}-rtn.onnx`), "--eval", data, "--samples", "2"],
      );
    }
    for (const args of commands) {
      const r = quantlens(...args);
      expect(r.code, `${args.join(" ")}\n${r.stderr}`).toBe(0);
      expect(fingerprintDir(input), args.join(" ")).toEqual(before);
    }
    // Only the outputs asked for (and the reports beside the models), no temp files.
    expect(listDir(outDir)).toEqual(
      ["ext", "model"].flatMap((t) => [`${t}-fake.onnx`, `${t}-fake.quantlens.json`, `${t}-gptq.onnx`, `${t}-gptq.quantlens.json`, `${t}-rtn.onnx`, `${t}-rtn.quantlens.json`, `${t}.safetensors`]).sort(),
    );
    for (const f of listDir(outDir)) fs.rmSync(path.join(outDir, f));
  });
});

describe("cancellation leaves no partial file", () => {
  it("Ctrl-C during `quantize` (true-sequential GPTQ) exits 130 and writes nothing", async () => {
    const before = fingerprintDir(input);
    const out = path.join(outDir, "cancelled.onnx");
    // True-sequential GPTQ: ~11 s here (a plain GPTQ run of this model now ends in ~2.5 s, before
    // the signal would come).
    const child = spawn(process.execPath, [CLI, "quantize", model, "--method", "gptq", "--group", "32", "--sequential", "--act-order", "--data", data, "-o", out], {
      env: { ...process.env, ORT_DISABLE_TELEMETRY: "1" },
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    await new Promise((r) => setTimeout(r, 2500));
    expect(child.exitCode).toBeNull(); // still working
    child.kill("SIGINT");
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/quantization cancelled; nothing was written|calibration cancelled; nothing was written/);
    expect(listDir(outDir)).toEqual([]);
    expect(fingerprintDir(input)).toEqual(before);
  });

  it("an AbortSignal tripped while the model is being written removes the temp files (external data too)", async () => {
    const src = await OnnxModel.load(extModel);
    for (const after of [1, 5, 20]) {
      // A signal that reads "aborted" from its `after`-th check on: mid-way through the side file.
      let checks = 0;
      const signal = { get aborted() {
        return ++checks > after;
      } } as AbortSignal;
      const err = await saveModel(src.proto, path.join(outDir, "partial.onnx"), { source: src, externalData: true, signal }).catch((e) => e);
      expect(err, `abort after ${after} checks`).toBeInstanceOf(CancelledError);
      expect(checks).toBeGreaterThan(after);
      expect(listDir(outDir)).toEqual([]);
    }
    src.close();
  });

  it("a forced exit (second Ctrl-C) sweeps this process's temp files from the output folders and no one else's", () => {
    const out = path.join(outDir, "forced.onnx");
    checkOutput(out);
    const mine = [`${out}.tmp-${process.pid}-0badf00d`, `${out}.data.tmp-${process.pid}-12345678`];
    const other = `${out}.tmp-${process.pid + 1}-0badf00d`;
    for (const f of [...mine, other]) fs.writeFileSync(f, "partial");
    removeOwnTempFiles();
    expect(listDir(outDir)).toEqual([path.basename(other)]);
    fs.rmSync(other);
  });
});

describe("concurrent runs", () => {
  it("two quantizations of one model at once, to two outputs: both complete and identical to a run alone", async () => {
    const before = fingerprintDir(input);
    const args = (out: string) => ["quantize", extModel, "--method", "rtn", "--group", "32", "--format", "matmulnbits", "-o", out];
    const [a, b] = await Promise.all([run(args(path.join(outDir, "a.onnx"))), run(args(path.join(outDir, "b.onnx")))]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const alone = await run(args(path.join(outDir, "alone.onnx")));
    expect(alone.code, alone.stderr).toBe(0);
    const bytes = (n: string) => fingerprint(path.join(outDir, n)).sha256;
    expect(bytes("a.onnx")).toBe(bytes("alone.onnx"));
    expect(bytes("b.onnx")).toBe(bytes("alone.onnx"));
    expect(listDir(outDir)).toEqual(["a.onnx", "a.quantlens.json", "alone.onnx", "alone.quantlens.json", "b.onnx", "b.quantlens.json"]);
    expect(fingerprintDir(input)).toEqual(before);
  });

  it("two runs racing to replace one output (--force) leave one whole model, never a mix or a temp file", async () => {
    const out = path.join(outDir, "same.onnx");
    const args = ["quantize", extModel, "--method", "rtn", "--group", "32", "--format", "matmulnbits", "-o", out, "--force"];
    const [a, b] = await Promise.all([run(args), run(args)]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(fingerprint(out).sha256).toBe(fingerprint(path.join(outDir, "alone.onnx")).sha256);
    const m = await OnnxModel.load(out);
    expect(m.graph.node.filter((n) => n.opType === "MatMulNBits")).toHaveLength(35);
    m.close();
    expect(listDir(outDir).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });
});
