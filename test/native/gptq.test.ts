/**
 * GPTQ for one layer (native-kernels/core/gptq.cpp through kernels/gptq.ts) against the plain
 * TypeScript reference (reference-gptq.ts: no lazy batches, float64 updates) and against the
 * properties the algorithm must keep:
 *   - native ≡ reference: codes identical but for rare rounding ties (bound below), scales and
 *     zeros close, proxy losses within 1e-4 relative, for ragged shapes, every bits / group /
 *     act-order / static-groups combination;
 *   - the proxy loss is never above RTN's (50 random layers with outlier channels);
 *   - diagonal H: no error feedback, so GPTQ is RTN exactly;
 *   - dead inputs, non-SPD H (damping escalates), any lazy-batch width, thread-count
 *     independence, cancellation, the event loop staying free, the TypeScript fallback.
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { CancelledError } from "../../extension/src/engine/errors";
import {
  configureKernels,
  gptqQuantize,
  rtnQuantize,
  type GptqInput,
  type GptqResult,
} from "../../extension/src/engine/kernels/index";
import { gptqReference, proxyLossRef, type GptqOutput, type GptqSettings } from "../../extension/src/engine/kernels/reference-gptq";
import { choleskyRef } from "../../extension/src/engine/kernels/reference-linalg";
import { rtnDequant, rtnParamsRef, type QuantBits } from "../../extension/src/engine/kernels/reference-quant";
import { ROOT, tempDir } from "../helpers/paths";
import { gaussian, NATIVE_DISABLED, requireNative, uniform } from "./helpers";

const k = requireNative();
const CXX = process.env.CXX ?? "g++";
const hasCompiler = spawnSync(CXX, ["--version"], { stdio: "ignore" }).status === 0;

/**
 * Named tolerances, native (float32, lazy batches + GEMM) vs reference (float64, unbatched).
 * The working weights differ by float32 rounding (~1e-7 to 1e-5 relative: the error feedback
 * sums many terms larger than the result, outlier channels and singular H making it worse), so
 * a weight that lands that close to a rounding boundary (x.5 steps) may round the other way; its
 * row then follows another, equally good, error-feedback path. Measured over the comparison
 * matrix below (400 layers, 64 of them with per-row clipping; 2.87M weights, 29700 rows): 54 rows
 * (0.18%) diverged; 170 codes (6e-5) differ; on rows that agree, scales within 1.3e-4 (singular
 * H) and the GPTQ loss within 1.1e-5 relative.
 */
const TOL = {
  /** Rows whose codes differ anywhere (a tie and what follows it in that row), per layer:
   *  at most 1 + this fraction of its rows… */
  divergedRowsPerLayer: 0.06,
  /** The same with batch-start groups: a whole group's range comes from weights carrying a full
   *  batch of float32 GEMM updates (vs float64 ones), so a flip moves a scale and the rest of its
   *  row. Measured: up to 5 of 48 rows on the singular-H layer, 0 elsewhere. */
  divergedRowsPerLayerBatchStart: 0.12,
  /** …and over the whole matrix at most this fraction. */
  divergedRows: 0.005,
  /** |Δscale| / scale on rows whose codes agree (dynamic groups see slightly different W). */
  scale: 5e-4,
  /** |Δloss| / loss with identical codes. */
  loss: 1e-4,
  /** When some rows took another path: |Δloss| / loss ≤ loss + this × (diverged rows / rows),
   *  i.e. each such row may move by 10% of an average row's loss (measured: up to 2.6%). */
  lossPerDivergedRow: 0.1,
  /** Same-algorithm runs that differ only in rounding (batch width, dead-input layers). */
  lossDiverged: 2e-3,
} as const;

// ---- data -----------------------------------------------------------------------------------

interface Layer {
  w: Float32Array;
  h: Float32Array;
  rows: number;
  cols: number;
}

interface LayerShape {
  /** Calibration rows behind H (N < cols gives a singular H: damping must carry it). */
  samples?: number;
  /** Channels whose activations are this many times larger (LLM outlier features). */
  outlierScale?: number;
  outlierFraction?: number;
  /** Shared latent factors: correlated inputs, where error feedback pays. */
  rank?: number;
}

/**
 * W [rows × cols] ~ N(0, 0.02²) with a few large weights; H = 2/N XᵀX from X [N × cols] =
 * Gaussian noise + a low-rank shared part, with a few outlier channels.
 */
function makeLayer(seed: number, rows: number, cols: number, shape: LayerShape = {}): Layer {
  const u = uniform(seed * 7919 + 1);
  const N = shape.samples ?? 2 * cols;
  const rank = shape.rank ?? 4;
  const w = gaussian(rows * cols, 0, 0.02, seed * 31 + 2);
  for (let i = 0; i < w.length; i++) if (u() < 0.002) w[i] *= 8;
  const channelScale = new Float64Array(cols).fill(1);
  const outliers = Math.max(1, Math.round(cols * (shape.outlierFraction ?? 0.03)));
  for (let i = 0; i < outliers; i++) channelScale[Math.floor(u() * cols)] = shape.outlierScale ?? 20;
  const V = gaussian(rank * cols, 0, 1, seed * 31 + 3);
  const Z = gaussian(N * cols, 0, 1, seed * 31 + 4);
  const F = gaussian(N * rank, 0, 1.5, seed * 31 + 5);
  const X = new Float64Array(N * cols);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < cols; j++) {
      let x = Z[n * cols + j];
      for (let r = 0; r < rank; r++) x += F[n * rank + r] * V[r * cols + j];
      X[n * cols + j] = x * channelScale[j];
    }
  }
  return { w, h: hessian(X, N, cols), rows, cols };
}

