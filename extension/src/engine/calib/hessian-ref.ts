/** H[n×n] += Xᵀ·X for X [rows×n], float64 accumulation (lower triangle computed, mirrored). */
export function hessianUpdateRef(h: Float64Array, n: number, x: Float32Array, rows: number): void {
  for (let r = 0; r < rows; r++) {
    const off = r * n;
    for (let i = 0; i < n; i++) {
      const xi = x[off + i];
      if (xi === 0) continue;
      const hi = i * n;
      for (let j = 0; j <= i; j++) h[hi + j] += xi * x[off + j];
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) h[j * n + i] = h[i * n + j];
}
