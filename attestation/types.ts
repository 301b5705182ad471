import type { CborValue } from '../common/cbor.js';

/** The decoded payload of an NSM attestation document (field names as in AWS's CDDL, camelCased). */
export interface AttestationDocument {
  moduleId: string;
  digest: 'SHA384';
  /** Milliseconds since the Unix epoch, as NSM writes it. */
  timestamp: number;
  /** PCR index → 48-byte SHA-384 value. */
  pcrs: Map<number, Uint8Array>;
  /** Leaf certificate, DER. */
  certificate: Uint8Array;
  /** [root, …, intermediate], DER, as NSM orders them. */
  cabundle: Uint8Array[];
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
}

/** A COSE_Sign1 envelope split into its parts; `doc` is the decoded payload. */
export interface ParsedAttestation {
  tagged: boolean;
  protectedHeader: Uint8Array;
  unprotected: CborValue;
  payload: Uint8Array;
  signature: Uint8Array;
  doc: AttestationDocument;
}

/** A trust anchor pinned by the SHA-256 fingerprint of its DER. */
export interface TrustRoot {
  name: string;
  der: Uint8Array;
  /** Uppercase hex SHA-256 of `der`. */
  fingerprint: string;
}

export interface VerifyOptions {
  /** Verification time: a Date, or 'document' to use the document's own timestamp. Default: now. */
  at?: Date | 'document';
  /** Trust anchor. Default: AWS_NitroEnclaves_Root-G1. Anything else must be passed here explicitly. */
  root?: TrustRoot;
  expectedNonce?: Uint8Array;
  expectedPublicKey?: Uint8Array;
  expectedUserData?: Uint8Array;
  /** PCR index → expected value (bytes or hex, case-insensitive). Every listed PCR must match. */
  expectedPcrs?: Record<number, Uint8Array | string>;
  /** Accept debug-mode documents (PCR0/1/2 all zero). Default false. */
  allowDebug?: boolean;
}

export interface VerifiedAttestation {
  document: AttestationDocument;
  /** The checks that passed, in order (values of AttestationCheck). */
  checks: string[];
  /** Verification time actually used. */
  verifiedAt: Date;
  root: { name: string; fingerprint: string };
  /** Subjects from root to leaf, for humans. */
  chainSubjects: string[];
  debug: boolean;
}
