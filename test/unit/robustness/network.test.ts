/**
 * No network anywhere: the CLI runs inspect, calibrate and quantize (GPTQ, which runs
 * onnxruntime) inside a network namespace with no interfaces up (`unshare -rn`, when this machine
 * allows it), with a preload that makes every Node network API throw and log the attempt. The
 * runs must succeed with no attempt logged; the CLI sets ORT_DISABLE_TELEMETRY=1 itself (the
 * variable is removed from its environment), and onnxruntime leaves no telemetry or cache file in
 * the temp folder or the home folder.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli, CLI } from "../../helpers/cli";
import { STORIES, tempDir } from "../../helpers/paths";
import { copyStories } from "./helpers";

const PRELOAD = path.join(__dirname, "no-network.cjs");
/** Whether unprivileged network namespaces work here (containers often forbid them). */
const UNSHARE = spawnSync("unshare", ["-rn", "true"]).status === 0;

let dir: string;
let cleanup: () => void;
let home: string;
let tmp: string;
let netLog: string;
let model: string;
let data: string;

beforeAll(() => {
  buildCli();
  ({ dir, cleanup } = tempDir("quantlens-nonet-"));
  home = path.join(dir, "home");
  tmp = path.join(dir, "tmp");
  fs.mkdirSync(home);
  fs.mkdirSync(tmp);
  fs.mkdirSync(path.join(dir, "model"));
  model = copyStories(path.join(dir, "model"));
  data = path.join(STORIES, "calib.jsonl");
  netLog = path.join(dir, "net.log");
});
afterAll(() => cleanup());

function isolated(args: string[], script = [CLI, ...args]) {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), HOME: home, TMPDIR: tmp, QUANTLENS_NET_LOG: netLog };
  delete env.ORT_DISABLE_TELEMETRY; // the CLI must set it itself
  for (const k of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]) delete env[k];
  const node = [process.execPath, "--require", PRELOAD, ...script];
  const [cmd, ...rest] = UNSHARE ? ["unshare", "-rn", ...node] : node;
  const r = spawnSync(cmd, rest, { env, encoding: "utf8", cwd: dir });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function readLog(): string {
  return fs.existsSync(netLog) ? fs.readFileSync(netLog, "utf8") : "";
}

describe(`engine with networking blocked (${UNSHARE ? "unshare -rn + Node preload" : "Node preload only: unshare -rn is not permitted here"})`, () => {
  it("the guard itself works: a request from a preloaded process is blocked and logged", () => {
    const r = isolated([], ["-e", "require('node:https').get('https://example.com/')"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/network access blocked in test: https\.get/);
    expect(readLog()).toMatch(/attempt: https\.get/);
    if (UNSHARE) {
      // Inside the namespace there is no route out at all, even for native code.
      const raw = spawnSync("unshare", ["-rn", process.execPath, "-e", "require('node:net').connect(53, '1.1.1.1').on('error', (e) => { console.log(e.code); })"], { encoding: "utf8" });
      expect(raw.stdout.trim()).toMatch(/^(ENETUNREACH|EHOSTUNREACH|ECONNREFUSED|EACCES)$/);
    }
    fs.rmSync(netLog);
  });

  it("inspect, calibrate, quantize (GPTQ + MatMulNBits) and eval succeed without trying to connect", () => {
    const runs = [
      ["inspect", model, "--json"],
      ["calibrate", model, "--data", data, "--samples", "4", "--seq-len", "64", "-o", path.join(dir, "stats.safetensors")],
      ["quantize", model, "--method", "gptq", "--group", "32", "--data", data, "--samples", "4", "--seq-len", "64", "-o", path.join(dir, "q.onnx")],
      ["eval", model, path.join(dir, "q.onnx"), "--eval", data, "--samples", "2"],
    ];
    for (const args of runs) {
      const r = isolated(args);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(0);
    }
    const log = readLog();
    expect(log).not.toMatch(/attempt:/);
    // One line per run, each saying the CLI had set the variable before onnxruntime loaded.
    expect(log.trim().split("\n")).toEqual(runs.map(() => "telemetry-env: 1"));
    expect(fs.existsSync(path.join(dir, "q.onnx"))).toBe(true);
  });

  it("no telemetry or cache files: nothing in TMPDIR or HOME, no mat-debug-*.log anywhere we ran", () => {
    expect(fs.readdirSync(tmp)).toEqual([]);
    expect(fs.readdirSync(home)).toEqual([]);
    expect(fs.existsSync(path.join(home, ".cache", "Microsoft"))).toBe(false);
    const found = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? found(path.join(d, e.name)) : /^mat-debug-.*\.log$/.test(e.name) ? [e.name] : []));
    expect(found(dir)).toEqual([]);
  });
});
