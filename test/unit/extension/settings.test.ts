import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS, describeRecipe, methodConfig, presetRecipe, readSettings, calibOptions } from "../../../extension/src/commands/settings";
import { DEFAULT_CONFIG, METHODS } from "../../../extension/src/engine/quant/config";
import { FORMATS } from "../../../extension/src/engine/export/export";
import { UsageError } from "../../../extension/src/engine/errors";
import { ROOT } from "../../helpers/paths";

const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
const props = manifest.contributes.configuration.properties as Record<string, { default: unknown; enum?: unknown[] }>;
const from = (values: Record<string, unknown>) => (key: string) => values[key];

describe("settings", () => {
  it("package.json declares every setting, with the defaults the code falls back to", () => {
    const keys = Object.keys(DEFAULT_SETTINGS).sort();
    expect(Object.keys(props).map((k) => k.replace(/^quantlens\./, "")).sort()).toEqual(keys);
    for (const k of keys) {
      const declared = props[`quantlens.${k}`].default;
      const code = (DEFAULT_SETTINGS as unknown as Record<string, unknown>)[k];
      // maxMemory: "" in the manifest means "half the machine" (undefined in code).
      expect(k === "maxMemory" ? (declared === "" ? undefined : declared) : declared, k).toEqual(code);
    }
    // The manifest offers exactly the methods and formats this engine runs.
    expect(new Set(props["quantlens.method"].enum)).toEqual(new Set(METHODS));
    expect(new Set(props["quantlens.format"].enum)).toEqual(new Set(FORMATS));
  });

  it("nothing set: the documented preset, GPTQ W4 g128 MatMulNBits", () => {
    const s = readSettings(from({}));
    const r = presetRecipe(s);
    expect(r.config).toEqual(DEFAULT_CONFIG);
    expect(r.config).toMatchObject({ method: "gptq", bits: 4, group: 128 });
    expect(r.format).toBe("matmulnbits");
    expect(describeRecipe(r)).toBe("GPTQ W4 g128 → MatMulNBits");
    expect(calibOptions(s)).toEqual({ executionProvider: "auto" });
  });

  it("reads every setting the user set", () => {
    const s = readSettings(from({ method: "rtn", bits: 3, group: 32, format: "fake", calibrationFile: " data/c.jsonl ", samples: 7, executionProvider: "cpu", threads: 2, maxMemory: "1.5G" }));
    expect(s).toMatchObject({ method: "rtn", bits: 3, group: 32, format: "fake", calibrationFile: "data/c.jsonl", samples: 7, executionProvider: "cpu", threads: 2, maxMemory: Math.floor(1.5 * 2 ** 30) });
    expect(calibOptions(s)).toEqual({ executionProvider: "cpu", threads: 2, maxMemory: Math.floor(1.5 * 2 ** 30) });
    expect(presetRecipe(s)).toEqual({ config: { ...DEFAULT_CONFIG, method: "rtn", bits: 3, group: 32 }, format: "fake" });
  });

  it("a bad value is a user error naming every bad setting and what it accepts", () => {
    let err: unknown;
    try {
      readSettings(from({ bits: 5, group: -1, method: "magic", format: "gguf", samples: 0, executionProvider: "tpu", threads: 1.5, maxMemory: "lots", calibrationFile: 3 }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    const m = (err as Error).message;
    for (const k of ["bits", "group", "method", "format", "samples", "executionProvider", "threads", "maxMemory", "calibrationFile"]) expect(m).toContain(`quantlens.${k}`);
    expect(m).toContain("2, 3, 4 or 8, not 5");
    expect(m).toContain('not "lots"');
  });

  it("SmoothQuant is W8A8 symmetric; its bits/group default to 8 per-channel unless the user set them", () => {
    const unset = presetRecipe(readSettings(from({ method: "smoothquant" })));
    expect(unset.config).toMatchObject({ method: "smoothquant", bits: 8, group: 0, symmetric: true });
    const set = presetRecipe(readSettings(from({ method: "smoothquant", bits: 4, group: 64 })));
    expect(set.config).toMatchObject({ method: "smoothquant", bits: 4, group: 64, symmetric: true });
    expect(describeRecipe(unset)).toBe("SmoothQuant W8A8 per-channel → MatMulNBits");
    expect(methodConfig("awq", 4, 64)).toEqual({ ...DEFAULT_CONFIG, method: "awq", bits: 4, group: 64 });
  });
});
