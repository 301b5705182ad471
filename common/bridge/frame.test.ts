import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCbor, type CborKey, type CborValue } from '../cbor.js';
import { concatBytes } from '../bytes.js';
import { BridgeError } from './errors.js';
import { createFrameDecoder, encodeFrame, DEFAULT_MAX_FRAME_BYTES } from './frame.js';

function header(n: number): Uint8Array {
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint32(0, n);
  return h;
}

function bridgeErrorOf(fn: () => unknown): BridgeError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BridgeError);
    return e as BridgeError;
  }
  throw new Error('expected a BridgeError, nothing was thrown');
}

const sample: CborValue[] = [
  new Map<CborKey, CborValue>([
    ['t', 'req'],
    ['id', 1],
    ['method', 'eth_sign'],
    ['params', [new Uint8Array([1, 2, 3]), 'x']],
  ]),
  0,
  'hello',
  new Uint8Array(300).fill(7),
  [1, [2, [3, null, true]], -(3n ** 40n)],
  new Map<CborKey, CborValue>([[1, new Map<CborKey, CborValue>([['deep', [false, undefined]]])]]),
];

describe('encodeFrame', () => {
  it('writes a 4-byte big-endian length then the CBOR body', () => {
    const f = encodeFrame('abc');
    expect([...f]).toEqual([0, 0, 0, 4, 0x63, 0x61, 0x62, 0x63]);
  });

  it('refuses a body over the cap with BRIDGE_FRAME_TOO_LARGE', () => {
    expect(encodeFrame(new Uint8Array(100 - 2), { maxFrameBytes: 100 }).length).toBe(104);
    expect(bridgeErrorOf(() => encodeFrame(new Uint8Array(100 - 1), { maxFrameBytes: 100 })).code).toBe('BRIDGE_FRAME_TOO_LARGE');
  });

  it('turns unencodable values into BRIDGE_ENCODE, including cycles', () => {
    expect(bridgeErrorOf(() => encodeFrame({} as unknown as CborValue)).code).toBe('BRIDGE_ENCODE');
    const cyclic: CborValue[] = [];
    cyclic.push(cyclic);
    expect(bridgeErrorOf(() => encodeFrame(cyclic)).code).toBe('BRIDGE_ENCODE');
  });

  it('validates the configured cap', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 40]) {
      expect(bridgeErrorOf(() => encodeFrame(1, { maxFrameBytes: bad })).code).toBe('BRIDGE_BAD_ARGUMENT');
    }
  });
});

describe('createFrameDecoder', () => {
  const stream = concatBytes(...sample.map((v) => encodeFrame(v)));

  it('decodes many frames delivered in one chunk', () => {
    const d = createFrameDecoder();
    expect(d.push(stream)).toEqual(sample);
    expect(d.bufferedBytes).toBe(0);
  });

  it('decodes the same stream split at every byte boundary', () => {
    for (let i = 0; i <= stream.length; i++) {
      const d = createFrameDecoder();
      const got = [...d.push(stream.subarray(0, i)), ...d.push(stream.subarray(i))];
      expect(got).toEqual(sample);
    }
  });

  it('decodes the stream fed one byte at a time, and three-way splits', () => {
    const d = createFrameDecoder();
    const got: CborValue[] = [];
    for (let i = 0; i < stream.length; i++) got.push(...d.push(stream.subarray(i, i + 1)));
    expect(got).toEqual(sample);
    for (let i = 0; i < stream.length; i += 11) {
      for (let j = i; j <= stream.length; j += 17) {
        const d3 = createFrameDecoder();
        expect([...d3.push(stream.subarray(0, i)), ...d3.push(stream.subarray(i, j)), ...d3.push(stream.subarray(j))]).toEqual(sample);
      }
    }
  });

  it('returns nothing until a frame is complete and holds only what it needs', () => {
    const d = createFrameDecoder();
    const f = encodeFrame(new Uint8Array(1000));
    expect(d.push(f.subarray(0, 500))).toEqual([]);
    expect(d.bufferedBytes).toBe(496); // header consumed
    expect(d.push(f.subarray(500))).toEqual([new Uint8Array(1000)]);
    expect(d.bufferedBytes).toBe(0);
  });

  it('accepts a frame exactly at the cap and refuses one byte more on the header alone', () => {
    const cap = 64;
    const atCap = encodeFrame(new Uint8Array(cap - 2), { maxFrameBytes: cap });
    expect(createFrameDecoder({ maxFrameBytes: cap }).push(atCap)).toHaveLength(1);
    const d = createFrameDecoder({ maxFrameBytes: cap });
    const e = bridgeErrorOf(() => d.push(header(cap + 1)));
    expect(e.code).toBe('BRIDGE_FRAME_TOO_LARGE');
    expect(d.bufferedBytes).toBe(0);
  });

  it('refuses a 4 GiB announcement under the default cap without buffering', () => {
    const d = createFrameDecoder();
    expect(d.push(Uint8Array.of(0xff, 0xff))).toEqual([]);
    expect(bridgeErrorOf(() => d.push(Uint8Array.of(0xff, 0xff, 1, 2, 3))).message).toContain(`${DEFAULT_MAX_FRAME_BYTES}-byte cap`);
  });

  it('refuses a zero-length frame with BRIDGE_BAD_FRAME', () => {
    const d = createFrameDecoder();
    expect(bridgeErrorOf(() => d.push(header(0))).code).toBe('BRIDGE_BAD_FRAME');
  });

  it('refuses bodies that are not exactly one well-formed CBOR item', () => {
    const bodies: [string, Uint8Array][] = [
      ['truncated', Uint8Array.of(0x82, 0x01)],
      ['trailing bytes', Uint8Array.of(0x01, 0x02)],
      ['reserved ai', Uint8Array.of(0x1c)],
      ['bad utf-8', Uint8Array.of(0x61, 0xff)],
      ['non-minimal int', Uint8Array.of(0x18, 0x01)],
      ['duplicate key', Uint8Array.of(0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02)],
      ['lone break', Uint8Array.of(0xff)],
      ['too deep', new Uint8Array(40).fill(0x81)],
    ];
    for (const [name, body] of bodies) {
      const d = createFrameDecoder();
      const e = bridgeErrorOf(() => d.push(concatBytes(header(body.length), body)));
      expect(e.code, name).toBe('BRIDGE_BAD_FRAME');
      expect(e.cause, name).toBeDefined();
    }
  });

  it('stays failed after an error, and drops what it buffered', () => {
    const d = createFrameDecoder();
    const good = encodeFrame(1);
    const first = bridgeErrorOf(() => d.push(concatBytes(good, header(0), good)));
    expect(d.bufferedBytes).toBe(0);
    expect(d.error).toBe(first);
    expect(bridgeErrorOf(() => d.push(good))).toBe(first);
  });

  it('refuses non-byte chunks (a stream with setEncoding) with a typed error', () => {
    const d = createFrameDecoder();
    expect(bridgeErrorOf(() => d.push('abcd' as unknown as Uint8Array)).code).toBe('BRIDGE_BAD_FRAME');
  });
});

