import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { clearField, create, toBinary } from "@bufbuild/protobuf";
import { BadModelError, CancelledError, UsageError } from "../errors";
import { isExternal } from "./external";
import { PROTOBUF_LIMIT, type OnnxModel } from "./model";
import {
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProtoSchema,
  type ModelProto,
  type TensorProto,
} from "./proto/onnx_pb";

export interface SaveOptions {
  /**
   * `true`: initializers of at least `minExternalBytes` go to a side file; `false`: everything
   * embedded; `"auto"` (default): external only when the embedded model would pass 2 GiB.
   */
  externalData?: boolean | "auto";
  /** Side file name, relative to the output's folder. Default `<output file name>.data`. */
  location?: string;
  /** Smallest initializer moved to the side file (default 1 KiB, as onnx's own converter). */
  minExternalBytes?: number;
  /** The model the proto came from: supplies bytes of initializers it keeps in external data. */
  source?: OnnxModel;
  /**
   * Initializers whose bytes wait in a scratch file (marked external, no location of the
   * source's): read one at a time while writing, so a large output never sits in memory whole.
   */
  spilled?: { size(name: string): number | undefined; read(name: string): Uint8Array | undefined };
  signal?: AbortSignal;
}

/** Keep external tensors aligned so runtimes can map them without copying. */
const EXTERNAL_ALIGNMENT = 64;
/** Leave headroom under protobuf's limit for the graph itself when deciding "auto". */
const AUTO_EXTERNAL_BYTES = PROTOBUF_LIMIT - (64 << 20);

/**
 * Write `proto` to `outPath` without ever leaving a half-written file: everything goes to temp
 * files in the output folder and is renamed into place at the end; on error or cancellation the
 * temp files are removed. The caller's proto is not modified. Refuses to overwrite the source
 * model or its external data.
 */
export async function saveModel(proto: ModelProto, outPath: string, opts: SaveOptions = {}): Promise<void> {
  const out = path.resolve(outPath);
  const dir = path.dirname(out);
  const graph = proto.graph;
  if (!graph) throw new UsageError(`cannot save ${out}: the model has no graph`);
  if (opts.source) guardSource(opts.source, out, opts.location);
  if (isDirectory(out)) throw new UsageError(`cannot write the model to ${out}: it is a folder; give a file name`);
  const tensorBytes = (t: TensorProto): Uint8Array => {
    if (!isExternal(t)) return t.rawData;
    const spilled = opts.spilled?.read(t.name);
    if (spilled) return spilled;
    if (!opts.source) throw new UsageError(`tensor '${t.name}' is in external data but no source model was given`);
    return opts.source.readRaw(t.name);
  };
  const sizeOf = (t: TensorProto): number =>
    isExternal(t) ? (opts.spilled?.size(t.name) ?? opts.source?.info(t.name)?.byteLength ?? 0) : t.rawData.length;

  const minBytes = opts.minExternalBytes ?? 1024;
  let external = opts.externalData ?? "auto";
  if (external === "auto") {
    const total = graph.initializer.reduce((s, t) => s + sizeOf(t), 0);
    external = total > AUTO_EXTERNAL_BYTES;
  }
  const location = opts.location ?? `${path.basename(out)}.data`;
  const dataPath = path.join(dir, location);
  if (external && path.resolve(dataPath) === out) throw new UsageError(`external data location '${location}' is the model file itself`);

  const tag = `${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  const tmpModel = `${out}.tmp-${tag}`;
  const tmpData = `${dataPath}.tmp-${tag}`;
  const temps: string[] = [];
  const checkCancel = () => {
    if (opts.signal?.aborted) throw new CancelledError(`saving ${out}`);
  };
  try {
    checkCancel();
    await fs.promises.mkdir(dir, { recursive: true });
    let initializer: TensorProto[];
    if (external) {
      temps.push(tmpData);
      initializer = await writeExternal(graph.initializer, tmpData, location, minBytes, tensorBytes, checkCancel);
    } else {
      // Inline anything the source keeps in external data.
      // (data_location left unset, not set to DEFAULT: the bytes are those of a tensor that never was external.)
      initializer = graph.initializer.map((t) => {
        if (!isExternal(t)) return t;
        const inline: TensorProto = { ...t, rawData: tensorBytes(t), externalData: [] };
        clearField(inline, TensorProtoSchema.field.dataLocation);
        return inline;
      });
    }
    checkCancel();
    const outProto = create(ModelProtoSchema, { ...proto, graph: { ...graph, initializer } });
    const bytes = toBinary(ModelProtoSchema, outProto);
    if (bytes.length > PROTOBUF_LIMIT) {
      throw new UsageError(
        `cannot save ${out}: the model would be ${bytes.length} bytes, over protobuf's 2 GiB limit; save with external data`,
      );
    }
    temps.push(tmpModel);
    await fs.promises.writeFile(tmpModel, bytes);
    checkCancel();
    if (external) await fs.promises.rename(tmpData, dataPath);
    await fs.promises.rename(tmpModel, out);
  } catch (e) {
    await Promise.all(temps.map((f) => fs.promises.rm(f, { force: true })));
    throw asWriteError(e, out);
  }
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A file-system failure while writing an output (no space, read-only folder…) names the output. */
export function asWriteError(e: unknown, out: string): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== "string" || !/^E[A-Z]+$/.test(code)) return e;
  const why: Record<string, string> = {
    ENOSPC: "no space left on the device",
    EDQUOT: "disk quota exceeded",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EROFS: "read-only file system",
    EISDIR: "it is a folder",
    ENOTDIR: "a parent of it is not a folder",
    ENAMETOOLONG: "the name is too long",
  };
  return new UsageError(`cannot write ${out}: ${why[code] ?? code} (${(e as Error).message}); nothing was written`, { cause: e });
}

