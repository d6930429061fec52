/**
 * The addon loads from an esbuild bundle the way dist/extension.js and dist/cli.js are built
 * (scripts/build.mjs: cjs, platform node): esbuild must leave the .node file alone, and the
 * bundle must find it by searching upward from its own folder.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import * as esbuild from "esbuild";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/paths";
import { NATIVE_DISABLED, requireNative } from "./helpers";

requireNative();

describe.skipIf(NATIVE_DISABLED)("native addon from an esbuild bundle", () => {
  it("is found and used by a bundled kernels/index.ts", async () => {
    // Inside the ignored build folder, two levels below the repository root like dist/ is one.
    const dir = path.join(ROOT, "native-kernels/build/bundle-test/dist");
    fs.mkdirSync(dir, { recursive: true });
    const entry = path.join(dir, "entry.ts");
    const index = path.join(ROOT, "extension/src/engine/kernels/index.ts");
    fs.writeFileSync(
      entry,
      `import { kernelBackend, momentsSync, f32ToF16 } from ${JSON.stringify(index)};\n` +
        `const m = momentsSync(new Float32Array([1, 2, 3, 4]));\n` +
        `console.log(JSON.stringify({ backend: kernelBackend(), mean: m.mean, half: Array.from(f32ToF16(new Float32Array([1, 65520]))) }));\n`,
    );
    const outfile = path.join(dir, "bundle.js");
    await esbuild.build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: "node",
      target: "node20",
      format: "cjs",
      logLevel: "silent",
    });
    expect(fs.readFileSync(outfile, "utf8")).not.toContain("\x7fELF");
    const env = { ...process.env };
    delete env.QUANTLENS_NATIVE_PATH;
    delete env.QUANTLENS_NATIVE;
    const out = JSON.parse(execFileSync(process.execPath, [outfile], { encoding: "utf8", env }));
    expect(out.backend.native).toBe(true);
    expect(out.backend.path).toBe(path.join(ROOT, "native-kernels/build/Release/quantlens_kernels.node"));
    expect(out.mean).toBe(2.5);
    expect(out.half).toEqual([0x3c00, 0x7c00]);
  });
});
