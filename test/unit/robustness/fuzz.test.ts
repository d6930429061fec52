/**
 * Mutation and property-based fuzzing (fast-check) of the ONNX reader and the calibration-data
 * readers: more than 10,000 mutated inputs per run. The only exceptions allowed out are
 * QuantLensError subclasses (a clear "bad model"/"bad data" error); no case may take longer than
 * a generous deadline (a hang guard, not a timing test); memory must not grow with the number of
 * cases. Mutations: bit flips, byte stores, truncations, splices, insertions, deletions, varint
 * overwrites (incl. lengths and dims near 2^31, 2^32, 2^60, 2^64), and structure-aware edits of
 * decoded models (dims claiming 2^60 elements, external data with huge offsets/lengths or
 * escaping locations, unknown dtypes, dangling node inputs, wild IR/opset versions).
 *
 * Runs are reproducible: the seed is printed on failure and can be pinned with
 * QUANTLENS_FUZZ_SEED; QUANTLENS_FUZZ_SCALE multiplies the case counts (default 1).
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { QuantLensError } from "../../../extension/src/engine/errors";
import { OnnxModel } from "../../../extension/src/engine/onnx/model";
import { indexLinears } from "../../../extension/src/engine/onnx/linear";
import { loadTokenData } from "../../../extension/src/engine/calib/data";
import {
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType as DT,
  type ModelProto,
} from "../../../extension/src/engine/onnx/proto/onnx_pb";
import { buildLlama } from "../../fixtures/generator";
import { singleMatMul } from "../../helpers/tiny-models";
import { STORIES, STORIES_MODEL, tempDir } from "../../helpers/paths";

const SEED = process.env.QUANTLENS_FUZZ_SEED ? Number(process.env.QUANTLENS_FUZZ_SEED) : Date.now() % 2 ** 31;
const SCALE = Number(process.env.QUANTLENS_FUZZ_SCALE ?? 1);
/** Per-case hang guard: far above any real case (ms), far below "hung". */
const DEADLINE_MS = 5_000;
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));

let dir: string;
let cleanup: () => void;
let modelFile: string;
let cases = 0;
let slowest = 0;
let rssStart = 0;

beforeAll(() => {
  ({ dir, cleanup } = tempDir("quantlens-fuzz-"));
  modelFile = path.join(dir, "model.onnx");
  // External data that mutated models may point at: 4 KiB of floats beside the model.
  fs.writeFileSync(path.join(dir, "w.data"), new Uint8Array(new Float32Array(1024).fill(0.25).buffer));
  fs.mkdirSync(path.join(dir, "sub"));
  fs.writeFileSync(path.join(dir, "sub", "w.data"), new Uint8Array(256));
  rssStart = process.memoryUsage().rss;
});
afterAll(() => {
  cleanup();
  console.log(`fuzz: ${cases} cases, seed ${SEED}, slowest ${slowest.toFixed(1)} ms, RSS ${((process.memoryUsage().rss - rssStart) / 2 ** 20).toFixed(0)} MiB above start`);
});

/** Let the test runner's messages through during long property runs. */
async function breathe(): Promise<void> {
  if (cases % 200 === 0) await new Promise((r) => setImmediate(r));
}

