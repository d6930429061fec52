import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { BadModelError } from "../../../extension/src/engine/errors";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import { resolveExternalLocation } from "../../../extension/src/engine/onnx/external";
import {
  GraphProtoSchema,
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
} from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { loadRefCases, maxAbsDiff, runLogits } from "../../helpers/ort";
import { listDir, STORIES_MODEL, tempDir } from "../../helpers/paths";

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

async function saveExternal(name = "ext.onnx"): Promise<string> {
  const model = await OnnxModel.load(STORIES_MODEL);
  const out = path.join(dir, name);
  await saveModel(model.proto, out, { externalData: true, source: model });
  return out;
}

/** A one-initializer model whose weight lives at `offset` of `location`. */
function externalModel(location: string, offset: number, length: number, dims = [4, 4]) {
  const t = create(TensorProtoSchema, {
    name: "w",
    dims: dims.map(BigInt),
    dataType: TensorProto_DataType.FLOAT,
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [
      create(StringStringEntryProtoSchema, { key: "location", value: location }),
      create(StringStringEntryProtoSchema, { key: "offset", value: String(offset) }),
      create(StringStringEntryProtoSchema, { key: "length", value: String(length) }),
    ],
  });
  return create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [{ domain: "", version: 17n }],
    graph: create(GraphProtoSchema, {
      name: "g",
      initializer: [t],
      output: [{ name: "w", type: { value: { case: "tensorType", value: { elemType: TensorProto_DataType.FLOAT } } } }],
    }),
  });
}

describe("external data", () => {
  it("saves weights to a side file that reads back identically and runs in onnxruntime", async () => {
    const out = await saveExternal();
    expect(listDir(dir)).toEqual(["ext.onnx", "ext.onnx.data"]);
    expect(fs.statSync(out).size).toBeLessThan(100_000); // the graph only (~68 KB); weights are ~1.1 MB
    const original = await OnnxModel.load(STORIES_MODEL);
    const ext = await OnnxModel.load(out);
    for (const t of original.initializers()) {
      const a = original.readFloat32(t.name);
      const b = ext.readFloat32(t.name);
      expect(Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toEqual(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    }
    expect(ext.info("model.layers.0.mlp.down_proj.weight")!.external?.location).toBe("ext.onnx.data");
    const c = loadRefCases()[0];
    expect(maxAbsDiff(await runLogits(out, c.ids, c.shape), c.logits)).toBeLessThan(1e-4);
    ext.close();
  });

  it("re-embeds external weights when saving without external data", async () => {
    const ext = await OnnxModel.load(await saveExternal());
    const out = path.join(dir, "embedded.onnx");
    await saveModel(ext.proto, out, { externalData: false, source: ext });
    const back = await OnnxModel.load(out);
    expect([...back.initializers()].every((t) => !back.info(t.name)!.external)).toBe(true);
    expect(back.readFloat32("lm_head.weight")).toEqual(ext.readFloat32("lm_head.weight"));
  });

  it("reads a range by offset without reading the whole file (tensor past 4 GiB in a sparse file)", async () => {
    const data = path.join(dir, "big.data");
    const offset = 5 * 2 ** 30; // beyond int32 offsets
    const fd = fs.openSync(data, "w");
    const values = Float32Array.from({ length: 16 }, (_, i) => i - 7.5);
    fs.writeSync(fd, new Uint8Array(values.buffer), 0, 64, offset);
    fs.closeSync(fd);
    const file = path.join(dir, "big.onnx");
    fs.writeFileSync(file, (await import("@bufbuild/protobuf")).toBinary(ModelProtoSchema, externalModel("big.data", offset, 64)));
    const m = await OnnxModel.load(file);
    expect(m.readFloat32("w")).toEqual(values);
    expect(m.readFloat32("w", 5, 3)).toEqual(values.subarray(5, 8));
    const rss = process.memoryUsage().rss;
    expect(rss).toBeLessThan(2 ** 30); // a whole-file read would need > 5 GiB
  });

  it.each([
    ["../outside.data", /escapes the model's folder/],
    ["sub/../../outside.data", /escapes the model's folder/],
    ["/etc/passwd", /absolute path/],
    ["C:\\weights.data", /absolute path/],
    ["", /is empty/],
  ])("rejects location %j", (location, message) => {
    const model = path.join(dir, "m.onnx");
    expect(() => resolveExternalLocation(model, location, "w")).toThrow(message);
  });

  it("rejects a symlink that points outside the model's folder", async () => {
    const { dir: other, cleanup: cleanOther } = tempDir();
    try {
      fs.writeFileSync(path.join(other, "secret.data"), Buffer.alloc(64));
      fs.symlinkSync(path.join(other, "secret.data"), path.join(dir, "link.data"));
      const file = path.join(dir, "m.onnx");
      fs.writeFileSync(file, (await import("@bufbuild/protobuf")).toBinary(ModelProtoSchema, externalModel("link.data", 0, 64)));
      await expect(OnnxModel.load(file)).rejects.toThrow(/link that resolves outside/);
    } finally {
      cleanOther();
    }
  });

  it("names the tensor when the side file is missing or short", async () => {
    const out = await saveExternal();
    fs.truncateSync(`${out}.data`, 100_000);
    const short = await OnnxModel.load(out).catch((e) => e);
    expect(short).toBeInstanceOf(BadModelError);
    expect(short.message).toMatch(/ext\.onnx \(tensor '.+'\): external data file 'ext\.onnx\.data' is too short/);
    fs.rmSync(`${out}.data`);
    const missing = await OnnxModel.load(out).catch((e) => e);
    expect(missing).toBeInstanceOf(BadModelError);
    expect(missing.message).toMatch(/tensor 'model\.embed_tokens\.weight'.*'ext\.onnx\.data' cannot be opened \(ENOENT\)/);
  });

  it("chooses external data automatically only past the protobuf limit", async () => {
    const out = path.join(dir, "auto.onnx");
    const model = await OnnxModel.load(STORIES_MODEL);
    await saveModel(model.proto, out, { source: model });
    expect(listDir(dir)).toEqual(["auto.onnx"]);
  });

  it("refuses to overwrite the input model and leaves no temp files on failure", async () => {
    const ext = await OnnxModel.load(await saveExternal());
    await expect(saveModel(ext.proto, ext.file, { source: ext })).rejects.toThrow(/refusing to overwrite the input model/);
    await expect(
      saveModel(ext.proto, path.join(dir, "other.onnx"), { source: ext, externalData: true, location: "ext.onnx.data" }),
    ).rejects.toThrow(/overwrite the input's external data/);
    const abort = new AbortController();
    abort.abort();
    await expect(saveModel(ext.proto, path.join(dir, "cancelled.onnx"), { source: ext, signal: abort.signal })).rejects.toThrow(
      /cancelled/,
    );
    expect(listDir(dir)).toEqual(["ext.onnx", "ext.onnx.data"]);
  });
});
