// Bundles the extension-host test suite (test/integration/suite/) into one CommonJS file that
// VS Code loads from `extensionTestsPath`. `vscode` comes from the host; onnxruntime-node stays a
// real module (resolved from the checkout's node_modules).
import path from "node:path";
import * as esbuild from "esbuild";
import { ROOT } from "../../scripts/vscode-env.mjs";

// Under .cache/ (ignored by git and eslint).
export const SUITE_BUNDLE = path.join(ROOT, ".cache", "vscode-tests", "suite.js");

export async function buildSuite(): Promise<string> {
  await esbuild.build({
    entryPoints: [path.join(ROOT, "test", "integration", "suite", "index.ts")],
    outfile: SUITE_BUNDLE,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    sourcemap: "inline",
    external: ["vscode", "onnxruntime-node"],
    logLevel: "warning",
    define: { __QUANTLENS_VERSION__: JSON.stringify("test") },
  });
  return SUITE_BUNDLE;
}
