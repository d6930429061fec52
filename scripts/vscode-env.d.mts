// Types for scripts/vscode-env.mjs (used from the TypeScript tests).
import type { ChildProcess } from "node:child_process";
import type { BrowserContext } from "playwright-core";

export const CODE_SERVER_VERSION: string;
export const NODE_VERSION: string;
export const CHROMIUM: string;
export const ROOT: string;
export const CACHE: string;

export function ensureChromium(): string;
export function nodeBin(): string;
export function codeServerEntry(): string;
export function ensureCodeServer(): { node: string; entry: string; seconds: number; cached: boolean };
export function ensureAll(): { node: string; entry: string; chromium: string; seconds: number; cached: boolean };
export function freePort(): Promise<number>;

export interface StartOptions {
  dir: string;
  folder?: string;
  args?: string[];
  trust?: boolean;
  settings?: Record<string, unknown>;
  env?: Record<string, string>;
  port?: number;
  extensionsDir?: string;
  inheritOutput?: boolean;
}

export interface CodeServer {
  url: string;
  port: number;
  child: ChildProcess;
  userData: string;
  extensions: string;
  logs(): string;
  stop(): Promise<{ code: number | null; signal: string | null } | null>;
  exited(): { code: number | null; signal: string | null } | null;
}

export function startCodeServer(o: StartOptions): Promise<CodeServer>;
export function remoteAuthority(url: string): Promise<string>;
export function workbenchUrl(url: string, folder: string, payload?: [string, string][]): string;
export const CHROMIUM_ARGS: string[];
export function launchBrowser(profileDir: string, viewport?: { width: number; height: number }): Promise<BrowserContext>;
export function prepareDemoWorkspace(dest: string, settings?: Record<string, unknown>): string;
export function packageVsix(): string | null;
export function installExtension(extensionsDir: string, userDataDir: string, vsix: string | null): "vsix" | "folder";
