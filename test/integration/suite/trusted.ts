// Cases for a trusted workspace holding a copy of the demo model (stories260K: model.onnx,
// tokenizer.json, calib.jsonl). Workspace settings (.vscode/settings.json, written by the
// runner) pick a fast preset: GPTQ W4 g32 on 16 calibration documents.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import { evaluate } from "../../../extension/src/engine/eval/eval";
import { validateReport } from "../../../extension/src/engine/report/validate";
import type { QuantLensReport } from "../../../extension/src/engine/report/schema";
import { test } from "./harness";
import { extension, listDir, modelPath, modelRuntimeLoaded, removeExcept, sha256, sleep, waitFor, within, withSettings, workspaceDir } from "./util";

interface QuantizeResult {
  output: string;
  report: string;
  layers: number;
  kept: number;
  seconds: number;
  proxyLoss: number | null;
  proxyLossRtn: number | null;
  notes: string[];
}

interface ReportLayer {
  name: string;
  role?: string;
  bits: number | null;
  group: number | null;
  method?: string;
}

/** The commands issue 7 promises (by id); each must be declared and registered. */
const PROMISED_COMMANDS = ["quantlens.quantize", "quantlens.quantizeWith", "quantlens.inspectModel", "quantlens.compareWith"];

let original: string[] = [];
let modelHash = "";

test("workspace holds the demo model and is trusted", () => {
  assert.equal(vscode.workspace.isTrusted, true, "the integration workspace should be trusted");
  original = listDir();
  for (const f of ["model.onnx", "tokenizer.json", "calib.jsonl"]) assert.ok(original.includes(f), `${f} missing from the test workspace: ${original.join(", ")}`);
  modelHash = sha256(modelPath());
});

test("extension activates", async () => {
  const ext = extension();
  await within(60_000, "activation", ext.activate());
  assert.equal(ext.isActive, true);
  const pkg = ext.packageJSON as { extensionKind?: string[]; capabilities?: { untrustedWorkspaces?: { supported?: unknown } } };
  assert.deepEqual(pkg.extensionKind, ["workspace"], "extensionKind must be [\"workspace\"] (the engine runs where the model is)");
  assert.equal(pkg.capabilities?.untrustedWorkspaces?.supported, "limited");
});

test("every command in package.json is registered", async () => {
  const pkg = extension().packageJSON as { contributes: { commands: { command: string }[]; menus?: Record<string, { command: string }[]> } };
  const declared = pkg.contributes.commands.map((c) => c.command);
  assert.ok(declared.length > 0, "package.json declares no commands");
  const registered = new Set(await vscode.commands.getCommands(true));
  const missing = declared.filter((c) => !registered.has(c));
  assert.deepEqual(missing, [], `declared in package.json but not registered: ${missing.join(", ")}`);
  // Menus may only name declared commands.
  for (const [menu, items] of Object.entries(pkg.contributes.menus ?? {})) {
    for (const item of items) if (item.command) assert.ok(declared.includes(item.command), `menu ${menu} names undeclared command ${item.command}`);
  }
  const notDeclared = PROMISED_COMMANDS.filter((c) => !declared.includes(c));
  assert.deepEqual(notDeclared, [], `commands the extension promises (issue 7) but package.json lacks: ${notDeclared.join(", ")}`);
  const explorer = (pkg.contributes.menus?.["explorer/context"] ?? []).map((m) => m.command);
  for (const c of ["quantlens.quantize", "quantlens.quantizeWith", "quantlens.inspectModel"]) {
    assert.ok(explorer.includes(c), `${c} is not in the explorer context menu`);
  }
});

/** The report beside a quantized model: a valid `quantlens-report` (engine/report/schema.ts). */
function readReportLayers(file: string): { layers: ReportLayer[]; raw: QuantLensReport } {
  const raw = validateReport(JSON.parse(fs.readFileSync(file, "utf8")), file);
  return { layers: raw.layers as ReportLayer[], raw };
}

async function quantize(uri: vscode.Uri, opts: Record<string, unknown> = {}): Promise<QuantizeResult | undefined> {
  return within(240_000, "quantlens.quantize", vscode.commands.executeCommand<QuantizeResult | undefined>("quantlens.quantize", uri, opts));
}

