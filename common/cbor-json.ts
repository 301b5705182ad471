/**
 * JSON-shaped values ⇄ CBOR values, for payloads that cross the bridge as
 * CBOR but are JSON on either end (JSON-RPC params, typed data). Objects
 * become maps with text keys; Uint8Array stays bytes. Decoding defines keys
 * as own properties, so a hostile "__proto__" key is just a key.
 */
import type { CborKey, CborValue } from './cbor.js';
import { SignerError } from './errors.js';
import { MAX_BRIDGE_CBOR_DEPTH } from './limits.js';

export type JsonLike = null | boolean | number | string | Uint8Array | JsonLike[] | { [k: string]: JsonLike };

/**
 * The bridge's nesting limit (common/limits.ts), same convention as the CBOR
 * decoder: anything that fits in a frame converts, and nothing converts that
 * a frame could not carry. (It was 32 here and 16 in the decoder — finding 2.)
 */
const MAX_DEPTH = MAX_BRIDGE_CBOR_DEPTH;

export function jsonToCbor(v: unknown, depth = 0): CborValue {
  if (depth > MAX_DEPTH) throw new SignerError('INVALID_PARAMS', `value nested deeper than ${MAX_DEPTH} levels`);
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || v instanceof Uint8Array) return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new SignerError('INVALID_PARAMS', 'numbers must be finite');
    return v;
  }
  if (Array.isArray(v)) return v.map((x) => jsonToCbor(x, depth + 1));
  if (typeof v === 'object') {
    const m = new Map<CborKey, CborValue>();
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x === undefined) continue;
      m.set(k, jsonToCbor(x, depth + 1));
    }
    return m;
  }
  throw new SignerError('INVALID_PARAMS', `cannot carry a ${typeof v} value`);
}

export function cborToJson(v: CborValue, depth = 0): JsonLike {
  if (depth > MAX_DEPTH) throw new SignerError('INVALID_PARAMS', `value nested deeper than ${MAX_DEPTH} levels`);
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || v instanceof Uint8Array) return v;
  if (v === undefined) return null;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') throw new SignerError('INVALID_PARAMS', 'integer out of the safe range; send large numbers as hex strings');
  if (Array.isArray(v)) return v.map((x) => cborToJson(x, depth + 1));
  if (v instanceof Map) {
    const o: { [k: string]: JsonLike } = {};
    for (const [k, x] of v) {
      if (typeof k !== 'string') throw new SignerError('INVALID_PARAMS', 'object keys must be strings');
      // A "__proto__" key becomes an own property, never a prototype (defineProperty); every other
      // key is a plain assignment, which costs a fraction of defineProperty on every frame.
      if (k === '__proto__') Object.defineProperty(o, k, { value: cborToJson(x, depth + 1), enumerable: true, writable: true, configurable: true });
      else o[k] = cborToJson(x, depth + 1);
    }
    return o;
  }
  throw new SignerError('INVALID_PARAMS', 'tagged values are not accepted here');
}
