/**
 * Exit statuses and the two error kinds the CLI adds. Scripts branch on the
 * status, so it is the contract:
 *   0  ok
 *   1  the check failed (the document, manifest or signature is not good)
 *   2  usage: bad flags or arguments, or an input file we could not use
 *   70 internal error (a bug: please report it)
 */
import { SignerError } from '../common/errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 70;

/** Bad invocation: the usage text is printed after the message. */
export class UsageError extends SignerError {
  constructor(message: string, opts: { hint?: string } = {}) {
    super('CLI_USAGE', message, opts);
  }
}

/**
 * An operator-supplied file we cannot use (missing, unreadable, not a key):
 * exit 2 like a usage error, but without the usage text, which would bury
 * the one line that matters.
 */
export class CliInputError extends SignerError {
  constructor(message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super('CLI_INPUT', message, opts);
  }
}

/** The stable shape of a failure in --json output and in text reports. */
export interface ErrorReport {
  code: string;
  check?: string;
  message: string;
  hint?: string;
}

export function errorReport(e: SignerError): ErrorReport {
  const check = (e as { check?: unknown }).check;
  return {
    code: e.code,
    ...(typeof check === 'string' ? { check } : {}),
    message: e.message,
    ...(e.hint !== undefined ? { hint: e.hint } : {}),
  };
}

/** Text lines for a failed check, aligned like the success output. */
export function formatFailure(title: string, e: SignerError): string {
  const r = errorReport(e);
  const lines = [`FAILED: ${title}`, `  error   ${r.code}`];
  if (r.check) lines.push(`  check   ${r.check}`);
  lines.push(`  reason  ${r.message}`);
  if (r.hint) lines.push(`  hint    ${r.hint}`);
  return `${lines.join('\n')}\n`;
}
