import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CborError, CborTag, decodeCbor, decodeCborPrefix, encodeCbor, IndefiniteMap, type CborValue } from './cbor.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CborError);
    return (e as CborError).code;
  }
  return 'OK';
}

describe('CBOR decoding (RFC 8949 Appendix A vectors)', () => {
  const vectors: [string, CborValue][] = [
    ['00', 0],
    ['17', 23],
    ['1818', 24],
    ['1903e8', 1000],
    ['1a000f4240', 1000000],
    ['1b000000e8d4a51000', 1000000000000],
    ['1bffffffffffffffff', 18446744073709551615n],
    ['20', -1],
    ['3863', -100],
    ['3bffffffffffffffff', -18446744073709551616n],
    ['f4', false],
    ['f5', true],
    ['f6', null],
    ['f7', undefined],
    ['f93c00', 1],
    ['fb3ff199999999999a', 1.1],
    ['4401020304', Uint8Array.of(1, 2, 3, 4)],
    ['6449455446', 'IETF'],
    ['83010203', [1, 2, 3]],
    ['5f42010243030405ff', Uint8Array.of(1, 2, 3, 4, 5)],
    ['7f657374726561646d696e67ff', 'streaming'],
    ['9f018202039f0405ffff', [1, [2, 3], [4, 5]]],
  ];
  for (const [h, v] of vectors) {
    it(`decodes ${h}`, () => expect(decodeCbor(hex(h))).toEqual(v));
  }
  it('decodes maps, definite and indefinite, and tags', () => {
    expect(decodeCbor(hex('a201020304'))).toEqual(new Map([[1, 2], [3, 4]]));
    expect(decodeCbor(hex('bf61610161629f0203ffff'))).toEqual(new Map<string, CborValue>([['a', 1], ['b', [2, 3]]]));
    const t = decodeCbor(hex('d24101')) as CborTag;
    expect(t).toBeInstanceOf(CborTag);
    expect(t.tag).toBe(18);
  });
});

describe('CBOR strictness', () => {
  const bad: [string, string][] = [
    ['', 'CBOR_TRUNCATED'],
    ['18', 'CBOR_TRUNCATED'],
    ['1817', 'CBOR_NON_CANONICAL'],
    ['190017', 'CBOR_NON_CANONICAL'],
    ['1c', 'CBOR_RESERVED'],
    ['0000', 'CBOR_TRAILING_BYTES'],
    ['ff', 'CBOR_UNEXPECTED_BREAK'],
    ['5f4101610aff', 'CBOR_BAD_INDEFINITE'],
    ['a2010201ff', 'CBOR_DUPLICATE_KEY'],
    ['a1f600', 'CBOR_BAD_KEY'],
    ['62c328', 'CBOR_BAD_UTF8'],
    ['5a7fffffff', 'CBOR_TRUNCATED'],
    ['9b00000001000000000', 'CBOR_TRUNCATED'],
    ['1f', 'CBOR_BAD_INDEFINITE'],
    ['f8ff', 'CBOR_UNSUPPORTED_SIMPLE'],
    ['81'.repeat(40) + '00', 'CBOR_TOO_DEEP'],
  ];
  for (const [h, c] of bad) it(`rejects ${h || '(empty)'} with ${c}`, () => expect(code(() => decodeCbor(hex(h.length % 2 ? h + '0' : h)))).toBe(c));

  it('can refuse indefinite lengths', () => {
    expect(code(() => decodeCbor(hex('9fff'), { allowIndefinite: false }))).toBe('CBOR_BAD_INDEFINITE');
  });
  it('bounds item counts', () => {
    expect(code(() => decodeCbor(hex('94' + '00'.repeat(20)), { maxItems: 10 }))).toBe('CBOR_TOO_LARGE');
  });
  it('copies byte strings (results never alias the input)', () => {
    const input = hex('43010203');
    const out = decodeCbor(input) as Uint8Array;
    input[1] = 9;
    expect(out[0]).toBe(1);
  });
  it('decodes a prefix and reports its length', () => {
    expect(decodeCborPrefix(hex('0102'))).toEqual({ value: 1, length: 1 });
  });
});

describe('CBOR properties', () => {
  const value: fc.Arbitrary<CborValue> = fc.letrec<{ v: CborValue }>((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      fc.integer(),
      fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }).filter((b) => b < -(2n ** 53n) || b > 2n ** 53n),
      fc.string(),
      fc.uint8Array({ maxLength: 64 }),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('v'), { maxLength: 5 }),
      fc.uniqueArray(fc.tuple(fc.oneof(fc.string(), fc.integer()), tie('v')), { maxLength: 5, selector: (e) => e[0] }).map((es) => new Map(es)),
    ),
  })).v;

  it('round-trips every value, definite and indefinite', () => {
    fc.assert(
      fc.property(value, fc.boolean(), (v, indefiniteMaps) => {
        expect(decodeCbor(encodeCbor(v, { indefiniteMaps }))).toEqual(v);
      }),
      { numRuns: 500 },
    );
  });

  it('any byte string decodes or fails with a CborError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (b) => {
        try {
          decodeCbor(b);
        } catch (e) {
          if (!(e instanceof CborError)) throw e;
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('writes preferred (shortest) encodings', () => {
    expect(Buffer.from(encodeCbor(new Map([[1, -35]]))).toString('hex')).toBe('a1013822');
    expect(Buffer.from(encodeCbor(new IndefiniteMap([['a', 1]]))).toString('hex')).toBe('bf616101ff');
    expect(Buffer.from(encodeCbor(500)).toString('hex')).toBe('1901f4');
  });
});
