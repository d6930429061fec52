#!/usr/bin/env node
/**
 * Builds the optional CUDA backend, native-kernels/build/cuda/libquantlens_cuda.so, from
 * native-kernels/cuda/ql_cuda.cu with nvcc; the addon dlopens it at run time (core/cuda_backend.cpp).
 * Where there is no nvcc it prints "skipped: nvcc not found" and exits 0: the addon works without it.
 *
 *   node scripts/build-cuda.mjs [--out DIR] [--arch 75,80,90] [--emulate] [--quiet]
 *
 *   --out DIR    output folder (default native-kernels/build/cuda)
 *   --arch LIST  SASS targets (default: 70 75 80 86 89 90 100 120, those this nvcc supports) plus PTX
 *                of the newest of them up to 90 (compute_90 JIT-compiles for every later GPU, sm_110
 *                included); also $QUANTLENS_CUDA_ARCH
 *   --emulate    also build libquantlens_cuda_emu.so with the host C++ compiler: the same code run
 *                on the CPU (cuda/emulate.h), for testing the dispatch where there is no GPU; never
 *                picked up unless QUANTLENS_CUDA_LIB names it
 *
 * nvcc: $NVCC if set (only that), else `nvcc` on PATH, $CUDA_HOME/bin/nvcc, $CUDA_PATH/bin/nvcc,
 * /usr/local/cuda/bin/nvcc. The CUDA runtime is linked statically (only the NVIDIA driver is needed
 * where it runs) and its symbols are not exported; no other CUDA library (cuBLAS etc.) is used.
 *
 * `npm run build:native` (node-gyp rebuild) deletes native-kernels/build/: run this after it.
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SRC = path.join(ROOT, "native-kernels", "cuda");
/** Volta … Hopper, Blackwell (B200, RTX 50): those the installed nvcc supports (CUDA 13 dropped sm_70). */
const DEFAULT_ARCHS = [70, 75, 80, 86, 89, 90, 100, 120];
/** PTX goes in for the newest chosen arch up to this one: the driver JIT-compiles it for any later GPU. */
const PTX_MAX = 90;

function parseArgs(argv) {
  const opts = { out: path.join(ROOT, "native-kernels", "build", "cuda"), arch: process.env.QUANTLENS_CUDA_ARCH ?? "", emulate: false, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--out") opts.out = path.resolve(argv[++i] ?? "");
    else if (a === "--arch") opts.arch = argv[++i] ?? "";
    else if (a === "--emulate") opts.emulate = true;
    else if (a === "--quiet") opts.quiet = true;
    else {
      console.error(`build-cuda: unknown argument ${a}`);
      process.exit(1);
    }
  }
  return opts;
}

function runs(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return r.status === 0 ? r.stdout : null;
}

function findNvcc() {
  // $NVCC, when set, is the only candidate (NVCC=none: build nothing).
  const candidates = process.env.NVCC !== undefined ? [process.env.NVCC] : ["nvcc"];
  if (process.env.NVCC === undefined) {
    if (process.env.CUDA_HOME) candidates.push(path.join(process.env.CUDA_HOME, "bin", "nvcc"));
    if (process.env.CUDA_PATH) candidates.push(path.join(process.env.CUDA_PATH, "bin", "nvcc"));
    candidates.push("/usr/local/cuda/bin/nvcc");
  }
  for (const c of candidates) {
    if (!c) continue;
    const version = runs(c, ["--version"]);
    if (version !== null) return { nvcc: c, version: (version.match(/release [^\n]*/) ?? ["unknown release"])[0] };
  }
  return null;
}

