/**
 * The TypeScript fallback behind kernels/index.ts: chosen by QUANTLENS_NATIVE=0, by the host
 * (Restricted Mode), or when the addon cannot load; it must give the same numbers as native:
 * moments bit for bit equal to the native scalar path (and within MOMENTS_TOL of the SIMD
 * path), conversions bit-identical.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { loadNativeKernels } from "../../extension/src/engine/kernels/binding";
import type * as KernelsModule from "../../extension/src/engine/kernels/index";
import { momentsRef } from "../../extension/src/engine/kernels/reference";
import { tempDir } from "../helpers/paths";
import { bytesDiffer, gaussian, momentsMismatches, NATIVE_DISABLED, randomBits, requireNative, sameMoments } from "./helpers";

type Kernels = typeof KernelsModule;

const k = requireNative();

/** A fresh copy of kernels/index.ts (its backend choice is made once per module instance). */
async function freshKernels(env: Record<string, string>): Promise<Kernels> {
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  vi.resetModules();
  return import("../../extension/src/engine/kernels/index");
}

afterEach(() => {
  vi.unstubAllEnvs();
  k?.setSimd("auto");
});

describe("QUANTLENS_NATIVE=0", () => {
  let kernels: Kernels;
  let log: ReturnType<typeof vi.fn>;
  beforeEach(async () => {
    kernels = await freshKernels({ QUANTLENS_NATIVE: "0" });
    log = vi.fn();
    kernels.configureKernels({ log });
  });

  it("uses the TypeScript kernels and says why, without a warning", () => {
    expect(kernels.kernelBackend()).toEqual({
      native: false,
      reason: "disabled by QUANTLENS_NATIVE=0",
      threads: 1,
      simd: "none (TypeScript)",
    });
    expect(kernels.setThreads(4)).toBe(1);
    expect(log).not.toHaveBeenCalled();
  });

  it("moments: sync, async and the blocked reference agree bit for bit; one block is momentsRef", async () => {
    for (const n of [0, 1, 17, 32768, 32769, 1_500_001]) {
      const x = gaussian(n, 1e4, 1, n + 3);
      x[n >> 1] = NaN;
      const sync = kernels.momentsSync(x);
      expect(sameMoments(await kernels.moments(x), sync)).toBe(true);
      expect(sameMoments(kernels.momentsBlockedRef(x), sync)).toBe(true);
      if (n <= kernels.MOMENTS_BLOCK) expect(sameMoments(sync, momentsRef(x))).toBe(true);
      expect(momentsMismatches(sync, momentsRef(x))).toEqual([]);
    }
  });

  it("async moments and conversions yield to the event loop and honour AbortSignal", async () => {
    const x = new Float32Array(3_000_000).fill(2);
    const controller = new AbortController();
    const p = kernels.moments(x, { signal: controller.signal });
    controller.abort();
    // A fresh module graph has its own CancelledError class: match by name.
    await expect(p).rejects.toMatchObject({ name: "CancelledError", message: "moments cancelled" });
    const c2 = new AbortController();
    const q = kernels.f32ToBf16Async(x, undefined, { signal: c2.signal });
    c2.abort();
    await expect(q).rejects.toThrow("f32ToBf16Async cancelled");
    expect((await kernels.f32ToBf16Async(x))[2_999_999]).toBe(0x4000);
  });

  it.skipIf(NATIVE_DISABLED)("gives the same numbers as the addon", async () => {
    const native = k!;
    for (const n of [3, 32768, 1_000_003]) {
      const x = gaussian(n, -5, 3, n);
      const fallback = kernels.momentsSync(x);
      expect(momentsMismatches(await native.moments(x), fallback)).toEqual([]);
      native.setSimd("scalar");
      expect(sameMoments(native.momentsSync(x), fallback)).toBe(true);
      native.setSimd("auto");
    }
    const bits = randomBits(1_000_003, 9);
    const floats = new Float32Array(bits.buffer);
    const half = Uint16Array.from(bits, (v) => v & 0xffff);
    const toF16 = new Uint16Array(bits.length);
    native.convert("f32_to_f16", floats, toF16);
    expect(bytesDiffer(kernels.f32ToF16(floats), toF16)).toBeUndefined();
    const toBf16 = new Uint16Array(bits.length);
    native.convert("f32_to_bf16", floats, toBf16);
    expect(bytesDiffer(kernels.f32ToBf16(floats), toBf16)).toBeUndefined();
    const fromF16 = new Float32Array(bits.length);
    native.convert("f16_to_f32", half, fromF16);
    expect(bytesDiffer(kernels.f16ToF32(half), fromF16)).toBeUndefined();
    // bf16 -> fp32 agrees except possibly in the quiet bit of signalling NaNs (see convert.test.ts).
    const nonNaN = half.map((h) => ((h & 0x7fff) > 0x7f80 ? 0 : h));
    const fromBf16 = new Float32Array(bits.length);
    native.convert("bf16_to_f32", nonNaN, fromBf16);
    expect(bytesDiffer(kernels.bf16ToF32(nonNaN), fromBf16)).toBeUndefined();
  });
});

describe("when the addon cannot load", () => {
  it("says to build it when it is not built", () => {
    const result = loadNativeKernels({ fromDir: "/", env: {} });
    expect(result).toMatchObject({ ok: false, disabled: false });
    expect(!result.ok && result.reason).toMatch(/^addon not built \(looked for .* above \/; run `npm run build:native`\)$/);
  });

  it("warns once through the host's logger and falls back", async () => {
    const kernels = await freshKernels({ QUANTLENS_NATIVE: "1", QUANTLENS_NATIVE_PATH: "/nonexistent/quantlens_kernels.node" });
    const log = vi.fn();
    kernels.configureKernels({ log });
    const backend = kernels.kernelBackend();
    expect(backend.native).toBe(false);
    expect(backend.reason).toBe("addon not found at /nonexistent/quantlens_kernels.node (QUANTLENS_NATIVE_PATH)");
    expect(kernels.momentsSync(new Float32Array([1, 2, 3]))).toMatchObject({ n: 3, mean: 2, m2: 2 });
    await kernels.moments(new Float32Array([4]));
    kernels.f16ToF32(new Uint16Array(3));
    expect(log).toHaveBeenCalledTimes(1);
    expect(log.mock.calls[0][0]).toMatch(/^QuantLens: native kernels unavailable \(addon not found at .*TypeScript reference kernels\.$/);
  });

  it("a file that is not an addon is refused with the reason", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const fake = path.join(dir, "quantlens_kernels.node");
      fs.writeFileSync(fake, "not a shared library");
      const kernels = await freshKernels({ QUANTLENS_NATIVE: "1", QUANTLENS_NATIVE_PATH: fake });
      kernels.configureKernels({ log: () => {} });
      expect(kernels.kernelBackend().reason).toMatch(/^cannot load .*quantlens_kernels\.node: /);
    } finally {
      cleanup();
    }
  });
});

describe("configureKernels({ allowNative: false }) (Restricted Mode)", () => {
  it("never loads native code and says so", async () => {
    const kernels = await freshKernels({});
    const log = vi.fn();
    kernels.configureKernels({ allowNative: false, log });
    expect(kernels.kernelBackend()).toMatchObject({ native: false, reason: "native code disabled by the host" });
    expect(kernels.momentsSync(new Float32Array([1, 1])).m2).toBe(0);
    expect(log).not.toHaveBeenCalled();
    if (!NATIVE_DISABLED) {
      kernels.configureKernels({ allowNative: true });
      expect(kernels.kernelBackend().native).toBe(true);
    }
  });
});
