/**
 * sgemm (core/gemm.h through kernels/linalg.ts) vs the float64 reference `sgemmRef`:
 *   - ragged shapes (not multiples of the 6×16 tile, the 256-deep K block, the 192-row M block or
 *     the 4096-wide N panel), all four transposes, alpha/beta, padded strides, both micro-kernels;
 *   - beta = 0 never reads C (NaN-filled C), padding between rows is never written;
 *   - results are the same for any thread count (bit for bit);
 *   - NaN/Inf inputs, bad shapes and overlaps are refused naming the argument; cancellation;
 *     the event loop keeps turning during a large product.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CancelledError } from "../../extension/src/engine/errors";
import { configureKernels, sgemm, type SgemmArgs } from "../../extension/src/engine/kernels/index";
import { sgemmRef } from "../../extension/src/engine/kernels/reference-linalg";
import { gaussian, NATIVE_DISABLED, requireNative } from "./helpers";

const k = requireNative();

/**
 * |C − C_ref| ≤ SGEMM_TOL · (|alpha|·(|A|·|B|) + |beta·C0|) per element. The native kernel sums
 * fp32 FMA chains of ≤ 256 terms and adds the blocks into C in fp32: worst cases measured ~3e-7
 * (about 2.5 ε); a dropped or doubled term is off by ≥ 1/k of the scale (≥ 2e-4 here).
 */
const SGEMM_TOL = 4e-6;

interface Shape {
  m: number;
  n: number;
  k: number;
}

const SHAPES: Shape[] = [
  { m: 1, n: 1, k: 1 },
  { m: 7, n: 13, k: 5 },
  { m: 129, n: 67, k: 300 },
  { m: 257, n: 255, k: 33 },
  { m: 6, n: 16, k: 256 },
  { m: 1, n: 300, k: 517 },
  { m: 301, n: 1, k: 97 },
  { m: 197, n: 35, k: 1 },
  { m: 0, n: 5, k: 3 },
  { m: 5, n: 0, k: 3 },
  { m: 5, n: 3, k: 0 },
];

/** alpha, beta; beta = 0 runs with NaN in C. */
const SCALARS: [number, number][] = [
  [1, 0],
  [-0.5, 1.5],
  [2, 0],
  [0, 0.75],
];

interface Case extends SgemmArgs {
  c0: Float32Array;
}

/** A case with strides padded by `pad` (the pad elements hold sentinels that must survive). */
function makeCase(s: Shape, transA: boolean, transB: boolean, alpha: number, beta: number, pad: number, seed: number): Case {
  const aRows = transA ? s.k : s.m, aCols = transA ? s.m : s.k;
  const bRows = transB ? s.n : s.k, bCols = transB ? s.k : s.n;
  const lda = aCols + pad, ldb = bCols + pad, ldc = s.n + pad;
  const a = gaussian(Math.max(0, aRows * lda), 0, 1, seed);
  const b = gaussian(Math.max(0, bRows * ldb), 0.5, 1, seed + 1);
  const c = beta === 0 ? new Float32Array(s.m * ldc).fill(NaN) : gaussian(s.m * ldc, 0, 1, seed + 2);
  for (let i = 0; i < s.m; i++) for (let j = s.n; j < ldc; j++) c[i * ldc + j] = 12345;
  return { transA, transB, ...s, alpha, beta, a, lda, b, ldb, c, ldc, c0: c.slice() };
}

