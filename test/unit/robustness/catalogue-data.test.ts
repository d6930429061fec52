/**
 * Bad calibration / evaluation data and bad output paths, through the real CLI: exit 1, an error
 * naming the file and the line/entry/field, nothing written, inputs untouched. The loaders' own
 * unit tests (test/unit/calib/data.test.ts) cover the messages for a few formats in-process; these
 * go through calibrate/quantize/eval and add the cases they lack.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli, quantlens } from "../../helpers/cli";
import { tempDir } from "../../helpers/paths";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import { copyStories, expectUserError, fingerprint } from "./helpers";

let dir: string;
let cleanup: () => void;
let model: string;

beforeAll(() => {
  buildCli();
  ({ dir, cleanup } = tempDir("quantlens-data-"));
  model = copyStories(dir);
});
afterAll(() => cleanup());

function write(name: string, content: string | Uint8Array): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, content);
  return f;
}

const out = () => path.join(dir, "out.safetensors");
const calibrate = (data: string) => ["calibrate", model, "--data", data, "-o", out()];
const quantize = (data: string) => ["quantize", model, "--method", "gptq", "--group", "32", "--data", data, "-o", path.join(dir, "q.onnx")];
const evaluate = (data: string) => ["eval", model, model, "--eval", data];

describe("calibration / evaluation data", () => {
  it.each([
    ["empty .jsonl (quantize)", "empty.jsonl", "", quantize, /empty\.jsonl: is empty: no calibration sequences/],
    ["whitespace-only .txt (calibrate)", "blank.txt", "\n \n\t\n", calibrate, /blank\.txt: is empty/],
    ["an empty JSON array (eval)", "none.json", "[]", evaluate, /none\.json: contains no documents/],
    ["an empty id list (calibrate)", "emptyids.json", "[[1, 2], []]", calibrate, /emptyids\.json: entry 1: no tokens/],
    ["truncated JSON (eval)", "cut.json", "[[1, 2, 3], [4, 5", evaluate, /cut\.json: not valid JSON/],
    ["a .jsonl line that is not an object (calibrate)", "num.jsonl", '{"input_ids": [1, 2]}\n42\n', calibrate, /num\.jsonl: line 2: expected an object with "text" or "input_ids"/],
    ["a string inside input_ids (quantize)", "str.jsonl", '{"input_ids": [1, "2", 3]}\n', quantize, /str\.jsonl: line 1: "input_ids" must be an array of integers/],
    ["a fractional token id (calibrate)", "frac.json", "[[1, 2.5, 3]]", calibrate, /frac\.json: entry 0: token id 2\.5 is not an integer/],
    ["an id one past the vocabulary (quantize)", "oov.jsonl", '{"input_ids": [1, 511, 512]}\n', quantize, /oov\.jsonl: sample 1: token id 512 is outside the model's vocabulary \[0, 512\)/],
    ["a negative id (eval)", "neg.json", "[[1, 5, -3]]", evaluate, /neg\.json: entry 0: token id -3 is outside/],
    ["an id of 1e300 (calibrate)", "huge.json", "[[1, 1e300]]", calibrate, /huge\.json: entry 0: token id 1e\+300 is outside/],
    ["a binary file named .txt (calibrate)", "blob.txt", new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1, 2, 3]), calibrate, /blob\.txt: holds NUL bytes/],
    ["an unknown extension (quantize)", "data.parquet", "PAR1", quantize, /data\.parquet: unknown data format '\.parquet'/],
  ] as const)("%s", (_label, name, content, command, message) => {
    const f = write(name, content);
    expectUserError(dir, command(f), message, { names: [f] });
  });

  it("a data path that is a folder, and one that does not exist", () => {
    fs.mkdirSync(path.join(dir, "folder.jsonl"));
    expectUserError(dir, calibrate(path.join(dir, "folder.jsonl")), /folder\.jsonl: cannot be read \(EISDIR\)/);
    expectUserError(dir, evaluate(path.join(dir, "missing.jsonl")), /missing\.jsonl: does not exist/);
  });

  it("handled: a UTF-8 byte-order mark and CRLF line ends read like plain text", () => {
    const plain = write("plain.jsonl", '{"input_ids": [1, 2, 3, 4]}\n{"text": "Once upon a time"}\n');
    const bom = write("bom.jsonl", '\ufeff{"input_ids": [1, 2, 3, 4]}\r\n{"text": "Once upon a time"}\r\n');
    const a = quantlens("calibrate", model, "--data", plain, "-o", path.join(dir, "a.safetensors"), "--json");
    const b = quantlens("calibrate", model, "--data", bom, "-o", path.join(dir, "b.safetensors"), "--json");
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const ja = JSON.parse(a.stdout);
    const jb = JSON.parse(b.stdout);
    expect(jb.tokens).toBe(ja.tokens);
    expect(jb.tensors.map((t: { absmax: number }) => t.absmax)).toEqual(ja.tensors.map((t: { absmax: number }) => t.absmax));
    for (const f of ["a.safetensors", "b.safetensors"]) fs.rmSync(path.join(dir, f));
  });
});

describe("output paths", () => {
  const data = () => write("ok.json", "[[1, 403, 407, 261, 378]]");

  it("an existing output is not replaced without --force (quantize and calibrate)", () => {
    const existing = write("taken.onnx", "precious");
    const stats = write("taken.safetensors", "precious too");
    expectUserError(dir, ["quantize", model, "--method", "rtn", "--group", "32", "-o", existing], /output .*taken\.onnx already exists; pass --force to replace it/);
    expectUserError(dir, ["calibrate", model, "--data", data(), "-o", stats], /output .*taken\.safetensors already exists; pass --force/);
    const before = fingerprint(existing);
    const r = quantlens("quantize", model, "--method", "rtn", "--group", "32", "-o", existing, "--force");
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(existing).sha256).not.toBe(before.sha256);
    expect(fs.readFileSync(existing).subarray(0, 8).toString()).not.toBe("precious");
    fs.rmSync(existing);
    fs.rmSync(path.join(dir, "taken.quantlens.json"));
    fs.rmSync(stats);
  });

  it("files written beside the output (report, external data) are not replaced without --force either", () => {
    const report = write("fresh.quantlens.json", "{\"mine\": true}");
    expectUserError(dir, ["quantize", model, "--method", "rtn", "--group", "32", "-o", path.join(dir, "fresh.onnx")], /fresh\.quantlens\.json already exists and would be replaced along with .*fresh\.onnx; pass --force/);
    fs.rmSync(report);
    const side = write("fresh.onnx.data", "someone's weights");
    expectUserError(dir, ["quantize", model, "--method", "rtn", "--group", "32", "-o", path.join(dir, "fresh.onnx")], /fresh\.onnx\.data already exists/);
    fs.rmSync(side);
  });

  it("an output that is a folder, the input itself, or the input's external data", () => {
    fs.mkdirSync(path.join(dir, "outdir.onnx"));
    expectUserError(dir, ["quantize", model, "--method", "rtn", "--group", "32", "-o", path.join(dir, "outdir.onnx")], /output .*outdir\.onnx is a folder/);
    expectUserError(dir, ["quantize", model, "--method", "rtn", "--group", "32", "-o", model, "--force"], /refusing to write the output over the input .*model\.onnx/);
    expectUserError(dir, ["calibrate", model, "--data", data(), "-o", data(), "--force"], /refusing to write the output over the input .*ok\.json/);
  });

  it("an output that would land on the input's external data file, even with --force", async () => {
    const src = await OnnxModel.load(model);
    const sub = path.join(dir, "ext");
    fs.mkdirSync(sub);
    const ext = path.join(sub, "model.onnx");
    await saveModel(src.proto, ext, { externalData: true, source: src });
    src.close();
    expectUserError(dir, ["calibrate", ext, "--data", data(), "-o", `${ext}.data`, "--force"], /refusing to write the output over the input .*ext\/model\.onnx\.data/);
    expectUserError(dir, ["quantize", ext, "--method", "rtn", "--group", "32", "-o", `${ext}.data`, "--force"], /refusing to write the output over the input .*ext\/model\.onnx\.data/);
  });

  it("an output under a path whose parent is a file names the output", () => {
    const file = write("plainfile", "x");
    expectUserError(dir, ["quantize", model, "--method", "rtn", "--group", "32", "-o", path.join(file, "q.onnx")], /cannot write .*plainfile\/q\.onnx: a parent of it is not a folder/);
  });
});
