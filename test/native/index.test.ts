/**
 * The engine's kernel API (extension/src/engine/kernels/index.ts) with the addon loaded:
 * dispatch to native, argument validation, AbortSignal cancellation, addon discovery.
 */
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CancelledError } from "../../extension/src/engine/errors";
import { nativeAddonCandidates, NATIVE_ADDON_RELATIVE } from "../../extension/src/engine/kernels/binding";
import * as kernels from "../../extension/src/engine/kernels/index";
import { f16ToF32Ref, f32ToF16Ref, momentsRef } from "../../extension/src/engine/kernels/reference";
import { ROOT } from "../helpers/paths";
import { bytesDiffer, gaussian, momentsMismatches, NATIVE_DISABLED, randomBits, requireNative, sameMoments } from "./helpers";

const k = requireNative();

describe.skipIf(NATIVE_DISABLED)("kernels/index.ts on the native backend", () => {
  const native = k!;
  afterEach(() => {
    kernels.setThreads(0);
  });

  it("reports the native backend", () => {
    const backend = kernels.kernelBackend();
    expect(backend).toMatchObject({ native: true, threads: native.info().threads, simd: native.info().simd });
    expect(backend.reason).toBeUndefined();
    expect(backend.path).toBe(path.join(ROOT, NATIVE_ADDON_RELATIVE));
  });

  it("moments and momentsSync go to the addon, small and large", async () => {
    for (const n of [0, 5, 1000, 70_000, 2_000_003]) {
      const x = gaussian(n, 3, 2, n);
      const expected = native.momentsSync(x);
      expect(sameMoments(kernels.momentsSync(x), expected)).toBe(true);
      expect(sameMoments(await kernels.moments(x), expected)).toBe(true);
      expect(momentsMismatches(expected, momentsRef(x))).toEqual([]);
    }
  });

  it("conversions allocate dst, or fill the one given, bit-identical to the references", async () => {
    const half = Uint16Array.from(randomBits(100_001, 1), (v) => v & 0x7bff); // finite fp16 only
    const expected = new Float32Array(half.length);
    f16ToF32Ref(half, expected);
    expect(bytesDiffer(kernels.f16ToF32(half), expected)).toBeUndefined();
    const dst = new Float32Array(half.length);
    expect(kernels.f16ToF32(half, dst)).toBe(dst);
    expect(bytesDiffer(dst, expected)).toBeUndefined();
    expect(bytesDiffer(await kernels.f16ToF32Async(half), expected)).toBeUndefined();

    const floats = gaussian(100_001, 0, 100, 2);
    const toHalf = new Uint16Array(floats.length);
    f32ToF16Ref(floats, toHalf);
    expect(bytesDiffer(kernels.f32ToF16(floats), toHalf)).toBeUndefined();
    expect(bytesDiffer(await kernels.f32ToF16Async(floats), toHalf)).toBeUndefined();
    expect(kernels.bf16ToF32(kernels.f32ToBf16(floats)).length).toBe(floats.length);
  });

  it("validates arguments with errors that name them", async () => {
    const call = kernels as unknown as Record<string, (...args: unknown[]) => unknown>;
    expect(() => call.momentsSync(new Float64Array(2))).toThrow("momentsSync(): x must be a Float32Array, got Float64Array");
    await expect(call.moments([1, 2]) as Promise<unknown>).rejects.toThrow("moments(): x must be a Float32Array, got Array");
    expect(() => call.f16ToF32(new Float32Array(2))).toThrow("f16ToF32(): src must be a Uint16Array, got Float32Array");
    expect(() => call.f16ToF32(new Uint16Array(2), new Uint16Array(2))).toThrow("f16ToF32(): dst must be a Float32Array, got Uint16Array");
    expect(() => kernels.f32ToBf16(new Float32Array(4), new Uint16Array(3))).toThrow(RangeError);
    expect(() => kernels.f32ToBf16(new Float32Array(4), new Uint16Array(3))).toThrow("f32ToBf16(): dst.length (3) must equal src.length (4)");
    const buffer = new ArrayBuffer(64);
    expect(() => kernels.f16ToF32(new Uint16Array(buffer, 0, 8), new Float32Array(buffer, 8, 8))).toThrow(/dst overlaps src/);
    expect(() => kernels.setThreads(-2)).toThrow("setThreads(): n must be an integer in [0, 1024] (0 = all cores), got -2");
    expect(kernels.setThreads(1)).toBe(1);
  });

  it("an AbortSignal cancels native calls with CancelledError", async () => {
    const x = new Float32Array(20_000_000).fill(1);
    kernels.setThreads(1);
    // moments of 2·10^7 values takes a few ms, about what a descheduled or GC-paused JS thread can
    // lose between the call and abort(): queue the call behind signal-less ones that fill libuv's
    // pool (4 threads by default), so it is still waiting when the signal fires.
    const blockers = Array.from({ length: 8 }, () => kernels.moments(x));
    const controller = new AbortController();
    const p = kernels.moments(x, { signal: controller.signal });
    controller.abort();
    await expect(p).rejects.toBeInstanceOf(CancelledError);
    await Promise.all(blockers);
    await expect(kernels.moments(x, { signal: controller.signal })).rejects.toThrow("moments cancelled");

    const c2 = new AbortController();
    const conv = kernels.f32ToF16Async(x, undefined, { signal: c2.signal });
    c2.abort();
    await expect(conv).rejects.toThrow("f32ToF16Async cancelled");

    // A signal that is never aborted changes nothing.
    const m = await kernels.moments(x, { signal: new AbortController().signal });
    expect(m).toMatchObject({ n: x.length, mean: 1, m2: 0, min: 1, max: 1 });
  });

  it("fmaPeak is available through the API", async () => {
    const peak = await kernels.fmaPeak({ seconds: 0.02 });
    expect(peak.one).toBeGreaterThan(0);
  });
});

describe("addon discovery", () => {
  const addon = path.join(ROOT, NATIVE_ADDON_RELATIVE);

  it("finds the addon from the bundles in dist/ and from the sources", () => {
    for (const from of ["dist", "extension/src/engine/kernels", "."]) {
      expect(nativeAddonCandidates({ fromDir: path.join(ROOT, from), env: {} })).toContain(addon);
    }
  });

  it("QUANTLENS_NATIVE_PATH names the file explicitly", () => {
    expect(nativeAddonCandidates({ env: { QUANTLENS_NATIVE_PATH: "/opt/q/k.node" } })).toEqual(["/opt/q/k.node"]);
  });
});
