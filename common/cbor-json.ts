/**
 * JSON-shaped values ⇄ CBOR values, for payloads that cross the bridge as
 * CBOR but are JSON on either end (JSON-RPC params, typed data). Objects
 * become maps with text keys; Uint8Array stays bytes. Decoding defines keys
 * as own properties, so a hostile "__proto__" key is just a key.
 *
 * Numbers: finite only, and an integer only within ±(2^53−1) — both ways.
 * A client's JSON number past that has been rounded by JSON.parse already,
 * so it may not be the value the client sent; it is refused, never passed on
 * (a large integer goes as a string: decimal or 0x hex, as the field takes).
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

/** An integral double's exact value in digits (String() would round 18446744078004518912 to …520000); exponent form once that is long. */
function exactDigits(v: number): string {
  return Math.abs(v) < 1e21 ? BigInt(v).toString() : String(v);
}

export function jsonToCbor(v: unknown, depth = 0): CborValue {
  if (depth > MAX_DEPTH) throw new SignerError('INVALID_PARAMS', `value nested deeper than ${MAX_DEPTH} levels`);
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || v instanceof Uint8Array) return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new SignerError('INVALID_PARAMS', 'numbers must be finite');
    // An integer past ±(2^53−1) is refused here, where the message can say what to do about it:
    // JSON.parse has already rounded it (18446744078004518913 arrives as 18446744078004518912),
    // so whatever we signed might not be what the client wrote, and the encoder would refuse it
    // anyway (CBOR_ENCODE_RANGE; before that it wrote numbers past 2^64 modulo 2^64). Non-integral
    // numbers still go as floats, unchanged: the enclave decides whether a field may be one.
    if (Number.isInteger(v) && !Number.isSafeInteger(v)) {
      throw new SignerError('INVALID_PARAMS', `a number (read as ${exactDigits(v)}) is an integer outside ±(2^53−1), which a JSON number cannot carry exactly; send large integers as decimal or 0x-hex strings`);
    }
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
