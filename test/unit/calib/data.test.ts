import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BadDataError } from "../../../extension/src/engine/errors";
import { equalLengthBatches, loadTokenData } from "../../../extension/src/engine/calib/data";
import { buildFeeds } from "../../../extension/src/engine/calib/runner";
import { create } from "@bufbuild/protobuf";
import { STORIES, tempDir } from "../../helpers/paths";
import { tensorValue as valueInfo } from "../../fixtures/generator";

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

const opts = { vocab: 512, maxPositions: 512, tokenizerDir: STORIES };
function write(name: string, content: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, content);
  return f;
}

describe("calibration data sources", () => {
  it("tokenizes {text} lines with the model's tokenizer exactly like the reference ids", () => {
    const f = write("a.jsonl", `${JSON.stringify({ text: "Once upon a time" })}\n\n${JSON.stringify({ input_ids: [1, 5, 6] })}\n`);
    const d = loadTokenData(f, opts);
    expect(d.sequences).toEqual([[1, 403, 407, 261, 378], [1, 5, 6]]);
    expect(d.tokens).toBe(8);
  });

  it("reads .json id arrays and .txt split on <|endoftext|> or blank lines", () => {
    expect(loadTokenData(write("a.json", "[[1,2,3],[4,5]]"), opts).sequences).toEqual([[1, 2, 3], [4, 5]]);
    const eot = loadTokenData(write("a.txt", "One day.\n<|endoftext|>\nTwo days.\n<|endoftext|>\n"), opts);
    expect(eot.sequences).toHaveLength(2);
    const blank = loadTokenData(write("b.txt", "First story.\n\nSecond story.\n\n\nThird."), opts);
    expect(blank.sequences).toHaveLength(3);
    expect(blank.sequences[0][0]).toBe(1); // BOS from the tokenizer's post-processor
  });

  it("--samples and --seq-len cut, and over-long sequences are truncated with a note", () => {
    const long = Array.from({ length: 700 }, (_, i) => (i % 500) + 3);
    const f = write("long.json", JSON.stringify([long, [1, 2, 3], [4, 5, 6, 7]]));
    const d = loadTokenData(f, opts);
    expect(d.sequences[0]).toHaveLength(512);
    expect(d.notes.join()).toMatch(/1 of 3 sequences truncated to 512 tokens \(the model's context of 512\)/);
    const s = loadTokenData(f, { ...opts, samples: 2, seqLen: 2 });
    expect(s.sequences).toEqual([long.slice(0, 2), [1, 2]]);
    expect(s.notes.join()).toMatch(/truncated to 2 tokens \(--seq-len 2\)/);
  });

  it.each([
    ["empty.jsonl", "", /is empty/],
    ["blank.jsonl", "\n  \n", /is empty/],
    ["bad.jsonl", '{"text": "ok"}\n{"text": "unterminated}\n', /line 2: not valid JSON/],
    ["keys.jsonl", '{"text": "ok"}\n{"prompt": "x"}\n', /line 2: expected a "text" string or an "input_ids" array/],
    ["ids.jsonl", '{"input_ids": [1, 2, 512]}\n', /sample 1: token id 512 is outside the model's vocabulary \[0, 512\)/],
    ["neg.json", "[[1, -1]]", /entry 0: token id -1 is outside/],
    ["obj.json", '{"a": 1}', /must hold a JSON array/],
    ["data.csv", "1,2,3", /unknown data format '\.csv'/],
  ])("rejects %s with a message naming the problem", (name, content, message) => {
    const f = write(name, content);
    const err = (() => {
      try {
        loadTokenData(f, opts);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(BadDataError);
    expect(err!.message).toContain(f);
    expect(err!.message).toMatch(message);
  });

  it("text without a tokenizer is a clear error", () => {
    const f = write("t.jsonl", '{"text": "hello"}\n');
    expect(() => loadTokenData(f, { vocab: 512, tokenizerDir: dir })).toThrow(/holds text but there is no tokenizer\.json/);
    expect(() => loadTokenData(f, { vocab: 512 })).toThrow(/give token ids/);
  });

  it("batches only sequences of equal length, longest first", () => {
    const seqs = [[1, 2], [3], [4, 5], [6, 7], [8]];
    expect(equalLengthBatches(seqs, 2)).toEqual([[[1, 2], [4, 5]], [[6, 7]], [[3], [8]]]);
  });
});

describe("model inputs", () => {
  it("fills attention_mask, position_ids and empty past_key_values", () => {
    const feeds = buildFeeds(
      [
        valueInfo("input_ids", 7, ["batch", "seq"]),
        valueInfo("attention_mask", 7, ["batch", "seq"]),
        valueInfo("position_ids", 6, ["batch", "seq"]),
        valueInfo("past_key_values.0.key", 1, ["batch", 4, "past", 8]),
      ],
      new Set(),
      [[1, 2, 3], [4, 5, 6]],
    );
    expect(Array.from(feeds.input_ids.data as BigInt64Array)).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
    expect(Array.from(feeds.attention_mask.data as BigInt64Array)).toEqual([1n, 1n, 1n, 1n, 1n, 1n]);
    expect(feeds.position_ids.type).toBe("int32");
    expect(Array.from(feeds.position_ids.data as Int32Array)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(feeds["past_key_values.0.key"].dims).toEqual([2, 4, 0, 8]);
    expect(() => buildFeeds([valueInfo("pixel_values", 1, [1, 3])], new Set(), [[1]])).toThrow(/model input 'pixel_values'/);
  });
});

describe("models with extra inputs", () => {
  it("calibrates a model that also takes attention_mask, position_ids and a KV cache", async () => {
    const { OnnxModel } = await import("../../../extension/src/engine/onnx/model");
    const { calibrate } = await import("../../../extension/src/engine/calib/runner");
    const { toBinary } = await import("@bufbuild/protobuf");
    const { ModelProtoSchema, NodeProtoSchema } = await import("../../../extension/src/engine/onnx/proto/onnx_pb");
    const base = await OnnxModel.load(path.join(STORIES, "model.onnx"));
    const proto = structuredClone(base.proto);
    const g = proto.graph!;
    g.input.push(valueInfo("attention_mask", 7, ["batch", "seq"]), valueInfo("position_ids", 7, ["batch", "seq"]), valueInfo("past_key_values.0.key", 1, ["batch", 4, "past", 8]));
    // Consume them (onnxruntime insists on every declared input anyway): an extra output.
    g.node.push(
      create(NodeProtoSchema, { name: "mask_sum", opType: "ReduceSum", input: ["attention_mask"], output: ["mask_sum"] }),
      create(NodeProtoSchema, { name: "past_sum", opType: "ReduceSum", input: ["past_key_values.0.key"], output: ["past_sum"] }),
      create(NodeProtoSchema, { name: "pos_sum", opType: "ReduceSum", input: ["position_ids"], output: ["pos_sum"] }),
    );
    g.output.push(valueInfo("mask_sum", 7, []), valueInfo("past_sum", 1, []), valueInfo("pos_sum", 7, []));
    const file = path.join(dir, "extra.onnx");
    fs.writeFileSync(file, toBinary(ModelProtoSchema, proto));
    const model = await OnnxModel.load(file);
    const data = { file, sequences: [[1, 5, 9, 11], [1, 2, 3, 4]], notes: [], tokens: 8 };
    const r = await calibrate(model, data, { hessian: false });
    expect(r.taps).toHaveLength(21);
    expect(r.taps[0].stats.n).toBe(8);
    // Block by block: the extra inputs reach only the stage that reads them; same activations.
    const staged = await calibrate(model, data, { hessian: false, staged: true });
    expect(staged.passes).toBe(6);
    staged.taps.forEach((t, i) => expect(t.stats.absmax, t.tap.tensor).toEqual(r.taps[i].stats.absmax));
  });
});
