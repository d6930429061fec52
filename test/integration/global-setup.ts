// Before the extension-host layer: code-server + Chromium installed (cached in .cache/vscode),
// the in-host suite bundled. `npm test` has built dist/ already.
import { ensureAll } from "../../scripts/vscode-env.mjs";
import { buildSuite } from "./build-suite";

export default async function setup(): Promise<void> {
  const t0 = Date.now();
  const env = ensureAll();
  await buildSuite();
  process.stderr.write(`[integration] code-server/Chromium ready in ${env.seconds.toFixed(1)} s${env.cached ? " (cached)" : ""}; setup ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}
