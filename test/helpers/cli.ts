import path from "node:path";
import { spawnSync } from "node:child_process";
import { ROOT } from "./paths";

export const CLI = path.join(ROOT, "dist/cli.js");

/** Run the bundled CLI (what users run) and capture its exit code and output. */
export function quantlens(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { ...process.env, ORT_DISABLE_TELEMETRY: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Build dist/ once per test file (esbuild, ~0.3 s). */
export function buildCli(): void {
  const r = spawnSync(process.execPath, [path.join(ROOT, "scripts/build.mjs"), "--quiet"], { cwd: ROOT, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`build failed: ${r.stderr}`);
}
