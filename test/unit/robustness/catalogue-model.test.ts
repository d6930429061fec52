/**
 * Bad model files (issue 9's catalogue), each through the real CLI: exit 1, one error line that
 * names the file and the tensor or field at fault, nothing written, the input's bytes and mtime
 * unchanged. Cases the engine handles correctly instead of refusing (all-zero weights, dead
 * inputs, fp16 subnormals) check the handling. Complements test/unit/cli/inspect.test.ts (which
 * runs `inspect` on a text file, random bytes, a half-truncated model, a missing/short external
 * file and a `../` location) by covering calibrate/quantize/eval and the rest of the list.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";
import { readStatsFile } from "../../../extension/src/engine/calib/stats-file";
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType as DT,
  type ModelProto,
  type TensorProto,
} from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { buildLlama, saveFixture, tensorValue } from "../../fixtures/generator";
import { buildCli, quantlens } from "../../helpers/cli";
import { singleMatMul } from "../../helpers/tiny-models";
import { STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";
import { copyStories, expectUserError, fingerprintDir } from "./helpers";

let dir: string;
let cleanup: () => void;
let calib: string;
const storiesBytes = fs.readFileSync(STORIES_MODEL);

beforeAll(() => {
  buildCli();
  ({ dir, cleanup } = tempDir("quantlens-catalogue-"));
  copyStories(dir, ["tokenizer.json", "tokenizer_config.json", "config.json"]);
  calib = path.join(dir, "calib.json");
  fs.writeFileSync(calib, JSON.stringify([[1, 403, 407, 261, 378, 425, 270, 262], [1, 306, 442, 400, 259, 431, 268, 290]]));
});
afterAll(() => cleanup());

/** A fresh decoded copy of stories260K to mutate. */
function stories(): ModelProto {
  return fromBinary(ModelProtoSchema, storiesBytes);
}

function write(name: string, bytes: Uint8Array | string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, bytes);
  return f;
}

function writeModel(name: string, m: ModelProto): string {
  return write(name, toBinary(ModelProtoSchema, m));
}

function init(m: ModelProto, name: string): TensorProto {
  const t = m.graph!.initializer.find((x) => x.name === name);
  if (!t) throw new Error(`no initializer ${name}`);
  return t;
}

/** Replace a float32 initializer's values (a fresh buffer; the decoded bytes are shared). */
function editFloats(t: TensorProto, edit: (v: Float32Array) => void): void {
  const v = new Float32Array(t.rawData.length / 4);
  new Uint8Array(v.buffer).set(t.rawData);
  edit(v);
  t.rawData = new Uint8Array(v.buffer);
}

const quantizeRtn = (model: string, out: string) => ["quantize", model, "--method", "rtn", "--group", "32", "-o", path.join(dir, out)];
const calibrate = (model: string, out = "stats.safetensors") => ["calibrate", model, "--data", calib, "-o", path.join(dir, out)];
const quantizeGptq = (model: string, out: string, ...more: string[]) => ["quantize", model, "--method", "gptq", "--group", "32", "--data", calib, ...more, "-o", path.join(dir, out)];

async function externalCopy(name: string): Promise<string> {
  const model = await OnnxModel.load(STORIES_MODEL);
  const sub = path.join(dir, name);
  fs.mkdirSync(sub);
  const out = path.join(sub, "model.onnx");
  await saveModel(model.proto, out, { externalData: true, source: model });
  model.close();
  return out;
}

