import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { BadModelError, UnsupportedError } from "../errors";
import { bf16ToF32, f16ToF32 } from "../kernels/index";
import { DataType, dtypeBits, dtypeName, floatDtype, rawByteLength, type FloatDtype } from "./dtype";
import { ExternalDataReader, isExternal, parseExternalRef, type ExternalRef } from "./external";
import { ModelProtoSchema, type GraphProto, type ModelProto, type TensorProto } from "./proto/onnx_pb";

if (os.endianness() !== "LE") throw new Error("QuantLens needs a little-endian machine (ONNX raw_data is little-endian)");

/** Protobuf messages cannot exceed 2 GiB; bigger weights must live in external data files. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

/**
 * Newest IR version and default-domain opset QuantLens handles: what the bundled onnxruntime-node
 * (1.30) loads. A newer model may change semantics the engine relies on; it is refused up front.
 */
export const MAX_IR_VERSION = 13;
export const MAX_OPSET = 26;

/** Shape, type and storage of one initializer, validated once at load. */
export interface TensorInfo {
  name: string;
  dims: number[];
  dataType: number;
  dtype: string;
  count: number;
  /** Bytes the data occupies (raw_data, external or typed fields). */
  byteLength: number;
  external?: ExternalRef;
}

/**
 * A loaded ONNX model: the decoded proto (weights stay as views into the file buffer or on disk
 * in external data files) plus validated per-initializer info. Read weights with
 * `readFloat32` / `floatChunks`; nothing big is copied until asked for.
 */
export class OnnxModel {
  readonly dir: string;
  readonly graph: GraphProto;
  private readonly infos = new Map<string, TensorInfo>();
  private readonly tensors = new Map<string, TensorProto>();
  private readonly reader: ExternalDataReader;

  private constructor(
    /** Absolute path of the `.onnx` file. */
    readonly file: string,
    readonly proto: ModelProto,
    /** Size of the `.onnx` file itself in bytes. */
    readonly fileSize: number,
  ) {
    this.dir = path.dirname(file);
    this.reader = new ExternalDataReader(file);
    if (!proto.graph) throw new BadModelError(file, "not an ONNX model: it has no graph");
    this.graph = proto.graph;
  }

