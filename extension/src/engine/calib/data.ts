import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { BadDataError } from "../errors";

/**
 * Calibration / evaluation token sequences from a file (DESIGN.md, data flow step 2):
 * - `.jsonl`: one JSON object per line, `{"text": "..."}` (tokenized with the model folder's
 *   `tokenizer.json`) or `{"input_ids": [...]}`;
 * - `.json`: an array of id arrays (or of strings, tokenized);
 * - `.txt`: documents separated by `<|endoftext|>`, else by blank lines.
 * Each document is one sample, truncated to `seqLen` (and to the model's context), in file order.
 */
export interface TokenData {
  file: string;
  sequences: number[][];
  /** Things the user should know (truncations, skipped empty lines). */
  notes: string[];
  tokens: number;
}

export interface TokenDataOptions {
  /** Use at most this many documents (default all). */
  samples?: number;
  /** Truncate each document to this many tokens (default: the model's context). */
  seqLen?: number;
  /** Ids must be < vocab. */
  vocab: number;
  /** The model's context length (max_position_embeddings), if known. */
  maxPositions?: number;
  /** Folder with `tokenizer.json` (+ `tokenizer_config.json`), needed for text. */
  tokenizerDir?: string;
  /** How to describe the `maxPositions` limit in the truncation note. */
  contextNote?: string;
}

type Doc = { ids: number[] } | { text: string };

