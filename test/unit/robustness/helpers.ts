import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { expect } from "vitest";
import { quantlens } from "../../helpers/cli";
import { listDir, STORIES } from "../../helpers/paths";

/** Bytes (as a hash) and mtime of a file: what "the input is untouched" means. */
export interface Fingerprint {
  file: string;
  sha256: string;
  mtimeMs: number;
  size: number;
}

export function fingerprint(file: string): Fingerprint {
  const st = fs.statSync(file);
  return { file, sha256: crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex"), mtimeMs: st.mtimeMs, size: st.size };
}

/** Fingerprints of every regular file under `dir` (recursively, links not followed). */
export function fingerprintDir(dir: string): Fingerprint[] {
  const out: Fingerprint[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...fingerprintDir(p));
    else if (e.isFile()) out.push(fingerprint(p));
  }
  return out.sort((a, b) => a.file.localeCompare(b.file));
}

/** A model folder like a user's: the model plus tokenizer and config beside it. */
export function copyStories(dir: string, files = ["model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json"]): string {
  for (const f of files) fs.copyFileSync(path.join(STORIES, f), path.join(dir, f));
  return path.join(dir, "model.onnx");
}

/**
 * Run the real CLI on bad input and check the contract: exit 1, nothing on stdout, one
 * `quantlens: error:` line naming what is at fault, no file added or changed in `dir` (bytes and
 * mtime), and the inputs outside `dir` untouched too.
 */
export function expectUserError(dir: string, args: string[], message: RegExp, opts: { names?: string[]; inputs?: string[] } = {}): string {
  const before = fingerprintDir(dir);
  const names = listDir(dir);
  const outside = (opts.inputs ?? []).map(fingerprint);
  const r = quantlens(...args);
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout).toBe("");
  const error = r.stderr.split("\n").find((l) => l.startsWith("quantlens: error: "));
  expect(error, r.stderr).toBeDefined();
  expect(error).toMatch(message);
  for (const name of opts.names ?? []) expect(error).toContain(name);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  expect(fingerprintDir(dir)).toEqual(before);
  expect(listDir(dir)).toEqual(names);
  expect((opts.inputs ?? []).map(fingerprint)).toEqual(outside);
  return error!;
}
