import fs from "node:fs";
import path from "node:path";
import { BadModelError } from "../errors";
import type { TensorProto } from "./proto/onnx_pb";
import { TensorProto_DataLocation } from "./proto/onnx_pb";

/** Where an initializer's bytes live when `data_location == EXTERNAL` (ONNX external data). */
export interface ExternalRef {
  /** The `location` entry as written in the model (relative to the model's folder). */
  location: string;
  /** Absolute, resolved path inside the model's folder. */
  file: string;
  offset: number;
  /** Byte length; `undefined` means "to the end of the file". */
  length: number | undefined;
}

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === TensorProto_DataLocation.EXTERNAL;
}

/**
 * Resolve an external `location` safely: relative, no `..` segment, no absolute path, and the
 * real path (symlinks followed) still inside the model's folder. A model from an untrusted source
 * must not make QuantLens read `/etc/passwd` or `~/.ssh`.
 */
export function resolveExternalLocation(modelFile: string, location: string, tensor: string): string {
  const dir = path.dirname(modelFile);
  const bad = (why: string) =>
    new BadModelError(modelFile, `external data location '${location}' ${why}`, { tensor });
  if (location.length === 0) throw bad("is empty");
  if (location.includes("\0")) throw bad("contains a NUL byte");
  if (path.isAbsolute(location) || path.win32.isAbsolute(location) || /^[a-zA-Z]:/.test(location)) {
    throw bad("is an absolute path; external data must be relative to the model's folder");
  }
  const segments = location.split(/[\\/]+/);
  if (segments.includes("..")) throw bad("escapes the model's folder ('..' is not allowed)");
  const file = path.resolve(dir, ...segments);
  const rel = path.relative(dir, file);
  if (rel.startsWith("..") || path.isAbsolute(rel)) throw bad("resolves outside the model's folder");
  if (fs.existsSync(file)) {
    const realDir = fs.realpathSync(dir);
    const real = fs.realpathSync(file);
    const realRel = path.relative(realDir, real);
    if (realRel.startsWith("..") || path.isAbsolute(realRel)) {
      throw bad(`is a link that resolves outside the model's folder (to ${real})`);
    }
  }
  return file;
}

function parseNonNegativeInt(modelFile: string, tensor: string, key: string, value: string): number {
  if (!/^\d+$/.test(value)) {
    throw new BadModelError(modelFile, `external data field '${key}' is '${value}', not a non-negative integer`, {
      tensor,
    });
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new BadModelError(modelFile, `external data field '${key}' = ${value} is too large`, { tensor });
  }
  return n;
}

/** Parse and resolve a tensor's `external_data` entries (location, offset, length). */
export function parseExternalRef(modelFile: string, t: TensorProto): ExternalRef {
  const tensor = t.name;
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  for (const { key, value } of t.externalData) {
    if (key === "location") location = value;
    else if (key === "offset") offset = parseNonNegativeInt(modelFile, tensor, key, value);
    else if (key === "length") length = parseNonNegativeInt(modelFile, tensor, key, value);
    // "checksum" and unknown keys are kept in the proto but not needed to read the bytes.
  }
  if (location === undefined) {
    throw new BadModelError(modelFile, "data_location is EXTERNAL but external_data has no 'location'", { tensor });
  }
  return { location, file: resolveExternalLocation(modelFile, location, tensor), offset, length };
}

/**
 * Reads external data by offset through a small cache of open file descriptors. Nothing is read
 * until asked for: a 7B model's weights are never pulled into the JS heap whole.
 */
export class ExternalDataReader {
  private readonly fds = new Map<string, { fd: number; size: number }>();

  constructor(private readonly modelFile: string) {}

  /** Size of an external file (opening it if needed); throws a BadModelError if missing. */
  fileSize(file: string, tensor: string): number {
    return this.open(file, tensor).size;
  }

  /** Read `length` bytes at `offset` of `file` into a new buffer (or into `into`). */
  read(file: string, offset: number, length: number, tensor: string, into?: Uint8Array): Uint8Array {
    const { fd, size } = this.open(file, tensor);
    if (offset + length > size) {
      throw new BadModelError(
        this.modelFile,
        `external data file '${path.basename(file)}' is too short: the tensor needs bytes ${offset}..${offset + length} but the file has ${size}`,
        { tensor },
      );
    }
    const buf = into ?? new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, buf, done, length - done, offset + done);
      if (n === 0) {
        throw new BadModelError(this.modelFile, `unexpected end of external data file '${path.basename(file)}'`, {
          tensor,
        });
      }
      done += n;
    }
    return buf;
  }

  close(): void {
    for (const { fd } of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }

  private open(file: string, tensor: string): { fd: number; size: number } {
    let entry = this.fds.get(file);
    if (!entry) {
      let fd: number;
      try {
        fd = fs.openSync(file, "r");
      } catch (e) {
        throw new BadModelError(
          this.modelFile,
          `external data file '${path.relative(path.dirname(this.modelFile), file)}' cannot be opened (${(e as NodeJS.ErrnoException).code ?? e})`,
          { tensor, cause: e },
        );
      }
      entry = { fd, size: fs.fstatSync(fd).size };
      this.fds.set(file, entry);
    }
    return entry;
  }
}
