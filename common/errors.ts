/**
 * Errors are values with a stable `code`. Every module defines its own codes
 * (prefixed by subsystem) and throws a subclass of SignerError; the CLI and the
 * JSON-RPC layer map codes to exit statuses and wire errors without parsing
 * messages. A `hint` says what the operator can do about it.
 */
export class SignerError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  override readonly cause: unknown;

  constructor(code: string, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.hint = opts.hint;
    this.cause = opts.cause;
  }

  toJSON(): { code: string; message: string; hint?: string } {
    return this.hint === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, hint: this.hint };
  }
}

export function isSignerError(e: unknown): e is SignerError {
  return e instanceof SignerError;
}
