// How a failure is shown: a user error (bad model, data, setting) says what to fix; a cancel is
// quiet; anything else is an internal error with its stack in the output channel.
import { CancelledError, QuantLensError } from "../engine/errors";

export type FailureKind = "cancelled" | "user" | "internal";

export interface Failure {
  kind: FailureKind;
  /** One line for the notification. */
  message: string;
  /** For the output channel (the stack of an internal error). */
  detail: string;
}

export function classifyError(e: unknown, what: string): Failure {
  if (e instanceof CancelledError || (e instanceof Error && e.name === "AbortError")) {
    return { kind: "cancelled", message: `${what} cancelled; nothing was written.`, detail: `${what} cancelled` };
  }
  if (e instanceof QuantLensError && e.userError) {
    return { kind: "user", message: `${what} failed: ${e.message}`, detail: `${what} failed: ${e.message}` };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return {
    kind: "internal",
    message: `${what} failed with an internal error: ${err.message}. Details are in the QuantLens output.`,
    detail: `${what}: internal error: ${err.stack ?? err.message}`,
  };
}
