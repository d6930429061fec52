import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { dequantized, quantizeModel } from "../../../extension/src/engine/quant/quantize";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import type { TokenData } from "../../../extension/src/engine/calib/data";
import { DEFAULT_CONFIG, type QuantConfig } from "../../../extension/src/engine/quant/config";
import { exportQuantized, type ExportFormat } from "../../../extension/src/engine/export/export";
import { loadRefCases, maxAbsDiff, runLogits } from "../../helpers/ort";
import { STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";

const sha = (f: string) => crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex");

let dir: string;
let cleanup: () => void;
let model: OnnxModel;
const before = sha(STORIES_MODEL);
beforeAll(async () => {
  ({ dir, cleanup } = tempDir());
  model = await OnnxModel.load(STORIES_MODEL);
});
afterAll(() => {
  model.close();
  cleanup();
});

async function quantizeAndExport(config: Partial<QuantConfig>, format: ExportFormat, name: string) {
  const q = await quantizeModel(model, { ...DEFAULT_CONFIG, method: "rtn", ...config });
  const out = path.join(dir, `${name}.onnx`);
  const exported = await exportQuantized(model, q, out, format);
  return { q, exported, out };
}

describe("export formats match the fake-quant reference in onnxruntime", () => {
  const c = loadRefCases().find((x) => x.name === "b2_t64")!;
  it.each([
    ["W4 g32 asym", { bits: 4, group: 32 }, "matmulnbits"],
    ["W4 g32 sym", { bits: 4, group: 32, symmetric: true }, "matmulnbits"],
    ["W2 g32", { bits: 2, group: 32 }, "matmulnbits"],
    ["W8 g64", { bits: 8, group: 64 }, "matmulnbits"],
    ["W4 g128 (ragged on 172)", { bits: 4, group: 128 }, "matmulnbits"],
    ["W8 per-channel", { bits: 8, group: 0 }, "qdq"],
    ["W8 per-channel sym", { bits: 8, group: 0, symmetric: true }, "qdq"],
    // Blocked DequantizeLinear at opset 21 (the model is raised from 17 by export/opset.ts).
    ["W4 g32 asym (uint4 + zero points)", { bits: 4, group: 32 }, "qdq"],
    ["W4 g32 sym (int4)", { bits: 4, group: 32, symmetric: true }, "qdq"],
    ["W3 g32 (uint4 codes)", { bits: 3, group: 32 }, "qdq"],
    ["W2 g64", { bits: 2, group: 64 }, "qdq"],
    ["W4 g128 (ragged on 172)", { bits: 4, group: 128 }, "qdq"],
    ["W4 per-channel (one block)", { bits: 4, group: 0 }, "qdq"],
    ["W8 g64 (blocked uint8)", { bits: 8, group: 64 }, "qdq"],
    ["W8 g32 sym (blocked int8)", { bits: 8, group: 32, symmetric: true }, "qdq"],
    // Group 128 is wider than the 64-input layers: one group per row there (not left in float).
    ["W4 g128 on 64-input layers", { bits: 4, group: 128 }, "matmulnbits"],
    ["W4 g128 on 64-input layers", { bits: 4, group: 128 }, "qdq"],
  ] as const)("%s as %s", async (label, config, format) => {
    const fake = await quantizeAndExport(config as Partial<QuantConfig>, "fake", `${label}-fake`.replace(/\W+/g, "_"));
    const real = await quantizeAndExport(config as Partial<QuantConfig>, format, `${label}-${format}`.replace(/\W+/g, "_"));
    expect(real.exported.layers.every((l) => l.form === format), JSON.stringify(real.exported.layers.find((l) => l.form !== format))).toBe(true);
    expect(real.q.kept.map((k) => k.name)).toEqual(["/lm_head/MatMul"]); // only lm_head stays in float
    const a = await runLogits(fake.out, c.ids, c.shape);
    const b = await runLogits(real.out, c.ids, c.shape);
    expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-3);
    // Quantization did change the model.
    expect(maxAbsDiff(a, c.logits)).toBeGreaterThan(1e-3);
    const ops = new Set((await OnnxModel.load(real.out)).graph.node.map((n) => n.opType));
    expect(ops.has(format === "matmulnbits" ? "MatMulNBits" : "DequantizeLinear")).toBe(true);
  });

  it("falls back to fake-quant, and says so, where MatMulNBits cannot express the layer (3 bits)", async () => {
    const r = await quantizeAndExport({ bits: 3, group: 32 }, "matmulnbits", "w3");
    expect(r.exported.layers.every((l) => l.form === "fake")).toBe(true);
    expect(r.exported.notes.join()).toMatch(/MatMulNBits in onnxruntime 1\.30 runs 2\/4\/8 bits, not 3/);
    const report = JSON.parse(fs.readFileSync(r.exported.report, "utf8"));
    expect(report.layers).toHaveLength(35);
    expect(report.layers[0]).toMatchObject({ method: "rtn", bits: 3, group: 32, form: "fake" });
    expect(report.kept).toEqual([{ name: "/lm_head/MatMul", reason: expect.stringMatching(/lm_head stays in float/) }]);
  });

  it("never modifies the input model and refuses to overwrite it", async () => {
    const q = await quantizeModel(model, { ...DEFAULT_CONFIG, method: "rtn" });
    await expect(exportQuantized(model, q, STORIES_MODEL, "fake")).rejects.toThrow(/refusing to overwrite the input model/);
    expect(sha(STORIES_MODEL)).toBe(before);
  });

  it("the fake export holds exactly the dequantized weights", async () => {
    const { q, out } = await quantizeAndExport({ bits: 4, group: 32 }, "fake", "exact");
    const m = await OnnxModel.load(out);
    const lq = q.layers.find((l) => l.layer.name === "/model/layers.3/mlp/down_proj/MatMul")!;
    const w = m.readFloat32(lq.layer.weight); // stored [in, out]
    const { in: K, out: N } = lq.layer;
    for (let k = 0; k < K; k += 13) {
      for (let n = 0; n < N; n += 7) {
        const g = Math.floor(k / 32);
        const scale = lq.scales[n * Math.ceil(K / 32) + g];
        const zero = lq.zeros[n * Math.ceil(K / 32) + g];
        expect(w[k * N + n]).toBe(Math.fround(scale * (lq.codes[n * K + k] - zero)));
      }
    }
  });
});

