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
 *
 * A `key.create` record names the new key's public data instead (keyPublicDigest): the
 * fields the enclave computed from the secret it made, and none the parent adds (`label`,
 * `createdAt`), so the key's answer from signer_createKey, signer_getKey and signer_listKeys
 * all check against it. It is what proves an address: the parent serves a key's public data
 * from its own store, and a host could hand out an address of its own.
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

/** The public fields of a key the enclave vouches for, in a key.create record (docs/audit.md). */
export const KEY_PUBLIC_FIELDS = ['keyId', 'kind', 'keyringId', 'publicKey', 'address', 'xpub', 'fingerprint'] as const;
const KEY_REQUIRED = new Set<string>(['keyId', 'kind', 'keyringId', 'publicKey']);

/**
 * SHA-256 of the canonical JSON of a key's public fields (KEY_PUBLIC_FIELDS), each a string
 * exactly as the enclave made it; other members (`label`, `createdAt`, the enclave's `blob`)
 * are not covered. Throws AUDIT_MALFORMED when a required field is missing or any is not a string.
 */
export function keyPublicDigest(key: Readonly<Record<string, unknown>>): Uint8Array {
  const picked: Record<string, string> = {};
  for (const f of KEY_PUBLIC_FIELDS) {
    const v = key[f];
    if (v === undefined && !KEY_REQUIRED.has(f)) continue;
    if (typeof v !== 'string' || v.length === 0) throw new AuditError('AUDIT_MALFORMED', `a key's public data needs ${f} as a non-empty string`);
    picked[f] = v;
  }
  return sha256(new TextEncoder().encode(canonicalJson(picked)));
}

/** Whether a result object is a key's public data (signer_createKey / getKey / listKeys), not a signing result. */
export function isKeyInfo(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  return typeof o.keyId === 'string' && typeof o.kind === 'string' && typeof o.keyringId === 'string' && typeof o.publicKey === 'string' && o.signature === undefined && o.raw === undefined;
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
