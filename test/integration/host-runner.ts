// Runs one extension-host suite (test/integration/suite/) inside the real VS Code: a pinned
// code-server started with the smoke-test driver, a workbench opened in Debian's Chromium with
// the test payload (extensionDevelopmentPath = this checkout, extensionTestsPath = the bundled
// suite), the exit code from `codeAutomationExit`, the cases' results from a JSON file.
// Never throws: infrastructure failures come back in `error`. Always tears everything down.
import { beforeAll, describe, expect, test } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { launchBrowser, prepareDemoWorkspace, remoteAuthority, ROOT, startCodeServer, workbenchUrl, type CodeServer } from "../../scripts/vscode-env.mjs";
import { SUITE_BUNDLE } from "./build-suite";

export interface CaseResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

export interface HostRun {
  suite: string;
  exitCode: number | null;
  results: CaseResult[];
  error: string | null;
  seconds: number;
  outDir: string;
  log: string;
}

export const OUTPUT = path.join(ROOT, "test-output");
/** code-server's folders and browser profiles: under .cache (ignored by git and eslint), not test-output. */
export const RUNS = path.join(ROOT, ".cache", "vscode-runs");

export async function runHostSuite(o: { suite: "trusted" | "restricted"; trust: boolean; settings?: Record<string, unknown>; timeoutMs: number }): Promise<HostRun> {
  const t0 = Date.now();
  const outDir = path.join(OUTPUT, "integration", o.suite);
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  const runDir = path.join(RUNS, `integration-${o.suite}`);
  fs.rmSync(runDir, { recursive: true, force: true });
  const workspace = prepareDemoWorkspace(path.join(outDir, "workspace"), o.settings);
  const resultsFile = path.join(outDir, "results.json");
  const logLines: string[] = [];
  const log = (l: string) => logLines.push(l);
  let cs: CodeServer | undefined;
  let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
  let exitCode: number | null = null;
  let error: string | null = null;
  let timer: NodeJS.Timeout | undefined;
  try {
    if (!fs.existsSync(SUITE_BUNDLE)) throw new Error(`${SUITE_BUNDLE} is missing (globalSetup builds it)`);
    if (!fs.existsSync(path.join(ROOT, "dist", "extension.js"))) throw new Error("dist/extension.js is missing: run npm run build first");
    cs = await startCodeServer({
      dir: path.join(runDir, "code-server"),
      trust: o.trust,
      args: ["--vscode-option", "enable-smoke-test-driver"],
      env: { QUANTLENS_SUITE: o.suite, QUANTLENS_TEST_RESULTS: resultsFile },
    });
    const auth = await remoteAuthority(cs.url);
    const payload: [string, string][] = [
      ["extensionDevelopmentPath", `vscode-remote://${auth}${ROOT}`],
      ["extensionTestsPath", `vscode-remote://${auth}${SUITE_BUNDLE}`],
    ];
    browser = await launchBrowser(path.join(runDir, "chromium-profile"));
    const page = browser.pages()[0] ?? (await browser.newPage());
    page.on("console", (m) => {
      if (m.type() === "error") log(`[browser] ${m.text()}`);
    });
    const exited = new Promise<number>((resolve) => {
      void page.exposeFunction("codeAutomationExit", (code: number) => resolve(code));
    });
    await page.exposeFunction("codeAutomationLog", (_level: string, args: unknown[]) => {
      log(Array.isArray(args) ? args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ") : String(args));
    });
    await page.goto(workbenchUrl(cs.url, workspace, payload));
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the extension-host suite '${o.suite}' did not finish within ${o.timeoutMs / 1000} s`)), o.timeoutMs);
    });
    try {
      exitCode = await Promise.race([exited, timeout]);
    } catch (e) {
      await page.screenshot({ path: path.join(outDir, "timeout.png") }).catch(() => undefined);
      throw e;
    }
  } catch (e) {
    error = (e as Error).stack ?? String(e);
  } finally {
    clearTimeout(timer);
    await browser?.close().catch(() => undefined);
    await cs?.stop();
    if (cs) fs.writeFileSync(path.join(outDir, "code-server.log"), cs.logs());
    fs.writeFileSync(path.join(outDir, "host.log"), logLines.join("\n"));
  }
  let results: CaseResult[] = [];
  if (fs.existsSync(resultsFile)) {
    results = (JSON.parse(fs.readFileSync(resultsFile, "utf8")) as { results: CaseResult[] }).results;
  } else if (!error) {
    error = `the suite wrote no results (exit code ${exitCode}); host log:\n${logLines.slice(-60).join("\n")}`;
  }
  return { suite: o.suite, exitCode, results, error, seconds: (Date.now() - t0) / 1000, outDir, log: logLines.join("\n") };
}

/**
 * One vitest case per in-host case: runs `options.suite` once in code-server (beforeAll), then
 * checks that the host ran exactly `expected` (in order) and that each passed.
 */
export function defineHostSuite(title: string, expected: string[], options: Parameters<typeof runHostSuite>[0]): void {
  describe(title, () => {
    let run: HostRun;
    beforeAll(async () => {
      run = await runHostSuite(options);
      process.stderr.write(`[integration] ${options.suite} suite: ${run.seconds.toFixed(1)} s, exit ${run.exitCode}; logs in ${run.outDir}\n`);
    }, options.timeoutMs + 60_000);

    test("code-server ran the suite and the host exited", () => {
      expect(run.error, run.log.slice(-4000)).toBeNull();
      expect(run.results.map((r) => r.name)).toEqual(expected);
      expect(run.exitCode).toBe(run.results.every((r) => r.ok) ? 0 : 1);
    });

    for (const name of expected) {
      test(name, () => {
        const r = run.results.find((x) => x.name === name);
        expect(r, `the case did not run (${run.error ?? "no error"})`).toBeDefined();
        expect(r!.ok, r!.error).toBe(true);
      });
    }
  });
}
