/**
 * gptq_layer: GPTQ of one whole layer (W4, group 128, asymmetric; act-order off and on) at LLM
 * sizes, through the engine's `gptqQuantize()` (worker thread; the validation, the thread hop and
 * every step of the kernel are in the timing). `--quick`: a quarter of each dimension.
 *
 * Shapes are [rows = out, cols = in]: 4096×4096 (q/k/v/o of a 7B model), 11008×4096 (gate/up),
 * 4096×11008 (down). W ~ N(0, 0.02²); H = 2/N XᵀX from synthetic activations X [N × cols]
 * (Gaussian + a rank-16 shared part, 1% outlier channels ×20; N = 2048, so H is singular for
 * cols > N and the damping makes it SPD, as with a small calibration set).
 *
 * Flops, the brief's count: 2·rows·cols² for the error updates (rank-B GEMMs and the in-batch
 * updates) + cols³ for the damped inverse's Cholesky factor (the kernel's route needs 2·cols³/3).
 * `sgemm_gflops` is measured here, right before and after each configuration (2048³ NN, same
 * threads; the mean of the two), and `sgemm_basis_seconds` = flops / that rate: the time the flop
 * count needs at the sgemm rate. `ratio_to_sgemm_basis` = seconds / that (the target is ≤ 2).
 *
 * `seconds` is the quantization itself (`losses: false`). `seconds_with_losses` is the default
 * call, which also evaluates tr(E H Eᵀ) for GPTQ, for RTN and for W (three SYRKs, 3·rows·cols²
 * more flops) to report proxyLoss, proxyLossRtn and relProxyLoss.
 */
import { gptqQuantize, sgemm, type GptqInput } from "../../../extension/src/engine/kernels/index";
import { gptqClipQuantize } from "../../../extension/src/engine/quant/gptq-clip";
import { gaussianF32 } from "../data";
import { sig, type BenchCase, type BenchContext, type BenchResult } from "../harness";
import { ratio, timeWithSetup } from "./sgemm";

const SAMPLES = 2048;
const RANK = 16;
const OUTLIER_FRACTION = 0.01;
const OUTLIER_SCALE = 20;
const GROUP = 128;

/** H = 2/N XᵀX, X [N × cols] = Z + F·V with outlier channels (native sgemm). */
async function syntheticHessian(cols: number, samples: number, seed: number): Promise<Float32Array> {
  const X = gaussianF32(samples * cols, seed);
  const F = gaussianF32(samples * RANK, seed + 1, 0, 1.5);
  const V = gaussianF32(RANK * cols, seed + 2);
  await sgemm({ transA: false, transB: false, m: samples, n: cols, k: RANK, alpha: 1, a: F, b: V, beta: 1, c: X });
  const scale = new Float32Array(cols).fill(1);
  for (let j = 0; j < cols; j++) if ((j * 2654435761) % 1000 < OUTLIER_FRACTION * 1000) scale[j] = OUTLIER_SCALE;
  for (let n = 0; n < samples; n++) for (let j = 0; j < cols; j++) X[n * cols + j] *= scale[j];
  const h = new Float32Array(cols * cols);
  await sgemm({ transA: true, transB: false, m: cols, n: cols, k: samples, alpha: 2 / samples, a: X, b: X, beta: 0, c: h });
  // Exactly symmetric (the GEMM's two triangles round alike, but make sure).
  for (let i = 0; i < cols; i++) for (let j = 0; j < i; j++) h[j * cols + i] = h[i * cols + j];
  return h;
}

/** The machine's sgemm rate right now (2048³ NN, median of 3), GFLOP/s. */
async function sgemmRate(ctx: BenchContext): Promise<number> {
  const n = ctx.quick ? 1024 : 2048;
  const a = gaussianF32(n * n, 11);
  const b = gaussianF32(n * n, 12);
  const c = new Float32Array(n * n);
  const t = await timeWithSetup(() => {}, () => sgemm({ transA: false, transB: false, m: n, n, k: n, alpha: 1, a, b, beta: 0, c }), 3);
  return (2 * n * n * n) / t.median / 1e9;
}

