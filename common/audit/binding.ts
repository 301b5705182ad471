/**
 * What an enclave puts in its attestation documents' `user_data` so that a
 * verifier can tie its audit key (and, once the policy engine is wired, its
 * policy) to the measured image:
 *
 *   user_data = canonical CBOR map with text keys in deterministic order
 *     { "v": 1, "auditKey": bstr 32, "policyHash": bstr 32 / null }
 *   bytes: a3 61 76 01 68 "auditKey" 58 20 <32> 6a "policyHash" (58 20 <32> / f6)
 *
 * Keys are sorted as RFC 8949 §4.2.1 sorts them (shorter encoding first),
 * and all three are always present, so one binding has one byte string.
 */
import { bytesEqual } from '../bytes.js';
import { decodeCbor, encodeCbor, type CborKey, type CborValue } from '../cbor.js';
import { AuditError } from './errors.js';
import { ED25519_PUBLIC_KEY_BYTES } from './envelope.js';
import { DIGEST_BYTES } from './record.js';

export const AUDIT_BINDING_VERSION = 1;

export interface AuditBinding {
  auditKey: Uint8Array;
  policyHash: Uint8Array | null;
}

export function encodeAuditBinding(b: AuditBinding): Uint8Array {
  if (!(b.auditKey instanceof Uint8Array) || b.auditKey.length !== ED25519_PUBLIC_KEY_BYTES) throw new AuditError('AUDIT_MALFORMED', 'auditKey must be 32 bytes');
  if (b.policyHash !== null && (!(b.policyHash instanceof Uint8Array) || b.policyHash.length !== DIGEST_BYTES)) throw new AuditError('AUDIT_MALFORMED', 'policyHash must be 32 bytes or null');
  return encodeCbor(
    new Map<CborKey, CborValue>([
      ['v', AUDIT_BINDING_VERSION],
      ['auditKey', b.auditKey],
      ['policyHash', b.policyHash],
    ]),
  );
}

/** Reads a binding from `user_data`; AUDIT_ATTESTATION when it is not one. */
export function parseAuditBinding(userData: Uint8Array | null, where: { seq?: number } = {}): AuditBinding {
  const fail = (m: string, cause?: unknown): AuditError =>
    new AuditError('AUDIT_ATTESTATION', `${where.seq === undefined ? '' : `seq ${where.seq}: `}attestation user_data ${m}`, { ...where, ...(cause ? { cause } : {}) });
  if (userData === null) throw fail('is absent: the document binds no audit key');
  let v: CborValue;
  try {
    v = decodeCbor(userData, { allowIndefinite: false, maxDepth: 2 });
  } catch (e) {
    throw fail(`is not an audit binding (CBOR: ${(e as Error).message})`, e);
  }
  if (!(v instanceof Map)) throw fail('is not an audit binding map');
  if (v.get('v') !== AUDIT_BINDING_VERSION) throw fail(`has binding version ${String(v.get('v'))}, expected ${AUDIT_BINDING_VERSION}`);
  const auditKey = v.get('auditKey');
  const policyHash = v.get('policyHash');
  if (!(auditKey instanceof Uint8Array) || auditKey.length !== ED25519_PUBLIC_KEY_BYTES) throw fail('auditKey is not 32 bytes');
  if (policyHash !== null && (!(policyHash instanceof Uint8Array) || policyHash.length !== DIGEST_BYTES)) throw fail('policyHash is not 32 bytes or null');
  const b = { auditKey, policyHash };
  if (!bytesEqual(encodeAuditBinding(b), userData)) throw fail('is not in canonical form (exactly v, auditKey, policyHash)');
  return b;
}