/** 2/N XᵀX in float64, rounded once to float32 (exactly symmetric). */
function hessian(X: Float64Array, N: number, cols: number): Float32Array {
  const h = new Float32Array(cols * cols);
  const col = new Float64Array(N);
  for (let i = 0; i < cols; i++) {
    for (let n = 0; n < N; n++) col[n] = X[n * cols + i];
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += col[n] * X[n * cols + j];
      h[i * cols + j] = h[j * cols + i] = (2 * s) / N;
    }
  }
  return h;
}

/** λmin of a symmetric H by bisection on "H − μI is positive definite" (the reference Cholesky). */
function smallestEigenvalue(h: Float32Array, n: number): number {
  let lo = -1;
  let hi = 0;
  for (let j = 0; j < n; j++) hi = Math.max(hi, h[j * n + j]);
  const definite = (mu: number) => {
    const a = Float32Array.from(h);
    for (let j = 0; j < n; j++) a[j * n + j] -= mu;
    return choleskyRef(a, n).ok;
  };
  while (!definite(lo)) lo *= 2;
  for (let it = 0; it < 60; it++) {
    const mid = (lo + hi) / 2;
    if (definite(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** H = D + VVᵀ with V [n × rank] Gaussian and a few large D entries: SPD, correlated, cheap. */
function lowRankHessian(n: number, rank: number, seed: number): Float32Array {
  const V = gaussian(n * rank, 0, 1, seed);
  const h = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let x = 0;
      for (let r = 0; r < rank; r++) x += V[i * rank + r] * V[j * rank + r];
      h[i * n + j] = h[j * n + i] = x + (i === j ? 1 + (i % 97 === 0 ? 100 : 0) : 0);
    }
  }
  return h;
}

function settings(o: Partial<GptqSettings> & { bits: QuantBits; group: number }): GptqSettings {
  return {
    symmetric: false,
    blockSize: 128,
    percdamp: 0.01,
    actOrder: false,
    staticGroups: false,
    batchStartGroups: false,
    maxDampRetries: 4,
    losses: true,
    rowShrink: null,
    ...o,
  };
}

function input(layer: Layer, s: GptqSettings): GptqInput {
  return { ...layer, ...s };
}

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
}

/** Dequantized weights of a result, original column order. */
function dequantize(r: GptqOutput | GptqResult, rows: number, cols: number): Float32Array {
  const q = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const g = i * r.ngroups + r.groupIndex[j];
      q[i * cols + j] = rtnDequant(r.codes[i * cols + j], r.scales[g], r.zeros[g]);
    }
  }
  return q;
}

function rowsDiffering(a: Uint8Array, b: Uint8Array, rows: number, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      if (a[r * cols + j] !== b[r * cols + j]) {
        out.push(r);
        break;
      }
    }
  }
  return out;
}

// ---- native vs reference ----------------------------------------------------------------------

interface Comparison {
  name: string;
  layer: Layer;
  s: GptqSettings;
}

/** Ragged shapes (not multiples of 8/32/128) × groups × act-order modes × bits × grids. */
function comparisonMatrix(): Comparison[] {
  // [rows, cols, calibration samples behind H]: the last H is singular (N < cols).
  const shapes: [number, number, number][] = [
    [13, 37, 74],
    [64, 172, 344],
    [172, 64, 128],
    [48, 130, 40],
  ];
  const modes = [
    { actOrder: false, staticGroups: false },
    { actOrder: true, staticGroups: false },
    { actOrder: true, staticGroups: true },
    { actOrder: false, staticGroups: false, batchStartGroups: true },
    { actOrder: true, staticGroups: false, batchStartGroups: true },
    { actOrder: true, staticGroups: true, batchStartGroups: true },
  ];
  const out: Comparison[] = [];
  let seed = 100;
  for (const [rows, cols, samples] of shapes) {
    const layer = makeLayer(seed++, rows, cols, { samples });
    for (const group of [0, 32, 128]) {
      for (const mode of modes) {
        if (group === 0 && (mode.staticGroups || mode.batchStartGroups)) continue; // no groups to take per-channel
        for (const bits of [2, 3, 4, 8] as const) {
          for (const symmetric of [false, true]) {
            if (symmetric && bits !== 4 && bits !== 3) continue; // the grid is covered at 3 and 4 bits
            const s = settings({ bits, group, symmetric, ...mode });
            const h = samples < cols ? ` (singular H, N=${samples})` : "";
            out.push({ name: `${rows}×${cols}${h} g${group} ${bits}b ${symmetric ? "sym" : "asym"} ${modeName(s)}`, layer, s });
          }
        }
      }
    }
    // Per-row clipping (rowShrink ∈ [0.55, 1]) through every group mode, at 3 and 4 bits.
    const rand = uniform(1000 + rows * cols);
    const shrink = Float32Array.from({ length: rows }, () => 0.55 + 0.45 * rand());
    shrink[0] = 1;
    for (const group of [0, 32]) {
      for (const mode of modes) {
        if (group === 0 && (mode.staticGroups || mode.batchStartGroups)) continue;
        for (const bits of [3, 4] as const) {
          const s = settings({ bits, group, ...mode, rowShrink: shrink });
          out.push({ name: `${rows}×${cols} g${group} ${bits}b asym ${modeName(s)}, per-row clipping`, layer, s });
        }
      }
    }
  }
  return out;
}

function modeName(s: GptqSettings): string {
  const order = s.actOrder ? (s.staticGroups ? "act-order+static" : "act-order") : "natural order";
  return s.batchStartGroups ? `${order}, batch-start groups` : order;
}

