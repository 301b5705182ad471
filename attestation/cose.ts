/**
 * COSE_Sign1 (RFC 9052 §4.2) as NSM uses it: ES384 only, protected header
 * exactly {1: -35}, empty unprotected map, detached AAD empty, 96-byte raw
 * r‖s signature. Also the signing side, for the simulated NSM and EIF
 * signature sections, so both directions share one definition of the bytes.
 */
import { sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { CborTag, decodeCbor, encodeCbor, type CborValue } from '../common/cbor.js';
import { AttestationError } from './errors.js';

export const COSE_ALG_ES384 = -35;
const COSE_SIGN1_TAG = 18;

export interface CoseSign1 {
  tagged: boolean;
  protectedHeader: Uint8Array;
  /** As decoded; checkCoseHeaders requires an empty map. */
  unprotected: CborValue;
  payload: Uint8Array;
  signature: Uint8Array;
}

function malformed(msg: string, cause?: unknown): AttestationError {
  return new AttestationError('ATTEST_MALFORMED', 'cose', msg, cause === undefined ? {} : { cause });
}

/** Splits a COSE_Sign1 envelope (untagged or tag 18) into its parts; see checkCoseHeaders. */
export function parseCoseSign1(bytes: Uint8Array): CoseSign1 {
  let top: CborValue;
  try {
    top = decodeCbor(bytes);
  } catch (e) {
    throw malformed(`not a CBOR item: ${(e as Error).message}`, e);
  }
  let tagged = false;
  if (top instanceof CborTag) {
    if (top.tag !== COSE_SIGN1_TAG) throw malformed(`unexpected CBOR tag ${top.tag} (COSE_Sign1 is 18)`);
    tagged = true;
    top = top.value;
  }
  if (!Array.isArray(top) || top.length !== 4) throw malformed('COSE_Sign1 must be an array of 4 items');
  const [prot, unprot, payload, signature] = top;
  if (!(prot instanceof Uint8Array)) throw malformed('protected header must be a byte string');
  if (!(payload instanceof Uint8Array)) throw malformed('payload must be a byte string (detached payloads are not used by NSM)');
  if (!(signature instanceof Uint8Array)) throw malformed('signature must be a byte string');
  return { tagged, protectedHeader: prot, unprotected: unprot, payload, signature };
}

/**
 * Header rules, checked separately from the envelope so that a verifier can
 * first establish whether the chain is trusted at all (a forged document's
 * most useful diagnosis is "not from AWS", not a header nit).
 */
export function checkCoseHeaders(cose: CoseSign1): void {
  const unprot = cose.unprotected;
  if (!(unprot instanceof Map)) throw malformed('unprotected header must be a map');
  if (unprot.size !== 0) throw malformed('unprotected header must be empty');
  let headers: CborValue;
  try {
    headers = decodeCbor(cose.protectedHeader);
  } catch (e) {
    throw malformed(`protected header is not CBOR: ${(e as Error).message}`, e);
  }
  if (!(headers instanceof Map)) throw malformed('protected header must encode a map');
  const alg = headers.get(1);
  if (alg !== COSE_ALG_ES384) {
    throw new AttestationError('ATTEST_ALGORITHM', 'cose', `signature algorithm ${String(alg)} is not ES384 (-35)`);
  }
  if (headers.size !== 1) throw malformed('protected header has fields other than alg; none are defined for NSM documents');
  if (cose.signature.length !== 96) {
    throw new AttestationError('ATTEST_ALGORITHM', 'cose', `ES384 signature must be 96 bytes (r‖s), got ${cose.signature.length}`);
  }
}


/** Sig_structure = ["Signature1", protected, external_aad = h'', payload]. */
export function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array {
  return encodeCbor(['Signature1', protectedHeader, new Uint8Array(0), payload]);
}

/** Verifies an ES384 COSE signature with a P-384 public key. */
export function verifyCoseSign1(cose: CoseSign1, publicKey: KeyObject): boolean {
  return nodeVerify('sha384', sigStructure(cose.protectedHeader, cose.payload), { key: publicKey, dsaEncoding: 'ieee-p1363' }, cose.signature);
}

export const ES384_PROTECTED_HEADER = encodeCbor(new Map([[1, COSE_ALG_ES384]]));

/** Produces an untagged COSE_Sign1 with ES384, byte-compatible with NSM's envelope. */
export function signCoseSign1(payload: Uint8Array, privateKey: KeyObject): Uint8Array {
  const signature = nodeSign('sha384', sigStructure(ES384_PROTECTED_HEADER, payload), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return encodeCbor([ES384_PROTECTED_HEADER, new Map(), payload, new Uint8Array(signature)]);
}
