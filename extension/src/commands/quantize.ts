// "Quantize" (one click with the configured preset) and "Quantize…" (quick picks). Decisions live
// in settings.ts, picks.ts, calibration.ts, output-name.ts and quantize-job.ts; this is the glue.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as vscode from "vscode";
import { indexLinears } from "../engine/onnx/linear";
import { OnnxModel } from "../engine/onnx/model";
import { chooseCalibrationData, chooseEvalData, discoverCalibrationData } from "./calibration";
import { targetModel, type Host } from "./host";
import { freeOutput, outputTaken, preferredOutput, recipeTag } from "./output-name";
import { AUTO_PLAN_CHOICE, bitChoices, defaultBudget, formatChoices, groupChoices, methodChoices, parseBudget, recipeFromAnswers, type Choice, type RecipeAnswers } from "./picks";
import { quantizeSummary, runQuantizeJob, type QuantizeJobResult } from "./quantize-job";
import { calibOptions, describeRecipe, needsCalibration, presetRecipe, type QuantizeRecipe, type QuantLensSettings } from "./settings";

/**
 * Options a caller (a test, another command) may pass as the second argument of
 * `quantlens.quantize` / `quantlens.quantizeWith` to skip the prompts.
 */
export interface QuantizeCommandOptions {
  /** Calibration file; `null` = none (RTN only). */
  calibrationFile?: string | null;
  /** Output path (else model.<tag>.onnx, or a free variant). */
  output?: string;
  /** When the output exists: "replace" it or "keepBoth" (a free name); else the user is asked. */
  ifExists?: "replace" | "keepBoth";
  /** Quantize… only: the answers, instead of quick picks. */
  recipe?: RecipeAnswers;
}

/** What the commands return (tests read it): the files written, or undefined when nothing ran. */
export type QuantizeCommandResult = Pick<QuantizeJobResult, "output" | "report" | "layers" | "kept" | "seconds" | "proxyLoss" | "proxyLossRtn" | "notes"> | undefined;

export function registerQuantizeCommands(host: Host, onWritten: (result: QuantizeJobResult) => void, openReport: (file: string) => Promise<void>): vscode.Disposable[] {
  // Outputs being written by running jobs: taken, like existing files (two clicks never share an output).
  const running = new Set<string>();
  const run = async (uri: vscode.Uri, s: QuantLensSettings, recipe: QuantizeRecipe, opts: QuantizeCommandOptions, data: string | null): Promise<QuantizeCommandResult> => {
    const out = await chooseOutput(uri.fsPath, recipeTag(recipe), opts, (p) => running.has(p));
    if (!out) return undefined;
    running.add(out);
    const name = path.basename(uri.fsPath);
    let result: QuantizeJobResult;
    try {
      result = await host.progress(`quantizing ${name} (${describeRecipe(recipe)})`, (signal, report) =>
        runQuantizeJob({
          model: uri.fsPath,
          out,
          recipe,
          data,
          evalData: data ? (chooseEvalData(uri.fsPath, data)?.file ?? null) : null,
          samples: s.samples,
          calib: calibOptions(s),
          signal,
          onProgress: report,
          log: (l) => host.log(l),
        }),
      );
    } finally {
      running.delete(out);
    }
    onWritten(result);
    announce(host, result, recipe, openReport);
    const { output, report, layers, kept, seconds, proxyLoss, proxyLossRtn, notes } = result;
    return { output, report, layers, kept, seconds, proxyLoss, proxyLossRtn, notes };
  };

  const quantize = async (arg?: unknown, opts: QuantizeCommandOptions = {}): Promise<QuantizeCommandResult> => {
    let result: QuantizeCommandResult;
    await host.guard("Quantize", async () => {
      const uri = await targetModel(arg, "Quantize");
      if (!uri || !host.requireTrust("Quantize")) return;
      const s = host.settings(uri);
      const recipe = presetRecipe(s);
      const data = await calibrationFor(host, uri, s, recipe.config.method, opts);
      if (data === undefined) return;
      result = await run(uri, s, recipe, opts, data);
    });
    return result;
  };

  const quantizeWith = async (arg?: unknown, opts: QuantizeCommandOptions = {}): Promise<QuantizeCommandResult> => {
    let result: QuantizeCommandResult;
    await host.guard("Quantize", async () => {
      const uri = await targetModel(arg, "Quantize");
      if (!uri || !host.requireTrust("Quantize")) return;
      const s = host.settings(uri);
      const answers = opts.recipe ?? (await askRecipe(uri, s));
      if (!answers) return;
      const recipe = recipeFromAnswers(answers);
      const data = await calibrationFor(host, uri, s, recipe.plan ? "plan" : recipe.config.method, opts, !opts.recipe);
      if (data === undefined) return;
      result = await run(uri, s, recipe, opts, data);
    });
    return result;
  };

  return [vscode.commands.registerCommand("quantlens.quantize", quantize), vscode.commands.registerCommand("quantlens.quantizeWith", quantizeWith)];
}

