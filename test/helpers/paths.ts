import path from "node:path";
import fs from "node:fs";
import os from "node:os";

export const ROOT = path.resolve(__dirname, "../..");
/** The bundled demo model (a copy of ../shared/models/stories260K, so tests need no ../shared). */
export const STORIES = path.join(ROOT, "test/fixtures/stories260K");
export const STORIES_MODEL = path.join(STORIES, "model.onnx");

/** A fresh temp folder, removed by the returned cleanup. */
export function tempDir(prefix = "quantlens-test-"): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Names of files in a folder, sorted (to check nothing stray was written). */
export function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}
