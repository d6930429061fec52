// onnxruntime sessions on a worker thread (calib/ort-host.ts drives it). onnxruntime-node runs a
// session on the calling thread; hosted here, a long run does not stall the extension host's
// event loop. Plain JavaScript on purpose: it is loaded as is from the sources (tests) and
// copied next to the bundles (scripts/build.mjs).
"use strict";
process.env.ORT_DISABLE_TELEMETRY = "1";
const { parentPort } = require("node:worker_threads");
const ort = require("onnxruntime-node");

const sessions = new Map();
let nextSession = 1;

/** {type, dims, data} → ort.Tensor, and back (typed arrays cross by structured clone). */
const toTensor = (t) => new ort.Tensor(t.type, t.data, t.dims);
const fromTensor = (t) => ({ type: t.type, dims: Array.from(t.dims), data: t.data });

async function handle(m) {
  switch (m.op) {
    case "create": {
      const session = await ort.InferenceSession.create(m.bytes, m.options);
      const id = nextSession++;
      sessions.set(id, session);
      return { session: id };
    }
    case "run": {
      const session = sessions.get(m.session);
      if (!session) throw new Error(`onnxruntime worker: no session ${m.session} (released?)`);
      const feeds = {};
      for (const [name, t] of Object.entries(m.feeds)) feeds[name] = toTensor(t);
      const out = await session.run(feeds, m.outputs);
      const outputs = {};
      for (const [name, t] of Object.entries(out)) outputs[name] = fromTensor(t);
      return { outputs };
    }
    case "release": {
      const session = sessions.get(m.session);
      sessions.delete(m.session);
      if (session) await session.release();
      return {};
    }
    default:
      throw new Error(`onnxruntime worker: unknown request '${m.op}'`);
  }
}

parentPort.on("message", (m) => {
  handle(m).then(
    (result) => parentPort.postMessage({ id: m.id, result }),
    (e) => parentPort.postMessage({ id: m.id, error: { message: e instanceof Error ? e.message : String(e) } }),
  );
});
