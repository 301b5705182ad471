/**
 * JSON ⇄ CBOR conversion uses the bridge's nesting limit (common/limits.ts):
 * whatever converts fits in a frame, nothing deeper converts (finding 2: it
 * used to allow 32 while the enclave's decoder allowed 16).
 */
import { describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor } from './cbor.js';
import { cborToJson, jsonToCbor } from './cbor-json.js';
import { SignerError } from './errors.js';
import { MAX_BRIDGE_CBOR_DEPTH } from './limits.js';

/** `levels` objects around 1: the 1 is at depth `levels`. */
function nest(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = { a: v };
  return v;
}

describe(`cbor-json nesting: ${MAX_BRIDGE_CBOR_DEPTH} converts, ${MAX_BRIDGE_CBOR_DEPTH + 1} does not`, () => {
  it('jsonToCbor / cborToJson at exactly the limit round-trip through a decoder with the same limit', () => {
    const c = jsonToCbor(nest(MAX_BRIDGE_CBOR_DEPTH));
    expect(cborToJson(decodeCbor(encodeCbor(c), { maxDepth: MAX_BRIDGE_CBOR_DEPTH }))).toEqual(nest(MAX_BRIDGE_CBOR_DEPTH));
  });

  it('one level more is INVALID_PARAMS naming the limit, both ways', () => {
    for (const fn of [() => jsonToCbor(nest(MAX_BRIDGE_CBOR_DEPTH + 1)), () => cborToJson(decodeCbor(encodeCbor(jsonToCbor(nest(MAX_BRIDGE_CBOR_DEPTH))), { maxDepth: 64 }), 1)]) {
      try {
        fn();
        throw new Error('converted');
      } catch (e) {
        expect(e).toBeInstanceOf(SignerError);
        expect((e as SignerError).code).toBe('INVALID_PARAMS');
        expect((e as SignerError).message).toBe(`value nested deeper than ${MAX_BRIDGE_CBOR_DEPTH} levels`);
      }
    }
  });
});

describe('cborToJson: map keys that name Object.prototype members', () => {
  it('"__proto__" becomes an own property and never the prototype; others are plain own properties', () => {
    const frame = decodeCbor(encodeCbor(new Map<string, unknown>([['__proto__', new Map([['polluted', 1]])], ['constructor', 'c'], ['toString', 2], ['a', 3]]) as never));
    const o = cborToJson(frame) as Record<string, unknown>;
    expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
    expect(Object.keys(o)).toEqual(['__proto__', 'constructor', 'toString', 'a']);
    expect(Object.getOwnPropertyDescriptor(o, '__proto__')?.value).toEqual({ polluted: 1 });
    expect((o as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(o.constructor).toBe('c');
    expect(o.toString).toBe(2);
    expect(JSON.stringify(o)).toBe('{"__proto__":{"polluted":1},"constructor":"c","toString":2,"a":3}');
  });
});
