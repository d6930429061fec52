import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../helpers/paths";

// The manifest and the code must agree: a command in a menu that nothing registers, or one
// registered but not declared, is a dead click. (Importing the glue needs VS Code, so the ids are
// read from the sources; the extension-host tests check the live registry.)
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
const c = manifest.contributes;

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : []));
}
const code = sources(path.join(ROOT, "extension/src")).map((f) => fs.readFileSync(f, "utf8")).join("\n");
const registered = [...code.matchAll(/registerCommand\(\s*"(quantlens\.[\w.]+)"/g)].map((m) => m[1]).sort();

describe("package.json contributes", () => {
  it("declares exactly the commands the extension registers", () => {
    const declared = c.commands.map((x: { command: string }) => x.command).sort();
    expect(declared).toEqual(registered);
    for (const id of ["quantlens.quantize", "quantlens.quantizeWith", "quantlens.inspectModel", "quantlens.compareWith", "quantlens.analyze", "quantlens.openReport"]) expect(declared).toContain(id);
  });

  it("menus name declared commands; the explorer menu is limited to .onnx (and reports)", () => {
    const declared = new Set(c.commands.map((x: { command: string }) => x.command));
    for (const [where, items] of Object.entries(c.menus) as [string, { command: string; when?: string }[]][]) {
      for (const item of items) expect(declared.has(item.command), `${where}: ${item.command}`).toBe(true);
    }
    const explorer = c.menus["explorer/context"] as { command: string; when: string }[];
    expect(explorer.map((x) => x.command)).toEqual(expect.arrayContaining(["quantlens.quantize", "quantlens.quantizeWith", "quantlens.inspectModel", "quantlens.compareWith", "quantlens.analyze"]));
    for (const item of explorer) expect(item.when).toMatch(/resourceExtname == \.onnx/);
  });

  it("custom editor, view container and tree view match the ids the code uses", () => {
    expect(c.customEditors).toEqual([expect.objectContaining({ viewType: "quantlens.modelInspector", priority: "option", selector: [{ filenamePattern: "*.onnx" }] })]);
    expect(code).toContain('INSPECTOR_VIEW_TYPE = "quantlens.modelInspector"');
    expect(c.viewsContainers.activitybar[0]).toMatchObject({ id: "quantlens", icon: "media/quantlens.svg" });
    expect(fs.existsSync(path.join(ROOT, "media/quantlens.svg"))).toBe(true);
    expect(c.views.quantlens.map((v: { id: string }) => v.id)).toEqual(["quantlens.models"]);
    expect(code).toContain('VIEW_ID = "quantlens.models"');
  });

  it("runs where the model is, activates on contributions only, and is limited in Restricted Mode", () => {
    expect(manifest.extensionKind).toEqual(["workspace"]);
    expect(manifest.activationEvents).toEqual([]);
    expect(manifest.capabilities.untrustedWorkspaces.supported).toBe("limited");
    expect(manifest.capabilities.untrustedWorkspaces.description).toMatch(/trusted/);
    // Every command that runs a model checks trust first.
    for (const file of ["quantize.ts", "analyze.ts"]) {
      const src = fs.readFileSync(path.join(ROOT, "extension/src/commands", file), "utf8");
      expect(src, file).toMatch(/requireTrust\(/);
    }
  });
});
