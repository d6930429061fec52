/**
 * The optional CUDA backend (native-kernels/cuda/, loaded by core/cuda_backend.cpp):
 *   - scripts/build-cuda.mjs: "skipped: nvcc not found" (exit 0) without nvcc; with nvcc, a
 *     libquantlens_cuda.so exporting exactly the C ABI and needing no CUDA library but the driver;
 *   - the addon's info().cuda: why the backend is off (library not built, no device, disabled),
 *     and the kernels still work then;
 *   - the library's own code (host and device) against the CPU kernels, run on the CPU through
 *     cuda/emulate.h (works anywhere with g++): Hessian and GEMM within named tolerances, FWHT
 *     bit for bit, NaN/Inf, cancellation, several-piece uploads;
 *   - on a machine with an NVIDIA GPU only (nvidia-smi lists one, or QUANTLENS_CUDA_TEST=1): the
 *     same comparisons, plus real-size layers, on the GPU.
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, tempDir } from "../helpers/paths";
import { NATIVE_DISABLED, requireNative } from "./helpers";

const k = requireNative();
const ADDON = path.join(ROOT, "native-kernels/build/Release/quantlens_kernels.node");
const CUDA_SRC = path.join(ROOT, "native-kernels/cuda");
const CORE = path.join(ROOT, "native-kernels/core");
const CORE_OBJ = path.join(ROOT, "native-kernels/build/Release/obj.target/quantlens_kernels/core");
const CXX = process.env.CXX ?? "g++";
const hasCompiler = spawnSync(CXX, ["--version"], { stdio: "ignore" }).status === 0;
const ABI_SYMBOLS = [
  "ql_cuda_abi_version",
  "ql_cuda_device_count",
  "ql_cuda_device_name",
  "ql_cuda_last_error",
  "ql_cuda_hessian_update",
  "ql_cuda_gptq_block_update",
  "ql_cuda_gptq_create",
  "ql_cuda_gptq_update",
  "ql_cuda_gptq_read",
  "ql_cuda_gptq_destroy",
  "ql_cuda_fwht",
  "ql_cuda_fwht_strided",
].sort();

/** A GPU to run the real library on: nvidia-smi lists one (or QUANTLENS_CUDA_TEST=1 insists). */
const gpuListed = (() => {
  if (process.env.QUANTLENS_CUDA_TEST === "1") return true;
  const r = spawnSync("nvidia-smi", ["-L"], { encoding: "utf8" });
  return r.status === 0 && /GPU \d+:/.test(r.stdout);
})();

const { dir: TMP, cleanup } = tempDir("quantlens-cuda-");
afterAll(cleanup);

function buildCuda(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return spawnSync(process.execPath, [path.join(ROOT, "scripts/build-cuda.mjs"), ...args], { encoding: "utf8", env });
}

/** info().cuda (and a tiny FWHT and Hessian through the kernels) in a fresh process with `env`. */
function addonInChild(env: Record<string, string | undefined>) {
  const script = `
    const k = require(${JSON.stringify(ADDON)});
    const x = new Float32Array([1, 0, 0, 0, 1, 2, 3, 4]);
    k.fwhtSync(x, 2, 4);
    const h = new Float64Array(4);
    k.hessianUpdate(h, 2, new Float32Array([1, 2, 3, 4]), 2).then(() => {
      console.log(JSON.stringify({ cuda: k.info().cuda, fwht: Array.from(x), h: Array.from(h) }));
    });`;
  const childEnv = { ...process.env, ...env };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete childEnv[key];
  const out = execFileSync(process.execPath, ["-e", script], { encoding: "utf8", env: childEnv });
  return JSON.parse(out.trim().split("\n").pop()!) as {
    cuda: { available: boolean; status: string; calls: { hessian: number; gptqLayers: number } };
    fwht: number[];
    h: number[];
  };
}

