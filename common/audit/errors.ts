/**
 * Audit chain errors. Every failure names the record it is about (`seq`, or
 * the position in the input when the seq itself could not be read), so an
 * auditor can point at the exact row; nothing else escapes the verifier.
 */
import { SignerError } from '../errors.js';

export type AuditErrorCode =
  | 'AUDIT_MALFORMED' // not a record: bad CBOR, wrong shape, non-canonical bytes
  | 'AUDIT_VERSION' // a record version this build does not know
  | 'AUDIT_SIGNATURE' // the Ed25519 signature does not verify
  | 'AUDIT_UNBOUND_KEY' // signed by a key no hand-over (attestation) introduced
  | 'AUDIT_ATTESTATION' // a hand-over's attestation is missing, bad, or does not bind its key
  | 'AUDIT_LINK' // prev hash does not match the previous record: a fork or splice
  | 'AUDIT_GAP' // seq skips: records were dropped
  | 'AUDIT_ORDER' // seq repeats or goes back: reordering or a fork
  | 'AUDIT_HANDOVER' // a hand-over that does not follow the rules
  | 'AUDIT_POLICY' // a record's policy hash is not the one in force
  | 'AUDIT_TIME' // enclave time goes backwards within one enclave
  | 'AUDIT_TRUNCATED' // a checkpoint/receipt names a record the chain no longer has
  | 'AUDIT_EMPTY' // no records at all
  | 'AUDIT_SOURCE' // the database or file cannot be read
  | 'AUDIT_RECEIPT' // a receipt that is malformed or proves something else
  | 'AUDIT_KEY_CLOSED'; // the enclave's audit log was closed

export class AuditError extends SignerError {
  override readonly code: AuditErrorCode;
  /** The record's seq (or, when it could not be read, undefined and `index` set). */
  readonly seq: number | undefined;
  /** 0-based position in the input (row or line), when known. */
  readonly index: number | undefined;
  constructor(code: AuditErrorCode, message: string, opts: { seq?: number; index?: number; cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
    this.code = code;
    this.seq = opts.seq;
    this.index = opts.index;
  }
}
