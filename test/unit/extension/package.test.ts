import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../helpers/paths";

// What `npm run package` puts in the VSIX (vsce ls with the same ignore file, offline): the
// bundles, the native addon, onnxruntime for this platform only; no sources, maps or other deps.
describe("VSIX contents", () => {
  it("carries what runs and nothing else", () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, "scripts/package.mjs"), "--list", "--target", "linux-x64"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const files = r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
    for (const f of [
      "package.json",
      "README.md",
      "media/quantlens.svg",
      "dist/extension.js",
      "dist/cli.js",
      "dist/ort-worker.cjs",
      "dist/webview/main.js",
      "native-kernels/build/Release/quantlens_kernels.node",
      "node_modules/onnxruntime-node/dist/index.js",
      "node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node",
      "node_modules/onnxruntime-common/dist/cjs/index.js",
    ]) {
      expect(files, f).toContain(f);
    }
    const bad = files.filter(
      (f) =>
        f.endsWith(".map") ||
        f.endsWith(".ts") ||
        /^(extension|webview|test|scripts)\//.test(f) ||
        /^native-kernels\/(core|binding|cuda)\//.test(f) ||
        /obj\.target|\.deps\//.test(f) ||
        /onnxruntime-node\/bin\/napi-v6\/(?!linux\/x64\/)/.test(f) ||
        (f.startsWith("node_modules/") && !/^node_modules\/onnxruntime-(node|common)\//.test(f)),
    );
    expect(bad).toEqual([]);
  }, 120_000);
});