  /** Read, decode and validate a model. Errors name the file and the tensor at fault. */
  static async load(file: string): Promise<OnnxModel> {
    const abs = path.resolve(file);
    let bytes: Buffer;
    try {
      const st = await fs.promises.stat(abs);
      if (st.isDirectory()) throw new BadModelError(abs, "is a folder, not an .onnx file");
      if (st.size > PROTOBUF_LIMIT) {
        throw new BadModelError(abs, `is ${st.size} bytes, over protobuf's 2 GiB limit: not a valid ONNX file`);
      }
      bytes = await fs.promises.readFile(abs);
    } catch (e) {
      if (e instanceof BadModelError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "cannot be read (permission denied)" : `cannot be read (${code ?? e})`;
      throw new BadModelError(abs, why, { cause: e });
    }
    return OnnxModel.fromBytes(abs, bytes);
  }

  /** Decode from bytes already in memory; `file` locates external data and names errors. */
  static fromBytes(file: string, bytes: Uint8Array): OnnxModel {
    const abs = path.resolve(file);
    if (bytes.length === 0) throw new BadModelError(abs, "is empty: not an ONNX model");
    let proto: ModelProto;
    try {
      proto = fromBinary(ModelProtoSchema, bytes, { readUnknownFields: true });
    } catch (e) {
      throw new BadModelError(
        abs,
        `is not a valid ONNX protobuf (${(e as Error).message}); the file may be truncated or not an ONNX model`,
        { cause: e },
      );
    }
    if (proto.irVersion <= 0n) throw new BadModelError(abs, "not an ONNX model: ir_version is missing");
    if (proto.opsetImport.length === 0) throw new BadModelError(abs, "not an ONNX model: opset_import is empty");
    if (proto.irVersion > BigInt(MAX_IR_VERSION)) {
      throw new UnsupportedError(
        `${abs}: field 'ir_version' is ${proto.irVersion}, newer than QuantLens supports (${MAX_IR_VERSION}, what onnxruntime 1.30 loads); re-export the model with an older ONNX version`,
      );
    }
    for (const op of proto.opsetImport) {
      if ((op.domain === "" || op.domain === "ai.onnx") && op.version > BigInt(MAX_OPSET)) {
        throw new UnsupportedError(
          `${abs}: field 'opset_import' asks for opset ${op.version} of the default ONNX domain, newer than QuantLens supports (${MAX_OPSET}); re-export with opset ${MAX_OPSET} or lower`,
        );
      }
    }
    const model = new OnnxModel(abs, proto, bytes.length);
    model.validate();
    return model;
  }

  get irVersion(): number {
    return Number(this.proto.irVersion);
  }

  /** Opset version of the default ONNX domain. */
  get opset(): number {
    const op = this.proto.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx");
    return op ? Number(op.version) : 0;
  }

  initializer(name: string): TensorProto | undefined {
    return this.tensors.get(name);
  }

  initializers(): IterableIterator<TensorProto> {
    return this.tensors.values();
  }

  info(name: string): TensorInfo | undefined {
    return this.infos.get(name);
  }

  /** Bytes of all initializer data (embedded and external). */
  get weightBytes(): number {
    let total = 0;
    for (const i of this.infos.values()) total += i.byteLength;
    return total;
  }

  /**
   * Read elements `[start, start+count)` of a float32/float16/bfloat16 initializer as a fresh
   * float32 array (never a view into the model). Only that range is read from external data.
   */
  readFloat32(name: string, start = 0, count?: number): Float32Array {
    const t = this.requireTensor(name);
    const info = this.infos.get(name)!;
    const dt = floatDtype(t.dataType);
    if (!dt) {
      throw new UnsupportedError(
        `${this.file} (tensor '${name}'): dtype ${info.dtype} is not a float weight; QuantLens reads float32, float16 and bfloat16`,
      );
    }
    const n = count ?? info.count - start;
    if (start < 0 || n < 0 || start + n > info.count) {
      throw new RangeError(`tensor '${name}': range [${start}, ${start + n}) outside its ${info.count} elements`);
    }
    const elemBytes = dt === "float32" ? 4 : 2;
    // Typed (non-raw) storage: float_data for float32, int32_data holding the 16-bit patterns.
    if (!isExternal(t) && t.rawData.length === 0) {
      if (dt === "float32") return Float32Array.from(t.floatData.slice(start, start + n));
      const bits = Uint16Array.from(t.int32Data.slice(start, start + n));
      return this.widen(dt, bits);
    }
    const bytes = this.readRawRange(t, info, start * elemBytes, n * elemBytes);
    if (dt === "float32") {
      const view = alignedView(bytes, Float32Array, n);
      return info.external ? view : view.slice();
    }
    return this.widen(dt, alignedView(bytes, Uint16Array, n));
  }

  /** Stream a float initializer as float32 chunks of at most `chunkElems` elements. */
  *floatChunks(name: string, chunkElems = 1 << 22): Generator<Float32Array> {
    const count = this.requireInfo(name).count;
    for (let start = 0; start < count; start += chunkElems) {
      yield this.readFloat32(name, start, Math.min(chunkElems, count - start));
    }
  }

  /**
   * Count the NaN/±Inf values of a float initializer, streaming it in chunks, and give the first
   * one's element index. `undefined` when every value is finite.
   */
  findNonFinite(name: string, chunkElems = 1 << 22): { count: number; first: number } | undefined {
    let count = 0;
    let first = -1;
    let start = 0;
    for (const chunk of this.floatChunks(name, chunkElems)) {
      for (let i = 0; i < chunk.length; i++) {
        // x − x is 0 for finite x and NaN for NaN and ±Inf.
        if (chunk[i] - chunk[i] !== 0) {
          if (first < 0) first = start + i;
          count++;
        }
      }
      start += chunk.length;
    }
    return count ? { count, first } : undefined;
  }

  /**
   * Throw a BadModelError naming the tensor and the first bad element when a float weight holds
   * NaN or ±Inf: quantizing it (or calibrating through it) could only give garbage.
   */
  assertFinite(name: string): void {
    const bad = this.findNonFinite(name);
    if (!bad) return;
    const dims = this.requireInfo(name).dims;
    const at = dims.length ? unravel(bad.first, dims) : [];
    throw new BadModelError(
      this.file,
      `holds ${bad.count} NaN/Inf value${bad.count > 1 ? "s" : ""} (first at [${at.join(", ")}]); the weights are corrupt — re-export the model`,
      { tensor: name },
    );
  }

  /** Raw little-endian bytes of any initializer with fixed-size elements. */
  readRaw(name: string): Uint8Array {
    const t = this.requireTensor(name);
    const info = this.infos.get(name)!;
    if (!isExternal(t) && t.rawData.length === 0 && info.count > 0) {
      throw new UnsupportedError(`${this.file} (tensor '${name}'): stored in typed fields, not raw_data`);
    }
    return this.readRawRange(t, info, 0, info.byteLength);
  }

  /** Release open external data files. */
  close(): void {
    this.reader.close();
  }

  private widen(dt: FloatDtype, bits: Uint16Array): Float32Array {
    return dt === "float16" ? f16ToF32(bits) : bf16ToF32(bits);
  }

  private readRawRange(t: TensorProto, info: TensorInfo, byteStart: number, byteCount: number): Uint8Array {
    if (info.external) {
      const ext = info.external;
      return this.reader.read(ext.file, ext.offset + byteStart, byteCount, t.name);
    }
    return t.rawData.subarray(byteStart, byteStart + byteCount);
  }

  private requireTensor(name: string): TensorProto {
    const t = this.tensors.get(name);
    if (!t) throw new BadModelError(this.file, "no initializer with this name", { tensor: name });
    return t;
  }

  private requireInfo(name: string): TensorInfo {
    this.requireTensor(name);
    return this.infos.get(name)!;
  }

  /** Check every initializer (shape, dtype, byte length, external file) and the graph wiring. */
  private validate(): void {
    for (const t of this.graph.initializer) {
      if (!t.name) throw new BadModelError(this.file, "an initializer has no name");
      if (this.tensors.has(t.name)) throw new BadModelError(this.file, "duplicate initializer name", { tensor: t.name });
      this.tensors.set(t.name, t);
      this.infos.set(t.name, this.validateTensor(t));
    }
    this.validateWiring();
  }

  private validateTensor(t: TensorProto): TensorInfo {
    const fail = (why: string) => new BadModelError(this.file, why, { tensor: t.name });
    const dims = t.dims.map((d) => {
      if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`has an invalid dimension ${d}`);
      return Number(d);
    });
    const count = dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count)) throw fail(`has too many elements (${dims.join("×")})`);
    const dtype = dtypeName(t.dataType);
    if (t.dataType === DataType.UNDEFINED) throw fail("has no data_type");
    if (t.dataType === DataType.STRING) {
      return { name: t.name, dims, dataType: t.dataType, dtype, count, byteLength: 0 };
    }
    if (dtypeBits(t.dataType) === undefined) throw fail(`has an unknown data_type ${t.dataType}`);
    const expected = rawByteLength(t.dataType, count)!;
    const info: TensorInfo = { name: t.name, dims, dataType: t.dataType, dtype, count, byteLength: expected };
    if (isExternal(t)) {
      const ext = parseExternalRef(this.file, t);
      const fileSize = this.reader.fileSize(ext.file, t.name);
      const length = ext.length ?? fileSize - ext.offset;
      if (length !== expected) {
        throw fail(`external data length ${length} does not match ${dims.join("×")} ${dtype} (${expected} bytes)`);
      }
      if (ext.offset + length > fileSize) {
        throw fail(
          `external data file '${ext.location}' is too short: needs bytes ${ext.offset}..${ext.offset + length}, file has ${fileSize}`,
        );
      }
      info.external = ext;
    } else if (t.rawData.length > 0 || count === 0) {
      if (t.rawData.length !== expected) {
        throw fail(
          `raw_data has ${t.rawData.length} bytes but ${dims.join("×")} ${dtype} needs ${expected} (truncated or corrupt)`,
        );
      }
    } else {
      const typed = typedFieldCount(t);
      if (typed !== undefined && typed !== count) {
        throw fail(`holds ${typed} values in its typed field but its shape ${dims.join("×")} needs ${count}`);
      }
    }
    return info;
  }

  /**
   * Every input of a top-level node must be defined in the top-level scope: a graph input, an
   * initializer or some node's output. A file truncated on a message boundary decodes without a
   * protobuf error but fails this check.
   */
  private validateWiring(): void {
    const defined = new Set<string>([""]);
    for (const i of this.graph.input) defined.add(i.name);
    for (const t of this.graph.initializer) defined.add(t.name);
    for (const s of this.graph.sparseInitializer) if (s.values?.name) defined.add(s.values.name);
    for (const n of this.graph.node) for (const o of n.output) defined.add(o);
    for (const n of this.graph.node) {
      for (const i of n.input) {
        if (!defined.has(i)) {
          throw new BadModelError(
            this.file,
            `node '${n.name || n.opType}' reads tensor '${i}' that nothing defines (truncated or corrupt file?)`,
          );
        }
      }
    }
    if (this.graph.output.length === 0) {
      throw new BadModelError(this.file, "the graph has no outputs (truncated or corrupt file?)");
    }
    for (const o of this.graph.output) {
      if (!defined.has(o.name)) {
        throw new BadModelError(this.file, `graph output '${o.name}' is not produced by any node (truncated or corrupt file?)`);
      }
    }
  }
}

