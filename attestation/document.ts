/**
 * Decodes and type-checks an attestation document payload (AWS's CDDL in
 * aws-nitro-enclaves-nsm-api/docs/attestation_process.md). Every field is
 * checked for type and size; unknown fields are refused because nothing signed
 * should be silently ignored.
 */
import { decodeCbor, type CborValue } from '../common/cbor.js';
import { AttestationError } from './errors.js';
import type { AttestationDocument } from './types.js';

const REQUIRED = ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle'] as const;
const OPTIONAL = ['public_key', 'user_data', 'nonce'] as const;
const KNOWN = new Set<string>([...REQUIRED, ...OPTIONAL]);

/** NSM's own limits: at most 1024 bytes per optional blob, 32 PCRs, certificates under 1024 bytes. */
export const LIMITS = { blob: 1024, cert: 1024, pcrs: 32, cabundle: 8, moduleId: 256 } as const;
/** SHA-384 PCRs; NSM also defines 32/64-byte banks, which no Nitro document uses. */
export const PCR_LENGTH = 48;

function bad(msg: string): AttestationError {
  return new AttestationError('ATTEST_MALFORMED', 'payload', msg);
}

function bytesField(m: Map<unknown, CborValue>, key: string, min: number, max: number): Uint8Array {
  const v = m.get(key);
  if (!(v instanceof Uint8Array)) throw bad(`${key} must be a byte string`);
  if (v.length < min || v.length > max) throw bad(`${key} is ${v.length} bytes, allowed ${min}..${max}`);
  return v;
}

function optionalBytes(m: Map<unknown, CborValue>, key: string): Uint8Array | null {
  if (!m.has(key) || m.get(key) === null) return null;
  return bytesField(m, key, 0, LIMITS.blob);
}

export function decodeDocument(payload: Uint8Array): AttestationDocument {
  let v: CborValue;
  try {
    v = decodeCbor(payload);
  } catch (e) {
    throw new AttestationError('ATTEST_MALFORMED', 'payload', `payload is not valid CBOR: ${(e as Error).message}`, { cause: e });
  }
  if (!(v instanceof Map)) throw bad('payload must be a map');
  for (const k of v.keys()) {
    if (typeof k !== 'string' || !KNOWN.has(k)) throw bad(`unknown field ${JSON.stringify(String(k))}`);
  }
  for (const k of REQUIRED) if (!v.has(k)) throw bad(`missing field ${k}`);

  const moduleId = v.get('module_id');
  if (typeof moduleId !== 'string' || moduleId.length === 0 || moduleId.length > LIMITS.moduleId) throw bad('module_id must be a non-empty text string');
  const digest = v.get('digest');
  if (digest !== 'SHA384') throw bad(`digest must be "SHA384", got ${JSON.stringify(String(digest))}`);
  const ts = v.get('timestamp');
  // Integers only: the CBOR decoder already refuses integral floats (1.7e12 written as a float), this refuses the rest (1.5).
  if ((typeof ts !== 'number' && typeof ts !== 'bigint') || (typeof ts === 'number' && !Number.isInteger(ts))) throw bad('timestamp must be an unsigned integer');
  if (typeof ts === 'bigint' || ts <= 0) throw bad('timestamp out of range');

  const pcrsV = v.get('pcrs');
  if (!(pcrsV instanceof Map)) throw bad('pcrs must be a map');
  if (pcrsV.size === 0 || pcrsV.size > LIMITS.pcrs) throw bad(`pcrs must hold 1..${LIMITS.pcrs} entries, has ${pcrsV.size}`);
  const pcrs = new Map<number, Uint8Array>();
  for (const [idx, val] of pcrsV) {
    if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0 || idx >= LIMITS.pcrs) throw bad(`PCR index ${String(idx)} out of range 0..31`);
    if (!(val instanceof Uint8Array) || val.length !== PCR_LENGTH) throw bad(`PCR${idx} must be ${PCR_LENGTH} bytes for SHA384`);
    pcrs.set(idx, val);
  }

  const certificate = bytesField(v, 'certificate', 1, LIMITS.cert);
  // A null or empty cabundle is well-formed but cannot chain to any root: the chain check reports it.
  const cab = v.get('cabundle') ?? [];
  if (!Array.isArray(cab) || cab.length > LIMITS.cabundle) throw bad(`cabundle must be an array of at most ${LIMITS.cabundle} certificates`);
  const cabundle = cab.map((c, i) => {
    if (!(c instanceof Uint8Array) || c.length === 0 || c.length > LIMITS.cert) throw bad(`cabundle[${i}] must be a certificate of 1..${LIMITS.cert} bytes`);
    return c;
  });

  return {
    moduleId,
    digest: 'SHA384',
    timestamp: ts,
    pcrs,
    certificate,
    cabundle,
    publicKey: optionalBytes(v, 'public_key'),
    userData: optionalBytes(v, 'user_data'),
    nonce: optionalBytes(v, 'nonce'),
  };
}
