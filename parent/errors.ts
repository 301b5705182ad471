/**
 * Errors of the parent proxy. Codes are stable: the JSON-RPC layer maps them
 * to wire codes (parent/rpc-errors.ts), /readyz reports them, tests assert on
 * them. Messages never carry secrets (credentials, blobs, key material).
 */
import { SignerError } from '../common/errors.js';

export type ParentErrorCode =
  /** The configuration is incomplete or contradictory. */
  | 'PARENT_CONFIG'
  /** No attested enclave: not connected yet, attesting, or attestation failed. */
  | 'PARENT_NOT_ATTESTED'
  /** The attested connection was lost (or timed out) while a request was in flight. */
  | 'PARENT_ENCLAVE_UNAVAILABLE'
  /** Attested, but no keyring is unlocked (boot still running, KMS refused, none configured). */
  | 'PARENT_KEYRING_LOCKED'
  /** The enclave answered with something that does not have the contract's shape. */
  | 'PARENT_BAD_ENCLAVE_RESPONSE'
  /** The enclave's sealed state could not be stored: the answer it came with is withheld. */
  | 'PARENT_STATE_UNWRITABLE'
  /**
   * Fleet scope: another instance stored newer shared state first (compare-and-swap lost), so
   * this answer is withheld; the request may be retried (docs/scale-out.md).
   */
  | 'PARENT_STATE_CONFLICT'
  /** The enclave signed with a key that is not the one asked for (the keystore record was tampered with). */
  | 'PARENT_SIGNER_MISMATCH'
  /** A request parameter is wrong (JSON-RPC -32602); `field` names it. */
  | 'PARENT_INVALID_PARAMS'
  /** Too many requests in flight. */
  | 'PARENT_BUSY'
  /** The AWS credentials provider failed. */
  | 'PARENT_CREDENTIALS'
  /** The listener could not be set up. */
  | 'PARENT_LISTEN'
  /** The audit record of a decision could not be stored: its result is withheld (docs/audit.md). */
  | 'PARENT_AUDIT_UNAVAILABLE';

export class ParentError extends SignerError {
  override readonly code: ParentErrorCode;
  /** For PARENT_INVALID_PARAMS: the offending parameter, e.g. `params[0].chainId` or `keyId`. */
  readonly field: string | undefined;

  constructor(code: ParentErrorCode, message: string, opts: { cause?: unknown; hint?: string; field?: string } = {}) {
    super(code, message, opts);
    this.code = code;
    this.field = opts.field;
  }
}

/** A bad request parameter; the message starts with the field's name. */
export function invalidParam(field: string, message: string, hint?: string): ParentError {
  return new ParentError('PARENT_INVALID_PARAMS', `${field}: ${message}`, hint === undefined ? { field } : { field, hint });
}