describe.skipIf(NATIVE_DISABLED)("native GPTQ vs the TypeScript reference", () => {
  const tally = {
    layers: 0,
    rows: 0,
    weights: 0,
    divergedRows: 0,
    byBits: { 2: 0, 3: 0, 4: 0, 8: 0 } as Record<QuantBits, number>,
    mismatchedCodes: 0,
    worstLoss: 0,
    worstScale: 0,
  };
  afterAll(() => {
    expect(tally.divergedRows / tally.rows).toBeLessThanOrEqual(TOL.divergedRows);
    // The measured rates (see TOL): printed so a run documents them.
    console.log(
      `gptq native vs reference: ${tally.layers} layers, ${tally.weights} weights; ` +
        `rows diverged ${tally.divergedRows}/${tally.rows} (by bits ${JSON.stringify(tally.byBits)}), codes differing ${tally.mismatchedCodes}; ` +
        `worst |Δloss|/loss ${tally.worstLoss.toExponential(2)}, worst |Δscale|/scale ${tally.worstScale.toExponential(2)}`,
    );
  });

  it.each(comparisonMatrix().map((c) => [c.name, c] as const))("%s", async (_name, { layer, s }) => {
    const { rows, cols } = layer;
    const nat = await gptqQuantize(input(layer, s));
    expect(nat.backend).toBe("native");
    const ref = gptqReference(layer.w, rows, cols, layer.h, s);

    // Layout and damping do not depend on rounding at all.
    expect(nat.ngroups).toBe(ref.ngroups);
    expect(Array.from(nat.groupIndex)).toEqual(Array.from(ref.groupIndex));
    if (s.actOrder) expect(Array.from(nat.perm!)).toEqual(Array.from(ref.perm));
    else expect(nat.perm).toBeUndefined();
    expect(nat.dampRetries).toBe(ref.dampRetries);
    expect(nat.damp).toBeCloseTo(ref.damp, 12);
    expect(nat.deadColumns).toBe(0);

    const diverged = rowsDiffering(nat.codes, ref.codes, rows, cols);
    tally.layers++;
    tally.rows += rows;
    tally.weights += rows * cols;
    tally.divergedRows += diverged.length;
    for (let i = 0; i < nat.codes.length; i++) if (nat.codes[i] !== ref.codes[i]) tally.mismatchedCodes++;
    expect(diverged.length).toBeLessThanOrEqual(1 + Math.floor(rows * (s.batchStartGroups ? TOL.divergedRowsPerLayerBatchStart : TOL.divergedRowsPerLayer)));
    tally.byBits[s.bits] += diverged.length;

    const divergedSet = new Set(diverged);
    for (let r = 0; r < rows; r++) {
      if (divergedSet.has(r)) continue;
      for (let g = 0; g < nat.ngroups; g++) {
        const i = r * nat.ngroups + g;
        expect(nat.zeros[i]).toBe(ref.zeros[i]);
        const e = rel(nat.scales[i], ref.scales[i]);
        tally.worstScale = Math.max(tally.worstScale, e);
        expect(e).toBeLessThanOrEqual(TOL.scale);
      }
    }

    // The losses: RTN and tr(WHWᵀ) are the same numbers computed two ways; GPTQ's also depends on
    // the path each row took.
    expect(rel(nat.proxyLossRtn, ref.proxyLossRtn)).toBeLessThanOrEqual(TOL.loss);
    expect(rel(nat.weightEnergy, ref.weightEnergy)).toBeLessThanOrEqual(TOL.loss);
    const lossErr = rel(nat.proxyLoss, ref.proxyLoss);
    if (diverged.length === 0) tally.worstLoss = Math.max(tally.worstLoss, lossErr);
    expect(lossErr).toBeLessThanOrEqual(TOL.loss + (TOL.lossPerDivergedRow * diverged.length) / rows);
    // The native loss is the loss of the native codes (evaluated independently, in float64).
    const own = proxyLossRef(errorOf(layer, nat), rows, cols, layer.h);
    expect(rel(nat.proxyLoss, own)).toBeLessThanOrEqual(TOL.loss);
  });
});

function errorOf(layer: Layer, r: GptqResult | GptqOutput): Float64Array {
  const q = dequantize(r, layer.rows, layer.cols);
  return Float64Array.from(layer.w, (w, i) => w - q[i]);
}

// ---- invariants ------------------------------------------------------------------------------

