// One esbuild script, one entry per target: the extension host, the CLI and the webviews.
import * as esbuild from "esbuild";
import fs from "node:fs";

const watch = process.argv.includes("--watch");
const production = process.argv.includes("--production");
const quiet = process.argv.includes("--quiet");
const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));

/** Node targets: the extension host (loaded by VS Code) and the CLI (`quantlens`). */
const nodeCommon = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  sourcemap: true,
  minify: production,
  // vscode is provided by the host; onnxruntime-node ships native binaries and must stay a
  // real module on disk; the addon is loaded by path at run time.
  external: ["vscode", "onnxruntime-node"],
  logLevel: quiet ? "warning" : "info",
  define: { __QUANTLENS_VERSION__: JSON.stringify(pkg.version) },
};

const targets = [
  { ...nodeCommon, entryPoints: { extension: "extension/src/extension.ts" }, outdir: "dist" },
  {
    ...nodeCommon,
    entryPoints: { cli: "extension/src/cli/main.ts" },
    outdir: "dist",
    banner: { js: "#!/usr/bin/env node" },
  },
];

if (fs.existsSync("webview/src/main.ts")) {
  targets.push({
    bundle: true,
    platform: "browser",
    target: "es2022",
    format: "iife",
    sourcemap: true,
    minify: production,
    // dist/webview/main.js and, from the CSS main.ts imports, dist/webview/main.css (the paths
    // the HTML shell loads: extension/src/protocol/index.ts).
    entryPoints: { "webview/main": "webview/src/main.ts" },
    outdir: "dist",
    logLevel: quiet ? "warning" : "info",
  });
}

// The onnxruntime worker thread's script (plain JavaScript, loaded by path next to the bundles).
fs.mkdirSync("dist", { recursive: true });
fs.copyFileSync("extension/src/engine/calib/ort-worker.cjs", "dist/ort-worker.cjs");

if (watch) {
  for (const t of targets) (await esbuild.context(t)).watch();
} else {
  await Promise.all(targets.map((t) => esbuild.build(t)));
  fs.chmodSync("dist/cli.js", 0o755);
}
