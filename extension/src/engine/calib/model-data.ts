import fs from "node:fs";
import path from "node:path";
import { BadModelError } from "../errors";
import { indexLinears } from "../onnx/linear";
import type { OnnxModel } from "../onnx/model";
import { loadTokenData, type TokenData } from "./data";

/** What the data loader needs to know about a model: vocabulary size and context length. */
export interface ModelTokenInfo {
  vocab: number;
  maxPositions?: number;
  /** Folder holding tokenizer.json, if any. */
  tokenizerDir?: string;
}

/**
 * From `config.json` beside the model (HF layout: vocab_size, max_position_embeddings) when
 * present, else from the graph (the embedding table's rows, the lm_head's outputs).
 */
export function modelTokenInfo(model: OnnxModel): ModelTokenInfo {
  let config: Record<string, unknown> = {};
  const cfgFile = path.join(model.dir, "config.json");
  if (fs.existsSync(cfgFile)) {
    try {
      config = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
    } catch {
      config = {};
    }
  }
  const index = indexLinears(model);
  const fromGraph = index.embeddings[0]?.vocab ?? index.layers.find((l) => l.role === "lm_head")?.out;
  if (typeof config.vocab_size === "number" && fromGraph !== undefined && config.vocab_size !== fromGraph) {
    // Ids up to config's size would index past the embedding table inside onnxruntime.
    throw new BadModelError(
      cfgFile,
      `field 'vocab_size' is ${config.vocab_size} but the model ${model.file} has a vocabulary of ${fromGraph} (embedding rows / lm_head outputs): this config.json belongs to another model`,
    );
  }
  const vocab = typeof config.vocab_size === "number" ? config.vocab_size : (fromGraph ?? Number.MAX_SAFE_INTEGER);
  const maxPositions = typeof config.max_position_embeddings === "number" ? config.max_position_embeddings : undefined;
  const tokenizerDir = fs.existsSync(path.join(model.dir, "tokenizer.json")) ? model.dir : undefined;
  return { vocab, maxPositions, tokenizerDir };
}

/**
 * Token sequences for `model` from a data file. `forEval`: sequences keep one token more than the
 * context (inputs ids[0..n−2], targets ids[1..n−1]: BOS + story truncated at context + 1).
 */
export function loadModelData(model: OnnxModel, file: string, opts: { samples?: number; seqLen?: number; forEval?: boolean } = {}): TokenData {
  const info = modelTokenInfo(model);
  const { forEval, ...rest } = opts;
  const maxPositions = info.maxPositions !== undefined && forEval ? info.maxPositions + 1 : info.maxPositions;
  return loadTokenData(file, { ...info, maxPositions, ...rest, contextNote: forEval && info.maxPositions !== undefined ? `the model's context of ${info.maxPositions} + 1 target` : undefined });
}
