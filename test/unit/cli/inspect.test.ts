import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import {
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataType as DT,
} from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { listDir, STORIES_MODEL, tempDir } from "../../helpers/paths";
import { buildCli, quantlens } from "../../helpers/cli";
import { noLinears, singleMatMul } from "../../helpers/tiny-models";

beforeAll(buildCli);

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

describe("quantlens inspect", () => {
  it("--json lists the 36 linear layers of stories260K with the contract's keys", () => {
    const r = quantlens("inspect", STORIES_MODEL, "--json");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.linears).toHaveLength(36);
    for (const l of out.linears) {
      for (const key of ["name", "role", "block", "in", "out", "dtype", "input", "params", "share_group"]) expect(l).toHaveProperty(key);
      expect(l.stats.std).toBeGreaterThan(0);
      expect(l.stats.absmax).toBeGreaterThanOrEqual(l.stats.std);
    }
    expect(out.linears[4]).toMatchObject({ name: "/model/layers.0/mlp/gate_proj/MatMul", role: "gate", block: 0, in: 64, out: 172, dtype: "float32" });
    expect(out.linears[35]).toMatchObject({ role: "lm_head", block: null, in: 64, out: 512, tied_to: "model.embed_tokens.weight" });
    expect(out.totals).toMatchObject({ linears: 36, linear_params: 259_328, all_params: 260_032 });
    expect(out.ops.MatMul).toBe(46);
  });

  it("weight statistics match a direct computation", async () => {
    const out = JSON.parse(quantlens("inspect", STORIES_MODEL, "--json").stdout);
    const model = await OnnxModel.load(STORIES_MODEL);
    const w = model.readFloat32("model.layers.2.mlp.down_proj.weight");
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const m2 = w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length;
    const m4 = w.reduce((a, b) => a + (b - mean) ** 4, 0) / w.length;
    const layer = out.linears.find((l: { weight: string }) => l.weight === "model.layers.2.mlp.down_proj.weight");
    expect(layer.stats.absmax).toBe(Math.max(...Array.from(w, Math.abs)));
    expect(layer.stats.std).toBeCloseTo(Math.sqrt(m2), 10);
    expect(layer.stats.kurtosis).toBeCloseTo(m4 / (m2 * m2) - 3, 8);
  });

  it("prints a readable table", () => {
    const r = quantlens("inspect", STORIES_MODEL);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\/model\/layers\.4\/mlp\/down_proj\/MatMul\s+│ down\s+│\s+4 │ 172 │ {2}64 │ float32/);
    expect(r.stdout).toMatch(/Linear layers: 36, 259,328 parameters of 260,032/);
  });

  it("reads external data", async () => {
    const model = await OnnxModel.load(STORIES_MODEL);
    const out = path.join(dir, "ext.onnx");
    await saveModel(model.proto, out, { externalData: true, source: model });
    const a = JSON.parse(quantlens("inspect", out, "--json").stdout);
    const b = JSON.parse(quantlens("inspect", STORIES_MODEL, "--json").stdout);
    expect(a.external_data).toBe(true);
    expect(a.linears.map((l: { stats: unknown }) => l.stats)).toEqual(b.linears.map((l: { stats: unknown }) => l.stats));
  });
});