test(
  "Quantize (one click, GPTQ W4 g32 preset) writes a valid model and report next to the model",
  async () => {
    const uri = vscode.Uri.file(modelPath());
    const r = await quantize(uri);
    assert.ok(r, "quantlens.quantize returned nothing (no output written?)");
    assert.equal(path.dirname(r.output), workspaceDir(), "the output goes next to the model");
    assert.equal(path.basename(r.output), "model.gptq-w4g32.onnx");
    assert.ok(fs.existsSync(r.output), `${r.output} missing`);
    assert.ok(fs.existsSync(r.report), `${r.report} missing`);
    assert.equal(sha256(modelPath()), modelHash, "the input model was modified");
    const added = listDir().filter((n) => !original.includes(n));
    assert.deepEqual(added.sort(), [path.basename(r.output), path.basename(r.report)].sort(), "unexpected files written");

    // The report: one row per quantized layer at the preset's settings, proxy loss under RTN's,
    // and everything the report panels show (the one-click report shows every panel).
    const { layers, raw } = readReportLayers(r.report);
    for (const section of ["heatmap", "spectra", "sensitivity", "quantization"] as const) {
      assert.ok(raw.sections.includes(section), `the one-click report lacks '${section}' (sections: ${raw.sections.join(", ")})`);
    }
    assert.equal(raw.quantization!.output, r.output);
    assert.equal(raw.quantization!.layers.length, r.layers);
    for (const l of raw.quantization!.layers) assert.ok(l.bits === 4 && l.group === 32 && l.method === "gptq", `${l.name}: ${l.method} ${l.bits} g${l.group}`);
    assert.equal(raw.calibration?.sequences, 16, "quantlens.samples = 16 calibration documents");
    const quantized = layers.filter((l) => l.bits !== null && l.role !== "lm_head");
    assert.equal(quantized.length, r.layers, "report rows vs layers quantized");
    assert.equal(r.layers, 35, "stories260K has 35 linear layers besides lm_head");
    for (const l of quantized) {
      assert.equal(l.bits, 4, `${l.name}: bits`);
      assert.equal(l.group, 32, `${l.name}: group`);
    }
    assert.ok(r.proxyLoss !== null && r.proxyLossRtn !== null && r.proxyLoss < r.proxyLossRtn, `GPTQ proxy loss ${r.proxyLoss} not below RTN's ${r.proxyLossRtn}`);

    // The model: MatMulNBits for every quantized layer, and it runs close to the fp model.
    const fp = await OnnxModel.load(modelPath());
    const q = await OnnxModel.load(r.output);
    try {
      const nbits = q.graph.node.filter((n) => n.opType === "MatMulNBits");
      assert.equal(nbits.length, r.layers, "MatMulNBits nodes");
      for (const n of nbits) assert.equal(n.domain, "com.microsoft");
      const data = loadModelData(fp, path.join(workspaceDir(), "calib.jsonl"), { samples: 4, seqLen: 96, forEval: true });
      const ev = await evaluate(fp, q, data, { executionProvider: "cpu" });
      assert.ok(ev.tokens > 100, `evaluated only ${ev.tokens} tokens`);
      assert.ok(Number.isFinite(ev.ppl_quant) && ev.ppl_quant < ev.ppl_fp * 1.5, `perplexity fp ${ev.ppl_fp} vs quantized ${ev.ppl_quant}`);
      assert.ok(ev.top1 > 0.7, `top-1 agreement with the fp model only ${ev.top1}`);
      assert.ok(ev.kl_mean < 0.3, `mean KL to the fp model ${ev.kl_mean}`);
    } finally {
      fp.close();
      q.close();
    }
    assert.ok(modelRuntimeLoaded().length > 0, "onnxruntime/kernels should be loaded after quantizing (positive control for the Restricted Mode check)");

    // Again: the first output is kept, the second goes to a free name.
    const again = await quantize(uri, { ifExists: "keepBoth" });
    assert.ok(again);
    assert.equal(path.basename(again.output), "model.gptq-w4g32-2.onnx");
    assert.ok(fs.existsSync(r.output) && fs.existsSync(again.output));
    removeExcept(original);
  },
  300_000,
);