// ---------------------------------------------------------------- properties

const cborValue: fc.Arbitrary<CborValue> = fc.letrec<{ v: CborValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer(),
    fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }).filter((b) => b > BigInt(Number.MAX_SAFE_INTEGER) || b < BigInt(Number.MIN_SAFE_INTEGER)),
    fc.string(),
    fc.uint8Array({ maxLength: 64 }),
    fc.constantFrom<CborValue>(true, false, null, undefined),
    fc.array(tie('v'), { maxLength: 5 }),
    fc
      .uniqueArray(fc.tuple(fc.oneof(fc.string(), fc.integer()), tie('v')), { maxLength: 5, selector: ([k]) => k })
      .map((entries) => new Map<CborKey, CborValue>(entries)),
  ),
})).v;

/** Splits `bytes` at the given (sorted, deduplicated) cut points. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

describe('frame decoder properties', () => {
  it('any sequence of values, encoded and split anywhere, decodes to the same sequence', () => {
    fc.assert(
      fc.property(fc.array(cborValue, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (values, cuts) => {
        const bytes = concatBytes(...values.map((v) => encodeFrame(v)));
        const d = createFrameDecoder();
        const got = split(bytes, cuts).flatMap((c) => d.push(c));
        expect(got).toEqual(values);
        expect(d.bufferedBytes).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  // Segments that get past the length check often enough to exercise the CBOR
  // decoder: valid frames, small headers with random bodies, and raw noise.
  const segment = fc.oneof(
    cborValue.map((v) => encodeFrame(v)),
    fc.uint8Array({ minLength: 0, maxLength: 40 }).map((body) => concatBytes(header(body.length), body)),
    fc.tuple(fc.nat({ max: 80 }), fc.uint8Array({ maxLength: 40 })).map(([n, body]) => concatBytes(header(n), body)),
    fc.uint8Array({ maxLength: 12 }),
    fc.nat().map((n) => header(n)),
    cborValue.map((v) => encodeCbor(v)),
  );

  it('any byte stream yields frames or a BridgeError, never another exception, within the buffer bound', () => {
    const cap = 64;
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 16 }), (segments, cuts) => {
        const d = createFrameDecoder({ maxFrameBytes: cap });
        let failed: BridgeError | undefined;
        for (const chunk of split(concatBytes(...segments), cuts)) {
          try {
            const frames = d.push(chunk);
            expect(failed).toBeUndefined();
            expect(Array.isArray(frames)).toBe(true);
          } catch (e) {
            if (!(e instanceof BridgeError)) throw new Error(`decoder threw a non-BridgeError: ${String(e)}`);
            expect(['BRIDGE_FRAME_TOO_LARGE', 'BRIDGE_BAD_FRAME']).toContain(e.code);
            if (failed) expect(e).toBe(failed);
            failed = e;
          }
          expect(d.bufferedBytes).toBeLessThanOrEqual(cap + 4);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
