/**
 * The addon's promise behaviour: work runs off the JS thread (the event loop keeps turning),
 * cancellation rejects with "cancelled", concurrent calls are independent, bad arguments throw
 * synchronously with their names.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { NativeCancelToken } from "../../extension/src/engine/kernels/binding";
import { gaussian, NATIVE_DISABLED, requireNative, sameMoments } from "./helpers";

const k = requireNative();

/** Big enough that one thread needs well over 10 ms (≈ 0.5 ns/element), small enough for CI. */
const BIG = 30_000_000;

describe.skipIf(NATIVE_DISABLED)("native async behaviour", () => {
  const native = k!;
  let big: Float32Array;
  beforeAll(() => {
    big = new Float32Array(BIG);
    const chunk = gaussian(1 << 20, 0, 1, 1);
    for (let i = 0; i < BIG; i += chunk.length) big.set(chunk.subarray(0, Math.min(chunk.length, BIG - i)), i);
  });
  afterEach(() => {
    native.setThreads(0);
  });

  it("moments() leaves the event loop free: a setTimeout(0) fires before it settles", async () => {
    native.setThreads(1);
    const events: string[] = [];
    const timer = new Promise<void>((resolve) =>
      setTimeout(() => {
        events.push("timeout");
        resolve();
      }, 0),
    );
    let ticks = 0;
    let settled = false;
    const spin = () => {
      if (settled) return;
      ticks++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const started = performance.now();
    const result = await native.moments(big).then((m) => {
      settled = true;
      events.push("moments");
      return m;
    });
    const elapsed = performance.now() - started;
    await timer;
    expect(events).toEqual(["timeout", "moments"]);
    expect(ticks).toBeGreaterThan(1);
    expect(result.n).toBe(BIG);
    // The work itself took long enough for the check to mean something.
    expect(elapsed).toBeGreaterThan(2);
  });

  it("convertAsync() leaves the event loop free too", async () => {
    native.setThreads(1);
    const src = new Float32Array(big.buffer, 0, BIG);
    const dst = new Uint16Array(BIG);
    const events: string[] = [];
    setTimeout(() => events.push("timeout"), 0);
    await native.convertAsync("f32_to_f16", src, dst).then(() => events.push("convert"));
    await new Promise((r) => setTimeout(r, 5));
    expect(events[0]).toBe("timeout");
  });

  describe("cancellation", () => {
    async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
      try {
        await p;
      } catch (err) {
        return err as Error & { code?: string };
      }
      throw new Error("expected the promise to reject");
    }

    it("a token cancelled before the call rejects with 'cancelled'", async () => {
      const token = new native.CancelToken();
      token.cancel();
      expect(token.cancelled).toBe(true);
      const err = await rejection(native.moments(big, token));
      expect(err.message).toBe("cancelled");
      expect(err.code).toBe("ERR_QUANTLENS_CANCELLED");
    });

    it("cancelling while the kernel runs rejects, and the next call works", async () => {
      native.setThreads(1);
      const token = new native.CancelToken();
      expect(token.cancelled).toBe(false);
      const p = native.moments(big, token);
      token.cancel(); // the worker polls between 32768-element blocks; it cannot have finished 900+
      const err = await rejection(p);
      expect(err.message).toBe("cancelled");
      expect(err.code).toBe("ERR_QUANTLENS_CANCELLED");
      expect((await native.moments(big)).n).toBe(BIG);
    });

    it("convertAsync is cancellable", async () => {
      const token = new native.CancelToken();
      const p = native.convertAsync("f32_to_bf16", big, new Uint16Array(BIG), token);
      token.cancel();
      expect((await rejection(p)).code).toBe("ERR_QUANTLENS_CANCELLED");
    });

    it("a token only cancels the calls it was given", async () => {
      const token = new native.CancelToken();
      const other = native.moments(big.subarray(0, 1_000_000));
      const p = native.moments(big, token);
      token.cancel();
      await expect(p).rejects.toThrow("cancelled");
      expect((await other).n).toBe(1_000_000);
    });

    it("only tokens made by the addon are accepted", () => {
      const fake = Object.create(native.CancelToken.prototype) as NativeCancelToken;
      const moments = native.moments as (...args: unknown[]) => Promise<unknown>;
      expect(() => moments(big, fake)).toThrow(/argument 'cancel' must be a CancelToken/);
      expect(() => moments(big, { cancel() {}, cancelled: true })).toThrow(TypeError);
    });
  });

  it("concurrent calls each get their own result", async () => {
    const arrays = Array.from({ length: 8 }, (_, i) => gaussian(500_000 + i * 1001, i, 1 + i, 100 + i));
    const results = await Promise.all(arrays.map((x) => native.moments(x)));
    results.forEach((m, i) => expect(sameMoments(m, native.momentsSync(arrays[i]))).toBe(true));
  });

  it("setThreads while calls are in flight neither hangs nor changes results", async () => {
    const expected = native.momentsSync(big);
    const pending = [native.moments(big), native.moments(big), native.moments(big)];
    for (const n of [1, 3, 2, 0]) native.setThreads(n);
    for (const m of await Promise.all(pending)) expect(sameMoments(m, expected)).toBe(true);
  });

  it("bad arguments throw synchronously, naming the function and argument", () => {
    const moments = native.moments as (...args: unknown[]) => Promise<unknown>;
    const momentsSync = native.momentsSync as (...args: unknown[]) => unknown;
    expect(() => moments(new Float64Array(3))).toThrow("quantlens_kernels.moments(): argument 'x' must be a Float32Array, got a Float64Array");
    expect(() => momentsSync([1, 2, 3])).toThrow(/argument 'x' must be a Float32Array, got an Array/);
    expect(() => moments(new Float32Array(3), 5)).toThrow(/argument 'cancel'/);
    expect(() => native.setThreads(-1)).toThrow(RangeError);
    expect(() => native.setThreads(1.5)).toThrow(/argument 'n' must be an integer in \[0, 1024\]/);
    expect(() => native.setSimd("avx512" as "auto")).toThrow(/'mode' must be 'auto' or 'scalar'/);
    expect(() => native.fmaPeak({ seconds: 100 })).toThrow(/options.seconds/);
  });

  it("info, setThreads and setSimd report what they did", () => {
    const info = native.info();
    expect(info.abiVersion).toBe(native.abiVersion);
    expect(["avx2+fma+f16c", "avx2+fma", "scalar"]).toContain(info.simd);
    expect(native.setThreads(3)).toBe(3);
    expect(native.info().threads).toBe(3);
    expect(native.setThreads(0)).toBe(info.hardwareThreads);
    expect(native.setSimd("scalar")).toBe("scalar");
    expect(native.setSimd("auto")).toBe(info.simd);
  });

  it("fmaPeak measures something plausible", async () => {
    const peak = await native.fmaPeak({ seconds: 0.02, threads: 2 });
    expect(peak.threads).toBe(2);
    expect(peak.one).toBeGreaterThan(0.1);
    expect(peak.all).toBeGreaterThan(peak.one * 0.5);
    expect(["avx2+fma", "scalar"]).toContain(peak.simd);
  });
});