describe("GPTQ act-order with permuted groups (gptq.py's default)", () => {
  const c = loadRefCases().find((x) => x.name === "b2_t64")!;
  let data: TokenData;
  beforeAll(() => {
    data = loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 8 });
  });
  const config = { ...DEFAULT_CONFIG, method: "gptq" as const, bits: 4 as const, group: 32, actOrder: true, actOrderGroups: "permuted" as const };

  it("stores the codes permuted, dequantizes back to the original inputs, and groups follow the permutation", async () => {
    const q = await quantizeModel(model, config, { data });
    const st = await quantizeModel(model, { ...config, actOrderGroups: "static" }, { data });
    for (const lq of q.layers) {
      expect(lq.perm, lq.layer.name).toBeInstanceOf(Int32Array);
      expect([...lq.perm!].sort((a, b) => a - b)).toEqual(Array.from({ length: lq.layer.in }, (_, i) => i));
      // Group g of row r covers inputs perm[g·32 .. g·32+31]: every dequantized weight there is
      // scale·(code − zero) of that group, whichever original column it sits in.
      const w = dequantized(lq);
      const ng = Math.ceil(lq.layer.in / 32);
      for (const r of [0, lq.layer.out - 1]) {
        for (let p = 0; p < lq.layer.in; p++) {
          const g = r * ng + Math.floor(p / 32);
          expect(w[r * lq.layer.in + lq.perm![p]]).toBe(Math.fround(lq.scales[g] * (lq.codes[r * lq.layer.in + p] - lq.zeros[g])));
        }
      }
    }
    expect(st.layers.every((l) => l.perm === undefined)).toBe(true);
    // Different groupings, both GPTQ: each below RTN on every layer.
    for (const r of [q, st]) for (const l of r.layers) expect(l.proxyLoss!).toBeLessThanOrEqual(l.proxyLossRtn! * (1 + 1e-6));
  });

  it.each(["matmulnbits", "qdq"] as const)("as %s: one Gather per distinct input, logits match fake-quant", async (format) => {
    const q = await quantizeModel(model, config, { data });
    const fake = path.join(dir, `permuted-fake-${format}.onnx`);
    const real = path.join(dir, `permuted-${format}.onnx`);
    await exportQuantized(model, q, fake, "fake");
    const ex = await exportQuantized(model, q, real, format);
    expect(ex.layers.every((l) => l.form === format)).toBe(true);
    const out = await OnnxModel.load(real);
    const gathers = out.graph.node.filter((n) => n.opType === "Gather" && n.name.endsWith("_act_order/Gather"));
    // q/k/v share one input and one H (so one permutation), gate/up too: 4 inputs × 5 blocks.
    expect(gathers).toHaveLength(20);
    expect(new Set(gathers.map((n) => n.input[0])).size).toBe(20);
    // fake-quant needs none: its weights are dequantized back to the original input order.
    const fakeGathers = (await OnnxModel.load(fake)).graph.node.filter((n) => n.opType === "Gather").length;
    expect(out.graph.node.filter((n) => n.opType === "Gather").length).toBe(fakeGathers + 20);
    const a = await runLogits(fake, c.ids, c.shape);
    const b = await runLogits(real, c.ids, c.shape);
    expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-3);
    expect(maxAbsDiff(a, c.logits)).toBeGreaterThan(1e-3);
    const report = JSON.parse(fs.readFileSync(ex.report, "utf8"));
    expect(report.layers[0].act_order_groups).toBe("permuted");
    out.close();
  });

  it("refuses W8A8 activations with permuted groups", async () => {
    await expect(quantizeModel(model, { ...config, actBits: 8 }, { data })).rejects.toThrow(/--act-bits is not available with --act-order-groups permuted/);
  });
});

