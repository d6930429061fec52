import path from "node:path";
import { describe, expect, it } from "vitest";
import { ESLint } from "eslint";
import { ROOT } from "../helpers/paths";

// The doors between the rooms (STYLE.md §1) are enforced by eslint.config.mjs; these checks make
// sure the rule fires where it must and stays quiet where it must not.
const eslint = new ESLint({ cwd: ROOT });

async function messages(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return result.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

describe("lint rule: the rooms' doors", () => {
  it("forbids a vscode value import in the engine, allows a type import", async () => {
    const bad = await messages("extension/src/engine/onnx/x.ts", 'import * as vscode from "vscode";\nexport const w = vscode.window;\n');
    expect(bad.join("\n")).toMatch(/no-restricted-imports: .*must not import `vscode`/);
    const ok = await messages("extension/src/engine/onnx/x.ts", 'import type { Uri } from "vscode";\nexport type U = Uri;\n');
    expect(ok).toEqual([]);
  });

  it("forbids vscode and the engine in webviews", async () => {
    const vs = await messages("webview/src/panel.ts", 'import { window } from "vscode";\nexport const w = window;\n');
    expect(vs.join("\n")).toMatch(/must not import `vscode`/);
    const engine = await messages(
      "webview/src/panel.ts",
      'import { inspectModel } from "../../extension/src/engine/inspect";\nexport const f = inspectModel;\n',
    );
    expect(engine.join("\n")).toMatch(/through extension\/src\/protocol only/);
  });

  it("lets the extension glue import vscode", async () => {
    const ok = await messages("extension/src/commands/x.ts", 'import * as vscode from "vscode";\nexport const w = vscode.window;\n');
    expect(ok).toEqual([]);
  });
});