/** Row-major index → coordinates. */
function unravel(index: number, dims: number[]): number[] {
  const at = new Array<number>(dims.length).fill(0);
  let rest = index;
  for (let d = dims.length - 1; d >= 0; d--) {
    if (dims[d] > 0) {
      at[d] = rest % dims[d];
      rest = Math.floor(rest / dims[d]);
    }
  }
  return at;
}

function typedFieldCount(t: TensorProto): number | undefined {
  switch (t.dataType) {
    case DataType.FLOAT:
      return t.floatData.length;
    case DataType.DOUBLE:
      return t.doubleData.length;
    case DataType.INT64:
      return t.int64Data.length;
    case DataType.UINT64:
    case DataType.UINT32:
      return t.uint64Data.length;
    case DataType.INT32:
    case DataType.INT16:
    case DataType.INT8:
    case DataType.UINT16:
    case DataType.UINT8:
    case DataType.BOOL:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return t.int32Data.length;
    default:
      return undefined; // packed sub-byte and float8 types: int32_data packing rules vary
  }
}

type TypedCtor<T> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

/** A typed view over bytes, copying only when the bytes are not aligned to the element size. */
function alignedView<T>(bytes: Uint8Array, Ctor: TypedCtor<T>, n: number): T {
  if (bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(bytes.buffer, bytes.byteOffset, n);
  const copy = new Uint8Array(n * Ctor.BYTES_PER_ELEMENT);
  copy.set(bytes.subarray(0, copy.length));
  return new Ctor(copy.buffer, 0, n);
}
