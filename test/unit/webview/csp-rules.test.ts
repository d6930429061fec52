import fs from "node:fs";
import path from "node:path";
import * as esbuild from "esbuild";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../helpers/paths";

// The webview runs under `default-src 'none'; script-src 'nonce-…'; style-src … 'nonce-…'`:
// no eval, no inline style attributes, no HTML strings. These checks keep it that way.
const SRC = path.join(ROOT, "webview", "src");

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

describe("webview sources under a strict CSP", () => {
  const files = sources(SRC);

  it("imports d3 only through src/d3.ts, per module, and never d3-dsv", () => {
    for (const f of files) {
      const code = fs.readFileSync(f, "utf8");
      const d3Imports = [...code.matchAll(/from\s+"(d3[^"]*)"/g)].map((m) => m[1]);
      if (path.basename(f) === "d3.ts") {
        expect(d3Imports.length).toBeGreaterThan(0);
        expect(d3Imports).not.toContain("d3");
        expect(d3Imports).not.toContain("d3-dsv");
      } else expect(d3Imports, path.relative(ROOT, f)).toEqual([]);
    }
  });

  it("builds no markup from strings and sets no style attributes", () => {
    for (const f of files) {
      const code = fs.readFileSync(f, "utf8");
      const rel = path.relative(ROOT, f);
      expect(code, rel).not.toMatch(/\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML|document\.write/);
      expect(code, rel).not.toMatch(/setAttribute\(\s*["']style["']|\.attr\(\s*["']style["']|["']style["']\s*:/);
      expect(code, rel).not.toMatch(/\beval\s*\(|new Function\s*\(/);
    }
  });

  it("bundles to code without eval or new Function", async () => {
    const out = await esbuild.build({
      entryPoints: [path.join(SRC, "main.ts")],
      bundle: true,
      write: false,
      format: "iife",
      platform: "browser",
      outdir: "/tmp/quantlens-webview-csp-check",
      logLevel: "silent",
    });
    const js = out.outputFiles.find((f) => f.path.endsWith(".js"))!.text;
    expect(js.length).toBeGreaterThan(10_000);
    expect(js).not.toMatch(/new Function\s*\(/);
    expect(js).not.toMatch(/[^.\w]eval\s*\(/);
    // VS Code Elements are in (the tabs and table register their tags).
    expect(js).toContain("vscode-tabs");
    expect(js).toContain("vscode-table");
    const css = out.outputFiles.find((f) => f.path.endsWith(".css"))!.text;
    // Theme colours from VS Code variables, not hard-coded hex colours.
    expect(css).toMatch(/var\(--vscode-foreground\)/);
    expect(css).not.toMatch(/#[0-9a-fA-F]{3,8}\b/);
  });
});