describe("files that are not (whole) ONNX models", () => {
  it("an empty file (quantize)", () => {
    const f = write("empty.onnx", "");
    expectUserError(dir, quantizeRtn(f, "q.onnx"), /empty\.onnx: is empty: not an ONNX model/);
  });

  it("not protobuf: a PNG image renamed .onnx (calibrate)", () => {
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(200, 0xab)]);
    const f = write("image.onnx", png);
    expectUserError(dir, calibrate(f), /image\.onnx: (is not a valid ONNX protobuf|not an ONNX model)/);
  });

  it.each([
    ["inside the header", 7],
    ["inside the first initializer's raw_data", 4096],
    ["two thirds in", Math.floor((storiesBytes.length * 2) / 3)],
    ["one byte short", storiesBytes.length - 1],
  ])("truncated %s (quantize)", (_where, cut) => {
    const f = write(`cut-${cut}.onnx`, storiesBytes.subarray(0, cut));
    expectUserError(dir, quantizeRtn(f, "q.onnx"), new RegExp(`cut-${cut}\\.onnx.*(truncated|not a valid ONNX protobuf|not an ONNX model)`));
  });

  it("valid protobuf, but a TensorProto rather than a model (inspect)", () => {
    const t = create(TensorProtoSchema, { name: "w", dims: [2n, 2n], dataType: DT.FLOAT, rawData: new Uint8Array(16) });
    const f = write("tensor.onnx", toBinary(TensorProtoSchema, t));
    expectUserError(dir, ["inspect", f], /tensor\.onnx: (not an ONNX model|is not a valid ONNX protobuf)/);
  });

  it("valid protobuf, but a bare GraphProto without the model around it (eval)", () => {
    const f = write("graph.onnx", toBinary(GraphProtoSchema, stories().graph!));
    expectUserError(dir, ["eval", f, f, "--eval", calib], /graph\.onnx: (not an ONNX model|is not a valid ONNX protobuf)/);
  });
});