describe.skipIf(NATIVE_DISABLED)("GPTQ invariants", () => {
  afterEach(() => {
    k!.setThreads(0);
  });

  it("proxy loss ≤ RTN's on 50 random layers (outlier channels, all settings)", async () => {
    const u = uniform(4242);
    const ratios: number[] = [];
    for (let seed = 0; seed < 50; seed++) {
      const rows = 8 + Math.floor(u() * 80);
      const cols = 24 + Math.floor(u() * 200);
      const layer = makeLayer(1000 + seed, rows, cols, {
        samples: u() < 0.25 ? Math.floor(cols / 2) : 2 * cols, // some singular H
        outlierScale: [5, 20, 100][seed % 3],
        rank: 1 + (seed % 8),
      });
      const bits = ([2, 3, 4, 8] as const)[seed % 4];
      const group = [0, 16, 32, 128][Math.floor(u() * 4)];
      const actOrder = u() < 0.5;
      const s = settings({ bits, group, symmetric: u() < 0.3, actOrder, staticGroups: actOrder && u() < 0.5 });
      const r = await gptqQuantize(input(layer, s));
      expect(r.proxyLoss, `seed ${seed}: ${rows}×${cols} ${bits}b g${group} ${modeName(s)}`).toBeLessThanOrEqual(r.proxyLossRtn);
      ratios.push(r.proxyLoss / r.proxyLossRtn);
    }
    // Not a near miss: measured GPTQ/RTN min 0.019, median 0.128, max 0.854 over these 50.
    ratios.sort((a, b) => a - b);
    console.log(`gptq/rtn proxy loss over 50 layers: min ${ratios[0].toFixed(3)}, median ${ratios[25].toFixed(3)}, max ${ratios[49].toFixed(3)}`);
    expect(ratios[25]).toBeLessThan(0.9);
  });

  it("rowLoss (GPTQ's accumulated Σ err² less λ‖e‖²) is each row's proxy loss e H eᵀ (native and reference)", async () => {
    let worst = 0;
    for (const [seed, rows, cols, samples, c] of [
      [61, 24, 96, undefined, { group: 0, actOrder: true }],
      [62, 20, 130, undefined, { group: 32, actOrder: true }],
      [63, 16, 64, undefined, { group: 32, actOrder: true, staticGroups: true, blockSize: 16 }],
      [64, 33, 80, undefined, { group: 0, bits: 2 as const }],
      [65, 16, 96, 40, { group: 32, actOrder: true }], // N = 40 < 96 (singular H): λ carries the small directions
    ] as const) {
      const layer = makeLayer(seed, rows, cols, { samples });
      const s = settings({ bits: 3, ...c });
      for (const r of [await gptqQuantize(input(layer, s)), gptqReference(layer.w, rows, cols, layer.h, s)]) {
        const e = errorOf(layer, r);
        for (let i = 0; i < rows; i++) {
          const want = proxyLossRef(e.subarray(i * cols, (i + 1) * cols), 1, cols, layer.h);
          const d = rel(r.rowLoss[i], want);
          worst = Math.max(worst, d);
          expect(d, `${JSON.stringify(c)} row ${i}`).toBeLessThan(1e-4);
        }
      }
    }
    console.log(`rowLoss vs e H eᵀ: worst relative difference ${worst.toExponential(2)}`);
  });

  it("per-row clipping: rows stay independent (a row alone = that row of the layer), shrink 1 = none", async () => {
    const layer = makeLayer(57, 40, 96);
    const u = uniform(58);
    const shrink = Float32Array.from({ length: layer.rows }, () => 0.5 + 0.5 * u());
    for (const c of [{ group: 0, actOrder: true }, { group: 32, actOrder: true }, { group: 32, actOrder: true, staticGroups: true }, { group: 32, actOrder: false }]) {
      const s = settings({ bits: 3, ...c });
      const what = JSON.stringify(c);
      const plain = await gptqQuantize(input(layer, s));
      const ones = await gptqQuantize({ ...input(layer, s), rowShrink: new Float32Array(layer.rows).fill(1) });
      expect(Buffer.compare(Buffer.from(ones.codes), Buffer.from(plain.codes)), what).toBe(0);
      expect(Array.from(ones.scales), what).toEqual(Array.from(plain.scales));
      const full = await gptqQuantize({ ...input(layer, s), rowShrink: shrink });
      expect(Buffer.compare(Buffer.from(full.codes), Buffer.from(plain.codes)), `${what}: clipping changed nothing`).not.toBe(0);
      for (const r of [0, 7, 39]) {
        const row = { ...layer, rows: 1, w: layer.w.slice(r * layer.cols, (r + 1) * layer.cols) };
        const alone = await gptqQuantize({ ...input(row, s), rowShrink: shrink.slice(r, r + 1) });
        expect(Array.from(alone.codes), `${what} row ${r}`).toEqual(Array.from(full.codes.subarray(r * layer.cols, (r + 1) * layer.cols)));
        expect(Array.from(alone.scales), `${what} row ${r}`).toEqual(Array.from(full.scales.subarray(r * full.ngroups, (r + 1) * full.ngroups)));
      }
      if (c.group === 0) {
        // Per-channel: the range [p·min, p·max] keeps the zero point and scales the step by p.
        for (let r = 0; r < layer.rows; r++) {
          expect(rel(full.scales[r], shrink[r] * plain.scales[r])).toBeLessThan(1e-6);
          expect(Math.abs(full.zeros[r] - plain.zeros[r])).toBeLessThanOrEqual(1);
        }
      }
    }
  });

  it("a diagonal H gives no error feedback: codes, scales and zeros are RTN's exactly", async () => {
    const layer = makeLayer(7, 37, 172);
    const diag = new Float32Array(layer.cols * layer.cols);
    const d = gaussian(layer.cols, 0, 1, 8);
    for (let j = 0; j < layer.cols; j++) diag[j * layer.cols + j] = 0.1 + d[j] * d[j] * (j % 11 === 0 ? 50 : 1);
    const cases: Partial<GptqSettings>[] = [
      { group: 32 },
      { group: 0 },
      { group: 128, symmetric: true },
      { group: 32, actOrder: true, staticGroups: true }, // groups keep their natural columns
      { group: 0, actOrder: true }, // per-channel parameters ignore the order
      { group: 64, blockSize: 7 },
    ];
    for (const c of cases) {
      for (const bits of [2, 4, 8] as const) {
        const s = settings({ bits, group: 32, ...c });
        const r = await gptqQuantize({ ...layer, h: diag, ...s });
        const rtn = await rtnQuantize(layer.w, layer.rows, layer.cols, { bits, group: s.group, symmetric: s.symmetric });
        const what = `${bits}b ${JSON.stringify(c)}`;
        expect(Buffer.compare(Buffer.from(r.codes), Buffer.from(rtn.codes)), what).toBe(0);
        expect(Array.from(r.scales), what).toEqual(Array.from(rtn.scales));
        expect(Array.from(r.zeros), what).toEqual(Array.from(rtn.zeros));
        expect(r.proxyLoss).toBe(r.proxyLossRtn);
      }
    }
  });

  it("dead inputs (zero rows/columns of H) get zero weights, no NaN", async () => {
    const layer = makeLayer(11, 24, 100);
    const dead = [0, 5, 6, 50, 99];
    for (const j of dead) {
      for (let i = 0; i < layer.cols; i++) layer.h[j * layer.cols + i] = layer.h[i * layer.cols + j] = 0;
    }
    for (const s of [
      settings({ bits: 4, group: 32 }),
      settings({ bits: 3, group: 0, actOrder: true }),
      settings({ bits: 4, group: 32, actOrder: true, staticGroups: true }),
      settings({ bits: 8, group: 16, symmetric: true, actOrder: true }),
    ]) {
      const r = await gptqQuantize(input(layer, s));
      expect(r.deadColumns).toBe(dead.length);
      const q = dequantize(r, layer.rows, layer.cols);
      for (let i = 0; i < layer.rows; i++) for (const j of dead) expect(q[i * layer.cols + j]).toBe(0);
      for (const x of [...r.scales, ...r.zeros, r.proxyLoss, r.proxyLossRtn, r.weightEnergy, r.damp]) {
        expect(Number.isFinite(x)).toBe(true);
      }
      // Dead columns sort last under act-order (H_ii := 1 is below every live H_ii here), in order.
      if (s.actOrder) expect(Array.from(r.perm!.subarray(layer.cols - dead.length))).toEqual(dead);
      const ref = gptqReference(layer.w, layer.rows, layer.cols, layer.h, s);
      expect(rowsDiffering(r.codes, ref.codes, layer.rows, layer.cols).length).toBeLessThanOrEqual(1);
      expect(rel(r.proxyLoss, ref.proxyLoss)).toBeLessThanOrEqual(TOL.lossDiverged);
    }
    // H = 0: every input dead, W becomes 0, the loss is 0.
    const r = await gptqQuantize({ ...layer, h: new Float32Array(layer.cols * layer.cols), ...settings({ bits: 4, group: 32 }) });
    expect(r.deadColumns).toBe(layer.cols);
    expect(dequantize(r, layer.rows, layer.cols).every((x) => x === 0)).toBe(true);
    expect([r.proxyLoss, r.weightEnergy, r.relProxyLoss]).toEqual([0, 0, 0]);
  });

  it("a non-SPD H escalates the damping ×10 and reports it; hopeless H rejects", async () => {
    const layer = makeLayer(12, 16, 60);
    const n = layer.cols;
    // H' = H − μI with λmin(H') = −0.03·mean(diag H): λ = 0.01·mean(diag H') cannot fix that,
    // λ = 0.1·mean(diag H') can.
    let mean = 0;
    for (let j = 0; j < n; j++) mean += layer.h[j * n + j] / n;
    const mu = smallestEigenvalue(layer.h, n) + 0.03 * mean;
    const h = Float32Array.from(layer.h);
    for (let j = 0; j < n; j++) h[j * n + j] -= mu;
    const s = settings({ bits: 4, group: 32 });
    const r = await gptqQuantize({ ...layer, h, ...s });
    expect(r.dampRetries).toBe(1);
    expect(r.percdamp).toBeCloseTo(0.1, 12);
    const ref = gptqReference(layer.w, layer.rows, n, h, s);
    expect(ref.dampRetries).toBe(1);
    expect(r.damp).toBeCloseTo(ref.damp, 10);
    expect(rowsDiffering(r.codes, ref.codes, layer.rows, n).length).toBeLessThanOrEqual(1);

    // With no retries allowed the same H is refused, naming the problem.
    await expect(gptqQuantize({ ...layer, h, ...s, maxDampRetries: 0 })).rejects.toThrow(/not positive definite/);
    // A negative-definite H cannot be damped into shape.
    const neg = Float32Array.from(layer.h, (x) => -x);
    for (let j = 0; j < n; j++) neg[j * n + j] = Math.abs(neg[j * n + j]) * 0.001;
    await expect(gptqQuantize({ ...layer, h: neg, ...s, maxDampRetries: 2 })).rejects.toThrow(/not positive definite/);
  });

  it("lazy-batch width 1, 7, 128 and > cols give the same result", async () => {
    const measured: string[] = [];
    for (const [rows, cols, group, actOrder] of [
      [40, 300, 32, false],
      [33, 200, 128, true],
      [20, 257, 0, true],
    ] as const) {
      const layer = makeLayer(rows + cols, rows, cols);
      const results: GptqResult[] = [];
      for (const blockSize of [1, 7, 128, cols + 5]) {
        results.push(await gptqQuantize(input(layer, settings({ bits: 4, group, actOrder, blockSize }))));
      }
      for (const r of results.slice(1)) {
        const diverged = rowsDiffering(r.codes, results[0].codes, rows, cols).length;
        const lossErr = rel(r.proxyLoss, results[0].proxyLoss);
        measured.push(`${rows}×${cols}: ${diverged} rows, Δloss ${lossErr.toExponential(1)}`);
        expect(diverged).toBeLessThanOrEqual(1 + Math.floor(rows * TOL.divergedRowsPerLayer));
        expect(lossErr).toBeLessThanOrEqual(TOL.loss + (TOL.lossPerDivergedRow * diverged) / rows);
      }
    }
    console.log(`lazy-batch width 7, 128, > cols vs 1: ${measured.join("; ")}`);
  });

  it("batch-start groups: parameters from the batch's starting weights (gptq.py), so the width matters", async () => {
    const [rows, cols, group] = [24, 256, 32];
    const layer = makeLayer(77, rows, cols);
    const run = (blockSize: number, batchStartGroups: boolean) =>
      gptqQuantize(input(layer, settings({ bits: 3, group, actOrder: true, blockSize, batchStartGroups })));
    // A batch as wide as a group: every group starts a batch, so its parameters come from fully
    // updated weights either way.
    const narrow = await run(group, true);
    const current = await run(group, false);
    expect(narrow.codes).toEqual(current.codes);
    expect(narrow.scales).toEqual(current.scales);
    // Wider batches: groups after the first in a batch read weights without the batch's own
    // updates; with one batch for the whole layer every group's parameters are RTN's of W.
    const wide = await run(cols, true);
    expect(rowsDiffering(wide.codes, current.codes, rows, cols).length).toBeGreaterThan(0);
    const rtnGroup = (r: number, g: number) => {
      const perm = wide.perm!;
      const w = Float32Array.from({ length: group }, (_, c) => layer.w[r * cols + perm[g * group + c]]);
      return rtnParamsRef(w, { bits: 3, symmetric: false });
    };
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < cols / group; g++) {
        const p = rtnGroup(r, g);
        expect(wide.scales[r * wide.ngroups + g]).toBeCloseTo(p.scale, 6);
        expect(wide.zeros[r * wide.ngroups + g]).toBe(p.zero);
      }
    }
    // Still GPTQ: error feedback keeps the proxy loss under RTN's.
    expect(wide.proxyLoss).toBeLessThanOrEqual(wide.proxyLossRtn);

    // Static groups (runs of the original columns) are taken when their first column comes: with
    // one batch for the layer that is W itself, i.e. the up-front parameters; with narrow batches
    // the group's weights carry the earlier batches' error feedback by then.
    const staticRun = (blockSize: number, batchStartGroups: boolean) =>
      gptqQuantize(input(layer, settings({ bits: 3, group, actOrder: true, staticGroups: true, blockSize, batchStartGroups })));
    const upfront = await staticRun(cols, false);
    const lazyWide = await staticRun(cols, true);
    expect(lazyWide.scales).toEqual(upfront.scales);
    expect(lazyWide.codes).toEqual(upfront.codes);
    const lazyNarrow = await staticRun(16, true);
    expect(Array.from(lazyNarrow.groupIndex)).toEqual(Array.from({ length: cols }, (_, j) => Math.floor(j / group)));
    let moved = 0;
    for (let i = 0; i < upfront.scales.length; i++) if (lazyNarrow.scales[i] !== upfront.scales[i]) moved++;
    // (groups whose first column comes in the first batch keep W's parameters)
    expect(moved).toBeGreaterThan(0);
    expect(lazyNarrow.proxyLoss).toBeLessThanOrEqual(lazyNarrow.proxyLossRtn);
    // The TypeScript reference takes them the same way.
    const ref = gptqReference(layer.w, rows, cols, layer.h, settings({ bits: 3, group, actOrder: true, staticGroups: true, blockSize: 16, batchStartGroups: true }));
    expect(rowsDiffering(lazyNarrow.codes, ref.codes, rows, cols).length).toBeLessThanOrEqual(1 + Math.floor(rows * TOL.divergedRowsPerLayerBatchStart));
  });

  it("results do not depend on the thread count (bit for bit)", async () => {
    const layer = makeLayer(21, 150, 333);
    const s = settings({ bits: 4, group: 32, actOrder: true, blockSize: 64 });
    const outs: GptqResult[] = [];
    for (const threads of [1, 2, 3]) {
      k!.setThreads(threads);
      outs.push(await gptqQuantize(input(layer, s)));
    }

    for (const r of outs.slice(1)) {
      expect(Buffer.compare(Buffer.from(r.codes), Buffer.from(outs[0].codes))).toBe(0);
      expect(Buffer.compare(Buffer.from(r.scales.buffer), Buffer.from(outs[0].scales.buffer))).toBe(0);
      expect(r.proxyLoss).toBe(outs[0].proxyLoss);
      expect(r.proxyLossRtn).toBe(outs[0].proxyLossRtn);
    }
  });
});