function announce(host: Host, r: QuantizeJobResult, recipe: QuantizeRecipe, openReport: (file: string) => Promise<void>): void {
  void vscode.window.showInformationMessage(quantizeSummary(r, recipe), "Open Report", "Reveal in Explorer").then(async (choice) => {
    if (choice === "Open Report") await host.guard("Open Report", () => openReport(r.report));
    else if (choice === "Reveal in Explorer") await vscode.commands.executeCommand("revealInExplorer", vscode.Uri.file(r.output));
  });
}

/**
 * Calibration data: an explicit option, the setting, a file found next to the model, else ask.
 * Returns a path, null (no data: RTN), or undefined when the user backed out.
 */
export async function calibrationFor(host: Host, uri: vscode.Uri, s: QuantLensSettings, method: string, opts: QuantizeCommandOptions, alwaysAsk = false): Promise<string | null | undefined> {
  if (opts.calibrationFile !== undefined) return opts.calibrationFile === null ? null : path.resolve(opts.calibrationFile);
  const where = { workspaceFolder: vscode.workspace.getWorkspaceFolder(uri)?.uri.fsPath, modelPath: uri.fsPath, home: os.homedir() };
  if (!alwaysAsk) {
    const chosen = chooseCalibrationData(s.calibrationFile, where);
    if (chosen) {
      host.log(`calibration data: ${chosen.file} (${chosen.where})`);
      return chosen.file;
    }
    if (!needsCalibration(method)) return null;
    const who = method === "analysis" ? "Analyze" : method === "plan" ? "An auto plan" : method.toUpperCase();
    const pick = await vscode.window.showWarningMessage(
      `QuantLens: ${who} needs calibration text and none was found next to ${path.basename(uri.fsPath)} ` +
        "(a .jsonl/.txt/.json file beside the model or in its data/, calibration/ or eval/ folder). Choose a file, or set quantlens.calibrationFile.",
      "Choose File…",
      "Open Settings",
    );
    if (pick === "Open Settings") void vscode.commands.executeCommand("workbench.action.openSettings", "quantlens.calibrationFile");
    if (pick !== "Choose File…") return undefined;
    return browseData(uri);
  }
  // Quantize…: a quick pick of what was found, the setting, browse, and (RTN) none.
  type Item = vscode.QuickPickItem & { file?: string | null; browse?: boolean };
  const items: Item[] = [];
  if (s.calibrationFile) {
    try {
      const c = chooseCalibrationData(s.calibrationFile, where)!;
      items.push({ label: path.basename(c.file), description: c.where, detail: c.file, file: c.file });
    } catch (e) {
      items.push({ label: "$(warning) quantlens.calibrationFile", description: (e as Error).message, file: undefined });
    }
  }
  for (const c of discoverCalibrationData(uri.fsPath)) items.push({ label: path.basename(c.file), description: c.where, detail: c.file, file: c.file });
  items.push({ label: "$(folder-opened) Browse…", browse: true });
  if (!needsCalibration(method)) items.push({ label: "No calibration data", description: "RTN without the proxy-loss report", file: null });
  const picked = await vscode.window.showQuickPick(items.filter((i) => i.file !== undefined || i.browse), { title: "QuantLens: calibration data", placeHolder: "Text the model sees while calibrating" });
  if (!picked) return undefined;
  if (picked.browse) return browseData(uri);
  return picked.file ?? null;
}

