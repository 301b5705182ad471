import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCbor, type CborKey, type CborValue } from '../cbor.js';
import { concatBytes } from '../bytes.js';
import { BridgeError } from './errors.js';
import { MAX_BRIDGE_CBOR_DEPTH, MAX_FRAME_BYTES, MAX_FRAME_SKIP_BYTES } from '../limits.js';
import { createFrameDecoder, createFrameReader, encodeFrame, salvageHeader, DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, type FrameEvent } from './frame.js';

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

  // Frames are carved from shared slabs (frame.ts, frameBytes): each must stay its own bytes.
  const answer = (i: number): CborValue =>
    new Map<CborKey, CborValue>([
      ['t', 'res'],
      ['id', i],
      ['result', new Map<CborKey, CborValue>([['record', new Uint8Array(600 + (i % 200)).fill(i & 0xff)], ['n', i]])],
    ]);

  it('frames from the slab keep their bytes however many frames follow (several slabs)', () => {
    const frames = Array.from({ length: 400 }, (_, i) => encodeFrame(answer(i))); // ~300 KiB: several slabs
    const copies = frames.map((f) => Uint8Array.from(f));
    for (let i = 0; i < 400; i++) encodeFrame(answer(1000 + i)); // more slabs after them
    const dec = createFrameDecoder();
    for (let i = 0; i < frames.length; i++) {
      expect(frames[i]).toEqual(copies[i]);
      expect(dec.push(frames[i]!)).toEqual([answer(i)]);
    }
    // Distinct, non-overlapping views: writing into one frame changes no other.
    frames[0]!.fill(0xee);
    expect(frames[1]).toEqual(copies[1]);
  });

  it('a slab holds frames and nothing else; a large frame gets its own buffer', () => {
    for (let i = 0; i < 120; i++) encodeFrame(answer(i)); // roll over to a fresh slab
    const first = encodeFrame(answer(7));
    const inSlab = [first];
    while (inSlab.length < 20) {
      const f = encodeFrame(answer(inSlab.length));
      if (f.buffer !== first.buffer) break; // the slab rolled over again
      inSlab.push(f);
    }
    const slab = new Uint8Array(first.buffer);
    const covered = new Uint8Array(slab.length);
    for (const f of inSlab) covered.fill(1, f.byteOffset, f.byteOffset + f.length);
    // From the first frame on: every byte is a frame's or zero (padding, and the unused rest).
    for (let at = first.byteOffset; at < slab.length; at++) if (covered[at] === 0) expect(slab[at]).toBe(0);
    const big = encodeFrame(new Uint8Array(20_000));
    expect(big.byteOffset).toBe(0);
    expect(big.buffer.byteLength).toBe(big.length);
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

/** `levels` arrays around 0: the 0 is at depth `levels`. */
function nested(levels: number): CborValue {
  let v: CborValue = 0;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

const deepBytes = (levels: number) => concatBytes(new Uint8Array(levels).fill(0x81), Uint8Array.of(0x00));
const framed = (body: Uint8Array) => concatBytes(header(body.length), body);
const req = (id: number, params: Uint8Array) => {
  const head = encodeCbor(new Map<CborKey, CborValue>([['t', 'req'], ['id', id], ['method', 'm']]));
  return concatBytes(Uint8Array.of(0xa4), head.subarray(1), encodeCbor('params'), params);
};

describe('the shared limits (common/limits.ts) at exactly the limit and the limit + 1', () => {
  it(`frame body: ${MAX_FRAME_BYTES} bytes sent and read, ${MAX_FRAME_BYTES + 1} refused by the sender`, () => {
    // A byte string of n bytes ≥ 65536 has a 5-byte head.
    const atCap = encodeFrame(new Uint8Array(MAX_FRAME_BYTES - 5));
    expect(atCap.length).toBe(FRAME_HEADER_BYTES + MAX_FRAME_BYTES);
    // Compared as one Buffer: expect().toEqual walks a 1 MiB array element by element (~4 s).
    const read = createFrameReader().push(atCap);
    expect(read).toHaveLength(1);
    expect(read[0]).toMatchObject({ ok: true, value: expect.any(Uint8Array) });
    const value = (read[0] as { value: Uint8Array }).value;
    expect(value.length === MAX_FRAME_BYTES - 5 && Buffer.from(value).equals(Buffer.alloc(MAX_FRAME_BYTES - 5)), 'the frame read back is not the one sent').toBe(true);
    const e = bridgeErrorOf(() => encodeFrame(new Uint8Array(MAX_FRAME_BYTES - 4)));
    expect(e.code).toBe('BRIDGE_FRAME_TOO_LARGE');
    expect(e.message).toBe(`frame body of ${MAX_FRAME_BYTES + 1} bytes exceeds the ${MAX_FRAME_BYTES}-byte cap`);
  });

  it(`nesting: depth ${MAX_BRIDGE_CBOR_DEPTH} sent and read, ${MAX_BRIDGE_CBOR_DEPTH + 1} refused by both sides`, () => {
    const ok = encodeFrame(nested(MAX_BRIDGE_CBOR_DEPTH));
    expect(createFrameReader().push(ok)).toEqual([{ ok: true, value: nested(MAX_BRIDGE_CBOR_DEPTH) }]);
    const e = bridgeErrorOf(() => encodeFrame(nested(MAX_BRIDGE_CBOR_DEPTH + 1)));
    expect(e.code).toBe('BRIDGE_ENCODE');
    expect(e.message).toMatch(/nesting deeper than 48 levels/);
    const [ev] = createFrameReader().push(framed(deepBytes(MAX_BRIDGE_CBOR_DEPTH + 1)));
    expect(ev).toMatchObject({ ok: false, bad: { error: { code: 'BRIDGE_BAD_FRAME' } } });
  });
});

describe('createFrameReader: a bad frame behind a good length prefix is one event, not the end of the stream', () => {
  function events(chunks: Uint8Array[], opts = {}): FrameEvent[] {
    const r = createFrameReader(opts);
    return chunks.flatMap((c) => r.push(c));
  }
  const ok = (v: CborValue): FrameEvent => ({ ok: true, value: v });

  it('reports bad bodies in order between good frames, with the id read from the front of the frame', () => {
    const stream = concatBytes(
      encodeFrame('a'),
      framed(req(7, deepBytes(1000))), // too deep
      header(0), // zero length
      framed(Uint8Array.of(0x1c)), // reserved additional info
      framed(req(8, Uint8Array.of(0x62, 0xc3, 0x28))), // invalid UTF-8
      encodeFrame('b'),
    );
    // Any chunking gives the same events.
    for (const size of [1, 3, 7, stream.length]) {
      const chunks: Uint8Array[] = [];
      for (let o = 0; o < stream.length; o += size) chunks.push(stream.subarray(o, o + size));
      const got = events(chunks);
      expect(got.map((e) => (e.ok ? e.value : [e.bad.error.code, e.bad.t, e.bad.id]))).toEqual([
        'a',
        ['BRIDGE_BAD_FRAME', 'req', 7],
        ['BRIDGE_BAD_FRAME', undefined, undefined],
        ['BRIDGE_BAD_FRAME', undefined, undefined],
        ['BRIDGE_BAD_FRAME', 'req', 8],
        'b',
      ]);
    }
  });

  it('skips an oversized body without buffering it, keeps its id, and goes on', () => {
    const r = createFrameReader({ maxFrameBytes: 64 });
    const big = framed(req(9, encodeCbor(new Uint8Array(10_000))));
    let max = 0;
    const got: FrameEvent[] = [];
    for (let o = 0; o < big.length; o += 100) {
      got.push(...r.push(big.subarray(o, o + 100)));
      max = Math.max(max, r.bufferedBytes);
    }
    got.push(...r.push(encodeFrame('next', { maxFrameBytes: 64 })));
    expect(max).toBeLessThanOrEqual(64 + FRAME_HEADER_BYTES);
    expect(got).toHaveLength(2);
    expect(got[0]).toMatchObject({ ok: false, bad: { t: 'req', id: 9, error: { code: 'BRIDGE_FRAME_TOO_LARGE' } } });
    expect(got[1]).toEqual(ok('next'));
  });

  it(`a length above MAX_FRAME_SKIP_BYTES (${MAX_FRAME_SKIP_BYTES}) stops the reader: no conforming peer writes it`, () => {
    const r = createFrameReader();
    expect(r.push(header(MAX_FRAME_SKIP_BYTES))).toEqual([]); // still skippable
    const r2 = createFrameReader();
    expect(bridgeErrorOf(() => r2.push(header(MAX_FRAME_SKIP_BYTES + 1))).code).toBe('BRIDGE_FRAME_TOO_LARGE');
    expect(bridgeErrorOf(() => r2.push(encodeFrame(1))).code).toBe('BRIDGE_FRAME_TOO_LARGE');
  });

  it('salvageHeader reads t and id only from the front, only as a text and an unsigned integer', () => {
    expect(salvageHeader(req(5, Uint8Array.of(0xf6)))).toEqual({ t: 'req', id: 5 });
    expect(salvageHeader(req(5, Uint8Array.of(0xf6)).subarray(0, 11))).toEqual({ t: 'req', id: 5 }); // truncated after the id
    expect(salvageHeader(encodeCbor(new Map<CborKey, CborValue>([['id', 5], ['t', 'req']])))).toEqual({}); // not our order
    expect(salvageHeader(Uint8Array.from(Buffer.from('a2617463726571626964f93c00', 'hex')))).toEqual({ t: 'req' }); // id 1.0 (a float)
    expect(salvageHeader(Uint8Array.from(Buffer.from('a26174636572726269643a00000001', 'hex')))).toEqual({ t: 'err' }); // negative id
    expect(salvageHeader(Uint8Array.of(0x81, 0x00))).toEqual({});
    expect(salvageHeader(new Uint8Array(0))).toEqual({});
    // A container where a scalar should be is never decoded.
    expect(salvageHeader(concatBytes(Uint8Array.of(0xa2, 0x61, 0x74), deepBytes(100_000)))).toEqual({});
  });

  it('any byte stream yields events or a BridgeError, never another exception, within the buffer bound', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.constant(header(0)), fc.constant(header(70))), { maxLength: 12 }), (segments) => {
        const r = createFrameReader({ maxFrameBytes: 64 });
        try {
          for (const s of segments) {
            r.push(s);
            expect(r.bufferedBytes).toBeLessThanOrEqual(64 + FRAME_HEADER_BYTES);
          }
        } catch (e) {
          if (!(e instanceof BridgeError)) throw e;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
