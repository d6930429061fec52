/** Seeded benchmark inputs (the same bytes on every run). */

/** n samples of N(mean, std²) as float32 (Box–Muller on a mulberry32 stream). */
export function gaussianF32(n: number, seed = 1, mean = 0, std = 1): Float32Array {
  let s = seed | 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = std * Math.sqrt(-2 * Math.log(uniform() || Number.MIN_VALUE));
    const a = 2 * Math.PI * uniform();
    x[i] = mean + r * Math.cos(a);
    if (i + 1 < n) x[i + 1] = mean + r * Math.sin(a);
  }
  return x;
}