/** Elements over tolerance, as messages ([] when the product is right and the padding intact). */
function mismatches(actual: Float32Array, cs: Case): string[] {
  const ref = { ...cs, c: cs.c0.slice() };
  sgemmRef(ref);
  // |alpha|·(|A|·|B|) + |beta·C0|: the same product on absolute values.
  const scale = { ...cs, alpha: Math.abs(cs.alpha), beta: 0, a: cs.a.map(Math.abs), b: cs.b.map(Math.abs), c: new Float32Array(cs.c.length) };
  sgemmRef(scale);
  const ldc = cs.ldc!;
  const bad: string[] = [];
  for (let i = 0; i < cs.m; i++) {
    for (let j = 0; j < ldc; j++) {
      const at = i * ldc + j;
      if (j >= cs.n) {
        if (actual[at] !== 12345) bad.push(`padding C[${i}][${j}] overwritten: ${actual[at]}`);
        continue;
      }
      const bound = SGEMM_TOL * (scale.c[at] + (cs.beta === 0 ? 0 : Math.abs(cs.beta * cs.c0[at]))) + 1e-30;
      const err = Math.abs(actual[at] - ref.c[at]);
      if (!(err <= bound)) bad.push(`C[${i}][${j}] = ${actual[at]}, expected ${ref.c[at]} (|Δ| ${err.toExponential(2)} > ${bound.toExponential(2)})`);
    }
  }
  return bad.slice(0, 5);
}

function label(s: Shape, tA: boolean, tB: boolean): string {
  return `${s.m}×${s.n}×${s.k} ${tA ? "T" : "N"}${tB ? "T" : "N"}`;
}

