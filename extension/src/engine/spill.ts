import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { asWriteError } from "./onnx/save";

/**
 * An append-only scratch file for large byte arrays that must outlive a step without staying in
 * memory: quantized codes between quantization and export, packed weights between export and
 * saving. The file lives in `dir` (the output's folder: it has room for the output, and a tmpfs
 * /tmp would put the bytes back in memory) and is removed on `close()`; on POSIX it is unlinked
 * right after opening, so a crash or kill leaves nothing behind either.
 */
export class Spill {
  private fd: number;
  private size = 0;
  private readonly file: string;
  private unlinked = false;

  constructor(dir: string) {
    this.file = path.join(dir, `.quantlens-spill-${process.pid}-${crypto.randomBytes(4).toString("hex")}.tmp`);
    try {
      this.fd = fs.openSync(this.file, "w+", 0o600);
    } catch (e) {
      throw asWriteError(e, this.file);
    }
    if (process.platform !== "win32") {
      try {
        fs.unlinkSync(this.file);
        this.unlinked = true;
      } catch {
        // Removed in close() instead.
      }
    }
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.size;
  }

  /** Append `data`; returns where it went. */
  put(data: ArrayBufferView): SpillRef {
    const u8 = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const offset = this.size;
    try {
      for (let done = 0; done < u8.length; ) done += fs.writeSync(this.fd, u8, done, u8.length - done, offset + done);
    } catch (e) {
      throw asWriteError(e, this.file);
    }
    this.size += u8.length;
    return { offset, length: u8.length };
  }

  /** The bytes of `ref`, as a fresh array. */
  get(ref: SpillRef): Uint8Array {
    const out = new Uint8Array(ref.length);
    for (let done = 0; done < ref.length; ) {
      const n = fs.readSync(this.fd, out, done, ref.length - done, ref.offset + done);
      if (n <= 0) throw new Error(`spill file ended at ${ref.offset + done} of ${ref.offset + ref.length}`);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
    if (!this.unlinked) fs.rmSync(this.file, { force: true });
  }
}

export interface SpillRef {
  offset: number;
  length: number;
}

/**
 * Replace `obj[key]` (a Uint8Array) by a getter that reads it back from `spill` on each access:
 * the array is written out now and dropped from memory.
 */
export function spillProperty<T extends object>(obj: T, key: keyof T & string, spill: Spill): void {
  const value = obj[key] as unknown as Uint8Array;
  const ref = spill.put(value);
  Object.defineProperty(obj, key, { get: () => spill.get(ref), enumerable: true, configurable: true });
}

/** From this much weight data on, quantize spills codes and packed weights (see `Spill`). */
export const SPILL_WEIGHT_BYTES = 2 ** 30;

/**
 * A spill in `dir` when the model is large enough to need one (`QUANTLENS_SPILL=1`/`0` forces
 * it on/off), else undefined. The caller closes it.
 */
export function spillFor(weightBytes: number, dir: string, env: NodeJS.ProcessEnv = process.env): Spill | undefined {
  const forced = env.QUANTLENS_SPILL;
  const on = forced === "1" ? true : forced === "0" ? false : weightBytes >= SPILL_WEIGHT_BYTES;
  if (!on) return undefined;
  // The output's folder is made when the model is saved; until then spill to the temp folder.
  return new Spill(fs.existsSync(dir) ? dir : os.tmpdir());
}
