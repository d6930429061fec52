/**
 * QuIP's rotations as graph ops, so `matmulnbits`/`qdq` keep the low-bit codes of the processed
 * weight Ŵ (quant/quip.ts). The layer computes y = x·Wᵀ with W ≈ Uᵀ·Ŵ·V·D̃⁻¹, so
 *
 *   y = ((x·D̃⁻¹)·Vᵀ)·Ŵᵀ·U:   an input transform (each row x ← V·D̃⁻¹·x) before the low-bit MatMul
 *                              and an output transform (each row z ← Uᵀ·z) after it.
 *
 * A transform T = F_1 ⊗ … ⊗ F_t (kernels/transforms.ts) is written as
 * - n ≤ `denseMax` (default 256): one MatMul by the n×n matrix (D̃⁻¹ folded into its rows);
 * - otherwise: Mul by an n-vector (the Hadamard factors' random signs, ⊗-combined, over D̃), then
 *   for every Kronecker axis a Reshape to [-1, d_a, inner_a] and a MatMul by the small d_a×d_a
 *   factor (dense random orthogonals as they are; a Hadamard of size 2^k as Sylvester blocks of
 *   at most 64, H_{2^k} = H_{2^{k1}} ⊗ H_{2^{k2}} ⊗ …), and a Reshape back to the input's shape.
 *   The inverse applies the transposed factors, then the signs.
 * Layers reading the same tensor with the same V (the seed convention in quip.ts) and the same D̃
 * share one input subgraph; with the paper's per-layer rescaling D̃ differs per layer, so q/k/v
 * get one each (still exact).
 */
import { create } from "@bufbuild/protobuf";
import { DataType } from "../onnx/dtype";
import { NodeProtoSchema, type NodeProto, type TensorProto } from "../onnx/proto/onnx_pb";
import { NBITS_BLOCK_SIZES, NBITS_ORT_BITS, packDequantizeLinearInt4, packDequantizeLinearInt8, packMatMulNBits, type DequantizeLinearWeight } from "../kernels/quant";
import { orthoApplyRef, type OrthoFactor } from "../kernels/reference-transforms";
import { transformOf, type RotationSpec } from "../quant/quip";
import type { LayerQuant } from "../quant/quantize";
import { bytesTensor, floatTensor, intAttr, type GraphEditor } from "./graph-edit";

export const ROTATION_DENSE_MAX = 256;
/** The largest Sylvester Hadamard block of the factored form. */
const HADAMARD_BLOCK = 64;

export interface Subgraph {
  nodes: NodeProto[];
  initializers: TensorProto[];
}

/**
 * Nodes applying x ← T·diag(1/rescale)·x (or x ← Tᵀ·x with `inverse`) to every row (last axis)
 * of `input`, writing `output`. Constants are stored as `dataType` (float32/float16/bfloat16).
 */
