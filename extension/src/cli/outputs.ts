import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../engine/errors";
import type { OnnxModel } from "../engine/onnx/model";

/** Folders that hold this run's outputs: swept for our temp files if the user forces an exit. */
const outputFolders = new Set<string>();

/**
 * Check an output path before any work starts: not a folder, not one of the inputs, and not an
 * existing file unless `--force` was given (QuantLens never replaces a file unasked). The engine
 * then writes it through a temp file in the same folder and renames it into place.
 */
export function checkOutput(
  file: string,
  opts: { force?: boolean; inputs?: (string | undefined)[]; /** Files written beside it (report, external data). */ companions?: string[] } = {},
): string {
  const abs = path.resolve(file);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(abs);
  } catch {
    st = undefined;
  }
  if (st?.isDirectory()) throw new UsageError(`output ${abs} is a folder; give a file name`);
  for (const input of opts.inputs ?? []) {
    if (input && sameFile(input, abs)) throw new UsageError(`refusing to write the output over the input ${input}; choose another output path`);
  }
  if (st && !opts.force) throw new UsageError(`output ${abs} already exists; pass --force to replace it`);
  for (const c of opts.companions ?? []) {
    const cabs = path.resolve(c);
    for (const input of opts.inputs ?? []) {
      if (input && sameFile(input, cabs)) throw new UsageError(`refusing to write ${cabs} (beside the output) over the input ${input}; choose another output path`);
    }
    if (!opts.force && fs.existsSync(cabs)) throw new UsageError(`${cabs} already exists and would be replaced along with ${abs}; pass --force to replace it`);
  }
  // The nearest existing ancestor must be a folder (the engine creates the missing ones).
  for (let p = path.dirname(abs); ; p = path.dirname(p)) {
    let parent: fs.Stats | undefined;
    try {
      parent = fs.statSync(p);
    } catch {
      parent = undefined;
    }
    if (parent) {
      if (!parent.isDirectory()) throw new UsageError(`cannot write ${abs}: a parent of it is not a folder (${p} is a file)`);
      break;
    }
    if (path.dirname(p) === p) break;
  }
  outputFolders.add(path.dirname(abs));
  return abs;
}

/** The external data files a model reads (outputs must never land on them). */
export function externalFiles(model: OnnxModel): string[] {
  const files = new Set<string>();
  for (const t of model.initializers()) {
    const ext = model.info(t.name)?.external;
    if (ext) files.add(ext.file);
  }
  return [...files];
}

function sameFile(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return false;
  }
}

/**
 * Remove this process's temp files (`<output>.tmp-<pid>…`, as the engine names them) from the
 * output folders: used when a second Ctrl-C exits without waiting for the engine to clean up.
 */
export function removeOwnTempFiles(): void {
  const marker = `.tmp-${process.pid}`;
  for (const dir of outputFolders) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      if (n.includes(marker)) fs.rmSync(path.join(dir, n), { force: true });
    }
  }
}
