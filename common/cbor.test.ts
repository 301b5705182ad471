import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CborError, CborTag, decodeCbor, decodeCborPrefix, encodeCbor, encodeCborInto, IndefiniteMap, type CborKey, type CborValue } from './cbor.js';
import { DEFAULT_CBOR_DEPTH, MAX_BRIDGE_CBOR_DEPTH, MAX_CBOR_ITEMS } from './limits.js';

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
    ['f93e00', 1.5],
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

  it('writes text as exactly the UTF-8 TextEncoder gives (ASCII written in place, anything else encoded; a lone surrogate is U+FFFD)', () => {
    const te = new TextEncoder();
    const head3 = (n: number) => (n < 24 ? [0x60 | n] : n <= 0xff ? [0x78, n] : [0x79, n >> 8, n & 0xff]);
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'grapheme-ascii', maxLength: 300 }), fc.string({ maxLength: 300 })), (s) => {
        const utf8 = te.encode(s);
        expect(Buffer.from(encodeCbor(s)).equals(Buffer.from([...head3(utf8.length), ...utf8]))).toBe(true);
      }),
      { numRuns: 2000 },
    );
    expect(Buffer.from(encodeCbor('a\ud800b')).toString('hex')).toBe('65' + '61efbfbd62');
  });

  it('reads text exactly as a fatal TextDecoder does, on both sides of the short-ASCII shortcut (BOM kept, bad UTF-8 refused)', () => {
    const td = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    const check = (b: Uint8Array) => {
      const framed = Uint8Array.from([...(b.length < 24 ? [0x60 | b.length] : [0x78, b.length]), ...b]);
      let want: string | undefined;
      try {
        want = td.decode(b);
      } catch {
        want = undefined;
      }
      if (want === undefined) expect(() => decodeCbor(framed)).toThrow(expect.objectContaining({ code: 'CBOR_BAD_UTF8' }));
      else expect(decodeCbor(framed)).toBe(want);
    };
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80, max: 0x7f }), fc.string({ unit: 'binary', maxLength: 40 }).map((t) => new TextEncoder().encode(t).slice(0, 80))), (b) => check(b)),
      { numRuns: 3000 },
    );
    for (const n of [63, 64, 65]) check(new Uint8Array(n).fill(0x41));
    check(Uint8Array.of(0xef, 0xbb, 0xbf, 0x41));
  });

  it('grows its buffer without losing or moving a byte, whatever crosses the boundary (a head, a string, raw bytes)', () => {
    const te = new TextEncoder();
    for (const base of [250, 506, 1018, 4090]) {
      for (let n = base - 8; n <= base + 8; n++) {
        const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff);
        const text = 'é'.repeat(n % 5) + 'x'.repeat(n % 29);
        const v: CborValue = [bytes, text, 2 ** 40 + n, new Map<string, CborValue>([['k', -n]])];
        const out = encodeCbor(v);
        expect(decodeCbor(out)).toEqual(v);
        const ref = Buffer.concat([Buffer.from([0x84]), Buffer.from(encodeCbor(bytes)), Buffer.from(encodeCbor(text)), Buffer.from(encodeCbor(2 ** 40 + n)), Buffer.from(encodeCbor(new Map([['k', -n]])))]);
        expect(Buffer.from(out).equals(ref)).toBe(true);
        const headOf = (len: number) => (len < 24 ? 1 : len <= 0xff ? 2 : 3);
        const t = te.encode(text).length;
        expect(out.length).toBe(1 + headOf(n) + n + headOf(t) + t + 9 + 3 + headOf(n - 1));
      }
    }
  });

  it('writes preferred (shortest) encodings', () => {
    expect(Buffer.from(encodeCbor(new Map([[1, -35]]))).toString('hex')).toBe('a1013822');
    expect(Buffer.from(encodeCbor(new IndefiniteMap([['a', 1]]))).toString('hex')).toBe('bf616101ff');
    expect(Buffer.from(encodeCbor(500)).toString('hex')).toBe('1901f4');
  });
});