describe.skipIf(NATIVE_DISABLED)("native sgemm", () => {
  const native = k!;
  afterEach(() => {
    native.setSimd("auto");
    native.setThreads(0);
  });

  const grid: [string, Shape, boolean, boolean][] = [];
  for (const s of SHAPES) for (const tA of [false, true]) for (const tB of [false, true]) grid.push([label(s, tA, tB), s, tA, tB]);

  it.each(grid)("%s matches the float64 reference for every alpha/beta, tight and padded strides", async (_l, s, tA, tB) => {
    let seed = 1;
    for (const [alpha, beta] of SCALARS) {
      for (const pad of [0, 3]) {
        const cs = makeCase(s, tA, tB, alpha, beta, pad, seed++);
        await sgemm(cs);
        expect(mismatches(cs.c, cs), `alpha ${alpha} beta ${beta} pad ${pad}`).toEqual([]);
      }
    }
  });

  it.each([
    { m: 200, n: 4100, k: 7 }, // two N panels
    { m: 390, n: 50, k: 600 }, // three K blocks, three M blocks
    { m: 13, n: 29, k: 1000 },
  ])("$m×$n×$k (panel/block edges) in all transposes, both micro-kernels", async (s) => {
    for (const simd of ["auto", "scalar"] as const) {
      native.setSimd(simd);
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          const cs = makeCase(s, tA, tB, -1.25, 0.5, 1, 40);
          await sgemm(cs);
          expect(mismatches(cs.c, cs), `${simd} ${label(s, tA, tB)}`).toEqual([]);
        }
      }
    }
  });

  it("the scalar micro-kernel matches on the ragged shapes too", async () => {
    native.setSimd("scalar");
    for (const s of SHAPES) {
      const cs = makeCase(s, true, false, 0.5, 1, 2, 77);
      await sgemm(cs);
      expect(mismatches(cs.c, cs), label(s, true, false)).toEqual([]);
    }
  });

  it("results do not depend on the thread count (bit for bit)", async () => {
    const s = { m: 333, n: 517, k: 700 };
    const outputs: Float32Array[] = [];
    for (const threads of [1, 2, 3]) {
      native.setThreads(threads);
      const cs = makeCase(s, false, true, 1, 0, 0, 5);
      await sgemm(cs);
      outputs.push(cs.c);
    }
    expect(Buffer.from(outputs[1].buffer).equals(Buffer.from(outputs[0].buffer))).toBe(true);
    expect(Buffer.from(outputs[2].buffer).equals(Buffer.from(outputs[0].buffer))).toBe(true);
  });

  it("the synchronous small path and the worker path agree", async () => {
    // 40³ runs in sgemmSync, 41×40×40 just above the threshold in the worker; compare the same rows.
    const small = makeCase({ m: 40, n: 40, k: 40 }, false, false, 1, 0, 0, 9);
    await sgemm(small);
    const big = makeCase({ m: 41, n: 40, k: 40 }, false, false, 1, 0, 0, 9);
    big.a.set(small.a);
    await sgemm(big);
    expect(Buffer.from(big.c.buffer, 0, 1600 * 4).equals(Buffer.from(small.c.buffer))).toBe(true);
  });

  describe("refusals", () => {
    const ok = (): SgemmArgs => ({
      transA: false, transB: false, m: 4, n: 5, k: 6, alpha: 1,
      a: new Float32Array(24), b: new Float32Array(30), beta: 0, c: new Float32Array(20),
    });

    it("NaN or Inf in a, b (or c when beta ≠ 0) rejects naming the argument and element; C untouched", async () => {
      for (const [name, v] of [["a", NaN], ["b", Infinity], ["c", -Infinity]] as const) {
        const args = { ...ok(), a: gaussian(24, 0, 1, 1), b: gaussian(30, 0, 1, 2), c: gaussian(20, 0, 1, 3), beta: 1 };
        args[name][2 * (name === "a" ? 6 : 5) + 3] = v; // row 2, column 3
        const before = args.c.slice();
        const err = await sgemm(args).then(() => null, (e: unknown) => e as Error & { code?: string });
        expect(err).toBeInstanceOf(RangeError);
        expect(err?.message).toMatch(new RegExp(`sgemm\\(\\): argument '${name}' holds a non-finite value .* at row 2, column 3`));
        expect(err?.code).toBe("ERR_QUANTLENS_NON_FINITE");
        if (name !== "c") expect(Array.from(args.c)).toEqual(Array.from(before));
      }
    });

    it("the same check runs on the worker path (large calls)", async () => {
      const a = gaussian(300 * 300, 0, 1, 4);
      a[299 * 300 + 299] = NaN;
      const args: SgemmArgs = { transA: true, transB: false, m: 300, n: 300, k: 300, alpha: 1, a, b: gaussian(90000, 0, 1, 5), beta: 0, c: new Float32Array(90000) };
      await expect(sgemm(args)).rejects.toThrow(/sgemm\(\): argument 'a' holds a non-finite value .* at row 299, column 299/);
    });

    it("beta = 0 ignores NaN in C", async () => {
      const args = { ...ok(), a: gaussian(24, 0, 1, 1), b: gaussian(30, 0, 1, 2), c: new Float32Array(20).fill(NaN) };
      await sgemm(args);
      expect(args.c.every(Number.isFinite)).toBe(true);
    });

    it("bad shapes, strides, types and overlaps throw naming the argument", async () => {
      await expect(sgemm({ ...ok(), a: new Float32Array(23) })).rejects.toThrow(/sgemm\(\): a has 23 elements; a 4×6 matrix with row stride 6 needs 24/);
      await expect(sgemm({ ...ok(), lda: 5 })).rejects.toThrow(/lda \(5\) must be an integer ≥ the 6 columns of a/);
      await expect(sgemm({ ...ok(), transB: true, ldb: 7 })).rejects.toThrow(/b has 30 elements; a 5×6 matrix with row stride 7 needs 34/);
      await expect(sgemm({ ...ok(), m: 4.5 })).rejects.toThrow(/m must be an integer/);
      await expect(sgemm({ ...ok(), alpha: NaN })).rejects.toThrow(/alpha must be a finite/);
      await expect(sgemm({ ...ok(), c: new Float64Array(20) as unknown as Float32Array })).rejects.toThrow(/c must be a Float32Array, got Float64Array/);
      const shared = new Float32Array(64);
      await expect(sgemm({ ...ok(), a: shared.subarray(0, 24), c: shared.subarray(20, 40) })).rejects.toThrow(/c overlaps a/);
    });

    it("the addon itself refuses what would crash it", () => {
      const f = native.sgemm as (...args: unknown[]) => Promise<void>;
      const a = new Float32Array(24), b = new Float32Array(30), c = new Float32Array(20);
      expect(() => f(false, false, 4, 5, 6, 1, a, 6, b, 5, 0, c, 4)).toThrow(/argument 'ldc' is 4/);
      expect(() => f(false, false, 4, 5, 6, 1, a, 6, b, 5, 0, new Float32Array(19), 5)).toThrow(/argument 'c' has 19 elements/);
      expect(() => f(0, false, 4, 5, 6, 1, a, 6, b, 5, 0, c, 5)).toThrow(/argument 'transA' must be a boolean/);
      expect(() => native.sgemmSync(false, false, 300, 300, 300, 1, new Float32Array(90000), 300, new Float32Array(90000), 300, 0, new Float32Array(90000), 300)).toThrow(/use sgemm\(\)/);
    });
  });

  describe("a large product (1536³)", () => {
    const n = 1536;
    const big = (): SgemmArgs => ({
      transA: false, transB: false, m: n, n, k: n, alpha: 1,
      a: gaussian(n * n, 0, 1, 11), b: gaussian(n * n, 0, 1, 12), beta: 0, c: new Float32Array(n * n),
    });

    it("an aborted signal rejects with CancelledError, before and during the call", async () => {
      const pre = new AbortController();
      pre.abort();
      await expect(sgemm(big(), { signal: pre.signal })).rejects.toBeInstanceOf(CancelledError);
      const during = new AbortController();
      const started = performance.now();
      const p = sgemm(big(), { signal: during.signal });
      setTimeout(() => during.abort(), 5);
      await expect(p).rejects.toBeInstanceOf(CancelledError);
      // Cancelled between blocks: far sooner than the ~50–100 ms the product takes.
      expect(performance.now() - started).toBeLessThan(1000);
    });

    it("keeps the event loop turning (1 ms interval probe)", async () => {
      const args = big();
      let last = performance.now();
      let worst = 0;
      let ticks = 0;
      const probe = setInterval(() => {
        const now = performance.now();
        worst = Math.max(worst, now - last);
        last = now;
        ticks++;
      }, 1);
      const started = performance.now();
      await sgemm(args);
      const elapsed = performance.now() - started;
      clearInterval(probe);
      expect(elapsed).toBeGreaterThan(20);
      expect(ticks).toBeGreaterThan(3);
      // The JS thread only waits; its worst gap is scheduling noise, not the product.
      expect(worst).toBeLessThan(Math.max(60, elapsed / 3));
      // Spot-check one row against the reference.
      const row = { ...args, m: 1, c: new Float32Array(n) };
      sgemmRef(row);
      for (let j = 0; j < n; j += 97) expect(Math.abs(args.c[j] - row.c[j])).toBeLessThan(1e-3);
    });
  });
});

