/**
 * common/cbor.ts: the strict CBOR decoder every trust boundary uses
 * (attestation documents, NSM messages, bridge frames, EIF signatures).
 */
import fc from 'fast-check';
import { CborError, CborTag, decodeCbor, decodeCborPrefix, encodeCbor, type CborKey, type CborValue } from '../../common/cbor.js';
import { deepEqual, hex, invariant, typed } from '../check.js';
import type { FuzzTarget } from '../engine.js';
import { CBOR, walkCbor } from '../mutate.js';
import type { Rng } from '../rng.js';

/** Arbitrary CBOR values in our data model (what encodeCbor accepts and decodeCbor returns). */
export const cborValueArb: fc.Arbitrary<CborValue> = fc.letrec<{ v: CborValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer(),
    fc.bigInt({ min: -(1n << 64n), max: (1n << 64n) - 1n }),
    fc.double({ noInteger: true }),
    fc.string({ unit: 'binary' }),
    fc.uint8Array({ maxLength: 40 }),
    fc.constantFrom<CborValue>(true, false, null, undefined),
    fc.array(tie('v'), { maxLength: 5 }),
    fc
      .uniqueArray(fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), tie('v')), { maxLength: 5, selector: ([k]) => k })
      .map((es) => new Map<CborKey, CborValue>(es)),
    fc.tuple(fc.integer({ min: 0, max: 0xffff }), tie('v')).map(([t, v]) => new CborTag(t, v)),
  ),
})).v;

/** Turns bigints in the safe range into numbers, as the decoder returns them. */
function normalise(v: CborValue): CborValue {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(normalise);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [normalise(k) as CborKey, normalise(x)]));
  if (v instanceof CborTag) return new CborTag(v.tag, normalise(v.value));
  return v;
}

let pool: Uint8Array[] = [];

export const cborTarget: FuzzTarget = {
  name: 'cbor',
  description:
    'decodeCbor/decodeCborPrefix on arbitrary bytes (default, bridge and lenient options). Only CborError escapes; a decoded value re-encodes and decodes to itself; ' +
    'an input without floats or indefinite lengths that decodes re-encodes to the same bytes (the codec writes preferred serialisation and refuses non-minimal heads); ' +
    'a prefix decode of the input plus trailing bytes agrees with the whole decode.',
  cover: ['/common/cbor.'],
  maxLen: 4096,
  seeds() {
    pool = fc.sample(cborValueArb, { numRuns: 300, seed: 7 }).map((v) => encodeCbor(v));
    return [
      ...pool.slice(0, 100),
      Uint8Array.of(0xbf, 0x61, 0x74, 0x63, 0x72, 0x65, 0x71, 0x9f, 0x01, 0xff, 0xff),
      Uint8Array.of(0x5f, 0x42, 0x01, 0x02, 0x41, 0x03, 0xff),
      Uint8Array.of(0x7f, 0x62, 0xc3, 0xa9, 0x61, 0x21, 0xff),
      Uint8Array.of(0xd2, 0x84, 0x43, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x41, 0x00, 0x40),
    ];
  },
  dict: [Uint8Array.of(0xff), Uint8Array.of(0x9f), Uint8Array.of(0xbf), Uint8Array.of(0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), Uint8Array.of(0xef, 0xbb, 0xbf)],
  mutators: CBOR,
  generate(rng: Rng) {
    return pool[rng.below(pool.length)] ?? new Uint8Array(0);
  },
  run(x) {
    for (const opts of [{ maxDepth: 48 }, { requireMinimalIntegers: false, allowIntegralFloats: true }, { maxDepth: 2, maxItems: 4 }]) {
      typed(() => decodeCbor(x, opts), CborError);
    }
    const v = typed(() => decodeCbor(x), CborError);
    const withTail = new Uint8Array(x.length + 1);
    withTail.set(x);
    const p = typed(() => decodeCborPrefix(withTail), CborError);
    if (v === undefined && p === undefined) return;
    if (p !== undefined && v !== undefined) invariant(p.length === x.length && deepEqual(p.value, v), 'decodeCborPrefix disagrees with decodeCbor');
    if (v === undefined) return;
    const enc = encodeCbor(v);
    const back = typed(() => decodeCbor(enc, { maxDepth: 64 }), CborError);
    invariant(back !== undefined && deepEqual(back, v), `re-encoded value does not decode to itself: ${hex(enc).slice(0, 80)}`);
    const strict = typed(() => decodeCbor(x, { allowIndefinite: false }), CborError);
    const hasFloat = walkCbor(x).some((it) => it.major === 7 && (x[it.start]! & 0x1f) >= 25 && (x[it.start]! & 0x1f) <= 27);
    if (strict !== undefined && !hasFloat) {
      invariant(hex(enc) === hex(x), `canonical input ${hex(x).slice(0, 80)} re-encodes to different bytes ${hex(enc).slice(0, 80)}`);
    }
  },
};

/** Self-check of the generator: arbitrary values round-trip (used by the unit test). */
export function roundTripProperty(): fc.IPropertyWithHooks<[CborValue]> {
  return fc.property(cborValueArb, (v) => deepEqual(decodeCbor(encodeCbor(v), { maxDepth: 64 }), normalise(v)));
}