describe.skipIf(NATIVE_DISABLED)("the portable path", () => {
  it("setSimd('scalar') (what arm64 runs) agrees with the AVX2 path within the tolerances", async () => {
    const layer = makeLayer(22, 70, 190);
    const s = settings({ bits: 4, group: 32, actOrder: true, blockSize: 48 });
    const simd = await gptqQuantize(input(layer, s));
    k!.setSimd("scalar");
    let scalar: GptqResult;
    try {
      scalar = await gptqQuantize(input(layer, s));
    } finally {
      k!.setSimd("auto");
    }
    // The panel kernels are bit-identical (below); sgemm's scalar and FMA kernels round differently.
    const diverged = rowsDiffering(scalar.codes, simd.codes, layer.rows, layer.cols).length;
    expect(diverged).toBeLessThanOrEqual(1 + Math.floor(layer.rows * TOL.divergedRowsPerLayer));
    expect(rel(scalar.proxyLoss, simd.proxyLoss)).toBeLessThanOrEqual(TOL.loss + (TOL.lossPerDivergedRow * diverged) / layer.rows);
  });

  it.skipIf(!hasCompiler)("the AVX2 panel kernel equals the scalar one bit for bit (300 random panels, C++)", () => {
    const { dir, cleanup } = tempDir();
    try {
      const src = path.join(dir, "gptq_panel_test.cpp");
      fs.writeFileSync(src, PANEL_TEST_CPP);
      const exe = path.join(dir, "gptq_panel_test");
      const core = path.join(ROOT, "native-kernels/core");
      const sources = ["gptq_panel", "gptq_x86", "rtn", "rtn_x86", "cpu", "thread_pool"];
      execFileSync(CXX, ["-std=c++17", "-O1", "-pthread", "-ffp-contract=off", `-I${core}`, src, ...sources.map((f) => path.join(core, `${f}.cpp`)), "-o", exe], { stdio: "pipe" });
      const out = execFileSync(exe, { encoding: "utf8" });
      expect(out).toMatch(/^ok /m);
    } finally {
      cleanup();
    }
  }, 120_000);
});

