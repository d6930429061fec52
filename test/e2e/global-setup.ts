// Before the browser layer: code-server + Chromium (cached in .cache/vscode) and the VSIX
// (`npm run package`, when the project has it: the tests then install the package a user gets).
// QUANTLENS_E2E_VSIX=folder skips packaging and loads this checkout as an extension folder.
import type { TestProject } from "vitest/node";
import { ensureAll, packageVsix } from "../../scripts/vscode-env.mjs";

declare module "vitest" {
  export interface ProvidedContext {
    vsix: string | null;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const t0 = Date.now();
  const env = ensureAll();
  const wanted = process.env.QUANTLENS_E2E_VSIX;
  const vsix = wanted === "folder" ? null : wanted || packageVsix();
  project.provide("vsix", vsix);
  process.stderr.write(`[e2e] code-server/Chromium ready in ${env.seconds.toFixed(1)} s${env.cached ? " (cached)" : ""}; setup ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}
