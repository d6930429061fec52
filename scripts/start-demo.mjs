// `npm start`: QuantLens in a real VS Code on the bundled demo model.
//
// Installs what it needs (a pinned code-server on its own Node, cached in .cache/vscode — see
// scripts/vscode-env.mjs), builds the bundles, packages the extension (`npm run package`, when the
// project has packaging; else this checkout is linked in as an extension folder), prepares a demo
// workspace with a copy of the demo model, its tokenizer and calibration text in
// .cache/quantlens-demo/stories260K (kept between runs: your quantized models stay; --fresh
// starts over), and serves VS Code on 127.0.0.1 until Ctrl-C.
//
//   npm start                      # http://127.0.0.1:8642/
//   npm start -- --port 9000 --fresh
//   npm start -- --no-package      # link this checkout instead of installing the VSIX
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import process from "node:process";
import {
  CODE_SERVER_VERSION,
  ensureCodeServer,
  freePort,
  installExtension,
  packageVsix,
  prepareDemoWorkspace,
  ROOT,
  startCodeServer,
  workbenchUrl,
} from "./vscode-env.mjs";

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
if (flag("--help") || flag("-h")) {
  console.log("npm start [-- --port N] [--fresh] [--no-build] [--no-package] [--vsix FILE] [--exit-after-start]");
  process.exit(0);
}

const say = (m) => console.log(`quantlens: ${m}`);
// QUANTLENS_DEMO_DIR: another place for the demo (the tests use it to leave yours alone).
const DEMO = process.env.QUANTLENS_DEMO_DIR ? path.resolve(process.env.QUANTLENS_DEMO_DIR) : path.join(ROOT, ".cache", "quantlens-demo");
const WORKSPACE = path.join(DEMO, "stories260K");

async function main() {
  // 1. code-server (first run: ~2–4 min, then cached)
  const cs = ensureCodeServer();
  say(`code-server ${CODE_SERVER_VERSION} ${cs.cached ? "(cached)" : `installed in ${cs.seconds.toFixed(0)} s`}`);

  // 2. build the extension bundles (the native addon comes from `npm run build`; without it the
  //    extension uses its TypeScript kernels). `npm run package` builds them itself.
  const build = () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, "scripts", "build.mjs"), "--quiet"], { cwd: ROOT, stdio: "inherit" });
    if (r.status !== 0) throw new Error("building the extension failed (node scripts/build.mjs)");
  };
  let packaging = !flag("--no-package") && !option("--vsix") && Boolean(JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).scripts?.package);
  if (!flag("--no-build") && !packaging) build();
  if (!fs.existsSync(path.join(ROOT, "native-kernels", "build", "Release", "quantlens_kernels.node"))) {
    say("note: the native kernels are not built (npm run build builds them); QuantLens will use its slower TypeScript kernels");
  }

  // 3. the extension: the VSIX a user would install, or this checkout
  const userData = path.join(DEMO, "code-server", "user-data");
  const extensions = path.join(DEMO, "code-server", "extensions");
  let vsix = option("--vsix") ?? null;
  if (packaging) {
    try {
      vsix = packageVsix();
    } catch (e) {
      // e.g. no C++ toolchain, so no native addon to pack: run this checkout instead.
      say(`packaging failed (${e.message}); loading the extension from this checkout instead`);
      packaging = false;
      if (!flag("--no-build")) build();
    }
  }
  fs.rmSync(extensions, { recursive: true, force: true });
  const how = installExtension(extensions, userData, vsix);
  say(how === "vsix" ? `installed ${path.relative(ROOT, vsix)}` : `extension loaded from this checkout (${ROOT})`);

  // 4. the demo workspace (a copy: the checkout's fixture is never touched)
  if (flag("--fresh") || !fs.existsSync(path.join(WORKSPACE, "model.onnx"))) {
    prepareDemoWorkspace(WORKSPACE);
    say(`demo workspace ${WORKSPACE}: model.onnx, tokenizer.json, calib.jsonl (stories260K)`);
  } else {
    say(`reusing the demo workspace ${WORKSPACE} (npm start -- --fresh resets it)`);
  }

  // 5. serve on 127.0.0.1
  let port = Number(option("--port") ?? process.env.PORT ?? 8642);
  if (!(await portFree(port))) {
    const other = await freePort();
    say(`port ${port} is taken; using ${other}`);
    port = other;
  }
  const server = await startCodeServer({
    dir: path.join(DEMO, "code-server"),
    extensionsDir: extensions,
    folder: WORKSPACE,
    port,
    settings: {
      "workbench.colorTheme": "Default Dark Modern",
      "explorer.autoReveal": true,
    },
  });
  const url = workbenchUrl(server.url, WORKSPACE);
  console.log("");
  console.log(`  QuantLens is running in VS Code at  ${server.url}/`);
  console.log(`  (opens ${WORKSPACE}; right-click model.onnx → Quantize)`);
  console.log(`  direct link: ${url}`);
  console.log("  Ctrl-C stops it.");
  console.log("");

  if (flag("--exit-after-start")) {
    await server.stop();
    return;
  }
  // Ctrl-C / SIGTERM: scripts/vscode-env.mjs stops code-server's whole process group and exits.
  server.child.on("exit", (code, signal) => {
    say(`code-server stopped (${signal ?? code}); its log: ${path.join(DEMO, "code-server.log")}`);
    fs.writeFileSync(path.join(DEMO, "code-server.log"), server.logs());
    process.exit(code ?? 1);
  });
}

async function portFree(port) {
  const net = await import("node:net");
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

main().catch((e) => {
  console.error(`quantlens: npm start failed: ${e.message}`);
  process.exit(1);
});
