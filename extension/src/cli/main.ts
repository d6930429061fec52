// `quantlens` — the command-line face of the engine (DESIGN.md, "CLI contract").
// `--json` prints one JSON object on stdout; progress and messages go to stderr.
// Exit 0 on success, 1 on a user error (the message names the file/tensor/field), 2 otherwise.
process.env.ORT_DISABLE_TELEMETRY = "1";

import { Command, CommanderError } from "commander";
import { CancelledError, QuantLensError } from "../engine/errors";
import { registerInspect } from "./inspect";
import { registerCalibrate } from "./calibrate";
import { registerEval } from "./eval";
import { registerQuantize } from "./quantize";
import { registerAnalyze } from "./analyze";
import { registerSensitivity } from "./sensitivity";
import { registerPlan } from "./plan";
import { VERSION } from "./version";

export async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name("quantlens")
    .description("Inspect ONNX language models and find out why they lose accuracy when quantized.")
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerInspect(program);
  registerCalibrate(program);
  registerQuantize(program);
  registerEval(program);
  registerAnalyze(program);
  registerSensitivity(program);
  registerPlan(program);
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    return reportError(e);
  }
}

function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    // Help and version exit through here with code 0; parse errors were already printed.
    return e.exitCode === 0 ? 0 : 1;
  }
  if (e instanceof CancelledError) {
    process.stderr.write(`quantlens: ${e.message}; nothing was written\n`);
    return 130;
  }
  if (e instanceof QuantLensError && e.userError) {
    process.stderr.write(`quantlens: error: ${e.message}\n`);
    return 1;
  }
  process.stderr.write(`quantlens: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 2;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`quantlens: internal error: ${e}\n`);
      process.exitCode = 2;
    },
  );
}
