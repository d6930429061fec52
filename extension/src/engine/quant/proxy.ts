import { sgemm } from "../kernels/linalg";

/**
 * GPTQ's proxy loss of a quantized layer, `tr((W−Q) H (W−Q)ᵀ)`, and `tr(W H Wᵀ)` to normalise
 * it. W, Q: [out × in]; H: [in × in] (float64, symmetric).
 */
export async function proxyLoss(
  w: Float32Array,
  q: Float32Array,
  h: Float64Array,
  rows: number,
  cols: number,
  signal?: AbortSignal,
): Promise<{ loss: number; energy: number }> {
  const e = new Float32Array(w.length);
  for (let i = 0; i < e.length; i++) e[i] = w[i] - q[i];
  const hf = Float32Array.from(h);
  const quad = async (x: Float32Array) => {
    const xh = new Float32Array(rows * cols); // X·H: [out × in]
    await sgemm({ transA: false, transB: false, m: rows, n: cols, k: cols, alpha: 1, a: x, b: hf, beta: 0, c: xh }, { signal });
    let s = 0;
    for (let i = 0; i < xh.length; i++) s += xh[i] * x[i];
    return s;
  };
  return { loss: await quad(e), energy: await quad(w) };
}