async function writeExternal(
  tensors: TensorProto[],
  tmpData: string,
  location: string,
  minBytes: number,
  bytesOf: (t: TensorProto) => Uint8Array,
  checkCancel: () => void,
): Promise<TensorProto[]> {
  const fh = await fs.promises.open(tmpData, "w");
  try {
    let offset = 0;
    const result: TensorProto[] = [];
    for (const t of tensors) {
      checkCancel();
      const small = !isExternal(t) && t.rawData.length < minBytes;
      if (small) {
        result.push(t);
        continue;
      }
      const data = bytesOf(t);
      if (data.length === 0) {
        result.push(t);
        continue;
      }
      const pad = (EXTERNAL_ALIGNMENT - (offset % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
      if (pad) await fh.write(new Uint8Array(pad), 0, pad, offset);
      offset += pad;
      await fh.write(data, 0, data.length, offset);
      result.push({
        ...t,
        rawData: new Uint8Array(0),
        dataLocation: TensorProto_DataLocation.EXTERNAL,
        externalData: [
          create(StringStringEntryProtoSchema, { key: "location", value: location }),
          create(StringStringEntryProtoSchema, { key: "offset", value: String(offset) }),
          create(StringStringEntryProtoSchema, { key: "length", value: String(data.length) }),
        ],
      });
      offset += data.length;
    }
    return result;
  } finally {
    await fh.close();
  }
}

/** Never overwrite the user's model or the external data it reads from. */
function guardSource(source: OnnxModel, out: string, location: string | undefined): void {
  const same = (a: string, b: string) => {
    if (path.resolve(a) === path.resolve(b)) return true;
    try {
      return fs.realpathSync(a) === fs.realpathSync(b);
    } catch {
      return false;
    }
  };
  if (same(source.file, out)) {
    throw new UsageError(`refusing to overwrite the input model ${source.file}; choose another output path`);
  }
  const dataPath = path.join(path.dirname(out), location ?? `${path.basename(out)}.data`);
  for (const t of source.initializers()) {
    const ext = source.info(t.name)?.external;
    if (ext && (same(ext.file, dataPath) || same(ext.file, out))) {
      throw new BadModelError(source.file, `output would overwrite the input's external data file ${ext.file}`, {
        tensor: t.name,
      });
    }
  }
}
