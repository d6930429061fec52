// Which calibration data to use for a model: the `quantlens.calibrationFile` setting, else data
// found next to the model, else nothing (the glue then asks). No `vscode` here.
import fs from "node:fs";
import path from "node:path";
import { BadDataError } from "../engine/errors";

/** Sub-folders of the model's folder searched for data, in this order after the folder itself. */
export const DATA_FOLDERS = ["data", "calibration", "calib", "eval"] as const;

const DATA_EXTENSIONS = [".jsonl", ".txt", ".json"];

/** JSON files next to models that are never token data (Hugging Face / onnxruntime-genai / ours). */
const NOT_DATA = /^(config|generation_config|tokenizer|tokenizer_config|special_tokens_map|added_tokens|vocab|genai_config|preprocessor_config|package|package-lock|tsconfig)\.json$|\.quantlens\.json$|\.plan\.json$|\.report\.json$/i;

/** Text files next to models that are documentation, not data. */
const NOT_TEXT = /^(readme|license|licence|notice|copying|changelog|authors|data|requirements|merges)(\.[a-z]+)?$/i;

export interface DataCandidate {
  file: string;
  /** Why it was chosen, for the quick pick ("next to the model", "in data/"). */
  where: string;
}

/** Read the first bytes of a file (enough to tell a JSON array of ids from a config object). */
function head(file: string, bytes = 256): string {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, "r");
    const buf = Buffer.alloc(bytes);
    const n = fs.readSync(fd, buf, 0, bytes, 0);
    return buf.subarray(0, n).toString("utf8");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function looksLikeData(file: string): boolean {
  const name = path.basename(file);
  const ext = path.extname(name).toLowerCase();
  if (!DATA_EXTENSIONS.includes(ext)) return false;
  if (ext === ".json") return !NOT_DATA.test(name) && head(file).trimStart().startsWith("[");
  if (ext === ".txt") return !NOT_TEXT.test(name);
  return true; // .jsonl
}

/** Rank: calibration-named files first, then the richer formats, then eval-named files. */
function rank(file: string): number {
  const name = path.basename(file).toLowerCase();
  const ext = path.extname(name);
  const byName = /calib/.test(name) ? 0 : /eval|test|valid/.test(name) ? 2 : 1;
  const byExt = DATA_EXTENSIONS.indexOf(ext);
  return byName * 10 + byExt;
}

/**
 * Calibration/eval data files for `modelPath`: in the model's folder, then in its data/,
 * calibration/, calib/ and eval/ sub-folders; within a folder calibration-named files first.
 * Best first.
 */
export function discoverCalibrationData(modelPath: string): DataCandidate[] {
  const dir = path.dirname(path.resolve(modelPath));
  const found: DataCandidate[] = [];
  const scan = (folder: string, where: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(folder, { withFileTypes: true });
    } catch {
      return;
    }
    const files = entries
      .filter((e) => e.isFile() || e.isSymbolicLink())
      .map((e) => path.join(folder, e.name))
      .filter(looksLikeData)
      .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    for (const file of files) found.push({ file, where });
  };
  scan(dir, "next to the model");
  for (const sub of DATA_FOLDERS) scan(path.join(dir, sub), `in ${sub}/`);
  return found;
}

/**
 * Resolve the `quantlens.calibrationFile` setting: absolute, `~/…`, `${workspaceFolder}/…`, or
 * relative to the workspace folder (else to the model's folder). A setting that names a file
 * that does not exist is an error naming the setting, not a silent fallback.
 */
export function resolveCalibrationSetting(value: string, opts: { workspaceFolder?: string; modelPath: string; home?: string }): string {
  let v = value.trim();
  const ws = opts.workspaceFolder;
  if (ws) v = v.replace(/\$\{workspaceFolder\}/g, ws);
  if (v.startsWith("~/") && opts.home) v = path.join(opts.home, v.slice(2));
  const file = path.isAbsolute(v) ? v : path.resolve(ws ?? path.dirname(opts.modelPath), v);
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    throw new BadDataError(file, `the calibration file named by the setting quantlens.calibrationFile ('${value}') does not exist; fix or clear the setting`);
  }
  return file;
}

/** The one-click choice: the setting if set, else the best file found next to the model, else null. */
export function chooseCalibrationData(setting: string, opts: { workspaceFolder?: string; modelPath: string; home?: string }): DataCandidate | null {
  if (setting.trim()) return { file: resolveCalibrationSetting(setting, opts), where: "from the quantlens.calibrationFile setting" };
  return discoverCalibrationData(opts.modelPath)[0] ?? null;
}

/**
 * Held-out data for sensitivity: an eval-named file (eval, test, valid, heldout) found next to
 * the model that is not the calibration file itself; null when there is none.
 */
export function chooseEvalData(modelPath: string, calibrationFile: string | null): DataCandidate | null {
  const calib = calibrationFile ? path.resolve(calibrationFile) : null;
  return discoverCalibrationData(modelPath).find((c) => path.resolve(c.file) !== calib && /eval|test|valid|held.?out/i.test(path.basename(c.file))) ?? null;
}