function expectKernelsWork(r: { fwht: number[]; h: number[] }) {
  expect(r.fwht).toEqual([0.5, 0.5, 0.5, 0.5, 5, -1, -2, 0]);
  expect(r.h).toEqual([10, 14, 14, 20]);
}

describe("scripts/build-cuda.mjs", () => {
  it("without nvcc: prints 'skipped: nvcc not found', exits 0, writes nothing", () => {
    const out = path.join(TMP, "none");
    const r = buildCuda(["--out", out], { ...process.env, NVCC: path.join(TMP, "no-such-nvcc") });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^skipped: nvcc not found/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

// The real library, built once into TMP/real when nvcc exists (about 8 s for all architectures).
let realLib: string | null = null;
let nvccMissing = "";

describe.skipIf(NATIVE_DISABLED)("the CUDA backend", () => {
  beforeAll(() => {
    const r = buildCuda(["--out", path.join(TMP, "real")]);
    if (r.status !== 0) throw new Error(`build-cuda failed:\n${r.stdout}\n${r.stderr}`);
    if (/^skipped: nvcc not found/.test(r.stdout)) nvccMissing = r.stdout.trim();
    else realLib = path.join(TMP, "real", "libquantlens_cuda.so");
  }, 240_000);

  it("with nvcc: the library exports exactly the C ABI and needs no CUDA library but the driver", (ctx) => {
    if (!realLib) return ctx.skip(nvccMissing);
    const dyn = execFileSync("nm", ["-D", "--defined-only", realLib], { encoding: "utf8" });
    const exported = dyn
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length === 3 && /^[TtWDB]$/.test(f[1]) && !f[2].startsWith("_"))
      .map((f) => f[2])
      .sort();
    expect(exported).toEqual(ABI_SYMBOLS);
    const needed = execFileSync("readelf", ["-d", realLib], { encoding: "utf8" });
    expect(needed).not.toMatch(/NEEDED.*lib(cudart|cublas|cuda)\b/);
  });

  it("info().cuda of this process names its state", () => {
    const info = k!.info();
    expect(typeof info.cuda.available).toBe("boolean");
    expect(info.cuda.status).toMatch(
      /^(ok: |library not built: |library failed to load: |library ABI v|no CUDA device|disabled by QUANTLENS_CUDA=)/,
    );
    if (!info.cuda.available) {
      console.log(`CUDA backend off here: ${info.cuda.status}`);
    }
  });

  it("library missing: available false, 'library not built', kernels on the CPU", () => {
    const r = addonInChild({ QUANTLENS_CUDA_LIB: path.join(TMP, "missing", "libquantlens_cuda.so"), QUANTLENS_CUDA: undefined });
    expect(r.cuda.available).toBe(false);
    expect(r.cuda.status).toMatch(/^library not built: .*missing\/libquantlens_cuda\.so/);
    expectKernelsWork(r);
  });

  it("QUANTLENS_CUDA=0: available false, 'disabled by QUANTLENS_CUDA=0'", () => {
    const r = addonInChild({ QUANTLENS_CUDA: "0" });
    expect(r.cuda).toEqual({ available: false, status: "disabled by QUANTLENS_CUDA=0", calls: { hessian: 0, gptqLayers: 0 } });
    expectKernelsWork(r);
  });

  it("a file that is not the library: available false, 'library failed to load'", () => {
    const bogus = path.join(TMP, "bogus.so");
    fs.writeFileSync(bogus, "not an ELF file");
    const r = addonInChild({ QUANTLENS_CUDA_LIB: bogus, QUANTLENS_CUDA: undefined });
    expect(r.cuda.available).toBe(false);
    expect(r.cuda.status).toMatch(/^library failed to load: /);
    expectKernelsWork(r);
  });

  it("the real library without a GPU: available false, 'no CUDA device', kernels on the CPU", (ctx) => {
    if (!realLib) return ctx.skip(nvccMissing);
    if (gpuListed) return ctx.skip("this machine has a GPU (see the GPU test)");
    const r = addonInChild({ QUANTLENS_CUDA_LIB: realLib, QUANTLENS_CUDA: undefined });
    expect(r.cuda.available).toBe(false);
    expect(r.cuda.status).toMatch(/^no CUDA device: /);
    expectKernelsWork(r);
  });

  describe.skipIf(!hasCompiler)("against the CPU kernels", () => {
    let selftest = "";
    let emuLib = "";
    beforeAll(() => {
      // The emulated library: the same ql_cuda.cu and kernels.cuh, compiled for the CPU.
      const emu = buildCuda(["--out", path.join(TMP, "emu"), "--emulate", "--quiet"], { ...process.env, NVCC: "none" });
      if (emu.status !== 0) throw new Error(`build-cuda --emulate failed:\n${emu.stdout}\n${emu.stderr}`);
      emuLib = path.join(TMP, "emu", "libquantlens_cuda_emu.so");
      // The harness, linked with the addon's own core objects (or their sources when not built).
      const needed = ["cuda_backend", "hessian", "gemm", "gemm_x86", "hadamard", "hadamard_x86", "thread_pool", "cpu"];
      const objects = needed.map((n) => path.join(CORE_OBJ, `${n}.o`));
      const inputs = objects.every((o) => fs.existsSync(o)) ? objects : needed.map((n) => path.join(CORE, `${n}.cpp`));
      selftest = path.join(TMP, "selftest");
      execFileSync(
        CXX,
        ["-std=c++17", "-O2", "-pthread", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror",
          path.join(CUDA_SRC, "selftest.cpp"), ...inputs, "-ldl", "-o", selftest],
        { stdio: "pipe" },
      );
    }, 240_000);

    function runSelftest(lib: string, args: string[], env: Record<string, string> = {}) {
      const r = spawnSync(selftest, args, {
        encoding: "utf8",
        env: { ...process.env, QUANTLENS_CUDA: "1", QUANTLENS_CUDA_LIB: lib, ...env },
      });
      const lines = r.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      const failed = lines.filter((l) => l.ok === false).map((l) => `${String(l.case)}: ${String(l.detail)}`);
      return { status: r.status, stderr: r.stderr, lines, failed, summary: lines[lines.length - 1] };
    }

    it("emulated on the CPU: every case matches (Hessian/GEMM within tolerance, FWHT bit for bit)", () => {
      const r = runSelftest(emuLib, ["run"]);
      expect(r.lines[0].status).toMatch(/^ok: QuantLens CPU emulation/);
      expect(r.failed).toEqual([]);
      expect(r.summary).toMatchObject({ summary: true, failures: 0 });
      expect(r.summary.cases).toBeGreaterThanOrEqual(29);
      expect(r.status).toBe(0);
    });

    it("emulated, with tiny upload pieces (the several-piece paths)", () => {
      const r = runSelftest(emuLib, ["run"], { QL_CUDA_PIECE_BYTES: "32768" });
      expect(r.failed).toEqual([]);
      expect(r.summary).toMatchObject({ summary: true, failures: 0 });
      expect(r.status).toBe(0);
    });

    it("the engine dispatches: GPTQ and the Hessian update through the (emulated) device give the CPU's results", () => {
      // A layer above worthGptq's threshold (rows·cols² ≥ 4e9) and a Hessian above worthHessian's.
      const script = `
        const k = require(${JSON.stringify(ADDON)});
        const t0 = Date.now();
        let s = 7; const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
        const rows = 16384, cols = 512, n = 8192; // n·cols² ≥ 2e9: worthHessian dispatches too
        const x = Float32Array.from({ length: n * cols }, rnd);
        for (let r = 0; r < n; r++) x[r * cols + 5] *= 20;
        const h64 = new Float64Array(cols * cols);
        k.hessianUpdate(h64, cols, x, n).then(async () => {
          const h = Float32Array.from(h64, (v) => (2 / n) * v);
          const w = Float32Array.from({ length: rows * cols }, rnd);
          const codes = new Uint8Array(rows * cols), scales = new Float32Array(rows * 4), zeros = new Float32Array(rows * 4);
          const r = await k.gptqQuantize(w, h, rows, cols, { bits: 4, group: 128, symmetric: false, blockSize: 128,
            percdamp: 0.01, actOrder: true, staticGroups: false, batchStartGroups: false, maxDampRetries: 4, losses: true },
            codes, scales, zeros, new Int32Array(cols), new Int32Array(cols));
          let hash = 7; for (const c of codes) hash = (hash * 31 + c) >>> 0;
          console.log(JSON.stringify({ cuda: k.info().cuda, h: Array.from(h64.subarray(0, 64)), loss: r.proxyLoss, hash, seconds: (Date.now() - t0) / 1000 }));
        });`;
      const run = (env: Record<string, string | undefined>) => {
        const childEnv = { ...process.env, ...env };
        for (const key of Object.keys(env)) if (env[key] === undefined) delete childEnv[key];
        const out = execFileSync(process.execPath, ["-e", script], { encoding: "utf8", env: childEnv, timeout: 240_000 });
        return JSON.parse(out.trim().split("\n").pop()!) as { cuda: { available: boolean; calls: { hessian: number; gptqLayers: number } }; h: number[]; loss: number; hash: number; seconds: number };
      };
      const cpu = run({ QUANTLENS_CUDA: "0", QUANTLENS_CUDA_LIB: undefined });
      const gpu = run({ QUANTLENS_CUDA_LIB: emuLib, QUANTLENS_CUDA: undefined });
      expect(cpu.cuda.available).toBe(false);
      expect(gpu.cuda.available).toBe(true);
      for (let i = 0; i < cpu.h.length; i++) expect(Math.abs(gpu.h[i] - cpu.h[i])).toBeLessThanOrEqual(1e-6 * Math.abs(cpu.h[i]) + 1e-3);
      expect(gpu.loss / cpu.loss).toBeCloseTo(1, 5);
      expect(gpu.hash).toBe(cpu.hash);
      // The device really took the work (the results alone could not tell: they agree).
      expect(gpu.cuda.calls).toEqual({ hessian: 1, gptqLayers: 1 });
      expect(cpu.cuda.calls).toEqual({ hessian: 0, gptqLayers: 0 });
    }, 300_000);

    it("emulated, out of device memory: false, the backend stays on, the outputs untouched", () => {
      // 1 KiB of "device" memory: every call fails to allocate and reports ENOMEM.
      const r = runSelftest(emuLib, ["run"], { QL_CUDA_EMU_MEM: "1024" });
      const outOfMemory = r.lines.filter((l) => l.ok === false && /returned false \(/.test(String(l.detail)));
      expect(outOfMemory.length).toBeGreaterThanOrEqual(15);
      for (const l of outOfMemory) expect(String(l.detail)).toMatch(/untouched\): cuda \w+: cudaMalloc: out of memory/);
      expect(String(r.summary.status)).toMatch(/^ok: /); // not switched off: ENOMEM is not fatal
    });

    it.skipIf(!gpuListed)(
      `on the GPU: every case matches, real-size layers included${gpuListed ? "" : " (skipped: no NVIDIA GPU here — nvidia-smi lists none)"}`,
      (ctx) => {
        if (!realLib) return ctx.skip(nvccMissing);
        const r = runSelftest(realLib, ["run", "--large"]);
        for (const l of r.lines) console.log(JSON.stringify(l));
        expect(r.lines[0].status).toMatch(/^ok: /);
        expect(r.failed).toEqual([]);
        expect(r.summary).toMatchObject({ summary: true, failures: 0 });
        expect(r.status).toBe(0);
        const pieces = runSelftest(realLib, ["run"], { QL_CUDA_PIECE_BYTES: "32768" });
        expect(pieces.failed).toEqual([]);
      },
      600_000,
    );
  });
});
