/**
 * One error type per failure family (STYLE.md §10). Every message names the file, tensor or
 * field at fault and says what to do. The CLI maps `QuantLensError` with `userError: true`
 * to exit code 1 and anything else to exit code 2.
 */
export abstract class QuantLensError extends Error {
  /** True when the input (model, data, flags) is at fault, not QuantLens. */
  abstract readonly userError: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The model file (or one of its external data files) is unreadable, malformed or unsafe. */
export class BadModelError extends QuantLensError {
  readonly userError = true;
  constructor(
    readonly file: string,
    detail: string,
    options?: { cause?: unknown; tensor?: string },
  ) {
    super(`${file}${options?.tensor ? ` (tensor '${options.tensor}')` : ""}: ${detail}`, options);
    this.tensor = options?.tensor;
  }
  readonly tensor: string | undefined;
}

/** Calibration or evaluation data is unreadable or malformed. */
export class BadDataError extends QuantLensError {
  readonly userError = true;
  constructor(
    readonly file: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${detail}`, options);
  }
}

/** A valid model uses something QuantLens does not handle (a dtype, an op form). */
export class UnsupportedError extends QuantLensError {
  readonly userError = true;
}

/** A command-line flag or setting has a bad value. */
export class UsageError extends QuantLensError {
  readonly userError = true;
}

/** The user cancelled; nothing half-written is left behind. */
export class CancelledError extends QuantLensError {
  readonly userError = true;
  constructor(what = "operation") {
    super(`${what} cancelled`);
  }
}