/** -gencode flags: SASS for each wanted arch this nvcc supports, PTX for the newest ≤ PTX_MAX. */
function gencodes(nvcc, archOption) {
  const listed = runs(nvcc, ["--list-gpu-code"]);
  // nvcc before 11.0 cannot list: assume what every CUDA 11.1 … 12.x builds.
  const supported = new Set(listed ? [...listed.matchAll(/sm_(\d+)/g)].map((m) => Number(m[1])) : [70, 75, 80, 86]);
  const wanted = archOption
    ? archOption.split(/[ ,]+/).filter(Boolean).map((s) => Number(s.replace(/^sm_/, "")))
    : DEFAULT_ARCHS;
  const bad = wanted.filter((a) => !Number.isInteger(a));
  if (bad.length) throw new Error(`--arch: not an architecture list: ${archOption}`);
  const archs = wanted.filter((a) => supported.has(a)).sort((a, b) => a - b);
  const dropped = wanted.filter((a) => !supported.has(a));
  if (archs.length === 0) throw new Error(`this nvcc supports none of sm_${wanted.join(", sm_")} (it lists ${[...supported].map((a) => "sm_" + a).join(" ")})`);
  const flags = archs.flatMap((a) => ["-gencode", `arch=compute_${a},code=sm_${a}`]);
  const upTo = archs.filter((a) => a <= PTX_MAX);
  const ptx = upTo.length ? upTo[upTo.length - 1] : archs[archs.length - 1];
  flags.push("-gencode", `arch=compute_${ptx},code=compute_${ptx}`);
  return { flags, archs, ptx, dropped };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const log = (s) => {
    if (!opts.quiet) console.log(s);
  };
  const found = findNvcc();
  if (!found) {
    console.log("skipped: nvcc not found (set NVCC or CUDA_HOME to build the optional CUDA backend)");
    if (opts.emulate) buildEmulation(opts, log);
    return;
  }
  const { nvcc, version } = found;
  const gen = gencodes(nvcc, opts.arch);
  fs.mkdirSync(opts.out, { recursive: true });
  const out = path.join(opts.out, "libquantlens_cuda.so");
  const tmp = `${out}.tmp-${process.pid}`;
  const args = [
    "-O3",
    "-std=c++17",
    "--shared",
    "-Xcompiler", "-fPIC,-fvisibility=hidden",
    "-cudart", "static",
    "-Xlinker", "--exclude-libs,ALL",
    ...gen.flags,
    path.join(SRC, "ql_cuda.cu"),
    "-o", tmp,
  ];
  log(`build-cuda: ${nvcc} (${version}); SASS sm_${gen.archs.join(", sm_")} + PTX compute_${gen.ptx}` +
      (gen.dropped.length ? ` (not supported by this nvcc: sm_${gen.dropped.join(", sm_")})` : ""));
  const t0 = Date.now();
  try {
    execFileSync(nvcc, args, { stdio: ["ignore", "inherit", "inherit"] });
  } catch {
    fs.rmSync(tmp, { force: true });
    console.error(`build-cuda: nvcc failed: ${nvcc} ${args.join(" ")}`);
    process.exit(1);
  }
  fs.renameSync(tmp, out);
  log(`build-cuda: wrote ${path.relative(process.cwd(), out) || out} (${(fs.statSync(out).size / 1048576).toFixed(1)} MiB) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (opts.emulate) buildEmulation(opts, log);
}

function buildEmulation(opts, log) {
  const cxx = process.env.CXX ?? "g++";
  fs.mkdirSync(opts.out, { recursive: true });
  const out = path.join(opts.out, "libquantlens_cuda_emu.so");
  const args = ["-std=c++17", "-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-x", "c++", "-DQL_CUDA_EMULATE", path.join(SRC, "ql_cuda.cu"), "-o", out];
  try {
    execFileSync(cxx, args, { stdio: ["ignore", "inherit", "inherit"] });
  } catch {
    console.error(`build-cuda: ${cxx} failed: ${cxx} ${args.join(" ")}`);
    process.exit(1);
  }
  log(`build-cuda: wrote ${path.relative(process.cwd(), out) || out} (CPU emulation, for tests)`);
}

try {
  main();
} catch (e) {
  console.error(`build-cuda: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
