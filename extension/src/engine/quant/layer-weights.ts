import type { LinearLayer } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";

/** A linear layer's weight as GPTQ's W: [out × in] row-major float32 (whatever the stored layout). */
export function readWeightOutIn(model: OnnxModel, l: LinearLayer): Float32Array {
  const stored = model.readFloat32(l.weight);
  return l.layout === "out_in" ? stored : transpose(stored, l.in, l.out);
}

/** W [out × in] back to the initializer's stored layout. */
export function toStoredLayout(l: LinearLayer, w: Float32Array): Float32Array {
  return l.layout === "out_in" ? w : transpose(w, l.out, l.in);
}

/** Transpose a row-major [rows × cols] matrix. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  const B = 32; // cache blocks
  for (let i0 = 0; i0 < rows; i0 += B) {
    for (let j0 = 0; j0 < cols; j0 += B) {
      const i1 = Math.min(rows, i0 + B);
      const j1 = Math.min(cols, j0 + B);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) t[j * rows + i] = a[i * cols + j];
    }
  }
  return t;
}