describe("sgemm TypeScript fallback (no addon)", () => {
  beforeAll(() => configureKernels({ allowNative: false }));
  afterAll(() => configureKernels({ allowNative: true }));

  it("is the float64 reference, computed in row slices between event-loop turns", async () => {
    // n·k = 300·300: 93 rows per turn, so 200 rows take three slices.
    const cs = makeCase({ m: 200, n: 300, k: 300 }, true, true, 0.5, 2, 1, 3);
    let turns = 0;
    const spin = setInterval(() => turns++, 0);
    await sgemm(cs);
    clearInterval(spin);
    const ref = { ...cs, c: cs.c0.slice() };
    sgemmRef(ref);
    expect(Buffer.from(cs.c.buffer).equals(Buffer.from(ref.c.buffer))).toBe(true);
    expect(mismatches(cs.c, cs)).toEqual([]);
    expect(turns).toBeGreaterThan(0);
  });

  it("refuses NaN/Inf with the same message, ignores C when beta = 0, and honours abort", async () => {
    const cs = makeCase({ m: 5, n: 4, k: 3 }, false, false, 1, 1, 0, 4);
    cs.b[1 * 4 + 2] = NaN;
    await expect(sgemm(cs)).rejects.toThrow(/sgemm\(\): argument 'b' holds a non-finite value .* at row 1, column 2/);
    const nanC = makeCase({ m: 5, n: 4, k: 3 }, false, false, 1, 0, 0, 5);
    await sgemm(nanC);
    expect(nanC.c.every(Number.isFinite)).toBe(true);
    const controller = new AbortController();
    const p = sgemm(makeCase({ m: 400, n: 300, k: 300 }, false, false, 1, 0, 0, 6), { signal: controller.signal });
    controller.abort();
    await expect(p).rejects.toBeInstanceOf(CancelledError);
  });
});
