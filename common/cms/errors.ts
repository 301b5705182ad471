import { SignerError } from '../errors.js';

/**
 * Why a KMS `CiphertextForRecipient` was refused. Stable: the CLI prints it,
 * the enclave's KMS client maps it, tests assert on it. Messages name the
 * offending field and offset, never key or plaintext bytes.
 */
export type CmsErrorCode =
  | 'CMS_MALFORMED' // not well-formed BER, or not the EnvelopedData shape KMS sends
  | 'CMS_UNSUPPORTED_CONTENT_TYPE' // outer type not envelopedData, or inner type not id-data
  | 'CMS_UNSUPPORTED_VERSION' // EnvelopedData or KeyTransRecipientInfo version other than 2
  | 'CMS_UNSUPPORTED_RECIPIENT' // not exactly one KeyTransRecipientInfo with a [0] subjectKeyIdentifier rid
  | 'CMS_UNSUPPORTED_ALGORITHM' // anything but RSAES-OAEP(SHA-256, MGF1-SHA-256, empty label) + aes256-CBC
  | 'CMS_WRONG_RECIPIENT' // rid is not SHA-256 of our SPKI
  | 'CMS_BAD_KEY' // the private key is not RSA, or does not match the recipient SPKI
  | 'CMS_DECRYPT_FAILED' // RSA-OAEP unwrap of the content-encryption key failed
  | 'CMS_BAD_CEK_LENGTH' // the unwrapped content-encryption key is not 32 bytes
  | 'CMS_BAD_PADDING' // PKCS#7 padding of the decrypted content is invalid
  | 'CMS_BAD_ARGUMENT'; // a caller passed something that is not bytes / a valid option (builder)

export class CmsError extends SignerError {
  override readonly code: CmsErrorCode;
  constructor(code: CmsErrorCode, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
    this.code = code;
  }
}

export function isCmsError(e: unknown): e is CmsError {
  return e instanceof CmsError;
}
