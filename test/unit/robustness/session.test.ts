/**
 * onnxruntime sessions over external data: the data is read from the model's own folder (not
 * through links, which onnxruntime ≥ 1.2x refuses), and the lean low-memory session big models get
 * computes what the default one does.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { saveModel } from "../../../extension/src/engine/onnx/save";
import { createSession, ort } from "../../../extension/src/engine/calib/session";
import { loadRefCases, maxAbsDiff } from "../../helpers/ort";
import { STORIES_MODEL, tempDir } from "../../helpers/paths";

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
    const out = await s.session.run({ input_ids: new o.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), shape) });
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