/** Run one case: anything may be rejected, but only as a QuantLensError, and in bounded time. */
async function guarded(what: string, body: () => void): Promise<void> {
  await breathe();
  cases++;
  const t0 = performance.now();
  try {
    body();
  } catch (e) {
    if (!(e instanceof QuantLensError)) throw new Error(`${what}: escaped as ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
  }
  const ms = performance.now() - t0;
  slowest = Math.max(slowest, ms);
  if (ms > DEADLINE_MS) throw new Error(`${what}: took ${ms.toFixed(0)} ms (hang guard ${DEADLINE_MS} ms)`);
}

/** Everything a command does with a model before running it: decode, validate, index, read. */
function readModel(bytes: Uint8Array): void {
  const m = OnnxModel.fromBytes(modelFile, bytes);
  try {
    const index = indexLinears(m);
    for (const l of index.layers.slice(0, 4)) {
      const n = m.info(l.weight)!.count;
      if (["float32", "float16", "bfloat16"].includes(l.dtype)) {
        m.readFloat32(l.weight, 0, Math.min(n, 64));
        m.readFloat32(l.weight, Math.max(0, n - 8));
      }
    }
    void m.weightBytes;
  } finally {
    m.close();
  }
}

// ---- byte-level mutations -------------------------------------------------------------------

type Mutation =
  | { kind: "flip"; pos: number; bit: number }
  | { kind: "store"; pos: number; value: number }
  | { kind: "truncate"; pos: number }
  | { kind: "splice"; from: number; to: number; len: number }
  | { kind: "insert"; pos: number; bytes: Uint8Array }
  | { kind: "delete"; pos: number; len: number }
  | { kind: "varint"; pos: number; value: bigint };

const BIG = [2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 60n, 2n ** 63n, 2n ** 64n - 1n];
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("flip" as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("store" as const), pos: fc.nat(), value: fc.constantFrom(0x00, 0xff, 0x80, 0x7f, 0x0a, 0x12, 0x1a) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("truncate" as const), pos: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("splice" as const), from: fc.nat(), to: fc.nat(), len: fc.integer({ min: 1, max: 512 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("insert" as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("varint" as const), pos: fc.nat(), value: fc.oneof(fc.constantFrom(...BIG), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })) }),
  },
);

function varint(v: bigint): Uint8Array {
  const out: number[] = [];
  let x = v;
  do {
    const b = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x ? b | 0x80 : b);
  } while (x);
  return Uint8Array.from(out);
}

function mutate(base: Uint8Array, muts: Mutation[]): Uint8Array {
  let b = Uint8Array.from(base);
  for (const m of muts) {
    const n = b.length || 1;
    switch (m.kind) {
      case "flip":
        if (b.length) b[m.pos % n] ^= 1 << m.bit;
        break;
      case "store":
        if (b.length) b[m.pos % n] = m.value;
        break;
      case "truncate":
        b = b.subarray(0, m.pos % (b.length + 1));
        break;
      case "splice": {
        const src = b.subarray(m.from % n, (m.from % n) + m.len);
        const to = m.to % n;
        const out = Uint8Array.from(b);
        out.set(src.subarray(0, Math.max(0, out.length - to)), to);
        b = out;
        break;
      }
      case "insert": {
        const p = m.pos % (b.length + 1);
        b = Uint8Array.from([...b.subarray(0, p), ...m.bytes, ...b.subarray(p)]);
        break;
      }
      case "delete": {
        const p = m.pos % n;
        b = Uint8Array.from([...b.subarray(0, p), ...b.subarray(p + m.len)]);
        break;
      }
      case "varint": {
        // Overwrite at a field boundary-ish position: lengths and dims claiming huge sizes.
        const v = varint(m.value);
        const p = m.pos % n;
        const out = Uint8Array.from(b);
        out.set(v.subarray(0, Math.max(0, out.length - p)), p);
        b = out;
        break;
      }
    }
  }
  return b;
}

// ---- structure-aware mutations of decoded models ---------------------------------------------

type Edit =
  | { kind: "dims"; t: number; dims: bigint[] }
  | { kind: "dtype"; t: number; dataType: number }
  | { kind: "external"; t: number; location: string; offset: string; length: string | null }
  | { kind: "raw"; t: number; keep: number }
  | { kind: "input"; node: number; slot: number; name: string }
  | { kind: "versions"; ir: bigint; opset: bigint }
  | { kind: "dropNode"; node: number }
  | { kind: "attr"; node: number; ints: bigint[] };

const dimArb = fc.oneof(fc.constantFrom(0n, 1n, 2n ** 30n, 2n ** 31n, 2n ** 53n, 2n ** 60n, 2n ** 63n - 1n), fc.bigInt({ min: 0n, max: 2n ** 20n }));
const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant("dims" as const), t: fc.nat(), dims: fc.array(dimArb, { maxLength: 5 }) }),
  fc.record({ kind: fc.constant("dtype" as const), t: fc.nat(), dataType: fc.integer({ min: -1, max: 40 }) }),
  fc.record({
    kind: fc.constant("external" as const),
    t: fc.nat(),
    location: fc.oneof(fc.constantFrom("w.data", "sub/w.data", "missing.data", "../w.data", "/etc/passwd", "sub/../../w.data", "", "w.data\0x", "C:\\w.data", "."), fc.string({ maxLength: 20 })),
    offset: fc.oneof(fc.constantFrom("0", "64", "4096", "-1", "1e3", "18446744073709551615", "9007199254740993"), fc.nat().map(String)),
    length: fc.option(fc.oneof(fc.constantFrom("0", "16", "4096", "99999999999999999999"), fc.nat().map(String))),
  }),
  fc.record({ kind: fc.constant("raw" as const), t: fc.nat(), keep: fc.nat() }),
  fc.record({ kind: fc.constant("input" as const), node: fc.nat(), slot: fc.nat({ max: 3 }), name: fc.oneof(fc.constantFrom("", "nope", "input_ids", "logits"), fc.string({ maxLength: 8 })) }),
  fc.record({ kind: fc.constant("versions" as const), ir: fc.bigInt({ min: -1n, max: 40n }), opset: fc.bigInt({ min: -1n, max: 40n }) }),
  fc.record({ kind: fc.constant("dropNode" as const), node: fc.nat() }),
  fc.record({ kind: fc.constant("attr" as const), node: fc.nat(), ints: fc.array(fc.bigInt({ min: -4n, max: 4n }), { maxLength: 4 }) }),
);

function applyEdits(base: ModelProto, edits: Edit[]): Uint8Array {
  const m = fromBinary(ModelProtoSchema, toBinary(ModelProtoSchema, base));
  const g = m.graph!;
  for (const e of edits) {
    const t = g.initializer.length ? g.initializer[(e as { t?: number }).t! % g.initializer.length] : undefined;
    const node = g.node.length ? g.node[(e as { node?: number }).node! % g.node.length] : undefined;
    switch (e.kind) {
      case "dims":
        if (t) t.dims = e.dims;
        break;
      case "dtype":
        if (t) t.dataType = e.dataType;
        break;
      case "external":
        if (t) {
          t.dataLocation = TensorProto_DataLocation.EXTERNAL;
          t.rawData = new Uint8Array(0);
          t.externalData = [
            create(StringStringEntryProtoSchema, { key: "location", value: e.location }),
            create(StringStringEntryProtoSchema, { key: "offset", value: e.offset }),
            ...(e.length === null ? [] : [create(StringStringEntryProtoSchema, { key: "length", value: e.length })]),
          ];
        }
        break;
      case "raw":
        if (t) t.rawData = t.rawData.slice(0, e.keep % (t.rawData.length + 1));
        break;
      case "input":
        if (node) node.input[e.slot % (node.input.length + 1)] = e.name;
        break;
      case "versions":
        m.irVersion = e.ir;
        if (m.opsetImport[0]) m.opsetImport[0].version = e.opset;
        break;
      case "dropNode":
        if (node) g.node.splice(g.node.indexOf(node), 1);
        break;
      case "attr":
        if (node?.attribute[0]) node.attribute[0].ints = e.ints;
        break;
    }
  }
  return toBinary(ModelProtoSchema, m);
}

// ---- bases --------------------------------------------------------------------------------------

const small = [
  buildLlama({ hidden: 8, ffn: 12, layers: 1, heads: 2, kvHeads: 1, vocab: 16, seed: 1 }),
  buildLlama({ hidden: 8, ffn: 12, layers: 2, heads: 2, kvHeads: 1, vocab: 16, seed: 2, weightDtype: "float16", linearForm: "gemm" }),
  buildLlama({ hidden: 8, ffn: 12, layers: 1, heads: 2, kvHeads: 2, vocab: 16, seed: 3, weightDtype: "bfloat16", linearForm: "transposed", naming: "anonymous" }),
];
const smallBytes = small.map((m) => toBinary(ModelProtoSchema, m));
const storiesBytes = fs.readFileSync(STORIES_MODEL);

describe(`ONNX reader fuzzing (seed ${SEED})`, () => {
  it("the unmutated bases read cleanly (the harness can tell good from bad)", () => {
    for (const b of [...smallBytes, storiesBytes]) expect(() => readModel(b)).not.toThrow();
  });

  it("byte mutations of generated models: 5,000 cases", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: smallBytes.length - 1 }), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), async (base, muts) => {
        await guarded(`small[${base}] ${JSON.stringify(muts, (_k, v) => (typeof v === "bigint" ? `${v}n` : v))}`, () => readModel(mutate(smallBytes[base], muts)));
      }),
      { numRuns: runs(5000), seed: SEED },
    );
  });

  it("structure-aware edits of generated models: 2,000 cases", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: small.length - 1 }), fc.array(editArb, { minLength: 1, maxLength: 3 }), async (base, edits) => {
        await guarded(`edits small[${base}] ${JSON.stringify(edits, (_k, v) => (typeof v === "bigint" ? `${v}n` : v))}`, () => readModel(applyEdits(small[base], edits)));
      }),
      { numRuns: runs(2000), seed: SEED + 1 },
    );
  });

  it("byte mutations and truncations of the real stories260K model: 60 cases", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), async (muts) => {
        await guarded(`stories ${JSON.stringify(muts, (_k, v) => (typeof v === "bigint" ? `${v}n` : v))}`, () => readModel(mutate(storiesBytes, muts)));
      }),
      { numRuns: runs(60), seed: SEED + 2 },
    );
  });

  it("arbitrary bytes and protobuf-shaped noise: 500 cases", async () => {
    const field = fc.tuple(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 5 }), fc.uint8Array({ maxLength: 24 })).map(([no, wire, body]) => Uint8Array.from([...varint(BigInt((no << 3) | wire)), ...body]));
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 256 }), fc.array(field, { maxLength: 12 }).map((fs_) => Uint8Array.from(fs_.flatMap((f) => [...f])))), async (bytes) => {
        await guarded("noise", () => readModel(bytes));
      }),
      { numRuns: runs(500), seed: SEED + 3 },
    );
  });

  it("property: any finite float32 weight of any shape reads back bit-exactly, by range too", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.integer(), async (inF, outF, seed) => {
        await breathe();
        const values = Float32Array.from({ length: inF * outF }, (_, i) => Math.fround(Math.sin(seed + i * 7.1) * 1e3));
        const m = OnnxModel.fromBytes(modelFile, singleMatMul({ dims: [BigInt(inF), BigInt(outF)], dataType: DT.FLOAT, rawData: new Uint8Array(values.buffer) }));
        expect(m.readFloat32("proj.weight")).toEqual(values);
        const start = Math.abs(seed) % values.length;
        expect(m.readFloat32("proj.weight", start)).toEqual(values.subarray(start));
        cases++;
      }),
      { numRuns: runs(200), seed: SEED + 4 },
    );
  });
});

// ---- calibration data -------------------------------------------------------------------------

const VOCAB = 512;
const dataOpts = { vocab: VOCAB, maxPositions: 512, tokenizerDir: STORIES };
const dataFile = (ext: string) => path.join(dir, `data${ext}`);

function readData(ext: string, content: string | Uint8Array): void {
  const f = dataFile(ext);
  fs.writeFileSync(f, content);
  const d = loadTokenData(f, dataOpts);
  // What a successful load promises: non-empty integer sequences inside the vocabulary.
  expect(d.sequences.length).toBeGreaterThan(0);
  for (const s of d.sequences) {
    expect(s.length).toBeGreaterThan(0);
    expect(s.length).toBeLessThanOrEqual(512);
    for (const id of s) if (!(Number.isInteger(id) && id >= 0 && id < VOCAB)) throw new Error(`id ${id} escaped validation`);
  }
  expect(d.tokens).toBe(d.sequences.reduce((a, s) => a + s.length, 0));
}

const validJsonl = fs.readFileSync(path.join(STORIES, "calib.jsonl"), "utf8").split("\n").slice(0, 3).join("\n");
const validJson = JSON.stringify([[1, 2, 3], [4, 5, 6, 7], "Once upon a time"]);
const validTxt = "Once upon a time.\n\nThe end.<|endoftext|>Another story";
const SPECIAL = ['"', "{", "}", "[", "]", ",", ":", "\\", "\n", "\r\n", "\0", "\ufeff", "<|endoftext|>", "-", "1e999", "NaN", "\ud800", "é", "😀"];

const textMutation = fc.oneof(
  fc.record({ kind: fc.constant("insert" as const), pos: fc.nat(), s: fc.oneof(fc.constantFrom(...SPECIAL), fc.string({ maxLength: 6, unit: "binary" })) }),
  fc.record({ kind: fc.constant("delete" as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant("truncate" as const), pos: fc.nat() }),
  fc.record({ kind: fc.constant("duplicate" as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 200 }) }),
);

function mutateText(s: string, muts: { kind: string; pos: number; s?: string; len?: number }[]): string {
  let t = s;
  for (const m of muts) {
    const p = m.pos % (t.length + 1);
    if (m.kind === "insert") t = t.slice(0, p) + m.s + t.slice(p);
    else if (m.kind === "delete") t = t.slice(0, p) + t.slice(p + m.len!);
    else if (m.kind === "truncate") t = t.slice(0, p);
    else t = t.slice(0, p) + t.slice(p, p + m.len!) + t.slice(p);
  }
  return t;
}

describe(`calibration-data reader fuzzing (seed ${SEED})`, () => {
  it.each([
    [".jsonl", validJsonl],
    [".json", validJson],
    [".txt", validTxt],
  ])("mutations of a valid %s file: 600 cases", async (ext, valid) => {
    expect(() => readData(ext, valid)).not.toThrow();
    await fc.assert(
      fc.asyncProperty(fc.array(textMutation, { minLength: 1, maxLength: 4 }), async (muts) => {
        await guarded(`${ext} ${JSON.stringify(muts)}`, () => readData(ext, mutateText(valid, muts)));
      }),
      { numRuns: runs(600), seed: SEED + 10 },
    );
  });

  it("arbitrary JSON values as .json and as .jsonl lines: 700 cases", async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), fc.boolean(), async (v, lines) => {
        const content = lines ? (Array.isArray(v) ? v : [v]).map((x) => JSON.stringify(x)).join("\n") : JSON.stringify(v);
        await guarded(`json ${content.slice(0, 200)}`, () => readData(lines ? ".jsonl" : ".json", content));
      }),
      { numRuns: runs(700), seed: SEED + 11 },
    );
  });

  it("property: any id sequences in range round-trip exactly through .json and .jsonl (truncated to the context)", async () => {
    const seqs = fc.array(fc.array(fc.integer({ min: 0, max: VOCAB - 1 }), { minLength: 1, maxLength: 600 }), { minLength: 1, maxLength: 6 });
    await fc.assert(
      fc.asyncProperty(seqs, async (s) => {
        await breathe();
        for (const ext of [".json", ".jsonl"]) {
          const f = dataFile(ext);
          fs.writeFileSync(f, ext === ".json" ? JSON.stringify(s) : s.map((ids) => JSON.stringify({ input_ids: ids })).join("\n"));
          expect(loadTokenData(f, dataOpts).sequences).toEqual(s.map((ids) => ids.slice(0, 512)));
          cases++;
        }
      }),
      { numRuns: runs(300), seed: SEED + 12 },
    );
  });

  it("ran at least 10,000 cases, with memory bounded", () => {
    expect(cases).toBeGreaterThanOrEqual(runs(10_000));
    // Nothing accumulates per case (10k decoded models would be gigabytes).
    expect(process.memoryUsage().rss - rssStart).toBeLessThan(512 * 2 ** 20);
  });
});