async function browseData(uri: vscode.Uri): Promise<string | undefined> {
  const picked = await vscode.window.showOpenDialog({
    canSelectMany: false,
    defaultUri: vscode.Uri.file(path.dirname(uri.fsPath)),
    filters: { "Calibration data": ["jsonl", "txt", "json"] },
    openLabel: "Use for calibration",
  });
  return picked?.[0]?.fsPath;
}

async function askRecipe(uri: vscode.Uri, s: QuantLensSettings): Promise<RecipeAnswers | undefined> {
  const pick = async <T>(title: string, choices: Choice<T>[]): Promise<T | undefined> => {
    const items = choices.map((c) => ({ label: c.label, description: c.description, detail: c.detail, value: c.value }));
    const picked = await vscode.window.showQuickPick(items, { title: `QuantLens: ${title}`, matchOnDetail: true });
    return picked?.value;
  };
  const method = await pick<QuantLensSettings["method"] | "plan">("method", [...methodChoices(s.method), AUTO_PLAN_CHOICE]);
  if (!method) return undefined;
  if (method === "plan") {
    const text = await vscode.window.showInputBox({
      title: "QuantLens: auto plan",
      prompt: "Average bits per weight, scale and zero-point overhead included (e.g. 3.5)",
      value: defaultBudget(s.bits, s.group),
      validateInput: (v) => {
        try {
          parseBudget(v);
          return undefined;
        } catch (e) {
          return (e as Error).message;
        }
      },
    });
    if (text === undefined) return undefined;
    const format = await pick("format", formatChoices(s.format));
    if (!format) return undefined;
    return { method: "rtn", bits: 4, group: 128, format, plan: parseBudget(text) };
  }
  const bits = await pick("bits", bitChoices(method, s.bits));
  if (!bits) return undefined;
  const group = await pick("group size", groupChoices(method === "smoothquant" ? 0 : s.group, await minLayerInputs(uri.fsPath)));
  if (group === undefined) return undefined;
  const format = await pick("format", formatChoices(s.format));
  if (!format) return undefined;
  return { method, bits, group, format };
}

/** The smallest input width among the layers to quantize (to mark groups some layers cannot take). */
async function minLayerInputs(file: string): Promise<number | undefined> {
  let model: OnnxModel | undefined;
  try {
    model = await OnnxModel.load(file); // the proto only: weights are read lazily
    const ins = indexLinears(model).layers.filter((l) => l.role !== "lm_head").map((l) => l.in);
    return ins.length ? Math.min(...ins) : undefined;
  } catch {
    return undefined; // the quantization itself reports a bad model
  } finally {
    model?.close();
  }
}

/** Where to write: the option, else model.<tag>.onnx; if taken, ask (Replace / Keep Both). */
async function chooseOutput(model: string, tag: string, opts: QuantizeCommandOptions, inFlight: (p: string) => boolean): Promise<string | undefined> {
  const preferred = opts.output ? path.resolve(opts.output) : preferredOutput(model, tag);
  const exists = (p: string) => fs.existsSync(p) || inFlight(p);
  if (!outputTaken(preferred, exists)) return preferred;
  // Being written right now by another run: never replace that, take the next free name.
  if (inFlight(preferred)) return freeOutput(preferred, exists, model);
  let choice: string | undefined = opts.ifExists === "replace" ? "Replace" : opts.ifExists === "keepBoth" ? "Keep Both" : undefined;
  choice ??= await vscode.window.showWarningMessage(
    `${path.basename(preferred)} already exists next to the model. Replace it, or keep both (write ${path.basename(freeOutput(preferred, exists, model))})?`,
    { modal: true },
    "Replace",
    "Keep Both",
  );
  if (choice === "Replace") return preferred;
  if (choice === "Keep Both") return freeOutput(preferred, exists, model);
  return undefined;
}
