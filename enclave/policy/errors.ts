/**
 * Errors of the policy engine. A policy document that is not valid names the JSON path of
 * the offending field (`rules[2].erc20.tokens[0]`), so an operator fixes the right line;
 * a request the engine cannot turn into an intent is refused with the signer's own error.
 */
import { SignerError } from '../../common/errors.js';

export type PolicyErrorCode =
  /** The document breaks a rule of the language; `path` names the field. */
  | 'POLICY_INVALID'
  /** The document is not strict JSON (duplicate key, float, trailing garbage…). */
  | 'POLICY_JSON'
  /** A window state handed back in is malformed (never trust it: refuse). */
  | 'POLICY_STATE_INVALID';

export class PolicyDocumentError extends SignerError {
  override readonly code: PolicyErrorCode;
  /** JSON path of the offending field ('' for the document itself). */
  readonly path: string;

  constructor(code: PolicyErrorCode, path: string, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, path === '' ? message : `${path}: ${message}`, opts);
    this.code = code;
    this.path = path;
  }

  override toJSON(): { code: string; message: string; hint?: string; path: string } {
    return { ...super.toJSON(), path: this.path };
  }
}

export function invalidPolicy(path: string, message: string, hint?: string): PolicyDocumentError {
  return new PolicyDocumentError('POLICY_INVALID', path, message, hint === undefined ? {} : { hint });
}