export const gptqLayerCase: BenchCase = {
  name: "gptq_layer",
  description: "GPTQ of a whole layer (W4 g128, act-order off/on): lazy batches + rank-128 sgemm updates",
  needsNative: true,
  async run(ctx) {
    const shapes: [number, number][] = ctx.quick
      ? [
          [1024, 1024],
          [2752, 1024],
          [1024, 2752],
        ]
      : [
          [4096, 4096],
          [11008, 4096],
          [4096, 11008],
        ];
    const results: BenchResult[] = [];
    let seed = 100;
    for (const [rows, cols] of shapes) {
      ctx.log(`gptq_layer ${rows}×${cols}: building W and H (N = ${SAMPLES})`);
      const w = gaussianF32(rows * cols, seed++, 0, 0.02);
      const h = await syntheticHessian(cols, ctx.quick ? SAMPLES / 2 : SAMPLES, seed++);
      const flops = 2 * rows * cols * cols + cols * cols * cols;
      // Multi-second runs: one warm-up-free timing each in the full run, median of 3 in --quick.
      const reps = ctx.quick ? 3 : 1;
      const warmup = ctx.quick ? 1 : 0;
      for (const actOrder of [false, true]) {
        const input: GptqInput = { w, h, rows, cols, bits: 4, group: GROUP, symmetric: false, actOrder };
        // The sgemm rate right before and after (the machine may be shared: compare like with like).
        const rateBefore = await sgemmRate(ctx);
        ctx.log(`gptq_layer ${rows}×${cols} act-order ${actOrder ? "on" : "off"} (sgemm ${rateBefore.toFixed(0)} GFLOP/s)`);
        const quant = await timeWithSetup(() => {}, () => gptqQuantize({ ...input, losses: false }), reps, warmup);
        let last: Awaited<ReturnType<typeof gptqQuantize>> | undefined;
        const full = await timeWithSetup(
          () => {},
          async () => {
            last = await gptqQuantize(input);
          },
          reps,
          0,
        );
        const rate = (rateBefore + (await sgemmRate(ctx))) / 2;
        const basis = flops / (rate * 1e9);
        const gflops = flops / quant.median / 1e9;
        results.push({
          name: "gptq_layer",
          shape: [rows, cols],
          bits: 4,
          group: GROUP,
          act_order: actOrder,
          threads: ctx.threads,
          seconds: sig(quant.median),
          flops: sig(flops),
          gflops: sig(gflops),
          ratio_to_peak: ratio(ctx, gflops),
          sgemm_gflops: sig(rate),
          sgemm_basis_seconds: sig(basis),
          ratio_to_sgemm_basis: sig(quant.median / basis, 3),
          seconds_with_losses: sig(full.median),
          ratio_to_sgemm_basis_with_losses: sig(full.median / basis, 3),
          rel_proxy_loss: last ? sig(last.relProxyLoss) : undefined,
          rel_proxy_loss_rtn: last ? sig(last.relProxyLossRtn) : undefined,
          damp_retries: last?.dampRetries,
          max_event_loop_stall_ms: sig(Math.max(quant.stallMs, full.stallMs), 3),
        });
      }
    }
    return results;
  },
};

/**
 * gptq_clip: GPTQ with the per-row clipping search (quant/gptq-clip.ts: 15 candidate shrinks per
 * row, stacked through the kernel) against plain GPTQ on the same layer: W4 g128 act-order,
 * 4096×4096 (q/k/v/o of a 7B model; `--quick`: 1024×1024). Reports both times, their ratio and
 * both relative proxy losses — what the search costs and what it buys on a synthetic layer.
 * The flop basis is plain GPTQ's (gptq_layer), counted once per candidate.
 */
export const gptqClipCase: BenchCase = {
  name: "gptq_clip",
  description: "GPTQ + per-row clipping search vs plain GPTQ (W4 g128 act-order): time ratio and proxy loss",
  needsNative: true,
  async run(ctx) {
    const n = ctx.quick ? 1024 : 4096;
    const w = gaussianF32(n * n, 300, 0, 0.02);
    const h = await syntheticHessian(n, ctx.quick ? SAMPLES / 2 : SAMPLES, 301);
    const input: GptqInput = { w, h, rows: n, cols: n, bits: 4, group: GROUP, symmetric: false, actOrder: true };
    ctx.log(`gptq_clip ${n}×${n}: plain GPTQ`);
    let plain: Awaited<ReturnType<typeof gptqQuantize>> | undefined;
    const tPlain = await timeWithSetup(() => {}, async () => {
      plain = await gptqQuantize(input);
    }, 1, 0);
    ctx.log(`gptq_clip ${n}×${n}: with the clipping search`);
    let clip: Awaited<ReturnType<typeof gptqClipQuantize>> | undefined;
    const tClip = await timeWithSetup(() => {}, async () => {
      clip = await gptqClipQuantize(input);
    }, 1, 0);
    const flops = clip!.runs * (2 * n * n * n + n * n * n);
    const gflops = flops / tClip.median / 1e9;
    return [
      {
        name: "gptq_clip",
        shape: [n, n],
        bits: 4,
        group: GROUP,
        act_order: true,
        threads: ctx.threads,
        seconds: sig(tClip.median),
        seconds_plain: sig(tPlain.median),
        time_ratio_to_plain: sig(tClip.median / tPlain.median, 3),
        candidates: clip!.runs,
        flops: sig(flops),
        gflops: sig(gflops),
        ratio_to_peak: ratio(ctx, gflops),
        rel_proxy_loss: sig(clip!.relProxyLoss),
        rel_proxy_loss_plain: sig(plain!.relProxyLoss),
        rows_clipped: clip!.rowShrink.filter((p) => p < 1).length,
        max_event_loop_stall_ms: sig(Math.max(tPlain.stallMs, tClip.stallMs), 3),
      },
    ];
  },
};
