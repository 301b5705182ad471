import { SignerError } from '../common/errors.js';

/**
 * Which verification step failed. Stable: the CLI prints it, the parent's
 * /readyz reports it, tests assert on it.
 */
export type AttestationCheck =
  | 'input' // size, encoding (base64/raw)
  | 'cose' // COSE_Sign1 structure and headers
  | 'payload' // document fields and types
  | 'signature' // ES384 over Sig_structure with the leaf key
  | 'chain' // leaf → intermediates → pinned root, constraints
  | 'validity' // certificate time windows at the verification time
  | 'nonce'
  | 'public_key'
  | 'user_data'
  | 'pcrs'
  | 'debug' // PCR0/1/2 all zero while debug is not allowed
  | 'manifest';

export type AttestationErrorCode =
  | 'ATTEST_INPUT'
  | 'ATTEST_MALFORMED'
  | 'ATTEST_ALGORITHM'
  | 'ATTEST_SIGNATURE'
  | 'ATTEST_CHAIN'
  | 'ATTEST_UNTRUSTED_ROOT'
  | 'ATTEST_CERT_EXPIRED'
  | 'ATTEST_CERT_NOT_YET_VALID'
  | 'ATTEST_NONCE_MISMATCH'
  | 'ATTEST_PUBLIC_KEY_MISMATCH'
  | 'ATTEST_USER_DATA_MISMATCH'
  | 'ATTEST_PCR_MISMATCH'
  | 'ATTEST_DEBUG_MODE'
  | 'ATTEST_MANIFEST';

export class AttestationError extends SignerError {
  override readonly code: AttestationErrorCode;
  readonly check: AttestationCheck;
  constructor(code: AttestationErrorCode, check: AttestationCheck, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
    this.code = code;
    this.check = check;
  }
}
