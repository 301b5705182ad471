/**
 * An enclave answer (cborToJson's JsonLike, byte strings as Uint8Array) made
 * into what JSON can carry: byte strings become 0x hex, everything else is
 * copied as it is.
 *
 * Runs on every answer the parent returns, so keys are plain assignments;
 * the one exception is "__proto__", which cborToJson already made an own
 * property and which must stay one: assigning it would set the copy's
 * prototype instead.
 */
import { toHex } from '../common/bytes.js';
import type { JsonLike } from '../common/cbor-json.js';

export function jsonSafe(v: JsonLike): unknown {
  if (v instanceof Uint8Array) return `0x${toHex(v)}`;
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === '__proto__') Object.defineProperty(o, k, { value: jsonSafe(x), enumerable: true, writable: true, configurable: true });
      else o[k] = jsonSafe(x);
    }
    return o;
  }
  return v;
}