export function transformSubgraph(opts: {
  prefix: string;
  input: string;
  output: string;
  spec: RotationSpec;
  inverse?: boolean;
  rescale?: Float32Array | null;
  dataType?: number;
  denseMax?: number;
}): Subgraph {
  const { prefix, input, output, spec } = opts;
  const n = spec.n;
  const inverse = opts.inverse ?? false;
  const rescale = opts.rescale ?? null;
  if (inverse && rescale) throw new Error("transformSubgraph: rescaling is applied before a forward transform only");
  if (rescale && rescale.length !== n) throw new RangeError(`transformSubgraph: rescale has ${rescale.length} values, not ${n}`);
  const dt = opts.dataType ?? DataType.FLOAT;
  const T = transformOf(spec);
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const node = (opType: string, inputs: string[], out: string, name: string) =>
    nodes.push(create(NodeProtoSchema, { name: `${prefix}/${name}`, opType, input: inputs, output: [out] }));

  if (n <= (opts.denseMax ?? ROTATION_DENSE_MAX)) {
    // Rows of the identity through T (or Tᵀ): B = Tᵀ (or T), and x·B applies T (or Tᵀ) to rows.
    const b = identity(n);
    T.applySync(b, n, { inverse });
    if (rescale) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) b[i * n + j] /= rescale[i];
    inits.push(floatTensor(`${prefix}/matrix`, [n, n], b, dt));
    node("MatMul", [input, `${prefix}/matrix`], output, "MatMul");
    return { nodes, initializers: inits };
  }

  const { axes, signs } = factoredForm(T.drawFactors(), n);
  const sizes = axes.map((a) => a.size);
  node("Shape", [input], `${prefix}/shape`, "Shape");
  let cur = input;
  if (!inverse && (rescale || signs.some((s) => s !== 1))) {
    const v = Float32Array.from(signs, (s, i) => (rescale ? s / rescale[i] : s));
    inits.push(floatTensor(`${prefix}/signs`, [n], v, dt));
    node("Mul", [cur, `${prefix}/signs`], `${prefix}/signed`, "Mul");
    cur = `${prefix}/signed`;
  }
  for (let a = 0; a < axes.length; a++) {
    const d = sizes[a];
    let inner = 1;
    for (let b = a + 1; b < sizes.length; b++) inner *= sizes[b];
    const f = axes[a].matrix; // x ← F·x along axis a
    const shapeName = `${prefix}/axis${a}/shape`;
    const dims = inner === 1 ? [-1, d] : [-1, d, inner];
    inits.push(bytesTensor(shapeName, [dims.length], new Uint8Array(BigInt64Array.from(dims.map(BigInt)).buffer), DataType.INT64));
    node("Reshape", [cur, shapeName], `${prefix}/axis${a}/reshaped`, `axis${a}/Reshape`);
    const mat = `${prefix}/axis${a}/factor`;
    if (inner === 1) {
      // [-1, d]·Fᵀ (forward) or ·F (inverse): the constant is F stored transposed for forward.
      inits.push(floatTensor(mat, [d, d], inverse ? f : transposeSq(f, d), dt));
      node("MatMul", [`${prefix}/axis${a}/reshaped`, mat], `${prefix}/axis${a}/out`, `axis${a}/MatMul`);
    } else {
      // F·[-1, d, inner] (broadcast over the leading axis); Fᵀ for the inverse.
      inits.push(floatTensor(mat, [d, d], inverse ? transposeSq(f, d) : f, dt));
      node("MatMul", [mat, `${prefix}/axis${a}/reshaped`], `${prefix}/axis${a}/out`, `axis${a}/MatMul`);
    }
    cur = `${prefix}/axis${a}/out`;
  }
  if (inverse && signs.some((s) => s !== 1)) {
    node("Reshape", [cur, `${prefix}/shape`], `${prefix}/unsigned`, "Reshape");
    inits.push(floatTensor(`${prefix}/signs`, [n], signs, dt));
    node("Mul", [`${prefix}/unsigned`, `${prefix}/signs`], output, "Mul");
  } else {
    node("Reshape", [cur, `${prefix}/shape`], output, "Reshape");
  }
  return { nodes, initializers: inits };
}

/** T = (⊗ axis matrices)·diag(signs), with Hadamard factors split into Sylvester blocks. */
export function factoredForm(factors: readonly OrthoFactor[], n: number): { axes: { size: number; matrix: Float32Array }[]; signs: Float32Array } {
  const axes: { size: number; matrix: Float32Array }[] = [];
  for (const fac of factors) {
    if (fac.kind === "dense") {
      const r = identity(fac.size); // rows ← F·e_i: R = Fᵀ
      orthoApplyRef([fac], fac.size, r, fac.size, false);
      axes.push({ size: fac.size, matrix: transposeSq(r, fac.size) });
    } else {
      let rest = fac.size;
      while (rest > 1) {
        const d = Math.min(rest, HADAMARD_BLOCK);
        axes.push({ size: d, matrix: sylvester(d) });
        rest /= d;
      }
      if (fac.size === 1) axes.push({ size: 1, matrix: Float32Array.of(1) });
    }
  }
  const signs = new Float32Array(n).fill(1);
  const sizes = factors.map((f) => f.size);
  for (let idx = 0; idx < n; idx++) {
    let rem = idx;
    let s = 1;
    for (let a = factors.length - 1; a >= 0; a--) {
      const i = rem % sizes[a];
      rem = Math.floor(rem / sizes[a]);
      const fac = factors[a];
      if (fac.kind === "hadamard") s *= fac.signs[i];
    }
    signs[idx] = s;
  }
  return { axes, signs };
}

