import fs from "node:fs";
import { BadDataError } from "../errors";

/**
 * The safetensors container (huggingface/safetensors): an 8-byte little-endian header length,
 * a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {k: v}}`
 * padded with spaces to 8 bytes, then the raw little-endian tensor bytes (offsets relative to
 * the end of the header). QuantLens lays the file out up front and fills tensors in as they
 * are computed, so a multi-pass calibration never holds them all.
 */
export type SafeDtype = "F32" | "F64" | "I64" | "I32" | "U8";

const BYTES: Record<SafeDtype, number> = { F32: 4, F64: 8, I64: 8, I32: 4, U8: 1 };

export interface SafeTensorSpec {
  name: string;
  dtype: SafeDtype;
  shape: number[];
}

interface Entry {
  dtype: SafeDtype;
  shape: number[];
  data_offsets: [number, number];
}

export class SafetensorsWriter {
  private readonly entries = new Map<string, Entry>();
  private readonly headerLen: number;

  /**
   * Lay out `specs` and reserve room for `metadataBytes` of `__metadata__`, which is written by
   * `finish` once known (the header is padded with spaces, as the format allows).
   */
  private constructor(
    private readonly fd: number,
    specs: SafeTensorSpec[],
    metadataBytes: number,
  ) {
    let offset = 0;
    for (const s of specs) {
      const bytes = s.shape.reduce((a, b) => a * b, 1) * BYTES[s.dtype];
      // Keep every tensor 8-byte aligned so readers can view it without copying.
      const start = Math.ceil(offset / 8) * 8;
      this.entries.set(s.name, { dtype: s.dtype, shape: s.shape, data_offsets: [start, start + bytes] });
      offset = start + bytes;
    }
    this.headerLen = Math.ceil((this.headerJson({}).length + metadataBytes) / 8) * 8;
    // Size the file now; tensors are written at their offsets as they are computed.
    fs.ftruncateSync(fd, 8 + this.headerLen + offset);
  }

  static create(file: string, specs: SafeTensorSpec[], metadataBytes = 1 << 16): SafetensorsWriter {
    const fd = fs.openSync(file, "w");
    try {
      return new SafetensorsWriter(fd, specs, metadataBytes);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private headerJson(metadata: Record<string, string>): Buffer {
    const header: Record<string, unknown> = { __metadata__: metadata };
    for (const [name, e] of this.entries) header[name] = e;
    return Buffer.from(JSON.stringify(header), "utf8");
  }

  write(name: string, data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array): void {
    const e = this.entries.get(name);
    if (!e) throw new Error(`safetensors: no tensor '${name}' in the layout`);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.length !== e.data_offsets[1] - e.data_offsets[0]) {
      throw new Error(`safetensors: '${name}' has ${bytes.length} bytes, the layout says ${e.data_offsets[1] - e.data_offsets[0]}`);
    }
    const base = 8 + this.headerLen + e.data_offsets[0];
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done, base + done);
  }

  /** Write the header with its metadata and close the file. */
  finish(metadata: Record<string, string>): void {
    const json = this.headerJson(metadata);
    if (json.length > this.headerLen) {
      throw new Error(`safetensors: metadata needs ${json.length} header bytes, ${this.headerLen} were reserved`);
    }
    const header = Buffer.alloc(8 + this.headerLen, 0x20);
    header.writeBigUInt64LE(BigInt(this.headerLen), 0);
    json.copy(header, 8);
    fs.writeSync(this.fd, header, 0, header.length, 0);
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
  }

  /** Close without finishing (the caller removes the file). */
  abandon(): void {
    fs.closeSync(this.fd);
  }
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  names(): string[];
  has(name: string): boolean;
  shape(name: string): number[];
  read(name: string): Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
  close(): void;
}

/** Open a safetensors file; tensors are read by offset on demand. */
export function openSafetensors(file: string): SafetensorsFile {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BadDataError(file, code === "ENOENT" ? "does not exist" : `cannot be read (${code})`, { cause: e });
  }
  const size = fs.fstatSync(fd).size;
  const fail = (why: string) => {
    fs.closeSync(fd);
    return new BadDataError(file, `not a valid safetensors stats file: ${why}`);
  };
  if (size < 8) throw fail("shorter than its 8-byte header length");
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const headerLen = Number(lenBuf.readBigUInt64LE());
  if (headerLen > size - 8 || headerLen > 100 * 2 ** 20) throw fail(`header length ${headerLen} is larger than the file`);
  const headerBuf = Buffer.alloc(headerLen);
  fs.readSync(fd, headerBuf, 0, headerLen, 8);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(headerBuf.toString("utf8"));
  } catch (e) {
    throw fail(`header is not JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + headerLen;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const entries = new Map<string, Entry>();
  for (const [k, v] of Object.entries(header)) {
    if (k === "__metadata__") continue;
    const e = v as Entry;
    if (!e || !BYTES[e.dtype] || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) throw fail(`bad entry for '${k}'`);
    if (dataStart + e.data_offsets[1] > size) throw fail(`tensor '${k}' extends past the end of the file (truncated?)`);
    entries.set(k, e);
  }
  return {
    metadata,
    names: () => [...entries.keys()],
    has: (name) => entries.has(name),
    shape: (name) => entries.get(name)?.shape ?? [],
    read(name) {
      const e = entries.get(name);
      if (!e) throw new BadDataError(file, `has no tensor '${name}'`);
      const n = e.data_offsets[1] - e.data_offsets[0];
      const buf = new Uint8Array(n);
      let done = 0;
      while (done < n) {
        const r = fs.readSync(fd, buf, done, n - done, dataStart + e.data_offsets[0] + done);
        if (r === 0) throw new BadDataError(file, `unexpected end of file reading '${name}'`);
        done += r;
      }
      const b = buf.buffer;
      switch (e.dtype) {
        case "F32":
          return new Float32Array(b);
        case "F64":
          return new Float64Array(b);
        case "I64":
          return new BigInt64Array(b);
        case "I32":
          return new Int32Array(b);
        case "U8":
          return buf;
      }
    },
    close: () => fs.closeSync(fd),
  };
}
