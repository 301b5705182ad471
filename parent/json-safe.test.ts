import { describe, expect, it } from 'vitest';
import { cborToJson } from '../common/cbor-json.js';
import { decodeCbor, encodeCbor } from '../common/cbor.js';
import { jsonSafe } from './json-safe.js';

describe('jsonSafe', () => {
  it('byte strings become 0x hex at any depth; other values are copied as they are', () => {
    const v = jsonSafe({ a: Uint8Array.of(0, 0xab), b: [Uint8Array.of(1), 2, 'x', null, true], c: { d: new Uint8Array(0) } });
    expect(v).toEqual({ a: '0x00ab', b: ['0x01', 2, 'x', null, true], c: { d: '0x' } });
  });

  it('an answer\'s "__proto__" key stays an own property of the copy, never its prototype', () => {
    // What an answer carrying that key looks like once the bridge decoded it (cborToJson).
    const answer = cborToJson(decodeCbor(encodeCbor(new Map<string, unknown>([['__proto__', new Map([['polluted', Uint8Array.of(7)]])], ['constructor', 'c'], ['a', 1]]) as never)));
    const o = jsonSafe(answer) as Record<string, unknown>;
    expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
    expect((o as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Object.keys(o)).toEqual(['__proto__', 'constructor', 'a']);
    expect(JSON.stringify(o)).toBe('{"__proto__":{"polluted":"0x07"},"constructor":"c","a":1}');
  });
});
