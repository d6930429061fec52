// `npm run package`: a platform-specific VSIX, offline, with @vscode/vsce.
// Carries dist/ (extension, CLI, webview assets), the built native addon (and the CUDA library
// when built) and onnxruntime-node with only this platform's binaries (.vscodeignore + the
// per-platform line added here). Usage: node scripts/package.mjs [--target linux-x64] [--out FILE]
// `--list` prints the files the VSIX would carry (vsce ls) instead of packaging.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const fail = (message) => {
  console.error(`package: ${message}`);
  process.exit(1);
};

// VS Code's platform targets, from Node's platform/arch.
const TARGETS = { "linux-x64": "linux-x64", "linux-arm64": "linux-arm64", "linux-arm": "linux-armhf", "darwin-x64": "darwin-x64", "darwin-arm64": "darwin-arm64", "win32-x64": "win32-x64", "win32-arm64": "win32-arm64" };
const target = arg("--target") ?? TARGETS[`${process.platform}-${process.arch}`];
if (!target || !Object.values(TARGETS).includes(target)) fail(`no VS Code target for ${process.platform}-${process.arch}; pass --target (one of ${Object.values(TARGETS).join(", ")})`);
const [ortPlatform, vsArch] = target.split("-");
const ortArch = vsArch === "armhf" ? "arm" : vsArch;

const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
const ortBin = `node_modules/onnxruntime-node/bin/napi-v6/${ortPlatform}/${ortArch}`;
const required = [
  ["dist/extension.js", "run `node scripts/build.mjs --production` (npm run package does)"],
  ["dist/cli.js", "run `node scripts/build.mjs --production`"],
  ["dist/webview/main.js", "run `node scripts/build.mjs --production`"],
  ["native-kernels/build/Release/quantlens_kernels.node", "run `npm run build:native`"],
  [`${ortBin}/onnxruntime_binding.node`, `onnxruntime-node has no ${ortPlatform}/${ortArch} binary`],
  ["node_modules/onnxruntime-common/package.json", "run `ONNXRUNTIME_NODE_INSTALL=skip npm ci`"],
];
for (const [file, fix] of required) if (!fs.existsSync(path.join(root, file))) fail(`${file} is missing: ${fix}`);
const nativeTarget = `${process.platform}-${process.arch}`;
if (target !== TARGETS[nativeTarget]) console.warn(`package: note: the native addon in native-kernels/build was built for ${nativeTarget}, not ${target}`);

// .vscodeignore plus this platform's onnxruntime binaries.
const ignore = fs.readFileSync(path.join(root, ".vscodeignore"), "utf8") + `\n# added by scripts/package.mjs for ${target}\n!${ortBin}/**\n`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "quantlens-package-"));
const ignoreFile = path.join(tmp, "vscodeignore");
fs.writeFileSync(ignoreFile, ignore);
const out = path.resolve(arg("--out") ?? path.join(root, `${pkg.name}-${pkg.version}-${target}.vsix`));

const vsce = path.join(root, "node_modules", ".bin", process.platform === "win32" ? "vsce.cmd" : "vsce");
// Dependencies are found with `npm list` (local, no network); --skip-license: the licence is the
// package.json "license" field; --allow-missing-repository / --no-rewrite-relative-links: no
// public repository yet (README links stay relative).
const list = process.argv.includes("--list");
const args = list
  ? ["ls", "--ignoreFile", ignoreFile]
  : ["package", "--target", target, "--ignoreFile", ignoreFile, "--out", out, "--skip-license", "--allow-missing-repository", "--no-rewrite-relative-links"];
const r = spawnSync(vsce, args, { cwd: root, stdio: "inherit", env: { ...process.env, npm_config_offline: "true", VSCE_TELEMETRY: "0" } });
fs.rmSync(tmp, { recursive: true, force: true });
if (r.status !== 0) fail(`vsce exited with ${r.status ?? r.signal}`);
if (list) process.exit(0);
const size = fs.statSync(out).size;
console.log(`package: ${path.relative(process.cwd(), out)} (${(size / 2 ** 20).toFixed(1)} MiB, target ${target})`);
