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

describe('jsonToCbor: a JSON integer past ±(2^53−1) is refused, never passed on changed', () => {
  const refusal = (v: unknown): SignerError => {
    try {
      jsonToCbor(v);
    } catch (e) {
      expect(e).toBeInstanceOf(SignerError);
      return e as SignerError;
    }
    throw new Error('converted');
  };

  it('typed data with amount 2^64 + 2^32 as a JSON number: INVALID_PARAMS saying what and what to send instead (it used to be signed as 2^32)', () => {
    const e = refusal({ message: { to: `0x${'11'.repeat(20)}`, amount: 2 ** 64 + 2 ** 32 } }); // the JSON number 18446744078004518912, exactly
    expect(e.code).toBe('INVALID_PARAMS');
    expect(e.message).toBe(
      'a number (read as 18446744078004518912) is an integer outside ±(2^53−1), which a JSON number cannot carry exactly; send large integers as decimal or 0x-hex strings',
    );
    // What the client wrote was already rounded by JSON.parse: the message shows what it became.
    expect(refusal(JSON.parse('{"amount":18446744078004518913}')).message).toMatch(/^a number \(read as 18446744078004518912\) is an integer outside/);
  });

  it('refuses every integral number outside the safe range, negative and nested ones included', () => {
    for (const n of [2 ** 53, -(2 ** 53), 2 ** 64, -(2 ** 64) - 2 ** 33, 1e20, 1e300]) {
      const e = refusal([{ a: [n] }]);
      expect(e.code, String(n)).toBe('INVALID_PARAMS');
      expect(e.message).toMatch(/send large integers as decimal or 0x-hex strings$/);
    }
    expect(refusal(1e300).message).toMatch(/^a number \(read as 1e\+300\)/);
  });

  it('safe integers and non-integral numbers still convert unchanged, and round-trip through CBOR', () => {
    const v = { max: Number.MAX_SAFE_INTEGER, min: Number.MIN_SAFE_INTEGER, half: 1.5, tiny: -0.25, big: 1.5e-300, s: '18446744078004518912' };
    expect(cborToJson(decodeCbor(encodeCbor(jsonToCbor(v))))).toEqual(v);
  });
});
