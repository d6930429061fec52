import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chooseCalibrationData, chooseEvalData, discoverCalibrationData, resolveCalibrationSetting } from "../../../extension/src/commands/calibration";
import { BadDataError } from "../../../extension/src/engine/errors";
import { tempDir } from "../../helpers/paths";

let dir: string;
let cleanup: () => void;
let model: string;
const write = (rel: string, text = "") => {
  const f = path.join(dir, rel);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, text);
  return f;
};
beforeEach(() => {
  ({ dir, cleanup } = tempDir("quantlens-calib-"));
  model = write("model.onnx", "x");
});
afterEach(() => cleanup());

describe("calibration data next to the model", () => {
  it("finds data files, calibration-named first, and skips configs, tokenizers, reports and docs", () => {
    write("config.json", '{"vocab_size": 512}');
    write("tokenizer.json", '{"model": {}}');
    write("generation_config.json", "{}");
    write("model.gptq-w4g128.quantlens.json", "{}");
    write("README.md", "# model");
    write("LICENSE.txt", "MIT");
    write("stories.txt", "Once upon a time.");
    write("ids.json", "[[1, 2, 3]]");
    write("settings.json", '{"not": "ids"}');
    write("calib.jsonl", '{"text": "hi"}\n');
    write("eval/eval_tokens.json", "[[1, 2]]");
    write("data/more.jsonl", '{"text": "x"}\n');
    const found = discoverCalibrationData(model).map((c) => path.relative(dir, c.file));
    expect(found).toEqual(["calib.jsonl", "stories.txt", "ids.json", path.join("data", "more.jsonl"), path.join("eval", "eval_tokens.json")]);
    expect(chooseCalibrationData("", { modelPath: model })?.file).toBe(path.join(dir, "calib.jsonl"));
    expect(chooseEvalData(model, path.join(dir, "calib.jsonl"))?.file).toBe(path.join(dir, "eval", "eval_tokens.json"));
  });

  it("nothing found: null (the command then asks)", () => {
    write("config.json", "{}");
    expect(discoverCalibrationData(model)).toEqual([]);
    expect(chooseCalibrationData("", { modelPath: model })).toBeNull();
    expect(chooseEvalData(model, null)).toBeNull();
  });

  it("an eval file is never also the calibration file", () => {
    const only = write("eval.jsonl", '{"text": "x"}\n');
    expect(chooseCalibrationData("", { modelPath: model })?.file).toBe(only);
    expect(chooseEvalData(model, only)).toBeNull();
  });

  it("the setting wins over what is found, relative to the workspace folder, ${workspaceFolder} and ~ expanded", () => {
    write("calib.jsonl", "{}\n");
    const mine = write("sets/mine.txt", "text");
    expect(chooseCalibrationData("sets/mine.txt", { modelPath: model, workspaceFolder: dir })).toEqual({ file: mine, where: "from the quantlens.calibrationFile setting" });
    expect(resolveCalibrationSetting("${workspaceFolder}/sets/mine.txt", { modelPath: model, workspaceFolder: dir })).toBe(mine);
    expect(resolveCalibrationSetting("~/sets/mine.txt", { modelPath: model, home: dir })).toBe(mine);
    // Without a workspace folder a relative path is taken from the model's folder.
    expect(resolveCalibrationSetting("sets/mine.txt", { modelPath: model })).toBe(mine);
  });

  it("a setting naming a missing file is an error naming the setting (no silent fallback)", () => {
    write("calib.jsonl", "{}\n");
    expect(() => chooseCalibrationData("nope.jsonl", { modelPath: model, workspaceFolder: dir })).toThrow(BadDataError);
    expect(() => chooseCalibrationData("nope.jsonl", { modelPath: model, workspaceFolder: dir })).toThrow(/quantlens\.calibrationFile \('nope\.jsonl'\) does not exist/);
    // A folder is not a file.
    write("eval/eval.json", "[[1]]");
    expect(() => resolveCalibrationSetting("eval", { modelPath: model, workspaceFolder: dir })).toThrow(BadDataError);
  });
});
