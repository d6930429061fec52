import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bitsPerWeightOf, exportReportToReport, inspectToReport, loadReport } from "../../../extension/src/views/report-load";
import { reportToPanels } from "../../../extension/src/views/report-to-panels";
import { validateReport } from "../../../extension/src/engine/report/validate";
import { inspectModel } from "../../../extension/src/engine/inspect";
import { BadDataError } from "../../../extension/src/engine/errors";
import { inspectLayer, layerDetailMarkdown } from "../../../extension/src/views/layer-detail";
import { STORIES_MODEL, tempDir } from "../../helpers/paths";

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir("quantlens-report-")));
afterEach(() => cleanup());

describe("reports for the panels", () => {
  it("an inspected model becomes a valid report with the layer table only", async () => {
    const r = inspectToReport(await inspectModel(STORIES_MODEL, { noStats: true }), STORIES_MODEL);
    expect(validateReport(JSON.parse(JSON.stringify(r)))).toBeTruthy();
    expect(r.layers).toHaveLength(36);
    expect(r.model).toMatchObject({ file: STORIES_MODEL, blocks: 5, linears: 36 });
    expect(r.sections).toEqual([]);
    const p = reportToPanels(r);
    expect(p.overview.layers).toHaveLength(36);
    expect(p.heatmap).toBeNull();
    expect(p.missing.heatmap).toMatch(/Analyze/);
  });

  it("the exporter's report without its source model: rows from the report itself, size accounting per the schema", async () => {
    const exported = {
      format_version: 1,
      model: path.join(dir, "gone.onnx"),
      output: path.join(dir, "gone.rtn-w4g32.onnx"),
      format: "matmulnbits",
      config: { method: "rtn", bits: 4, group: 32 },
      seconds: 1.5,
      calibration: null,
      notes: ["a note"],
      kept: [],
      layers: [
        { name: "a", role: "q", block: 0, in: 64, out: 64, method: "rtn", bits: 4, group: 32, proxy_loss: null, rel_proxy_loss: null, proxy_loss_rtn: null, seconds: 0.1 },
        { name: "b", role: "down", block: 0, in: 172, out: 64, method: "rtn", bits: 4, group: 32, proxy_loss: 2, rel_proxy_loss: 0.01, proxy_loss_rtn: 4, seconds: 0.1 },
      ],
    };
    const r = await exportReportToReport(exported, path.join(dir, "gone.rtn-w4g32.quantlens.json"));
    expect(r.layers.map((l) => [l.name, l.bits, l.group, l.proxy_loss])).toEqual([
      ["a", 4, 32, null],
      ["b", 4, 32, 0.01],
    ]);
    // RTN's normalised loss: proxy_loss_rtn · rel / proxy_loss.
    expect(r.quantization!.layers[1].proxy_loss_rtn).toBeCloseTo(0.02, 12);
    const want = (bitsPerWeightOf(4, 32, 64) * 64 * 64 + bitsPerWeightOf(4, 32, 172) * 172 * 64) / (64 * 64 + 172 * 64);
    expect(r.quantization!.avg_bits).toBeCloseTo(want, 12);
    // schema.ts: bits + ceil(in/g)·(16 + bits)/in: 172 inputs at g 32 are 6 groups (the last of 12).
    expect(bitsPerWeightOf(4, 32, 172)).toBeCloseTo(4 + (6 * 20) / 172, 12);
    expect(bitsPerWeightOf(8, 0, 64)).toBe(8 + 24 / 64);
    expect(r.notes).toContain("a note");
  });

  it("loadReport names the file when it is not a report", async () => {
    const f = path.join(dir, "x.quantlens.json");
    fs.writeFileSync(f, '{"hello": 1}');
    await expect(loadReport(f)).rejects.toThrow(BadDataError);
    await expect(loadReport(f)).rejects.toThrow(f);
    fs.writeFileSync(f, "{not json");
    await expect(loadReport(f)).rejects.toThrow(/not JSON/);
    fs.writeFileSync(f, JSON.stringify({ format: "quantlens-report", version: 1 }));
    await expect(loadReport(f)).rejects.toThrow(/created/);
  });

  it("layer detail without a report says how to get one", async () => {
    const info = await inspectLayer(STORIES_MODEL, "/model/layers.2/mlp/down_proj/MatMul");
    expect(info).toMatchObject({ role: "down", block: 2, in: 172, out: 64 });
    const md = layerDetailMarkdown(STORIES_MODEL, info);
    expect(md).toContain("# /model/layers.2/mlp/down\\_proj/MatMul");
    expect(md).toContain("64 × 172 (out × in): 172 inputs → 64 outputs, 11,008 weights");
    expect(md).toMatch(/run \*\*QuantLens: Analyze\*\*/);
    await expect(inspectLayer(STORIES_MODEL, "nope")).rejects.toThrow(/no linear layer named 'nope'/);
  });
});
