/**
 * The CUDA backend through the engine, at LLM sizes: run once with the backend and once with
 * QUANTLENS_CUDA=0, then compare. Meant for a machine with an NVIDIA GPU (the CPU path runs
 * anywhere; without a device both runs take the CPU path and `compare` says so).
 *
 *   npx tsx test/bench/cuda-check.ts run  OUT_DIR [--quick]    # one JSON file per backend
 *   QUANTLENS_CUDA=0 npx tsx test/bench/cuda-check.ts run OUT_DIR [--quick]
 *   npx tsx test/bench/cuda-check.ts compare OUT_DIR           # prints one JSON line
 *
 * Per layer (W4, group 128, act-order off and on, Hessian from 8192 tokens with outlier
 * channels): the Hessian update and GPTQ wall times, the proxy losses, and the codes (saved
 * beside the JSON) so `compare` can count how many codes the two backends agree on. The GPU sums
 * in a different order than the CPU's blocked sgemm, so a few codes on rounding boundaries may
 * differ; the proxy losses must agree closely and both must stay below RTN's.
 */
import fs from "node:fs";
import path from "node:path";
import { native } from "../../extension/src/engine/kernels/index";
import { hessianUpdate } from "../../extension/src/engine/kernels/linalg";
import { gptqQuantize } from "../../extension/src/engine/kernels/gptq";
import { Xoshiro128 } from "../fixtures/generator/random";

interface LayerRun {
  name: string;
  rows: number;
  cols: number;
  actOrder: boolean;
  hessianSeconds: number;
  gptqSeconds: number;
  proxyLoss: number;
  proxyLossRtn: number;
  relProxyLoss: number;
  codesFile: string;
}

/** N(0, 1) from the fixtures' seeded generator: the same data on every machine. */
function rng(seed: number): () => number {
  const r = new Xoshiro128(seed);
  return () => r.normal();
}

async function runAll(out: string, quick: boolean) {
  const k = native();
  const info = k?.info();
  const backend = info?.cuda.available ? "cuda" : "cpu";
  fs.mkdirSync(out, { recursive: true });
  const shapes: [string, number, number][] = quick
    ? [["1024x1024", 1024, 1024]]
    : [
        ["q_proj 4096x4096", 4096, 4096],
        ["up_proj 11008x4096", 11008, 4096],
        ["down_proj 4096x11008", 4096, 11008],
      ];
  const tokens = quick ? 2048 : 8192;
  const layers: LayerRun[] = [];
  for (const [name, rows, cols] of shapes) {
    const g = rng(cols * 7 + rows);
    // Activations with a few outlier channels (×20), as real LLM inputs have.
    const scale = new Float32Array(cols).map((_, j) => (j % 97 === 5 ? 20 : 1));
    const h = new Float64Array(cols * cols);
    const chunk = 2048;
    const x = new Float32Array(chunk * cols);
    let hessianSeconds = 0;
    for (let r0 = 0; r0 < tokens; r0 += chunk) {
      for (let i = 0; i < x.length; i++) x[i] = g() * scale[i % cols];
      const t0 = performance.now();
      await hessianUpdate(h, cols, x, chunk);
      hessianSeconds += (performance.now() - t0) / 1000;
    }
    const hf = new Float32Array(cols * cols);
    for (let i = 0; i < hf.length; i++) hf[i] = (2 / tokens) * h[i];
    const w = new Float32Array(rows * cols);
    for (let i = 0; i < w.length; i++) w[i] = g() * 0.02;
    for (const actOrder of [false, true]) {
      const t0 = performance.now();
      const r = await gptqQuantize({ w, rows, cols, h: hf, bits: 4, group: 128, symmetric: false, actOrder, staticGroups: actOrder });
      const gptqSeconds = (performance.now() - t0) / 1000;
      const codesFile = `${backend}-${rows}x${cols}-${actOrder ? "ao" : "plain"}.codes`;
      fs.writeFileSync(path.join(out, codesFile), r.codes);
      layers.push({ name, rows, cols, actOrder, hessianSeconds, gptqSeconds, proxyLoss: r.proxyLoss, proxyLossRtn: r.proxyLossRtn, relProxyLoss: r.relProxyLoss, codesFile });
      process.stderr.write(`${backend} ${name} act-order=${actOrder}: hessian ${hessianSeconds.toFixed(3)} s, gptq ${gptqSeconds.toFixed(3)} s, rel loss ${r.relProxyLoss.toExponential(3)}\n`);
    }
  }
  const after = k?.info();
  const result = { backend, status: after?.cuda.status ?? "addon not loaded", calls: after?.cuda.calls ?? null, threads: after ? (after as { threads?: number }).threads : null, tokens, layers };
  fs.writeFileSync(path.join(out, `${backend}.json`), JSON.stringify(result, null, 1));
  console.log(JSON.stringify({ backend, status: result.status, calls: result.calls }));
}

function compare(out: string) {
  const read = (b: string) => JSON.parse(fs.readFileSync(path.join(out, `${b}.json`), "utf8")) as { layers: LayerRun[]; status: string; calls: unknown };
  if (!fs.existsSync(path.join(out, "cuda.json"))) {
    console.log(JSON.stringify({ compared: false, reason: "no cuda.json: the CUDA backend was not available" }));
    return;
  }
  const gpu = read("cuda");
  const cpu = read("cpu");
  const rows = gpu.layers.map((lg, i) => {
    const lc = cpu.layers[i];
    const a = fs.readFileSync(path.join(out, lg.codesFile));
    const b = fs.readFileSync(path.join(out, lc.codesFile));
    let same = 0;
    for (let j = 0; j < a.length; j++) if (a[j] === b[j]) same++;
    return {
      layer: lg.name,
      actOrder: lg.actOrder,
      codes_equal: same / a.length,
      proxy_loss_rel_diff: Math.abs(lg.proxyLoss - lc.proxyLoss) / lc.proxyLoss,
      gptq_below_rtn: lg.proxyLoss <= lg.proxyLossRtn && lc.proxyLoss <= lc.proxyLossRtn,
      hessian_s: { cuda: lg.hessianSeconds, cpu: lc.hessianSeconds },
      gptq_s: { cuda: lg.gptqSeconds, cpu: lc.gptqSeconds },
    };
  });
  const ok = rows.every((r) => r.codes_equal > 0.999 && r.proxy_loss_rel_diff < 1e-3 && r.gptq_below_rtn);
  console.log(JSON.stringify({ compared: true, ok, gpu_status: gpu.status, gpu_calls: gpu.calls, rows }));
  if (!ok) process.exitCode = 1;
}

const [mode, out, flag] = process.argv.slice(2);
if (!out || (mode !== "run" && mode !== "compare")) {
  console.error("usage: cuda-check.ts run|compare OUT_DIR [--quick]");
  process.exit(1);
}
if (mode === "run") void runAll(out, flag === "--quick");
else compare(out);