describe("models newer than supported", () => {
  it("ir_version newer than onnxruntime 1.30 loads (inspect)", () => {
    const m = stories();
    m.irVersion = 14n;
    expectUserError(dir, ["inspect", writeModel("ir14.onnx", m)], /ir14\.onnx: field 'ir_version' is 14, newer than QuantLens supports \(13/);
  });

  it("default-domain opset newer than supported (quantize)", () => {
    const m = stories();
    m.opsetImport[0].version = 27n;
    expectUserError(dir, quantizeRtn(writeModel("opset27.onnx", m), "q.onnx"), /opset27\.onnx: field 'opset_import' asks for opset 27 .*supports \(26\)/);
  });
});

describe("external data", () => {
  it("missing data file (calibrate)", async () => {
    const f = await externalCopy("ext-missing");
    fs.rmSync(`${f}.data`);
    expectUserError(dir, calibrate(f), /ext-missing\/model\.onnx \(tensor 'model\.embed_tokens\.weight'\): external data file 'model\.onnx\.data' cannot be opened \(ENOENT\)/);
  });

  it("data file shorter than the lengths it declares (quantize)", async () => {
    const f = await externalCopy("ext-short");
    fs.truncateSync(`${f}.data`, fs.statSync(`${f}.data`).size - 100);
    expectUserError(dir, quantizeRtn(f, "q.onnx"), /ext-short\/model\.onnx \(tensor '[^']+'\): external data file 'model\.onnx\.data' is too short/);
  });

  it("a declared length that does not match the tensor's dims (inspect)", async () => {
    const f = await externalCopy("ext-length");
    const m = fromBinary(ModelProtoSchema, fs.readFileSync(f));
    const t = init(m, "model.layers.0.mlp.up_proj.weight");
    t.externalData = t.externalData.map((e) => (e.key === "length" ? create(StringStringEntryProtoSchema, { key: "length", value: "1000" }) : e));
    fs.writeFileSync(f, toBinary(ModelProtoSchema, m));
    expectUserError(dir, ["inspect", f], /\(tensor 'model\.layers\.0\.mlp\.up_proj\.weight'\): external data length 1000 does not match 64×172 float32 \(44032 bytes\)/);
  });

  function pointAt(m: ModelProto, tensor: string, location: string) {
    const t = init(m, tensor);
    t.externalData = [
      create(StringStringEntryProtoSchema, { key: "location", value: location }),
      create(StringStringEntryProtoSchema, { key: "offset", value: "0" }),
      create(StringStringEntryProtoSchema, { key: "length", value: String(t.rawData.length) }),
    ];
    t.rawData = new Uint8Array(0);
    t.dataLocation = TensorProto_DataLocation.EXTERNAL;
  }

  it("an absolute location (inspect)", () => {
    const m = stories();
    pointAt(m, "model.layers.2.self_attn.v_proj.weight", "/etc/passwd");
    expectUserError(dir, ["inspect", writeModel("abs.onnx", m)], /abs\.onnx \(tensor 'model\.layers\.2\.self_attn\.v_proj\.weight'\): external data location '\/etc\/passwd' is an absolute path/);
  });

  it("a location climbing out through a sub-folder's '..' (quantize)", () => {
    const m = stories();
    pointAt(m, "model.layers.3.mlp.down_proj.weight", "weights/../../secret.bin");
    expectUserError(dir, quantizeRtn(writeModel("dotdot.onnx", m), "q.onnx"), /\(tensor 'model\.layers\.3\.mlp\.down_proj\.weight'\): external data location 'weights\/\.\.\/\.\.\/secret\.bin' escapes the model's folder/);
  });

  it("a symlink in the model's folder pointing outside it (calibrate)", () => {
    const { dir: other, cleanup: cleanOther } = tempDir("quantlens-secret-");
    try {
      const secret = path.join(other, "secret.bin");
      fs.writeFileSync(secret, Buffer.alloc(64 * 172 * 4, 1));
      const sub = path.join(dir, "linked");
      fs.mkdirSync(sub);
      fs.symlinkSync(secret, path.join(sub, "weights.bin"));
      const m = stories();
      pointAt(m, "model.layers.0.mlp.gate_proj.weight", "weights.bin");
      const f = path.join(sub, "model.onnx");
      fs.writeFileSync(f, toBinary(ModelProtoSchema, m));
      expectUserError(dir, calibrate(f), /\(tensor 'model\.layers\.0\.mlp\.gate_proj\.weight'\): external data location 'weights\.bin' is a link that resolves outside the model's folder/, { inputs: [secret] });
    } finally {
      cleanOther();
    }
  });
});

describe("inconsistent graphs", () => {
  it("two initializers with one name (quantize)", () => {
    const m = stories();
    m.graph!.initializer.push({ ...init(m, "model.layers.4.self_attn.o_proj.weight") });
    expectUserError(dir, quantizeRtn(writeModel("dup.onnx", m), "q.onnx"), /dup\.onnx \(tensor 'model\.layers\.4\.self_attn\.o_proj\.weight'\): duplicate initializer name/);
  });

  it("weight dims that do not match the activation they multiply (quantize, before any work)", () => {
    const m = stories();
    const t = init(m, "model.layers.2.mlp.down_proj.weight"); // [172, 64] → [171, 64]
    t.dims = [171n, 64n];
    t.rawData = t.rawData.slice(0, 171 * 64 * 4);
    expectUserError(
      dir,
      quantizeRtn(writeModel("dims.onnx", m), "q.onnx"),
      /dims\.onnx \(tensor 'model\.layers\.2\.mlp\.down_proj\.weight'\): linear layer '\/model\/layers\.2\/mlp\/down_proj\/MatMul' takes 171 input features but its input '[^']+' has 172 \(from the output of '\/model\/layers\.2\/mlp\/(up|gate)_proj\/MatMul'\)/,
    );
  });

  it("q/k/v reading one tensor with different widths (calibrate)", () => {
    const m = stories();
    const t = init(m, "model.layers.1.self_attn.k_proj.weight"); // [64, 32] → [65, 32]
    t.dims = [65n, 32n];
    t.rawData = new Uint8Array(65 * 32 * 4);
    expectUserError(dir, calibrate(writeModel("qkv.onnx", m)), /qkv\.onnx \(tensor 'model\.layers\.1\.self_attn\.k_proj\.weight'\): linear layers .* read the same tensor .* take 64 and 65 input features/);
  });

  it("no linear layers at all (calibrate and quantize)", () => {
    const m = stories();
    const g = m.graph!;
    g.node = [create(NodeProtoSchema, { name: "id", opType: "Identity", input: ["input_ids"], output: ["logits"] })];
    g.initializer = [];
    const f = writeModel("nolinear.onnx", m);
    expectUserError(dir, calibrate(f), /nolinear\.onnx: has no linear layers/);
    expectUserError(dir, quantizeRtn(f, "q.onnx"), /nolinear\.onnx: has no linear layers/);
  });

  it("linear weights computed in the graph instead of stored (quantize names the node)", () => {
    // y = x · (W ⊙ s): the weight is a Mul of two constants, not an initializer.
    const w = create(TensorProtoSchema, { name: "w", dims: [8n, 4n], dataType: DT.FLOAT, rawData: new Uint8Array(new Float32Array(32).fill(0.5).buffer) });
    const s = create(TensorProtoSchema, { name: "s", dims: [], dataType: DT.FLOAT, rawData: new Uint8Array(new Float32Array([2]).buffer) });
    const m = create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [{ domain: "", version: 17n }],
      graph: {
        name: "computed",
        node: [
          create(NodeProtoSchema, { name: "scale_w", opType: "Mul", input: ["w", "s"], output: ["w_scaled"] }),
          create(NodeProtoSchema, { name: "/proj/MatMul", opType: "MatMul", input: ["x", "w_scaled"], output: ["y"] }),
        ],
        initializer: [w, s],
        input: [tensorValue("x", DT.FLOAT, ["batch", 8])],
        output: [tensorValue("y", DT.FLOAT, ["batch", 4])],
      },
    });
    expectUserError(dir, quantizeRtn(writeModel("computed.onnx", m), "q.onnx"), /computed\.onnx: has no linear layers .*'\/proj\/MatMul' reads 'w_scaled', the output of a Mul node/);
  });
});

describe("weights", () => {
  function nanModel(name: string, value: number): string {
    const m = stories();
    editFloats(init(m, "model.layers.1.mlp.up_proj.weight"), (v) => {
      v[3 * 172 + 17] = value; // [in=3, out=17] in MatMul-B layout
      v[40 * 172 + 2] = value;
    });
    return writeModel(name, m);
  }

  it("NaN in a weight (quantize fails before calibrating, naming tensor and element)", () => {
    expectUserError(dir, quantizeGptq(nanModel("nan.onnx", NaN), "q.onnx"), /nan\.onnx \(tensor 'model\.layers\.1\.mlp\.up_proj\.weight'\): holds 2 NaN\/Inf values \(first at \[3, 17\]\)/);
  });

  it("+Inf in a weight (inspect and calibrate)", () => {
    const f = nanModel("inf.onnx", Infinity);
    expectUserError(dir, ["inspect", f, "--json"], /inf\.onnx \(tensor 'model\.layers\.1\.mlp\.up_proj\.weight'\): holds 2 NaN\/Inf values/);
    expectUserError(dir, calibrate(f), /inf\.onnx \(tensor 'model\.layers\.1\.mlp\.up_proj\.weight'\): holds 2 NaN\/Inf values/);
  });

  it("all-zero weight columns and rows: handled — RTN keeps them exactly zero, GPTQ stays finite and ≤ RTN's proxy loss", async () => {
    const m = stories();
    editFloats(init(m, "model.layers.0.mlp.down_proj.weight"), (v) => {
      // [172 in, 64 out]: input channels 5 and 100 (GPTQ columns) and output 9 all zero.
      for (let o = 0; o < 64; o++) v[5 * 64 + o] = v[100 * 64 + o] = 0;
      for (let i = 0; i < 172; i++) v[i * 64 + 9] = 0;
    });
    const f = writeModel("zeros.onnx", m);
    const before = fingerprintDir(dir).find((x) => x.file === f);
    const out = path.join(dir, "zeros-rtn.onnx");
    const r = quantlens("quantize", f, "--method", "rtn", "--group", "32", "--format", "fake", "-o", out, "--json");
    expect(r.code, r.stderr).toBe(0);
    const q = await OnnxModel.load(out);
    const w = q.readFloat32("model.layers.0.mlp.down_proj.weight");
    for (let o = 0; o < 64; o++) expect([w[5 * 64 + o], w[100 * 64 + o]]).toEqual([0, 0]);
    for (let i = 0; i < 172; i++) expect(w[i * 64 + 9]).toBe(0);
    expect(w.every(Number.isFinite)).toBe(true);
    q.close();
    const g = quantlens("quantize", f, "--method", "gptq", "--group", "32", "--data", calib, "-o", path.join(dir, "zeros-gptq.onnx"), "--json");
    expect(g.code, g.stderr).toBe(0);
    const layer = JSON.parse(g.stdout).layers.find((l: { name: string }) => l.name === "/model/layers.0/mlp/down_proj/MatMul");
    expect(Number.isFinite(layer.proxy_loss)).toBe(true);
    expect(layer.proxy_loss).toBeLessThanOrEqual(layer.proxy_loss_rtn * (1 + 1e-6));
    expect(fingerprintDir(dir).find((x) => x.file === f)).toEqual(before);
  });

  it("fp16 subnormal weights are read exactly (all 2046 non-zero subnormal patterns) and inspected exactly", () => {
    // Every subnormal fp16 bit pattern m·2⁻²⁴ (m = 1..1023) and its negative, plus 0 and −0.
    const bits = new Uint16Array(2048);
    for (let m = 1; m < 1024; m++) {
      bits[2 * m] = m;
      bits[2 * m + 1] = 0x8000 | m;
    }
    bits[1] = 0x8000;
    const f = write("subnormal.onnx", singleMatMul({ dims: [64n, 32n], dataType: DT.FLOAT16, rawData: new Uint8Array(bits.buffer) }));
    const w = OnnxModel.fromBytes(f, fs.readFileSync(f)).readFloat32("proj.weight");
    for (let m = 1; m < 1024; m++) {
      expect(w[2 * m]).toBe(m * 2 ** -24);
      expect(w[2 * m + 1]).toBe(-m * 2 ** -24);
    }
    expect(Object.is(w[1], -0)).toBe(true);
    const r = quantlens("inspect", f, "--json");
    expect(r.code, r.stderr).toBe(0);
    const stats = JSON.parse(r.stdout).linears[0].stats;
    expect(stats.absmax).toBe(1023 * 2 ** -24);
    expect(stats.absmax).toBeGreaterThan(0);
  });

  it("dead inputs (an activation channel constantly 0): calibrate records it, GPTQ quantizes around it", async () => {
    const m = stories();
    // input_layernorm weight 0 on channels 3 and 50: q/k/v of block 2 see those channels ≡ 0.
    editFloats(init(m, "model.layers.2.input_layernorm.weight"), (v) => {
      v[3] = 0;
      v[50] = 0;
    });
    const f = writeModel("dead.onnx", m);
    const stats = path.join(dir, "dead.safetensors");
    const c = quantlens(...calibrate(f, "dead.safetensors"), "--json");
    expect(c.code, c.stderr).toBe(0);
    const s = readStatsFile(stats);
    const tensor = "/model/layers.2/input_layernorm/Mul_1_output_0";
    const tap = s.tap(tensor);
    const { absmax, variance, kurtosis } = tap;
    const h = tap.hessian()!;
    expect([absmax[3], absmax[50], variance[3], variance[50], h[3 * 64 + 3], h[50 * 64 + 50]]).toEqual([0, 0, 0, 0, 0, 0]);
    expect(absmax[4]).toBeGreaterThan(0);
    // Zero variance must not turn the kurtosis into NaN/Inf.
    expect(Number.isFinite(kurtosis[3]) && Number.isFinite(kurtosis[50])).toBe(true);
    s.close();
    fs.rmSync(stats);
    const q = quantlens(...quantizeGptq(f, "dead-q.onnx", "--format", "fake"), "--json");
    expect(q.code, q.stderr).toBe(0);
    const layers = JSON.parse(q.stdout).layers as { name: string; dead_columns: number; proxy_loss: number; proxy_loss_rtn: number }[];
    for (const p of ["q", "k", "v"]) {
      const l = layers.find((x) => x.name === `/model/layers.2/self_attn/${p}_proj/MatMul`)!;
      expect(l.dead_columns).toBe(2);
      expect(l.proxy_loss).toBeLessThanOrEqual(l.proxy_loss_rtn * (1 + 1e-6));
    }
    expect(layers.find((x) => x.name === "/model/layers.1/self_attn/q_proj/MatMul")!.dead_columns).toBe(0);
  });
});

describe("singular Hessians", () => {
  it("5 calibration tokens for 64 channels: the default damping copes; a tiny one escalates ×10 and says so per layer", () => {
    const one = write("one.json", "[[1, 403, 407, 261, 378]]");
    const run = (...more: string[]) => {
      const r = quantlens("quantize", STORIES_MODEL, "--method", "gptq", "--group", "32", "--data", one, ...more, "-o", path.join(dir, "singular.onnx"), "--force", "--json");
      expect(r.code, r.stderr).toBe(0);
      fs.rmSync(path.join(dir, "singular.onnx"));
      fs.rmSync(path.join(dir, "singular.quantlens.json"));
      return { layers: JSON.parse(r.stdout).layers as { name: string; damp: number; damp_retries: number; proxy_loss: number; proxy_loss_rtn: number }[], stderr: r.stderr };
    };
    const plain = run();
    expect(plain.layers.every((l) => l.damp_retries === 0)).toBe(true);
    expect(plain.stderr).not.toMatch(/damping raised/);
    const tiny = run("--percdamp", "1e-9");
    expect(tiny.layers).toHaveLength(35);
    for (const l of tiny.layers) {
      expect(l.damp_retries, l.name).toBeGreaterThanOrEqual(1);
      expect(tiny.stderr).toContain(`quantlens: note: ${l.name}: H + λI did not factorize (singular Hessian`);
      expect(Number.isFinite(l.proxy_loss)).toBe(true);
      expect(l.proxy_loss).toBeLessThanOrEqual(l.proxy_loss_rtn * (1 + 1e-6));
    }
    // λ grew with the retries: above what 1e-9·mean(diag H) would be next to the default's 1e-2.
    const byName = new Map(plain.layers.map((l) => [l.name, l.damp]));
    for (const l of tiny.layers) expect(l.damp).toBeGreaterThan(byName.get(l.name)! * 1e-7 * 10);
  });
});

describe("tokenizer and config that belong to another model", () => {
  async function smallLlama(sub: string): Promise<string> {
    const d = path.join(dir, sub);
    fs.mkdirSync(d);
    const f = path.join(d, "model.onnx");
    await saveFixture(buildLlama({ hidden: 16, ffn: 32, layers: 1, heads: 2, kvHeads: 1, vocab: 64 }), f);
    return f;
  }

  it("a tokenizer whose ids exceed the model's vocabulary (calibrate names tokenizer.json)", async () => {
    const f = await smallLlama("vocab64");
    fs.copyFileSync(path.join(STORIES, "tokenizer.json"), path.join(path.dirname(f), "tokenizer.json"));
    const text = write("story.jsonl", `${JSON.stringify({ text: "Once upon a time there was a little dog." })}\n`);
    expectUserError(dir, ["calibrate", f, "--data", text, "-o", path.join(dir, "s.safetensors")], /vocab64\/tokenizer\.json: does not match the model: it encodes sample 1 of .*story\.jsonl to token id \d+, but the model's vocabulary is \[0, 64\) \(the tokenizer has 512 tokens\)/);
  });

  it("a config.json whose vocab_size disagrees with the graph (quantize names the field)", async () => {
    const f = await smallLlama("config512");
    fs.copyFileSync(path.join(STORIES, "config.json"), path.join(path.dirname(f), "config.json"));
    expectUserError(dir, quantizeGptq(f, "q.onnx"), /config512\/config\.json: field 'vocab_size' is 512 but the model .* has a vocabulary of 64/);
  });

  it("the indexer agrees with the CLI on the fixture (sanity: the small Llama has 8 linears)", async () => {
    const m = await OnnxModel.load(path.join(dir, "vocab64", "model.onnx"));
    expect(indexLinears(m).layers).toHaveLength(8);
    m.close();
  });
});
