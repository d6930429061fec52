/**
 * onnxruntime sessions over external data: the data is read from the model's own folder (not
 * through links, which onnxruntime ≥ 1.2x refuses), and the lean low-memory session big models get
 * computes what the default one does; sessions hosted on the worker thread (the extension host's)
 * compute the same and leave the event loop free while they run.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import { createSession, ort, setSessionHost } from "../../../extension/src/engine/calib/session";
import { calibrate } from "../../../extension/src/engine/calib/runner";
import { loadModelData } from "../../../extension/src/engine/calib/model-data";
import { BadModelError } from "../../../extension/src/engine/errors";
import { loadRefCases, maxAbsDiff } from "../../helpers/ort";
import { STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";

let dir: string;
let cleanup: () => void;
let model: OnnxModel;

beforeAll(async () => {
  ({ dir, cleanup } = tempDir("quantlens-session-"));
  const src = await OnnxModel.load(STORIES_MODEL);
  const out = path.join(dir, "sub", "model.onnx");
  await saveModel(src.proto, out, { externalData: true, source: src });
  src.close();
  model = await OnnxModel.load(out);
});
afterAll(() => {
  model.close();
  cleanup();
});

async function logits(lowMemory: boolean, ids: number[], shape: [number, number]): Promise<Float32Array> {
  const s = await createSession(model, model.proto, { executionProvider: "cpu", lowMemory });
  try {
    const o = ort();
    const out = await s.session.run({ input_ids: new o.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), shape) }, ["logits"]);
    return out.logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe("sessions over external data", () => {
  it("default and lean sessions both reproduce the reference logits of stories260K from its side file", async () => {
    const c = loadRefCases().find((x) => x.name === "b2_t64")!;
    const normal = await logits(false, c.ids, c.shape);
    const lean = await logits(true, c.ids, c.shape);
    expect(maxAbsDiff(normal, c.logits)).toBeLessThan(1e-4);
    expect(maxAbsDiff(lean, c.logits)).toBeLessThan(1e-4);
    expect(model.info("model.layers.0.mlp.up_proj.weight")!.external).toBeDefined();
  });
});

describe("sessions on the worker thread", () => {
  afterAll(() => setSessionHost("inline"));

  it("compute what this thread's sessions compute, bit for bit, external data included", async () => {
    const c = loadRefCases().find((x) => x.name === "b2_t64")!;
    setSessionHost("inline");
    const inline = await logits(false, c.ids, c.shape);
    setSessionHost("worker");
    const hosted = await logits(false, c.ids, c.shape);
    const lean = await logits(true, c.ids, c.shape);
    expect(hosted).toEqual(inline);
    expect(maxAbsDiff(lean, c.logits)).toBeLessThan(1e-4);
  });

  it("leave the event loop free while a run is in flight", async () => {
    setSessionHost("worker");
    const s = await createSession(model, model.proto, { executionProvider: "cpu" });
    try {
      const o = ort();
      const ids = new o.Tensor("int64", BigInt64Array.from({ length: 16 * 512 }, (_, i) => BigInt(1 + (i % 500))), [16, 512]);
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      // Runs back to back for at least 250 ms (one takes ~0.6 s here); inline, the timer would
      // not fire while a run holds the thread.
      const t0 = performance.now();
      let runs = 0;
      while (performance.now() - t0 < 250) {
        const out = await s.session.run({ input_ids: ids }, ["logits"]);
        expect(out.logits.dims).toEqual([16, 512, 512]);
        expect(out.logits.data).toBeInstanceOf(Float32Array);
        runs++;
      }
      clearInterval(timer);
      expect(ticks).toBeGreaterThanOrEqual(10 + runs);
    } finally {
      await s.release();
    }
    // A released session is gone, by name.
    await expect(s.session.run({}, ["logits"])).rejects.toThrow(/no session \d+ \(released\?\)/);
  });

  it("calibration through them gives the same statistics and Hessians", async () => {
    const stories = await OnnxModel.load(STORIES_MODEL);
    const data = loadModelData(stories, path.join(STORIES, "calib.jsonl"), { samples: 3 });
    setSessionHost("inline");
    const a = await calibrate(stories, data, { batchSize: 2 });
    setSessionHost("worker");
    const b = await calibrate(stories, data, { batchSize: 2 });
    stories.close();
    expect(b.taps.map((t) => t.tap.tensor)).toEqual(a.taps.map((t) => t.tap.tensor));
    for (let i = 0; i < a.taps.length; i++) {
      expect(b.taps[i].stats.absmax).toEqual(a.taps[i].stats.absmax);
      expect(b.taps[i].hessian).toEqual(a.taps[i].hessian);
    }
  });

  it("a model onnxruntime cannot load is a BadModelError naming the file", async () => {
    setSessionHost("worker");
    const broken = { ...model.proto, graph: { ...model.graph, node: model.graph.node.map((n, i) => (i === 3 ? { ...n, opType: "NoSuchOp" } : n)) } };
    await expect(createSession(model, broken, { executionProvider: "cpu" })).rejects.toThrow(BadModelError);
    await expect(createSession(model, broken, { executionProvider: "cpu" })).rejects.toThrow(/onnxruntime cannot load it/);
  });
});