describe('finding 10c: integers are CBOR integers (major type 0/1), never floats', () => {
  it('refuses floats with an integral value, in every width (RFC 8949 vectors for 1.0, -0.0, 100000.0, 1e300…)', () => {
    for (const h of ['f93c00', 'f98000', 'f90000', 'fa47c35000', 'fb3ff0000000000000', 'fb7e37e43c8800759c', 'fa7f7fffff']) {
      expect(code(() => decodeCbor(hex(h)))).toBe('CBOR_FLOAT_INTEGER');
    }
    // The same inside containers and as a map value.
    expect(code(() => decodeCbor(hex('a16269649f01f93c00ff')))).toBe('CBOR_FLOAT_INTEGER');
  });

  it('still decodes non-integral floats, NaN and the infinities', () => {
    expect(decodeCbor(hex('f93e00'))).toBe(1.5);
    expect(decodeCbor(hex('fb3fe0000000000000'))).toBe(0.5);
    expect(decodeCbor(hex('f97c00'))).toBe(Infinity);
    expect(decodeCbor(hex('f97e00'))).toBeNaN();
  });

  it('accepts integral floats only when asked to (general-purpose decoding)', () => {
    expect(decodeCbor(hex('f93c00'), { allowIntegralFloats: true })).toBe(1);
  });

  it('refuses float map keys — integral or not — and any key that is not major type 0, 1 or 3', () => {
    expect(code(() => decodeCbor(hex('a1f93e0001')))).toBe('CBOR_BAD_KEY'); // {1.5: 1}
    expect(code(() => decodeCbor(hex('a1f93c0001'), { allowIntegralFloats: true }))).toBe('CBOR_BAD_KEY'); // {1.0: 1}
    expect(code(() => decodeCbor(hex('bff93e0001ff')))).toBe('CBOR_BAD_KEY'); // indefinite map
    expect(code(() => decodeCbor(hex('a1f501')))).toBe('CBOR_BAD_KEY'); // {true: 1}
    expect(decodeCbor(hex('a2016161206162'))).toEqual(new Map<string | number, CborValue>([[1, 'a'], [-1, 'b']]));
  });

  it('our encoder never writes an integral float, so everything it writes decodes', () => {
    for (const n of [0, -0, 1, -1, 2 ** 53 - 1, 1e15]) expect(decodeCbor(encodeCbor(n))).toBe(n === 0 ? 0 : n);
    expect(decodeCbor(encodeCbor(0.5))).toBe(0.5);
  });
});