test(
  "cancelling Quantize from its progress notification leaves no files",
  async () => {
    removeExcept(original);
    await vscode.commands.executeCommand("notifications.clearAll");
    const before = listDir();
    // The 128 calibration documents 8 times over (outside the workspace): ~10 s of work, long
    // enough to be cancelled while it runs (the 128 alone now quantize in ~2.5 s).
    const big = path.join(path.dirname(workspaceDir()), `calib-x8-${process.pid}.jsonl`);
    const text = fs.readFileSync(path.join(path.dirname(modelPath()), "calib.jsonl"), "utf8").trimEnd() + "\n";
    fs.writeFileSync(big, text.repeat(8));
    try {
      const running = withSettings({ samples: 1024, calibrationFile: big }, () => quantize(vscode.Uri.file(modelPath())));
      let settled = false;
      void running.then(
        () => (settled = true),
        () => (settled = true),
      );
      // The progress notification's primary action is its Cancel button: press it like a user
      // would with the "Accept Notification Primary Action" keybinding, until the job stops.
      await sleep(1500);
      assert.equal(settled, false, "the quantization finished before it could be cancelled");
      let presses = 0;
      while (!settled) {
        await vscode.commands.executeCommand("notification.acceptPrimaryAction");
        presses++;
        await sleep(500);
        if (presses > 120) throw new Error("quantization did not stop within 60 s of cancelling");
      }
      const r = await running;
      assert.equal(r, undefined, `a cancelled quantization returned a result: ${JSON.stringify(r)}`);
      // Leftovers would appear right after the job stops; give a late writer a moment.
      await sleep(500);
      assert.deepEqual(listDir(), before, "files left behind after cancelling");
      assert.equal(sha256(modelPath()), modelHash);
    } finally {
      fs.rmSync(big, { force: true });
    }
  },
  240_000,
);

test(
  "settings are honoured: method, bits, group, format and samples",
  async () => {
    removeExcept(original);
    const r = await withSettings({ method: "rtn", bits: 8, group: 0, format: "qdq", samples: 5 }, () => quantize(vscode.Uri.file(modelPath())));
    assert.ok(r, "no result with the RTN W8 QDQ settings");
    assert.equal(path.basename(r.output), "model.rtn-w8-qdq.onnx");
    const { layers, raw } = readReportLayers(r.report);
    const quantized = layers.filter((l) => l.bits !== null && l.role !== "lm_head");
    assert.equal(quantized.length, 35);
    for (const l of quantized) {
      assert.equal(l.bits, 8, `${l.name}: bits`);
      assert.ok(l.group === 0 || l.group === null, `${l.name}: group ${l.group}, expected per-channel`);
    }
    // samples = 5: the calibration tokens are exactly those of the first 5 documents.
    const fp = await OnnxModel.load(modelPath());
    const q = await OnnxModel.load(r.output);
    try {
      const data = loadModelData(fp, path.join(workspaceDir(), "calib.jsonl"), { samples: 5 });
      const tokens = data.sequences.reduce((s, x) => s + x.length, 0);
      const calib = raw.calibration;
      assert.ok(calib, "RTN with calibration data should report its calibration");
      assert.equal(calib.sequences, 5, "calibration documents in the report");
      assert.equal(calib.tokens, tokens, "calibration tokens in the report vs 5 documents");
      assert.equal(raw.quantization?.format, "qdq");
      const ops = new Set(q.graph.node.map((n) => n.opType));
      assert.ok(ops.has("DequantizeLinear"), `format qdq: no DequantizeLinear (ops: ${[...ops].join(", ")})`);
      assert.ok(!ops.has("MatMulNBits"), "format qdq wrote MatMulNBits");
    } finally {
      fp.close();
      q.close();
    }
    removeExcept(original);

    // A bad setting stops before any work, naming nothing written.
    const bad = await withSettings({ bits: 5 }, () => quantize(vscode.Uri.file(modelPath())));
    assert.equal(bad, undefined, "quantized despite quantlens.bits = 5");
    assert.deepEqual(listDir(), original);
    // A calibration file setting that names a missing file is not silently ignored.
    const missing = await withSettings({ calibrationFile: "no-such-file.jsonl" }, () => quantize(vscode.Uri.file(modelPath())));
    assert.equal(missing, undefined, "quantized despite a missing quantlens.calibrationFile");
    assert.deepEqual(listDir(), original);
  },
  300_000,
);

test("Inspect Model opens the model inspector", async () => {
  await vscode.commands.executeCommand("workbench.action.closeAllEditors");
  await within(60_000, "quantlens.inspectModel", vscode.commands.executeCommand("quantlens.inspectModel", vscode.Uri.file(modelPath())));
  await waitFor(
    "an editor tab on model.onnx",
    () =>
      vscode.window.tabGroups.all.some((g) =>
        g.tabs.some((t) => {
          const input = t.input;
          if (input instanceof vscode.TabInputCustom) return input.uri.fsPath === modelPath();
          return input instanceof vscode.TabInputWebview && /quantlens/i.test(input.viewType + t.label);
        }),
      ),
    30_000,
  );
  await vscode.commands.executeCommand("workbench.action.closeAllEditors");
  assert.equal(sha256(modelPath()), modelHash);
});
