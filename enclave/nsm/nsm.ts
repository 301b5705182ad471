/**
 * The Nitro Secure Module as the enclave sees it: attestation, PCRs, entropy.
 * Modeled on aws-nitro-enclaves-nsm-api (src/api/mod.rs): the same operations,
 * the same error codes, the same limits. Two implementations share this
 * interface — the hardware device (/dev/nsm ioctl, via a native addon) and the
 * simulated one (dev CA, for development and tests); both go through the same
 * CBOR messages (messages.ts) and the same client (client.ts), so the only
 * thing that differs is who answers the request and which root signs.
 */
import { SignerError } from '../../common/errors.js';

/** SHA-384 PCR bank: every Nitro NSM reports digest SHA384. */
export const PCR_LENGTH = 48;
/** NSM exposes 32 PCRs: 0–15 read-only (set at boot, always locked), 16–31 for the enclave to extend and lock. */
export const NSM_MAX_PCRS = 32;
export const NSM_READONLY_PCRS = 16;
/** Largest nonce / user_data / public_key the NSM accepts (aws-nitro-enclaves-nsm-api test uses exactly this). */
export const NSM_MAX_INPUT = 1024;
/** The driver's request and response buffers (nsm-api src/driver/mod.rs). */
export const NSM_REQUEST_MAX_SIZE = 0x1000;
export const NSM_RESPONSE_MAX_SIZE = 0x3000;
/** The NSM returns at most this much entropy per GetRandom request (nsm-lib: "up to 256 bytes"). */
export const NSM_RANDOM_CHUNK = 256;
/** Our own bound on one getRandom call; callers wanting more are doing something odd. */
export const NSM_MAX_RANDOM = 64 * 1024;

/** The NSM's ErrorCode enum, as it appears on the wire (serde unit-variant names). */
export type NsmWireErrorCode =
  | 'Success'
  | 'InvalidArgument'
  | 'InvalidIndex'
  | 'InvalidResponse'
  | 'ReadOnlyIndex'
  | 'InvalidOperation'
  | 'BufferTooSmall'
  | 'InputTooLarge'
  | 'InternalError';

export const NSM_WIRE_ERROR_CODES: readonly NsmWireErrorCode[] = [
  'Success',
  'InvalidArgument',
  'InvalidIndex',
  'InvalidResponse',
  'ReadOnlyIndex',
  'InvalidOperation',
  'BufferTooSmall',
  'InputTooLarge',
  'InternalError',
];

/** Our error codes, one per NSM ErrorCode (Success is not an error). */
export type NsmErrorCode =
  | 'NSM_INVALID_ARGUMENT'
  | 'NSM_INVALID_INDEX'
  | 'NSM_INVALID_RESPONSE'
  | 'NSM_READONLY_INDEX'
  | 'NSM_INVALID_OPERATION'
  | 'NSM_BUFFER_TOO_SMALL'
  | 'NSM_INPUT_TOO_LARGE'
  | 'NSM_INTERNAL_ERROR';

const TO_CODE: Record<Exclude<NsmWireErrorCode, 'Success'>, NsmErrorCode> = {
  InvalidArgument: 'NSM_INVALID_ARGUMENT',
  InvalidIndex: 'NSM_INVALID_INDEX',
  InvalidResponse: 'NSM_INVALID_RESPONSE',
  ReadOnlyIndex: 'NSM_READONLY_INDEX',
  InvalidOperation: 'NSM_INVALID_OPERATION',
  BufferTooSmall: 'NSM_BUFFER_TOO_SMALL',
  InputTooLarge: 'NSM_INPUT_TOO_LARGE',
  InternalError: 'NSM_INTERNAL_ERROR',
};

export function nsmErrorCode(wire: Exclude<NsmWireErrorCode, 'Success'>): NsmErrorCode {
  return TO_CODE[wire];
}

export function wireErrorCode(code: NsmErrorCode): Exclude<NsmWireErrorCode, 'Success'> {
  for (const [w, c] of Object.entries(TO_CODE)) if (c === code) return w as Exclude<NsmWireErrorCode, 'Success'>;
  return 'InternalError';
}

export class NsmError extends SignerError {
  override readonly code: NsmErrorCode;
  /** The NSM's own name for the error. */
  readonly nsmCode: Exclude<NsmWireErrorCode, 'Success'>;
  constructor(code: NsmErrorCode, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
    this.code = code;
    this.nsmCode = wireErrorCode(code);
  }
}

export interface AttestRequest {
  /** Up to 1024 bytes; the verifier's challenge. */
  nonce?: Uint8Array;
  /** Up to 1024 bytes of application data bound into the document. */
  userData?: Uint8Array;
  /** Up to 1024 bytes; e.g. the DER SPKI of the RSA key KMS encrypts to (Recipient). */
  publicKey?: Uint8Array;
}

export interface PcrDescription {
  /** True when the PCR can no longer change (always for 0–15). */
  lock: boolean;
  /** Current value, 48 bytes. */
  data: Uint8Array;
}

export interface NsmDescription {
  versionMajor: number;
  versionMinor: number;
  versionPatch: number;
  moduleId: string;
  maxPcrs: number;
  /** Locked PCR indexes, ascending. */
  lockedPcrs: number[];
  digest: 'SHA384';
}

export interface Nsm {
  readonly kind: 'hardware' | 'simulated';
  /** Returns an attestation document: an untagged COSE_Sign1 (see docs/nsm.md). */
  attest(req: AttestRequest): Promise<Uint8Array>;
  describePcr(index: number): Promise<PcrDescription>;
  /** PCR[index] = SHA-384(PCR[index] ‖ data); returns the new value. Only unlocked PCRs 16–31. */
  extendPcr(index: number, data: Uint8Array): Promise<Uint8Array>;
  lockPcr(index: number): Promise<void>;
  /** Locks PCRs [0, range). */
  lockPcrs(range: number): Promise<void>;
  getRandom(n: number): Promise<Uint8Array>;
  describeNsm(): Promise<NsmDescription>;
  /** Releases the device; later calls fail with NSM_INVALID_OPERATION. Idempotent. */
  close(): void;
}