/** `levels` arrays around 0: the 0 is at depth `levels`. */
function nested(levels: number): CborValue {
  let v: CborValue = 0;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

describe('limits (common/limits.ts): encoder and decoder agree at exactly the limit and one past it', () => {
  for (const depth of [DEFAULT_CBOR_DEPTH, MAX_BRIDGE_CBOR_DEPTH]) {
    it(`depth ${depth}: accepted at ${depth}, refused at ${depth + 1} on both sides`, () => {
      const ok = encodeCbor(nested(depth), { maxDepth: depth });
      expect(decodeCbor(ok, { maxDepth: depth })).toEqual(nested(depth));
      expect(code(() => encodeCbor(nested(depth + 1), { maxDepth: depth }))).toBe('CBOR_TOO_DEEP');
      expect(code(() => decodeCbor(encodeCbor(nested(depth + 1)), { maxDepth: depth }))).toBe('CBOR_TOO_DEEP');
      // Maps count like arrays, keys included.
      const m = (levels: number): CborValue => (levels === 0 ? 0 : new Map([['a', m(levels - 1)]]));
      expect(decodeCbor(encodeCbor(m(depth), { maxDepth: depth }), { maxDepth: depth })).toEqual(m(depth));
      expect(code(() => encodeCbor(m(depth + 1), { maxDepth: depth }))).toBe('CBOR_TOO_DEEP');
      expect(code(() => decodeCbor(encodeCbor(m(depth + 1)), { maxDepth: depth }))).toBe('CBOR_TOO_DEEP');
    });
  }

  it(`items: ${MAX_CBOR_ITEMS} accepted, ${MAX_CBOR_ITEMS + 1} refused, by the encoder and the decoder`, () => {
    const ok = new Array<CborValue>(MAX_CBOR_ITEMS).fill(0);
    expect((decodeCbor(encodeCbor(ok, { maxItems: MAX_CBOR_ITEMS })) as CborValue[]).length).toBe(MAX_CBOR_ITEMS);
    const over = [...ok, 0];
    expect(code(() => encodeCbor(over, { maxItems: MAX_CBOR_ITEMS }))).toBe('CBOR_TOO_LARGE');
    expect(code(() => decodeCbor(encodeCbor(over)))).toBe('CBOR_TOO_LARGE');
    const map = (n: number) => new Map<number, CborValue>(Array.from({ length: n }, (_, i) => [i, 0]));
    expect((decodeCbor(encodeCbor(map(MAX_CBOR_ITEMS), { maxItems: MAX_CBOR_ITEMS })) as Map<number, CborValue>).size).toBe(MAX_CBOR_ITEMS);
    expect(code(() => encodeCbor(map(MAX_CBOR_ITEMS + 1), { maxItems: MAX_CBOR_ITEMS }))).toBe('CBOR_TOO_LARGE');
    expect(code(() => decodeCbor(encodeCbor(map(MAX_CBOR_ITEMS + 1))))).toBe('CBOR_TOO_LARGE');
  });
});

describe('encodeCborInto: encodeCbor into bytes the caller provides', () => {
  it('writes the same bytes as encodeCbor into exactly what take returned', () => {
    const values: CborValue[] = [0, 'abc', new Uint8Array([1, 2, 3]), [1, [2, null]], new Map<CborKey, CborValue>([['a', 1], [2, 'b']])];
    for (const v of values) {
      const area = new Uint8Array(64).fill(0xaa);
      const out = encodeCborInto(v, {}, (n) => area.subarray(5, 5 + n));
      expect(out).toEqual(encodeCbor(v));
      expect(out.buffer).toBe(area.buffer);
      expect(area[4]).toBe(0xaa); // nothing written outside
      expect(area[5 + out.length]).toBe(0xaa);
    }
  });

  it('refuses a take that returns the wrong length, and keeps the encoder limits', () => {
    expect(() => encodeCborInto('abc', {}, (n) => new Uint8Array(n + 1))).toThrow(RangeError);
    expect(() => encodeCborInto([[[1]]], { maxDepth: 1 }, (n) => new Uint8Array(n))).toThrow(CborError);
  });
});


describe('integers the encoder cannot write exactly are CBOR_ENCODE_RANGE, never wrapped (numbers past 2^64 used to go out modulo 2^64)', () => {
  const rangeError = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(CborError);
      return e as CborError;
    }
    throw new Error('encoded');
  };

  it('refuses integer-valued numbers past ±(2^53−1), however far: 2^64 + 2^32 is not written as 2^32', () => {
    for (const n of [2 ** 64, 2 ** 64 + 2 ** 32, -(2 ** 64) - 2 ** 33, -(2 ** 64), 2 ** 53, -(2 ** 53), 2 ** 63, 1e20, -1e20, 1e300, -Number.MAX_VALUE]) {
      const e = rangeError(() => encodeCbor(n));
      expect(e.code, String(n)).toBe('CBOR_ENCODE_RANGE');
      expect(e.message).toMatch(/outside ±\(2\^53−1\); encode large integers as bigint/);
    }
    // Inside a map, as a JSON-RPC param arrives: the whole encoding fails, nothing partial comes out.
    expect(code(() => encodeCbor(new Map<CborKey, CborValue>([['to', 'x'], ['amount', 2 ** 64 + 2 ** 32]])))).toBe('CBOR_ENCODE_RANGE');
    expect(code(() => encodeCbor([1, [2, -(2 ** 64) - 2 ** 33]]))).toBe('CBOR_ENCODE_RANGE');
  });

  it('still writes the safe extremes, in the shortest form, and they round-trip as numbers', () => {
    expect(Buffer.from(encodeCbor(Number.MAX_SAFE_INTEGER)).toString('hex')).toBe('1b001fffffffffffff');
    expect(Buffer.from(encodeCbor(Number.MIN_SAFE_INTEGER)).toString('hex')).toBe('3b001ffffffffffffe');
    for (const n of [Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 32, -(2 ** 32) - 1, 0xffffffff]) expect(decodeCbor(encodeCbor(n))).toBe(n);
    // Large integers go as bigint, exactly, up to the edges of major types 0 and 1.
    for (const b of [2n ** 64n - 1n, 2n ** 64n - 2n ** 32n, -(2n ** 64n), 2n ** 53n]) expect(decodeCbor(encodeCbor(b))).toBe(b);
    expect(code(() => encodeCbor(2n ** 64n + 2n ** 32n))).toBe('CBOR_ENCODE_RANGE');
    expect(code(() => encodeCbor(-(2n ** 64n) - 1n))).toBe('CBOR_ENCODE_RANGE');
  });

  it('any safe integer round-trips; any integral number outside the safe range is refused', () => {
    fc.assert(fc.property(fc.maxSafeInteger(), (n) => decodeCbor(encodeCbor(n)) === n));
    const unsafe = fc.tuple(fc.double({ min: 2 ** 53, noNaN: true, noDefaultInfinity: true }), fc.boolean()).map(([d, neg]) => (neg ? -d : d));
    fc.assert(fc.property(unsafe, (n) => code(() => encodeCbor(n)) === 'CBOR_ENCODE_RANGE'));
  });

  it('refuses a tag number that is negative, fractional or unsafe (a head argument is never written modulo 256 or 2^64)', () => {
    for (const t of [-1, 1.5, 2 ** 64, Number.NaN]) expect(code(() => encodeCbor(new CborTag(t, 0))), String(t)).toBe('CBOR_ENCODE_RANGE');
    expect(Buffer.from(encodeCbor(new CborTag(2 ** 32, 0))).toString('hex')).toBe('db000000010000000000');
  });

  it('a refused encoding leaves the shared scratch buffer clean for the next one', () => {
    expect(code(() => encodeCbor(new Map<CborKey, CborValue>([['a', 'x'.repeat(300)], ['b', 1e300]])))).toBe('CBOR_ENCODE_RANGE');
    expect(Buffer.from(encodeCbor([1, 'ab'])).toString('hex')).toBe('8201626162');
  });
});
