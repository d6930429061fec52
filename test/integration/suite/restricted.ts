// Cases for an untrusted workspace (Restricted Mode) holding a copy of the demo model: the
// extension loads, its commands exist, and none of them runs the model or native code.
import assert from "node:assert/strict";
import * as vscode from "vscode";
import { test } from "./harness";
import { extension, listDir, modelPath, modelRuntimeLoaded, sha256, sleep, within } from "./util";

let original: string[] = [];

test("the workspace is in Restricted Mode", () => {
  assert.equal(vscode.workspace.isTrusted, false, "expected an untrusted workspace");
  original = listDir();
  assert.ok(original.includes("model.onnx"));
});

test("extension activates in Restricted Mode and registers its commands", async () => {
  const ext = extension();
  await within(60_000, "activation", ext.activate());
  assert.equal(ext.isActive, true);
  const declared = (ext.packageJSON as { contributes: { commands: { command: string }[] } }).contributes.commands.map((c) => c.command);
  const registered = new Set(await vscode.commands.getCommands(true));
  assert.deepEqual(
    declared.filter((c) => !registered.has(c)),
    [],
  );
});

test("Quantize, Quantize… and Inspect Model refuse to run the model", async () => {
  const hash = sha256(modelPath());
  const uri = vscode.Uri.file(modelPath());
  const r1 = await within(60_000, "quantlens.quantize", vscode.commands.executeCommand("quantlens.quantize", uri));
  assert.equal(r1, undefined, "Quantize returned a result in Restricted Mode");
  const r2 = await within(60_000, "quantlens.quantizeWith", vscode.commands.executeCommand("quantlens.quantizeWith", uri, { recipe: { method: "rtn", bits: 4, group: 32, format: "matmulnbits" }, calibrationFile: null }));
  assert.equal(r2, undefined, "Quantize… returned a result in Restricted Mode");
  await within(60_000, "quantlens.inspectModel", vscode.commands.executeCommand("quantlens.inspectModel", uri));
  await sleep(1000);
  assert.deepEqual(listDir(), original, "files were written in Restricted Mode");
  assert.equal(sha256(modelPath()), hash);
  // The decisive check: neither onnxruntime nor QuantLens' kernels were loaded into the host.
  assert.deepEqual(modelRuntimeLoaded(), [], "native model code was loaded in Restricted Mode");
});
