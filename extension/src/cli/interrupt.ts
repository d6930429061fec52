import { removeOwnTempFiles } from "./outputs";

/**
 * Run `work` with an AbortSignal that Ctrl-C (SIGINT) or SIGTERM trips: long commands stop
 * within a second and remove their partial outputs. A second Ctrl-C exits at once, removing this
 * run's temp files first.
 */
export async function withInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSignal = () => {
    if (abort.signal.aborted) {
      removeOwnTempFiles();
      process.exit(130);
    }
    process.stderr.write("\nquantlens: stopping (Ctrl-C again to exit now)\n");
    abort.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await work(abort.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
