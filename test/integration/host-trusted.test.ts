// The extension-host suite in a trusted workspace (test/integration/suite/trusted.ts), run in
// the real VS Code server's extension host; one vitest case per in-host case.
import { beforeAll, describe, expect, test } from "vitest";
import { runHostSuite, type HostRun } from "./host-runner";

const EXPECTED = [
  "workspace holds the demo model and is trusted",
  "extension activates",
  "every command in package.json is registered",
  "Quantize (one click, GPTQ W4 g32 preset) writes a valid model and report next to the model",
  "cancelling Quantize from its progress notification leaves no files",
  "settings are honoured: method, bits, group, format and samples",
  "Inspect Model opens the model inspector",
];

describe("extension host, trusted workspace", () => {
  let run: HostRun;
  beforeAll(async () => {
    run = await runHostSuite({
      suite: "trusted",
      trust: true,
      settings: { "quantlens.method": "gptq", "quantlens.bits": 4, "quantlens.group": 32, "quantlens.format": "matmulnbits", "quantlens.samples": 16 },
      timeoutMs: 780_000,
    });
    process.stderr.write(`[integration] trusted suite: ${run.seconds.toFixed(1)} s, exit ${run.exitCode}; logs in ${run.outDir}\n`);
  }, 840_000);

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
