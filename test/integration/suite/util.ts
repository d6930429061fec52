// Helpers for the cases that run inside the extension host.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import * as vscode from "vscode";

export const EXTENSION_ID = "quantlens.quantlens";

export function workspaceDir(): string {
  const f = vscode.workspace.workspaceFolders?.[0];
  assert.ok(f, "the test window has no workspace folder open");
  return f.uri.fsPath;
}

export function modelPath(): string {
  return path.join(workspaceDir(), "model.onnx");
}

export function listDir(dir = workspaceDir()): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n !== ".vscode")
    .sort();
}

export function sha256(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves to the value, or rejects naming `what` when it takes longer than `ms`. */
export async function within<T>(ms: number, what: string, p: Thenable<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve(p),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000, every = 100): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

export function extension(): vscode.Extension<unknown> {
  const ext = vscode.extensions.getExtension(EXTENSION_ID);
  assert.ok(ext, `extension ${EXTENSION_ID} is not installed in the test host`);
  return ext;
}

/** Native libraries mapped into this (the extension host's) process. */
export function loadedNativeLibraries(): string[] {
  const maps = fs.readFileSync("/proc/self/maps", "utf8");
  const libs = new Set<string>();
  for (const line of maps.split("\n")) {
    const file = line.split(/\s+/)[5];
    if (file && /\.(node|so)(\.\d+)*$/.test(file)) libs.add(file);
  }
  return [...libs];
}

/** onnxruntime's binding or QuantLens' kernels loaded into this process? */
export function modelRuntimeLoaded(): string[] {
  return loadedNativeLibraries().filter((f) => /onnxruntime|quantlens_kernels/.test(path.basename(f)));
}

type ConfigValue = string | number | boolean | undefined;

/** Set workspace settings under `quantlens.` for the duration of `body`, then restore them. */
export async function withSettings<T>(values: Record<string, ConfigValue>, body: () => Promise<T>): Promise<T> {
  const cfg = () => vscode.workspace.getConfiguration("quantlens");
  const before: Record<string, ConfigValue> = {};
  for (const k of Object.keys(values)) before[k] = cfg().inspect(k)?.workspaceValue as ConfigValue;
  try {
    for (const [k, v] of Object.entries(values)) await cfg().update(k, v, vscode.ConfigurationTarget.Workspace);
    return await body();
  } finally {
    for (const [k, v] of Object.entries(before)) await cfg().update(k, v, vscode.ConfigurationTarget.Workspace);
  }
}

/** Remove files a case wrote next to the model (everything not in `keep`). */
export function removeExcept(keep: string[], dir = workspaceDir()): void {
  for (const n of listDir(dir)) if (!keep.includes(n)) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
}
