// `npm start` (scripts/start-demo.mjs) as a user runs it: it serves VS Code with QuantLens
// installed on the demo workspace at 127.0.0.1, prints the address, and Ctrl-C stops everything.
// Run against a separate demo folder (QUANTLENS_DEMO_DIR) so a developer's demo is left alone.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, inject, test } from "vitest";
import { freePort, launchBrowser, ROOT } from "../../scripts/vscode-env.mjs";
import { Workbench } from "./workbench";

const DIR = path.join(ROOT, ".cache", "vscode-runs", "demo");
let child: ChildProcess | undefined;

function waitForLine(proc: ChildProcess, re: RegExp, ms: number, out: string[]): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms / 1000} s:\n${out.join("")}`)), ms);
    const onData = (b: Buffer) => {
      out.push(b.toString());
      const m = re.exec(out.join(""));
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", (b: Buffer) => out.push(b.toString()));
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`npm start exited (${code}) before printing its address:\n${out.join("")}`));
    });
  });
}

describe("npm start (the demo)", () => {
  afterAll(async () => {
    // A failed test may leave it running: SIGTERM lets it stop code-server's group, then SIGKILL.
    if (child?.pid && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child!.once("exit", r));
      process.kill(child.pid, "SIGTERM");
      await Promise.race([gone, new Promise((r) => setTimeout(r, 8000))]);
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }, 20_000);

  test("serves VS Code with QuantLens on the demo model, and Ctrl-C stops it", async () => {
    fs.rmSync(DIR, { recursive: true, force: true });
    const port = await freePort();
    const vsix = inject("vsix");
    const args = ["scripts/start-demo.mjs", "--port", String(port), "--no-build", ...(vsix ? ["--vsix", vsix] : ["--no-package"])];
    child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, QUANTLENS_DEMO_DIR: DIR }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const out: string[] = [];
    const m = await waitForLine(child, /QuantLens is running in VS Code at\s+(http:\/\/127\.0\.0\.1:(\d+)\/)/, 120_000, out);
    expect(Number(m[2])).toBe(port);
    const workspace = path.join(DIR, "stories260K");
    for (const f of ["model.onnx", "tokenizer.json", "calib.jsonl"]) expect(fs.existsSync(path.join(workspace, f)), f).toBe(true);
    expect(fs.readFileSync(path.join(workspace, "model.onnx")).equals(fs.readFileSync(path.join(ROOT, "test/fixtures/stories260K/model.onnx")))).toBe(true);

    // The printed address opens the workbench on the demo folder, with QuantLens' explorer entries.
    const browser = await launchBrowser(path.join(DIR, "chromium-profile"));
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      await page.goto(m[1]);
      const wb = new Workbench(page, path.join(ROOT, "test-output", "screenshots"));
      await wb.waitReady();
      // QuantLens' entries appear once the extension host has scanned the installed extension.
      await expect.poll(async () => (await wb.explorerMenuItems("model.onnx")).includes("Quantize"), { timeout: 60_000, interval: 1000 }).toBe(true);
      // Near the top, right after VS Code's own open entries: above Cut/Copy and Rename/Delete.
      const entries = await wb.explorerMenuItems("model.onnx");
      for (const builtin of ["Cut", "Copy", "Rename...", "Delete"].filter((b) => entries.includes(b))) {
        expect(entries.indexOf("Quantize"), entries.join(" | ")).toBeLessThan(entries.indexOf(builtin));
      }
      expect(entries.some((e) => ["Cut", "Copy", "Delete"].includes(e)), entries.join(" | ")).toBe(true);
      await wb.explorerItem("model.onnx").click({ button: "right" });
      await wb.screenshot("00-npm-start");
      await page.keyboard.press("Escape");
    } finally {
      await browser.close();
    }

    // Ctrl-C: the process exits and code-server's port closes.
    const exited = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
    process.kill(child.pid!, "SIGINT");
    const code = await Promise.race([exited, new Promise<"hung">((r) => setTimeout(() => r("hung"), 15_000))]);
    expect(code, out.join("")).not.toBe("hung");
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  }, 240_000);
});