export function loadTokenData(file: string, opts: TokenDataOptions): TokenData {
  const abs = path.resolve(file);
  let raw: string;
  try {
    raw = fs.readFileSync(abs, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BadDataError(abs, code === "ENOENT" ? "does not exist" : `cannot be read (${code ?? e})`, { cause: e });
  }
  // A UTF-8 byte-order mark (Windows editors write one) is not part of the first document.
  if (raw.charCodeAt(0) === 0xfeff) raw = raw.slice(1);
  if (raw.includes("\0")) throw new BadDataError(abs, "holds NUL bytes: a binary file, not .jsonl/.json/.txt text");
  if (raw.trim().length === 0) throw new BadDataError(abs, "is empty: no calibration sequences");
  const ext = path.extname(abs).toLowerCase();
  const docs = ext === ".jsonl" ? parseJsonl(abs, raw) : ext === ".json" ? parseJson(abs, raw) : ext === ".txt" ? parseTxt(raw) : undefined;
  if (!docs) throw new BadDataError(abs, `unknown data format '${ext || "(none)"}': use .jsonl, .json or .txt`);
  if (docs.length === 0) throw new BadDataError(abs, "contains no documents");

  const notes: string[] = [];
  const limit = opts.samples ?? docs.length;
  if (!Number.isInteger(limit) || limit < 1) throw new BadDataError(abs, `--samples must be a positive integer, got ${opts.samples}`);
  const chosen = docs.slice(0, limit);
  if (opts.samples !== undefined && docs.length < opts.samples) {
    notes.push(`${docs.length} documents available, fewer than the ${opts.samples} samples asked for`);
  }
  let tokenizer: Tokenizer | undefined;
  const maxLen = Math.min(opts.seqLen ?? Infinity, opts.maxPositions ?? Infinity);
  if (opts.seqLen !== undefined && (!Number.isInteger(opts.seqLen) || opts.seqLen < 1)) {
    throw new BadDataError(abs, `--seq-len must be a positive integer, got ${opts.seqLen}`);
  }
  let truncated = 0;
  const sequences: number[][] = [];
  chosen.forEach((doc, i) => {
    let ids: number[];
    if ("text" in doc) {
      tokenizer ??= loadTokenizer(abs, opts.tokenizerDir);
      ids = tokenizer.encode(doc.text).ids;
    } else ids = doc.ids;
    const where = docLabel(ext, i);
    for (const id of ids) {
      if (!Number.isInteger(id)) throw new BadDataError(abs, `${where}: token id ${id} is not an integer`);
      if (id < 0 || id >= opts.vocab) {
        if ("text" in doc) {
          // The text was tokenized here: the tokenizer, not the file, is at fault.
          throw new BadDataError(
            path.join(opts.tokenizerDir!, "tokenizer.json"),
            `does not match the model: it encodes ${where} of ${abs} to token id ${id}, but the model's vocabulary is [0, ${opts.vocab}) (the tokenizer has ${tokenizer!.get_vocab(true).size} tokens); use the tokenizer.json the model was trained with`,
          );
        }
        throw new BadDataError(abs, `${where}: token id ${id} is outside the model's vocabulary [0, ${opts.vocab})`);
      }
    }
    if (ids.length === 0) throw new BadDataError(abs, `${where}: no tokens`);
    if (ids.length > maxLen) {
      truncated++;
      ids = ids.slice(0, maxLen);
    }
    sequences.push(ids);
  });
  if (truncated > 0) {
    const why =
      opts.seqLen !== undefined && opts.seqLen <= (opts.maxPositions ?? Infinity)
        ? `--seq-len ${opts.seqLen}`
        : (opts.contextNote ?? `the model's context of ${opts.maxPositions}`);
    notes.push(`${truncated} of ${sequences.length} sequences truncated to ${maxLen} tokens (${why})`);
  }
  return { file: abs, sequences, notes, tokens: sequences.reduce((s, q) => s + q.length, 0) };
}

function docLabel(ext: string, i: number): string {
  return ext === ".jsonl" ? `sample ${i + 1}` : ext === ".json" ? `entry ${i}` : `document ${i + 1}`;
}

function parseJsonl(file: string, raw: string): Doc[] {
  const docs: Doc[] = [];
  raw.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new BadDataError(file, `line ${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    docs.push(asDoc(file, value, `line ${i + 1}`));
  });
  return docs;
}

function parseJson(file: string, raw: string): Doc[] {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    throw new BadDataError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(value)) throw new BadDataError(file, "must hold a JSON array of token-id arrays or strings");
  return value.map((v, i) => asDoc(file, Array.isArray(v) ? { input_ids: v } : typeof v === "string" ? { text: v } : v, `entry ${i}`));
}

function asDoc(file: string, value: unknown, where: string): Doc {
  if (typeof value !== "object" || value === null) throw new BadDataError(file, `${where}: expected an object with "text" or "input_ids"`);
  const o = value as Record<string, unknown>;
  if (typeof o.text === "string") return { text: o.text };
  if (Array.isArray(o.input_ids)) {
    if (!o.input_ids.every((x) => typeof x === "number")) throw new BadDataError(file, `${where}: "input_ids" must be an array of integers`);
    return { ids: o.input_ids as number[] };
  }
  throw new BadDataError(file, `${where}: expected a "text" string or an "input_ids" array`);
}

function parseTxt(raw: string): Doc[] {
  const parts = raw.includes("<|endoftext|>") ? raw.split("<|endoftext|>") : raw.split(/\r?\n\s*\r?\n/);
  return parts.map((p) => p.trim()).filter((p) => p.length > 0).map((text) => ({ text }));
}

function loadTokenizer(dataFile: string, dir: string | undefined): Tokenizer {
  const tokFile = dir ? path.join(dir, "tokenizer.json") : undefined;
  if (!tokFile || !fs.existsSync(tokFile)) {
    throw new BadDataError(
      dataFile,
      `holds text but there is no tokenizer.json${dir ? ` in ${dir}` : ""} to tokenize it; put the model's tokenizer.json next to it or give token ids ("input_ids")`,
    );
  }
  const cfgFile = path.join(dir!, "tokenizer_config.json");
  try {
    const json = JSON.parse(fs.readFileSync(tokFile, "utf8"));
    const config = fs.existsSync(cfgFile) ? JSON.parse(fs.readFileSync(cfgFile, "utf8")) : {};
    return new Tokenizer(json, config);
  } catch (e) {
    throw new BadDataError(tokFile, `cannot be loaded as a tokenizer (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Group sequences of equal length into batches of at most `maxBatch` rows (models without an
 * attention mask must not be padded). Order within a length is the file order.
 */
export function equalLengthBatches(sequences: number[][], maxBatch: number): number[][][] {
  const byLength = new Map<number, number[][]>();
  for (const s of sequences) {
    let list = byLength.get(s.length);
    if (!list) byLength.set(s.length, (list = []));
    list.push(s);
  }
  const batches: number[][][] = [];
  for (const [, list] of [...byLength].sort((a, b) => b[0] - a[0])) {
    for (let i = 0; i < list.length; i += maxBatch) batches.push(list.slice(i, i + maxBatch));
  }
  return batches;
}