function identity(n: number): Float32Array {
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

function transposeSq(a: Float32Array, n: number): Float32Array {
  const t = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = a[i * n + j];
  return t;
}

/** H_d/√d in Sylvester (natural) order: H[i, j] = (−1)^popcount(i & j)/√d. */
function sylvester(d: number): Float32Array {
  const m = new Float32Array(d * d);
  const norm = 1 / Math.sqrt(d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let x = i & j;
      let p = 0;
      while (x) {
        p ^= 1;
        x &= x - 1;
      }
      m[i * d + j] = p ? -norm : norm;
    }
  }
  return m;
}

// ---- one layer --------------------------------------------------------------------------------

/** Shared input subgraphs of one export: key → the rotated tensor's name. */
export type RotationCache = Map<string, string>;

/**
 * Replace a QuIP layer's MatMul by input transform → MatMulNBits / DequantizeLinear+MatMul on
 * the processed codes → output transform. Returns the form written (with `opset` 21 when it wrote
 * a blocked DequantizeLinear), or `fake` with why (the caller then writes the dequantized
 * original-space weight and no transforms).
 */
export async function exportRotatedLayer(
  g: GraphEditor, node: NodeProto, lq: LayerQuant, format: "matmulnbits" | "qdq", cache: RotationCache,
  opts: { denseMax?: number; dataType?: number } = {},
): Promise<{ form: "matmulnbits" | "qdq" | "fake"; note?: string; opset?: number }> {
  const l = lq.layer;
  const rot = lq.rotation;
  if (!rot) throw new Error(`exportRotatedLayer: ${l.name} has no rotation`);
  if (l.op !== "MatMul") return { form: "fake", note: `${l.op} is written as fake-quant` };
  const K = l.in;
  const N = l.out;
  const integral = lq.zeros.every((z) => Number.isInteger(z));
  const base = l.weight;
  const lowOut = `${base}_quip_rotated_out`;
  let lowNodes: NodeProto[];
  let usesContrib = false;
  let opset = 0;

  if (format === "matmulnbits") {
    if (!(NBITS_ORT_BITS as readonly number[]).includes(lq.bits)) return { form: "fake", note: `MatMulNBits in onnxruntime 1.30 runs ${NBITS_ORT_BITS.join("/")} bits, not ${lq.bits}` };
    let blockSize = lq.group;
    let scales = lq.scales;
    let zeros = lq.zeros;
    if (blockSize === 0) {
      // One scale per row (or per tensor): any block size holds it exactly, repeated per block.
      const fits = NBITS_BLOCK_SIZES.filter((b) => b <= K);
      if (!fits.length) return { form: "fake", note: `MatMulNBits needs at least ${NBITS_BLOCK_SIZES[0]} inputs, not ${K}` };
      blockSize = fits[fits.length - 1];
      const nb = Math.ceil(K / blockSize);
      scales = new Float32Array(N * nb);
      zeros = new Float32Array(N * nb);
      for (let r = 0; r < N; r++) {
        scales.fill(lq.scales[r], r * nb, (r + 1) * nb);
        zeros.fill(lq.zeros[r], r * nb, (r + 1) * nb);
      }
    } else if (!(NBITS_BLOCK_SIZES as readonly number[]).includes(blockSize)) {
      return { form: "fake", note: `MatMulNBits needs a block size of ${NBITS_BLOCK_SIZES.join("/")}, not ${blockSize}` };
    }
    // Non-integer zero points (the paper's grid has none at zero: (2^b−1)/2) go in as floats,
    // which MatMulNBits accepts in the scales' type: w = (q − zp)·scale.
    const packZeros = integral ? zeros : new Float32Array(zeros.length).fill(1 << (lq.bits - 1));
    const p = await packMatMulNBits({ codes: lq.codes, scales, zeros: packZeros }, N, K, { bits: lq.bits, blockSize });
    g.setInitializer(bytesTensor(`${base}_quip_Q${lq.bits}`, p.dimsB, p.B, DataType.UINT8));
    g.setInitializer(floatTensor(`${base}_quip_scales`, [p.scales.length], p.scales));
    const inputs = ["", `${base}_quip_Q${lq.bits}`, `${base}_quip_scales`];
    if (!integral) {
      g.setInitializer(floatTensor(`${base}_quip_zp`, [zeros.length], zeros));
      inputs.push(`${base}_quip_zp`);
    } else if (p.zeroPoints) {
      g.setInitializer(bytesTensor(`${base}_quip_zp`, [p.zeroPoints.length], p.zeroPoints, DataType.UINT8));
      inputs.push(`${base}_quip_zp`);
    }
    lowNodes = [
      create(NodeProtoSchema, {
        name: node.name,
        opType: "MatMulNBits",
        domain: "com.microsoft",
        input: inputs,
        output: [lowOut],
        attribute: [intAttr("K", K), intAttr("N", N), intAttr("bits", lq.bits), intAttr("block_size", blockSize), intAttr("accuracy_level", 0)],
      }),
    ];
    usesContrib = true;
  } else {
    if (!integral) return { form: "fake", note: "qdq needs integer zero points; the per-tensor QuIP grid's is (2^b−1)/2 (use --quip-scale group, or matmulnbits)" };
    const q = { codes: lq.codes, scales: lq.scales, zeros: lq.zeros };
    let p: DequantizeLinearWeight;
    if (lq.bits === 8 && lq.group === 0) p = await packDequantizeLinearInt8(q, N, K);
    else if (lq.bits <= 4) {
      // Blocked int4/uint4 along the inputs (DequantizeLinear opset 21); per-row = one block.
      p = await packDequantizeLinearInt4(q, N, K, { blockSize: lq.group > 0 && lq.group < K ? lq.group : K });
      opset = 21;
    } else return { form: "fake", note: `qdq of QuIP layers is written for 8-bit per-row or 2–4-bit codes, not ${lq.bits}-bit groups` };
    const dtype = { int4: DataType.INT4, uint4: DataType.UINT4, int8: DataType.INT8, uint8: DataType.UINT8 }[p.dtype];
    g.setInitializer(bytesTensor(`${base}_quip_q`, p.dims, p.data, dtype));
    g.setInitializer(floatTensor(`${base}_quip_scale`, p.scaleDims, p.scale));
    const dqInputs = [`${base}_quip_q`, `${base}_quip_scale`];
    if (p.zeroPoint) {
      g.setInitializer(bytesTensor(`${base}_quip_zero_point`, p.scaleDims, p.zeroPoint, dtype));
      dqInputs.push(`${base}_quip_zero_point`);
    }
    const dqOut = `${base}_quip_dequantized`;
    lowNodes = [
      create(NodeProtoSchema, {
        name: `${l.name}/DequantizeLinear`,
        opType: "DequantizeLinear",
        input: dqInputs,
        output: [dqOut],
        attribute: p.axis === 0 ? [intAttr("axis", 0), intAttr("block_size", p.blockSize!)] : [intAttr("axis", 1)],
      }),
      create(NodeProtoSchema, { name: node.name, opType: "MatMul", input: ["", dqOut], output: [lowOut] }),
    ];
  }

  // Input side: shared between layers reading the same tensor with the same V and D̃.
  const x = node.input[0];
  const key = `${x}|${rot.v.n}|${rot.v.seed}|${rot.v.kind}|${rot.rescale ? hashFloats(rot.rescale) : "-"}`;
  let rotated = cache.get(key);
  if (!rotated) {
    rotated = `${x}_quip_V${cache.size}`;
    const sub = transformSubgraph({
      prefix: `${x}/quip_V${cache.size}`, input: x, output: rotated, spec: rot.v, rescale: rot.rescale, dataType: opts.dataType, denseMax: opts.denseMax,
    });
    for (const t of sub.initializers) g.setInitializer(t);
    const producer = g.nodes.findIndex((n) => n.output.includes(x));
    g.nodes.splice(producer + 1, 0, ...sub.nodes);
    cache.set(key, rotated);
  }
  const main = lowNodes[lowNodes.length - 1];
  main.input[0] = rotated;
  g.replaceNode(node, main);
  const at = g.nodes.indexOf(main);
  g.nodes.splice(at, 0, ...lowNodes.slice(0, -1));
  const sub = transformSubgraph({
    prefix: `${l.name}/quip_U`, input: lowOut, output: node.output[0], spec: rot.u, inverse: true, dataType: opts.dataType, denseMax: opts.denseMax,
  });
  for (const t of sub.initializers) g.setInitializer(t);
  g.nodes.splice(g.nodes.indexOf(main) + 1, 0, ...sub.nodes);
  return { form: usesContrib ? "matmulnbits" : "qdq", ...(opset ? { opset } : {}) };
}

function hashFloats(a: Float32Array): string {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  let h = 0x811c9dc5;
  for (const x of u) h = Math.imul(h ^ x, 0x01000193) >>> 0;
  return `${a.length}:${h.toString(16)}`;
}
