/**
 * The two digests a record carries, defined once so the enclave that writes
 * them and the client or auditor who checks them compute the same bytes:
 *
 *   requestDigest = SHA-256(canonical CBOR [method, params])
 *                   — the request as the enclave decoded it from the bridge
 *                     frame, re-encoded (shortest form, map keys in their
 *                     decoded order), so a client that knows what it sent can
 *                     recompute it from the same CBOR value;
 *   resultDigest  = SHA-256(result bytes) — for a hex string result (a
 *                   signature "0x…"), the bytes it encodes.
 */
import { parseHex } from '../bytes.js';
import { encodeCbor, type CborValue } from '../cbor.js';
import { AuditError } from './errors.js';
import { sha256 } from './record.js';

export function requestDigest(method: string, params: CborValue): Uint8Array {
  return sha256(encodeCbor([method, params]));
}

export function resultDigest(result: Uint8Array | string): Uint8Array {
  if (result instanceof Uint8Array) return sha256(result);
  const b = parseHex(result);
  if (!b || b.length === 0) throw new AuditError('AUDIT_MALFORMED', 'a result digest is taken over bytes or a non-empty hex string');
  return sha256(b);
}
