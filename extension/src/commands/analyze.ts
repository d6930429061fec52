// "Analyze": every analysis on the model with its calibration data (and held-out data when found),
// the report beside the model, then the report panels.
import path from "node:path";
import * as vscode from "vscode";
import { chooseEvalData } from "./calibration";
import { targetModel, type Host } from "./host";
import { calibrationFor, type QuantizeCommandOptions } from "./quantize";
import { runAnalyzeJob, type AnalyzeJobResult } from "./analyze-job";
import { calibOptions } from "./settings";

export interface AnalyzeCommandOptions {
  calibrationFile?: string;
  /** Held-out data for sensitivity; null = none; undefined = look next to the model. */
  evalFile?: string | null;
  /** Do not open the report panel (tests). */
  noPanel?: boolean;
}

export function registerAnalyzeCommand(host: Host, onWritten: (report: string) => void, openReport: (file: string) => Promise<void>): vscode.Disposable {
  return vscode.commands.registerCommand("quantlens.analyze", async (arg?: unknown, opts: AnalyzeCommandOptions = {}): Promise<AnalyzeJobResult | undefined> => {
    let result: AnalyzeJobResult | undefined;
    await host.guard("Analyze", async () => {
      const uri = await targetModel(arg, "Analyze");
      if (!uri || !host.requireTrust("Analyze")) return;
      const s = host.settings(uri);
      const calibOpts: QuantizeCommandOptions = opts.calibrationFile !== undefined ? { calibrationFile: opts.calibrationFile } : {};
      const data = await calibrationFor(host, uri, s, "analysis", calibOpts);
      if (!data) return;
      const evalData = opts.evalFile !== undefined ? opts.evalFile : (chooseEvalData(uri.fsPath, data)?.file ?? null);
      result = await host.progress(`analyzing ${path.basename(uri.fsPath)}`, (signal, report) =>
        runAnalyzeJob({
          model: uri.fsPath,
          data,
          evalData,
          samples: s.samples,
          preset: { bits: s.bits, group: s.group },
          calib: calibOptions(s),
          signal,
          onProgress: (m) => report(m),
          log: (l) => host.log(l),
        }),
      );
      onWritten(result.report);
      if (!opts.noPanel) await openReport(result.report);
      const missing = evalData ? "" : " No held-out data was found next to the model (an eval*.json/.jsonl/.txt), so sensitivity was not measured.";
      void vscode.window.showInformationMessage(`QuantLens: analysis of ${path.basename(uri.fsPath)} done in ${result.seconds.toFixed(1)} s.${missing}`, "Open Report").then(async (c) => {
        if (c) await host.guard("Open Report", () => openReport(result!.report));
      });
    });
    return result;
  });
}