describe("GPTQ with the clipping search (--clip)", () => {
  it.each(["matmulnbits", "qdq"] as const)("as %s: logits match fake-quant; the report records each layer's clipping", async (format) => {
    const c = loadRefCases().find((x) => x.name === "b2_t64")!;
    const data = loadModelData(model, path.join(STORIES, "calib.jsonl"), { samples: 8 });
    const q = await quantizeModel(model, { ...DEFAULT_CONFIG, method: "gptq", bits: 4, group: 32, actOrder: true, clip: true }, { data });
    const fake = path.join(dir, `clip-fake-${format}.onnx`);
    const real = path.join(dir, `clip-${format}.onnx`);
    await exportQuantized(model, q, fake, "fake");
    const ex = await exportQuantized(model, q, real, format);
    expect(ex.layers.every((l) => l.form === format)).toBe(true);
    expect(maxAbsDiff(await runLogits(fake, c.ids, c.shape), await runLogits(real, c.ids, c.shape))).toBeLessThanOrEqual(1e-3);
    const report = JSON.parse(fs.readFileSync(ex.report, "utf8"));
    for (const l of report.layers) {
      expect(l.clip.rows_clipped, l.name).toBeGreaterThan(0);
      expect(l.clip.min_shrink).toBeGreaterThanOrEqual(0.5);
      expect(l.clip.mean_shrink).toBeLessThan(1);
    }
  });
});

