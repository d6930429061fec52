// The extension-host suite in an untrusted workspace (Restricted Mode): Workspace Trust stays on
// and the test folder was never trusted (test/integration/suite/restricted.ts).
import { beforeAll, describe, expect, test } from "vitest";
import { runHostSuite, type HostRun } from "./host-runner";

const EXPECTED = [
  "the workspace is in Restricted Mode",
  "extension activates in Restricted Mode and registers its commands",
  "Quantize, Quantize… and Inspect Model refuse to run the model",
];

describe("extension host, Restricted Mode", () => {
  let run: HostRun;
  beforeAll(async () => {
    run = await runHostSuite({ suite: "restricted", trust: false, timeoutMs: 300_000 });
    process.stderr.write(`[integration] restricted suite: ${run.seconds.toFixed(1)} s, exit ${run.exitCode}; logs in ${run.outDir}\n`);
  }, 360_000);

  test("code-server ran the suite and the host exited", () => {
    expect(run.error, run.log.slice(-4000)).toBeNull();
    expect(run.results.map((r) => r.name)).toEqual(EXPECTED);
    expect(run.exitCode).toBe(run.results.every((r) => r.ok) ? 0 : 1);
  });

  for (const name of EXPECTED) {
    test(name, () => {
      const r = run.results.find((x) => x.name === name);
      expect(r, `the case did not run (${run.error ?? "no error"})`).toBeDefined();
      expect(r!.ok, r!.error).toBe(true);
    });
  }
});