// ---- the API: validation, async, cancellation, fallback ---------------------------------------

describe.skipIf(NATIVE_DISABLED)("gptqQuantize() API", () => {
  const small = makeLayer(31, 8, 40);
  const s = settings({ bits: 4, group: 16 });

  it("throws on bad arguments, naming them", async () => {
    await expect(gptqQuantize({ ...small, ...s, bits: 5 as QuantBits })).rejects.toThrow(/bits must be 2, 3, 4 or 8/);
    await expect(gptqQuantize({ ...small, ...s, rows: 9 })).rejects.toThrow(/w has 320 values, expected rows × cols/);
    await expect(gptqQuantize({ ...small, ...s, h: new Float32Array(10) })).rejects.toThrow(/h has 10 values/);
    await expect(gptqQuantize({ ...small, ...s, group: -1 })).rejects.toThrow(/group must be an integer/);
    await expect(gptqQuantize({ ...small, ...s, blockSize: 0 })).rejects.toThrow(/blockSize/);
    await expect(gptqQuantize({ ...small, ...s, percdamp: NaN })).rejects.toThrow(/percdamp/);
    await expect(gptqQuantize({ ...small, ...s, rowShrink: new Float32Array(7) })).rejects.toThrow(/rowShrink has 7 values, expected rows = 8/);
    for (const bad of [0, 1.5, NaN, -0.5]) {
      const rowShrink = new Float32Array(8).fill(0.9);
      rowShrink[3] = bad;
      await expect(gptqQuantize({ ...small, ...s, rowShrink })).rejects.toThrow(/rowShrink\[3\] is .*; each must be in \(0, 1\]/);
      expect(() => k!.gptqQuantize(small.w, small.h, 8, 40, s, new Uint8Array(320), new Float32Array(24), new Float32Array(24), new Int32Array(40), new Int32Array(40), null, rowShrink)).toThrow(/'rowShrink' \[3\] must be in \(0, 1\]/);
    }
    const h = Float32Array.from(small.h);
    h[3 * 40 + 7] = NaN;
    const bad = /argument 'h' holds a non-finite value \(NaN or ±Inf\) at row 3, column 7/;
    await expect(gptqQuantize({ ...small, ...s, h })).rejects.toThrow(bad);
    await expect(gptqQuantize({ ...small, ...s, h })).rejects.toMatchObject({ name: "RangeError", code: "ERR_QUANTLENS_NON_FINITE" });
    expect(() => gptqReference(small.w, 8, 40, h, s)).toThrow(bad);
    const w = Float32Array.from(small.w);
    w[5 * 40 + 39] = -Infinity;
    await expect(gptqQuantize({ ...small, ...s, w })).rejects.toThrow(/argument 'w' .* at row 5, column 39/);
    await expect(gptqQuantize({ ...small, ...s, w: new Float64Array(320) as unknown as Float32Array })).rejects.toThrow(TypeError);
  });

  it("tiny shapes (1×1, 1×3, 3×1, 17×2, 2×40 with group 16 and block 3) match the reference", async () => {
    for (const [rows, cols] of [
      [1, 1],
      [1, 3],
      [3, 1],
      [17, 2],
      [2, 40],
    ] as const) {
      const layer = makeLayer(rows * 100 + cols, rows, cols, { rank: 1 });
      for (const s of [settings({ bits: 4, group: 16, blockSize: 3 }), settings({ bits: 2, group: 0, actOrder: true })]) {
        const r = await gptqQuantize(input(layer, s));
        const ref = gptqReference(layer.w, rows, cols, layer.h, s);
        expect(Buffer.compare(Buffer.from(r.codes), Buffer.from(ref.codes)), `${rows}×${cols}`).toBe(0);
        expect(rel(r.proxyLoss, ref.proxyLoss)).toBeLessThanOrEqual(TOL.loss);
      }
    }
  });

  it("defaults: block 128, percdamp 0.01, natural order; perm only with act-order", async () => {
    const r = await gptqQuantize({ ...small, bits: 4, group: 16, symmetric: false });
    expect(r.percdamp).toBe(0.01);
    expect(r.perm).toBeUndefined();
    expect(Array.from(r.groupIndex)).toEqual(Array.from({ length: 40 }, (_, j) => Math.floor(j / 16)));
    expect(r.ngroups).toBe(3);
    expect(r.relProxyLoss).toBeCloseTo(r.proxyLoss / r.weightEnergy, 12);
    const noLoss = await gptqQuantize({ ...small, bits: 4, group: 16, symmetric: false, losses: false });
    expect(Number.isNaN(noLoss.proxyLoss)).toBe(true);
    expect(Buffer.compare(Buffer.from(noLoss.codes), Buffer.from(r.codes))).toBe(0);
  });

  it("act-order with dynamic groups: groups follow the permutation (groupIndex = invperm / group)", async () => {
    const layer = makeLayer(32, 10, 70);
    const r = await gptqQuantize(input(layer, settings({ bits: 4, group: 16, actOrder: true })));
    const perm = r.perm!;
    expect([...perm].sort((a, b) => a - b)).toEqual(Array.from({ length: 70 }, (_, j) => j));
    for (let p = 0; p < 70; p++) expect(r.groupIndex[perm[p]]).toBe(Math.floor(p / 16));
    for (let p = 1; p < 70; p++) expect(layer.h[perm[p - 1] * 71]).toBeGreaterThanOrEqual(layer.h[perm[p] * 71]);
    const st = await gptqQuantize(input(layer, settings({ bits: 4, group: 16, actOrder: true, staticGroups: true })));
    expect(Array.from(st.groupIndex)).toEqual(Array.from({ length: 70 }, (_, j) => Math.floor(j / 16)));
  });

  it("an aborted signal rejects with CancelledError, before and during the call", async () => {
    const before = new AbortController();
    before.abort();
    await expect(gptqQuantize({ ...small, ...s }, { signal: before.signal })).rejects.toBeInstanceOf(CancelledError);

    // Big enough (~50 batches of 32 columns, each a sizeable GEMM) that one batch is a small
    // fraction of the layer even when other processes share the cores.
    const n = 1536;
    const layer: Layer = { w: gaussian(1024 * n, 0, 0.02, 34), h: lowRankHessian(n, 16, 33), rows: 1024, cols: n };
    const heavy = settings({ bits: 4, group: 128, blockSize: 32 });
    let t0 = performance.now();
    await gptqQuantize(input(layer, heavy));
    const fullMs = performance.now() - t0;
    const during = new AbortController();
    t0 = performance.now();
    const p = gptqQuantize(input(layer, heavy), { signal: during.signal });
    setImmediate(() => during.abort());
    await expect(p).rejects.toBeInstanceOf(CancelledError);
    // It stopped at a batch boundary, long before the whole layer was done.
    expect(performance.now() - t0).toBeLessThan(fullMs / 2);
  });

  it("a 1024×1024 layer runs off the JS thread: the event loop keeps turning", async () => {
    const n = 1024;
    const h = lowRankHessian(n, 16, 41);
    const w = gaussian(n * n, 0, 0.02, 42);
    let ticks = 0;
    let done = false;
    const spin = () => {
      if (done) return;
      ticks++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const t0 = performance.now();
    const r = await gptqQuantize({ w, h, rows: n, cols: n, bits: 4, group: 128, symmetric: false, actOrder: true });
    done = true;
    const ms = performance.now() - t0;
    expect(r.backend).toBe("native");
    expect(r.proxyLoss).toBeLessThan(r.proxyLossRtn);
    // A blocked loop would give ~0 ticks; a free one gives one per ~0.05 ms or so.
    expect(ticks).toBeGreaterThan(Math.min(1000, ms / 2));
  });

  it("the TypeScript fallback gives the reference's result and honours the signal", async () => {
    configureKernels({ allowNative: false });
    try {
      const layer = makeLayer(51, 12, 50);
      const st = settings({ bits: 3, group: 16, actOrder: true });
      const r = await gptqQuantize(input(layer, st));
      expect(r.backend).toBe("typescript");
      const ref = gptqReference(layer.w, layer.rows, layer.cols, layer.h, st);
      expect(Buffer.compare(Buffer.from(r.codes), Buffer.from(ref.codes))).toBe(0);
      expect(r.proxyLoss).toBe(ref.proxyLoss);

      const big = makeLayer(52, 256, 300, { samples: 300 });
      const ac = new AbortController();
      const p = gptqQuantize(input(big, settings({ bits: 4, group: 32 })), { signal: ac.signal });
      setTimeout(() => ac.abort(), 30);
      await expect(p).rejects.toBeInstanceOf(CancelledError);
    } finally {
      configureKernels({ allowNative: true });
    }
  });
});

/** Random panels through gptqPanelScalar and gptqPanelAvx2 (all group modes, bits, grids, ragged lanes). */
const PANEL_TEST_CPP = String.raw`
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>
#include "gptq_panel.h"
#include "kernels_x86.h"
using namespace ql;
int main() {
#if QL_X86_SIMD
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) { printf("ok no avx2\n"); return 0; }
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> ui(0, 1 << 30);
  int fails = 0;
  const int bitsList[4] = {2, 3, 4, 8};
  for (int c = 0; c < 300; c++) {
    const size_t cols = 20 + ui(rng) % 200, lanes = 1 + ui(rng) % 16;
    const size_t G = ui(rng) % 3 == 0 ? cols : 8 + ui(rng) % 40;
    const size_t i1 = ui(rng) % cols, i2 = std::min(cols, i1 + 1 + ui(rng) % 64);
    GptqLayout L{};
    L.rows = lanes, L.cols = cols, L.G = G, L.ng = (cols + G - 1) / G;
    L.mode = G == cols ? GptqGroupMode::PerChannel : ui(rng) % 2 ? GptqGroupMode::Static : GptqGroupMode::Dynamic;
    L.spec = {bitsList[ui(rng) % 4], ui(rng) % 2 == 0};
    L.maxq = (1 << L.spec.bits) - 1;
    std::vector<int32_t> perm(cols);
    for (size_t j = 0; j < cols; j++) perm[j] = static_cast<int32_t>(j);
    std::shuffle(perm.begin(), perm.end(), rng);
    L.perm = perm.data();
    std::vector<float> W(lanes * cols), U(cols * cols, 0.0f);
    for (auto& v : W) v = nd(rng) * (ui(rng) % 50 == 0 ? 10.0f : 1.0f);
    for (size_t i = 0; i < cols; i++) {
      U[i * cols + i] = 0.5f + std::abs(nd(rng));
      for (size_t j = i + 1; j < cols; j++) U[i * cols + j] = 0.3f * nd(rng);
    }
    std::vector<float> s0(lanes * L.ng), z0(lanes * L.ng);
    for (size_t l = 0; l < lanes; l++)
      for (size_t g = 0; g < L.ng; g++)
        rtn_params(W.data() + l * cols + g * G, std::min(G, cols - g * G), 1, L.spec, &s0[l * L.ng + g], &z0[l * L.ng + g]);
    const size_t ldErr = 16;
    std::vector<float> e1(64 * ldErr, 7.0f), e2(e1), wt1((i2 - i1) * 16), wt2(wt1), g1(G), g2(G), s1(s0), s2(s0), z1(z0), z2(z0);
    std::vector<uint8_t> c1(lanes * cols, 99), c2(c1);
    const GptqPanel p1{&L, W.data(), lanes, U.data(), i1, i2, e1.data(), ldErr, c1.data(), s1.data(), z1.data(), wt1.data(), g1.data()};
    const GptqPanel p2{&L, W.data(), lanes, U.data(), i1, i2, e2.data(), ldErr, c2.data(), s2.data(), z2.data(), wt2.data(), g2.data()};
    gptqPanelScalar(p1);
    gptqPanelAvx2(p2);
    if (std::memcmp(e1.data(), e2.data(), e1.size() * 4) || c1 != c2 || std::memcmp(s1.data(), s2.data(), s1.size() * 4) ||
        std::memcmp(z1.data(), z2.data(), z1.size() * 4) || std::memcmp(wt1.data(), wt2.data(), wt1.size() * 4)) {
      fails++;
      printf("FAIL panel %d\n", c);
    }
  }
  printf("%s 300 panels\n", fails ? "FAIL" : "ok");
  return fails ? 1 : 0;
#else
  printf("ok no x86 SIMD\n");
  return 0;
#endif
}
`;