describe("export of an anonymous export (unnamed nodes)", () => {
  it("qdq and matmulnbits still match fake-quant", async () => {
    const { anonymize } = await import("../../helpers/anonymize");
    const { saveModel } = await import("../../../extension/src/engine/onnx/save");
    const file = path.join(dir, "anon.onnx");
    await saveModel(anonymize(model.proto), file); // every node name empty
    const anon = await OnnxModel.load(file);
    expect(anon.graph.node.every((n) => n.name === "")).toBe(true);
    const ids = Array.from({ length: 32 }, (_, i) => (i * 37) % 512);
    for (const [config, format] of [[{ bits: 8, group: 0 }, "qdq"], [{ bits: 4, group: 32 }, "matmulnbits"]] as const) {
      const q = await quantizeModel(anon, { ...DEFAULT_CONFIG, method: "rtn", ...config });
      const fake = path.join(dir, `anon-${format}-fake.onnx`);
      const real = path.join(dir, `anon-${format}.onnx`);
      await exportQuantized(anon, q, fake, "fake");
      const r = await exportQuantized(anon, q, real, format);
      expect(r.layers.every((l) => l.form === format)).toBe(true);
      expect(maxAbsDiff(await runLogits(fake, ids, [1, 32]), await runLogits(real, ids, [1, 32]))).toBeLessThanOrEqual(1e-3);
    }
  });
});

describe("a tied lm_head that reads the embedding table itself", () => {
  it("fake export quantizes the head through its own copy; the embedding lookup keeps the fp table", async () => {
    const { create, toBinary } = await import("@bufbuild/protobuf");
    const { ModelProtoSchema, NodeProtoSchema } = await import("../../../extension/src/engine/onnx/proto/onnx_pb");
    // stories260K with lm_head reading Transpose(embed_tokens.weight): one initializer, two readers.
    const proto = structuredClone(model.proto);
    const g = proto.graph!;
    const head = g.node.find((n) => n.name === "/lm_head/MatMul")!;
    g.node.splice(g.node.indexOf(head), 0, create(NodeProtoSchema, { name: "/lm_head/Transpose", opType: "Transpose", input: ["model.embed_tokens.weight"], output: ["tied_head_weight"], attribute: [{ name: "perm", type: 7, ints: [1n, 0n] }] }));
    head.input[1] = "tied_head_weight";
    g.initializer = g.initializer.filter((t) => t.name !== "lm_head.weight");
    const tiedFile = path.join(dir, "tied.onnx");
    fs.writeFileSync(tiedFile, toBinary(ModelProtoSchema, proto));
    const tied = await OnnxModel.load(tiedFile);
    try {
      const config = { ...DEFAULT_CONFIG, method: "rtn" as const, bits: 4 as const, group: 32, includeLmHead: true };
      const qTied = await quantizeModel(tied, config);
      expect(qTied.layers.map((l) => l.layer.name)).toContain("/lm_head/MatMul");
      const outTied = path.join(dir, "tied-fake.onnx");
      await exportQuantized(tied, qTied, outTied, "fake");
      // The same quantization of the untied original (separate, equal initializers): the reference.
      const qSep = await quantizeModel(model, config);
      const outSep = path.join(dir, "sep-fake.onnx");
      await exportQuantized(model, qSep, outSep, "fake");
      const exported = await OnnxModel.load(outTied);
      try {
        const embed = exported.initializer("model.embed_tokens.weight")!;
        const orig = tied.initializer("model.embed_tokens.weight")!;
        expect(Buffer.from(embed.rawData).equals(Buffer.from(orig.rawData))).toBe(true);
        expect(exported.initializer("model.embed_tokens.weight_quantized")).toBeDefined();
      } finally {
        exported.close();
      }
      const c = loadRefCases().find((x) => x.name === "b2_t64")!;
      const a = await runLogits(outTied, c.ids, c.shape);
      const b = await runLogits(outSep, c.ids, c.shape);
      expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-4);
    } finally {
      tied.close();
    }
  });
});
