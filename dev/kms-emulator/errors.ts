/**
 * KMS wire errors. Every failure the emulator reports is a KmsError whose
 * `type` is the `__type` KMS itself sends, so the unmodified SDK raises the
 * same exception class (`err.name`) it would against AWS. Messages never
 * carry key material, plaintext or secrets.
 */
import { SignerError } from '../../common/errors.js';

/** The `__type` values the emulator sends (KMS's modelled errors plus the AWS front-end's). */
export type KmsErrorType =
  | 'AccessDeniedException'
  | 'AlreadyExistsException'
  | 'DisabledException'
  | 'DryRunOperationException'
  | 'IncorrectKeyException'
  | 'InvalidAliasNameException'
  | 'InvalidArnException'
  | 'InvalidCiphertextException'
  | 'InvalidKeyUsageException'
  | 'InvalidMarkerException'
  | 'InvalidSignatureException'
  | 'KMSInternalException'
  | 'KMSInvalidStateException'
  | 'MalformedPolicyDocumentException'
  | 'MissingAuthenticationTokenException'
  | 'NotFoundException'
  | 'RequestEntityTooLargeException'
  | 'SerializationException'
  | 'ThrottlingException'
  | 'UnknownOperationException'
  | 'UnrecognizedClientException'
  | 'UnsupportedOperationException'
  | 'ValidationException';

export class KmsError extends SignerError {
  readonly type: KmsErrorType;
  readonly status: number;
  constructor(type: KmsErrorType, message: string, opts: { status?: number; cause?: unknown; hint?: string } = {}) {
    super(`KMS_EMU_${type}`, message, opts);
    this.type = type;
    this.status = opts.status ?? (type === 'KMSInternalException' ? 500 : 400);
  }

  /** The JSON body KMS sends for this error. */
  body(): { __type: KmsErrorType; message: string } {
    return { __type: this.type, message: this.message };
  }
}

export function isKmsError(e: unknown): e is KmsError {
  return e instanceof KmsError;
}

/** Startup/configuration failures of the emulator itself (not wire errors). */
export class KmsEmulatorError extends SignerError {}