describe("bad input: exit 1, a message naming the file and tensor, nothing written", () => {
  function expectUserError(file: string, message: RegExp) {
    const before = listDir(dir);
    const r = quantlens("inspect", file, "--json");
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^quantlens: error: /);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(message);
    expect(listDir(dir)).toEqual(before);
  }

  it("not ONNX: a text file", () => {
    const f = path.join(dir, "notes.onnx");
    fs.writeFileSync(f, "this is a README, not a model\n".repeat(20));
    expectUserError(f, /not a valid ONNX protobuf|not an ONNX model/);
  });

  it("not ONNX: random bytes, an empty file, a folder, a missing file", () => {
    const rnd = path.join(dir, "random.onnx");
    fs.writeFileSync(rnd, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24)));
    expectUserError(rnd, /not a valid ONNX protobuf|not an ONNX model/);
    const empty = path.join(dir, "empty.onnx");
    fs.writeFileSync(empty, "");
    expectUserError(empty, /is empty/);
    fs.mkdirSync(path.join(dir, "folder.onnx"));
    expectUserError(path.join(dir, "folder.onnx"), /is a folder/);
    expectUserError(path.join(dir, "missing.onnx"), /does not exist/);
  });

  it("a truncated file, cut anywhere", () => {
    const bytes = fs.readFileSync(STORIES_MODEL);
    const f = path.join(dir, "cut.onnx");
    // One CLI run for the message; the engine for many cut points.
    fs.writeFileSync(f, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expectUserError(f, /truncated/);
    const cuts = [1, 2, 10, 100, 1000, bytes.length - 1, bytes.length - 2];
    for (let i = 1; i < 200; i++) cuts.push(Math.floor((bytes.length * i) / 200));
    for (const cut of cuts) {
      expect(() => OnnxModel.fromBytes(f, bytes.subarray(0, cut)), `cut at ${cut}`).toThrow(/cut\.onnx/);
    }
  });

  it("missing and short external data files name the tensor", async () => {
    const model = await OnnxModel.load(STORIES_MODEL);
    const out = path.join(dir, "ext.onnx");
    await saveModel(model.proto, out, { externalData: true, source: model });
    fs.truncateSync(`${out}.data`, 10_000);
    expectUserError(out, /\(tensor '[^']+'\): external data file 'ext\.onnx\.data' is too short/);
    fs.rmSync(`${out}.data`);
    expectUserError(out, /\(tensor 'model\.embed_tokens\.weight'\): external data file 'ext\.onnx\.data' cannot be opened/);
  });

  it("an external location escaping the folder", async () => {
    const model = await OnnxModel.load(STORIES_MODEL);
    const proto = model.proto;
    const t = proto.graph!.initializer.find((x) => x.name === "model.layers.1.mlp.up_proj.weight")!;
    t.rawData = new Uint8Array(0);
    t.dataLocation = 1;
    t.externalData = [
      create(StringStringEntryProtoSchema, { key: "location", value: "../../etc/passwd" }),
      create(StringStringEntryProtoSchema, { key: "offset", value: "0" }),
      create(StringStringEntryProtoSchema, { key: "length", value: "44032" }),
    ];
    const f = path.join(dir, "escape.onnx");
    fs.writeFileSync(f, toBinary(ModelProtoSchema, proto));
    expectUserError(f, /\(tensor 'model\.layers\.1\.mlp\.up_proj\.weight'\): external data location '\.\.\/\.\.\/etc\/passwd' escapes/);
  });

  it("a model with no linear layers", () => {
    const f = path.join(dir, "add.onnx");
    fs.writeFileSync(f, noLinears());
    expectUserError(f, /has no linear layers/);
  });

  it("an unsupported weight dtype and an unknown data_type", () => {
    const f64 = path.join(dir, "double.onnx");
    fs.writeFileSync(f64, singleMatMul({ dims: [4n, 2n], dataType: DT.DOUBLE, rawData: new Uint8Array(64) }));
    expectUserError(f64, /\(tensor 'proj\.weight'\): linear layer '\/proj\/MatMul' has a float64 weight/);
    const unknown = path.join(dir, "unknown.onnx");
    fs.writeFileSync(unknown, singleMatMul({ dims: [4n, 2n], dataType: 99, rawData: new Uint8Array(32) }));
    expectUserError(unknown, /\(tensor 'proj\.weight'\): has an unknown data_type 99/);
    const short = path.join(dir, "short.onnx");
    fs.writeFileSync(short, singleMatMul({ dims: [4n, 2n], dataType: DT.FLOAT, rawData: new Uint8Array(31) }));
    expectUserError(short, /\(tensor 'proj\.weight'\): raw_data has 31 bytes but 4×2 float32 needs 32/);
  });

  it("an unknown command or flag", () => {
    expect(quantlens("frobnicate").code).toBe(1);
    expect(quantlens("inspect", STORIES_MODEL, "--bogus").code).toBe(1);
  });
});
