/**
 * Which bytes of a released result the record's `resultDigest` names, defined
 * once for the enclave (which writes it), the parent (which looks receipts up
 * by it) and the client (which holds the result):
 *
 *   - a 0x-hex string (what personal_sign, eth_sign, eth_signTypedData_v4 and
 *     eth_signTransaction return over JSON-RPC): the bytes it encodes;
 *   - an object with a 0x-hex `signature` (the signer_* methods), else a 0x-hex
 *     `raw` (a signed transaction): those bytes — the same digest as the string
 *     a JSON-RPC method returns for it;
 *   - any other object (a derived public key, a signed PSBT): SHA-256 of its
 *     canonical JSON (keys sorted, byte strings as 0x hex, no whitespace).
 */
import { parseHex, toHex } from '../bytes.js';
import { AuditError } from './errors.js';
import { sha256 } from './record.js';

const HEX = /^0x(?:[0-9a-fA-F]{2})+$/;

function canonicalJson(v: unknown): string {
  if (v instanceof Uint8Array) return JSON.stringify(`0x${toHex(v)}`);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  if (typeof v === 'bigint') return JSON.stringify(v.toString());
  return JSON.stringify(v ?? null);
}

function hexBytes(v: unknown): Uint8Array | undefined {
  if (v instanceof Uint8Array && v.length > 0) return v;
  if (typeof v === 'string' && HEX.test(v)) return parseHex(v);
  return undefined;
}

/** SHA-256 of the released result's bytes (see above). */
export function releasedResultDigest(result: unknown): Uint8Array {
  const direct = hexBytes(result);
  if (direct) return sha256(direct);
  if (result !== null && typeof result === 'object' && !Array.isArray(result)) {
    const o = result as Record<string, unknown>;
    const b = hexBytes(o.signature) ?? hexBytes(o.raw);
    if (b) return sha256(b);
    return sha256(new TextEncoder().encode(canonicalJson(o)));
  }
  throw new AuditError('AUDIT_MALFORMED', 'a result digest is taken over a 0x-hex string or a result object');
}
