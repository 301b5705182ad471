/**
 * The signed envelope shared by audit records and checkpoints: an untagged
 * COSE_Sign1 (RFC 9052 §4.2) with EdDSA (alg -8), Ed25519.
 *
 *   envelope   = [ h'a10127', {}, payload, signature ]        (CBOR array of 4)
 *   signed     = CBOR([ "Signature1", h'a10127', h'', payload ])
 *   signature  = Ed25519(auditKey, signed)                      (64 bytes)
 *
 * Any COSE library can check it. Parsing is strict and canonical: the bytes
 * must be exactly what encodeEnvelope would produce for the decoded value, so
 * one record has one byte string and a byte flip anywhere is an error or a
 * signature failure, never a silently different reading.
 */
import { createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { bytesEqual } from '../bytes.js';
import { decodeCbor, encodeCbor, type CborValue } from '../cbor.js';
import { AuditError } from './errors.js';

/** Protected header {1: -8} (alg: EdDSA), encoded. */
export const AUDIT_PROTECTED_HEADER = Uint8Array.of(0xa1, 0x01, 0x27);
export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;
/** Largest envelope we read: a hand-over carries an attestation document (≤ 16 KiB). */
export const MAX_ENVELOPE_BYTES = 24 * 1024;

const EMPTY = new Uint8Array(0);
const EMPTY_MAP = new Map();

/** The exact bytes the audit key signs (COSE Sig_structure). */
export function sigStructure(payload: Uint8Array): Uint8Array {
  return encodeCbor(['Signature1', AUDIT_PROTECTED_HEADER, EMPTY, payload]);
}

export function encodeEnvelope(payload: Uint8Array, signature: Uint8Array): Uint8Array {
  return encodeCbor([AUDIT_PROTECTED_HEADER, EMPTY_MAP, payload, signature]);
}

/** Signs `payload` with an Ed25519 private KeyObject and returns the envelope. */
export function signEnvelope(payload: Uint8Array, privateKey: KeyObject): Uint8Array {
  const sig = new Uint8Array(nodeSign(null, sigStructure(payload), privateKey));
  return encodeEnvelope(payload, sig);
}

export interface Envelope {
  payload: Uint8Array;
  signature: Uint8Array;
}

interface Where {
  seq?: number;
  index?: number;
}

function bad(msg: string, where: Where, cause?: unknown): AuditError {
  return new AuditError('AUDIT_MALFORMED', msg, { ...where, ...(cause === undefined ? {} : { cause }) });
}

/** Splits an envelope, refusing anything that is not byte-for-byte canonical. */
export function parseEnvelope(bytes: Uint8Array, where: Where = {}): Envelope {
  if (!(bytes instanceof Uint8Array)) throw bad('record must be bytes', where);
  if (bytes.length > MAX_ENVELOPE_BYTES) throw bad(`record is ${bytes.length} bytes, more than the ${MAX_ENVELOPE_BYTES}-byte limit`, where);
  let top: CborValue;
  try {
    top = decodeCbor(bytes, { allowIndefinite: false, maxDepth: 4 });
  } catch (e) {
    throw bad(`record is not canonical CBOR: ${(e as Error).message}`, where, e);
  }
  if (!Array.isArray(top) || top.length !== 4) throw bad('record must be a COSE_Sign1 array of 4 items (untagged)', where);
  const [prot, unprot, payload, signature] = top;
  if (!(prot instanceof Uint8Array) || !bytesEqual(prot, AUDIT_PROTECTED_HEADER)) throw bad('protected header must be exactly {1: -8} (EdDSA)', where);
  if (!(unprot instanceof Map) || unprot.size !== 0) throw bad('unprotected header must be an empty map', where);
  if (!(payload instanceof Uint8Array)) throw bad('payload must be a byte string', where);
  if (!(signature instanceof Uint8Array) || signature.length !== ED25519_SIGNATURE_BYTES) throw bad('signature must be 64 bytes (Ed25519)', where);
  return { payload, signature };
}

const keyCache = new Map<string, KeyObject>();

/** A node KeyObject for a raw 32-byte Ed25519 public key (cached: a chain has few keys). */
export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw).toString('hex');
  let k = keyCache.get(id);
  if (!k) {
    if (raw.length !== ED25519_PUBLIC_KEY_BYTES) throw new AuditError('AUDIT_MALFORMED', 'an Ed25519 public key is 32 bytes');
    k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
    if (keyCache.size > 1024) keyCache.clear();
    keyCache.set(id, k);
  }
  return k;
}

/** The raw 32 bytes of an Ed25519 public KeyObject. */
export function rawEd25519PublicKey(k: KeyObject): Uint8Array {
  const jwk = k.export({ format: 'jwk' }) as { x?: string };
  if (typeof jwk.x !== 'string') throw new AuditError('AUDIT_MALFORMED', 'not an Ed25519 key');
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

export function verifyEnvelope(env: Envelope, publicKey: Uint8Array): boolean {
  try {
    return nodeVerify(null, sigStructure(env.payload), ed25519PublicKey(publicKey), env.signature);
  } catch {
    return false;
  }
}
