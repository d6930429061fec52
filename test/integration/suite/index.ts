// Entry point VS Code's extension host loads from `extensionTestsPath` (bundled to CommonJS by
// test/integration/build-suite.ts). The suite comes from QUANTLENS_SUITE; results go to the JSON
// file QUANTLENS_TEST_RESULTS (read by test/integration/host.test.ts) and to the host's log.
import fs from "node:fs";
import { registered, runAll } from "./harness";

export async function run(): Promise<void> {
  const suite = process.env.QUANTLENS_SUITE ?? "trusted";
  const resultsFile = process.env.QUANTLENS_TEST_RESULTS;
  // Registration happens on import; only one suite per host.
  if (suite === "trusted") await import("./trusted");
  else if (suite === "restricted") await import("./restricted");
  else throw new Error(`unknown QUANTLENS_SUITE ${suite}`);
  const log = (line: string) => console.log(`[quantlens-tests] ${line}`);
  log(`${suite}: ${registered().length} cases`);
  const results = await runAll(log);
  const failed = results.filter((r) => !r.ok);
  if (resultsFile) fs.writeFileSync(resultsFile, JSON.stringify({ suite, results }, null, 2));
  log(`${suite}: ${results.length - failed.length} passed, ${failed.length} failed`);
  if (failed.length) throw new Error(`${failed.length} of ${results.length} failed: ${failed.map((f) => f.name).join("; ")}`);
}
