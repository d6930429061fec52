/**
 * native-kernels/core on its own, compiled with the system C++ compiler (no N-API):
 *   - the portable build (-DQL_NO_X86_SIMD: what arm64 compiles) must build warning-free;
 *   - QUANTLENS_EXHAUSTIVE=1: every fp32 pattern (2^32) through fp32 -> fp16/bf16 on the SIMD
 *     path equals the scalar path bit for bit (cpp/convert_exhaustive.cpp, ~15 s on 2 cores).
 * Skipped where no `g++` is on PATH (the addon build itself needs one, so CI has it).
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, tempDir } from "../helpers/paths";

const CXX = process.env.CXX ?? "g++";
const hasCompiler = spawnSync(CXX, ["--version"], { stdio: "ignore" }).status === 0;
const CORE = path.join(ROOT, "native-kernels/core");
const coreSources = () => fs.readdirSync(CORE).filter((f) => f.endsWith(".cpp")).map((f) => path.join(CORE, f));
const FLAGS = ["-std=c++17", "-O2", "-pthread", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror"];

describe.skipIf(!hasCompiler)("native-kernels/core built standalone", () => {
  it("builds without x86 SIMD (the portable path arm64 gets)", () => {
    const { dir, cleanup } = tempDir();
    try {
      execFileSync(CXX, [...FLAGS, "-DQL_NO_X86_SIMD", "-c", ...coreSources()], { cwd: dir, stdio: "pipe" });
      const objects = fs.readdirSync(dir).filter((f) => f.endsWith(".o"));
      expect(objects.length).toBe(coreSources().length);
    } finally {
      cleanup();
    }
  });

  it.skipIf(process.env.QUANTLENS_EXHAUSTIVE !== "1")(
    "SIMD conversions equal scalar over all 2^32 fp32 inputs",
    () => {
      const { dir, cleanup } = tempDir();
      try {
        const exe = path.join(dir, "convert_exhaustive");
        execFileSync(CXX, [...FLAGS, path.join(ROOT, "test/native/cpp/convert_exhaustive.cpp"), ...coreSources(), "-o", exe], {
          stdio: "pipe",
        });
        const out = execFileSync(exe, { encoding: "utf8" });
        expect(out).not.toMatch(/FAIL/);
        expect(out.match(/^ok /gm)).toHaveLength(4);
      } finally {
        cleanup();
      }
    },
    300_000,
  );
});
