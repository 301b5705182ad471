import { describe, expect, it } from 'vitest';
import { CborTag, decodeCbor, encodeCbor, IndefiniteMap, type CborKey, type CborValue } from '../common/cbor.js';
import { toHex } from '../common/bytes.js';
import { attestationFixtures } from '../test/fixtures.js';
import { AttestationError } from './errors.js';
import { awsNitroRoot } from './roots.js';
import { parseAttestation, verifyAttestation } from './verify.js';

const fixtures = attestationFixtures();
const valid = fixtures.filter((f) => !f.knownBad);

function expectAttestError(fn: () => unknown, code?: string, check?: string): AttestationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    const ae = e as AttestationError;
    if (code) expect(ae.code, ae.message).toBe(code);
    if (check) expect(ae.check, ae.message).toBe(check);
    return ae;
  }
  throw new Error('expected an AttestationError, verification passed');
}

/** Rebuilds a document with `edit` applied to its decoded payload (the signature is kept, so it no longer matches). */
function withPayload(bytes: Uint8Array, edit: (m: Map<CborKey, CborValue>) => CborValue): Uint8Array {
  const top = decodeCbor(bytes) as CborValue[];
  const payload = decodeCbor(top[2] as Uint8Array) as Map<CborKey, CborValue>;
  return encodeCbor([top[0]!, top[1]!, encodeCbor(edit(payload)), top[3]!]);
}

function withEnvelope(bytes: Uint8Array, edit: (parts: CborValue[]) => CborValue): Uint8Array {
  return encodeCbor(edit(decodeCbor(bytes) as CborValue[]));
}

describe('real Nitro documents', () => {
  it('has the fixtures it expects', () => {
    expect(valid.length).toBeGreaterThanOrEqual(6);
    expect(fixtures.filter((f) => f.knownBad).length).toBe(2);
  });

  for (const f of valid) {
    it(`${f.name} verifies at its own timestamp and reports the sidecar's fields`, () => {
      const r = verifyAttestation(f.bytes, { at: 'document', allowDebug: f.sidecar.debug_mode_pcrs_zero });
      expect(r.document.moduleId).toBe(f.sidecar.module_id);
      expect(r.document.timestamp).toBe(f.sidecar.timestamp_raw);
      expect(r.debug).toBe(f.sidecar.debug_mode_pcrs_zero);
      const pcrs = Object.fromEntries([...r.document.pcrs].map(([i, v]) => [String(i), toHex(v)]));
      expect(pcrs).toEqual(f.sidecar.all_pcrs);
      expect(r.root.fingerprint).toBe(awsNitroRoot().fingerprint);
      expect(r.checks).toEqual(['cose', 'payload', 'chain', 'signature', 'validity', 'debug']);
      expect(r.chainSubjects[0]).toContain('aws.nitro-enclaves');
    });

    it(`${f.name} fails now with a clear "certificate expired"`, () => {
      const e = expectAttestError(() => verifyAttestation(f.bytes, { allowDebug: true }), 'ATTEST_CERT_EXPIRED', 'validity');
      expect(e.message).toMatch(/certificate expired/);
      expect(e.hint).toMatch(/--at doc/);
    });

    it(`${f.name} before its leaf was issued is not yet valid`, () => {
      const at = new Date(f.sidecar.timestamp_raw - 60 * 60 * 1000);
      expectAttestError(() => verifyAttestation(f.bytes, { at, allowDebug: true }), 'ATTEST_CERT_NOT_YET_VALID', 'validity');
    });
  }

  it('rejects debug-mode documents unless allowed', () => {
    for (const f of valid.filter((x) => x.sidecar.debug_mode_pcrs_zero)) {
      expectAttestError(() => verifyAttestation(f.bytes, { at: 'document' }), 'ATTEST_DEBUG_MODE', 'debug');
    }
  });

  it('the self-signed and mock-CA documents fail with a chain error', () => {
    for (const f of fixtures.filter((x) => x.knownBad)) {
      const e = expectAttestError(() => verifyAttestation(f.bytes, { at: 'document', allowDebug: true }));
      expect(e.check, `${f.name}: ${e.message}`).toBe('chain');
      expect(['ATTEST_CHAIN', 'ATTEST_UNTRUSTED_ROOT']).toContain(e.code);
    }
  });

  it('checks expected nonce, public key, user data and PCRs', () => {
    const f = valid.find((x) => x.name.startsWith('capejs'))!;
    const nonce = Buffer.from(f.sidecar.nonce.hex!, 'hex');
    const pk = Buffer.from(f.sidecar.public_key.hex!, 'hex');
    const pcrs = { 0: f.sidecar.all_pcrs['0']!.toUpperCase(), 1: f.sidecar.all_pcrs['1']!, 2: f.sidecar.all_pcrs['2']! };
    const r = verifyAttestation(f.bytes, { at: 'document', expectedNonce: nonce, expectedPublicKey: pk, expectedPcrs: pcrs });
    expect(r.checks).toEqual(['cose', 'payload', 'chain', 'signature', 'validity', 'debug', 'nonce', 'public_key', 'pcrs']);

    const other = Uint8Array.from(nonce);
    other[0]! ^= 1;
    expectAttestError(() => verifyAttestation(f.bytes, { at: 'document', expectedNonce: other }), 'ATTEST_NONCE_MISMATCH', 'nonce');
    expectAttestError(() => verifyAttestation(f.bytes, { at: 'document', expectedPublicKey: other }), 'ATTEST_PUBLIC_KEY_MISMATCH', 'public_key');
    expectAttestError(() => verifyAttestation(f.bytes, { at: 'document', expectedUserData: other }), 'ATTEST_USER_DATA_MISMATCH', 'user_data');
    const wrong = { ...pcrs, 0: 'ab'.repeat(48) };
    const e = expectAttestError(() => verifyAttestation(f.bytes, { at: 'document', expectedPcrs: wrong }), 'ATTEST_PCR_MISMATCH', 'pcrs');
    expect(e.message).toContain('PCR0');
    expectAttestError(() => verifyAttestation(f.bytes, { at: 'document', expectedPcrs: { 20: 'ab'.repeat(48) } }), 'ATTEST_PCR_MISMATCH');
    expectAttestError(() => verifyAttestation(f.bytes, { at: 'document', expectedPcrs: {} }), 'ATTEST_PCR_MISMATCH');
    // A document without a nonce cannot satisfy an expected nonce.
    const tk = valid.find((x) => x.name.startsWith('tkhq'))!;
    expectAttestError(() => verifyAttestation(tk.bytes, { at: 'document', expectedNonce: nonce }), 'ATTEST_NONCE_MISMATCH');
  });

  it('accepts COSE tag 18 around the same envelope', () => {
    const f = valid[1]!;
    const tagged = encodeCbor(new CborTag(18, decodeCbor(f.bytes)));
    const r = verifyAttestation(tagged, { at: 'document', allowDebug: true });
    expect(parseAttestation(tagged).tagged).toBe(true);
    expect(r.document.moduleId).toBe(f.sidecar.module_id);
  });
});

describe('bad input', () => {
  const base = valid.find((x) => x.name.startsWith('blocky_nitrite_nitro'))!.bytes;
  const at = 'document' as const;
  const cases: [string, () => Uint8Array, string, string][] = [
    ['empty', () => new Uint8Array(0), 'ATTEST_INPUT', 'input'],
    ['oversized', () => new Uint8Array(64 * 1024), 'ATTEST_INPUT', 'input'],
    ['truncated by one byte', () => base.subarray(0, base.length - 1), 'ATTEST_MALFORMED', 'cose'],
    ['trailing byte', () => Buffer.concat([base, Buffer.of(0)]), 'ATTEST_MALFORMED', 'cose'],
    ['not an array', () => encodeCbor(new Map([[1, 2]])), 'ATTEST_MALFORMED', 'cose'],
    ['array of 3', () => withEnvelope(base, (p) => p.slice(0, 3)), 'ATTEST_MALFORMED', 'cose'],
    ['wrong tag', () => encodeCbor(new CborTag(98, decodeCbor(base))), 'ATTEST_MALFORMED', 'cose'],
    ['payload is text', () => withEnvelope(base, (p) => [p[0]!, p[1]!, 'x', p[3]!]), 'ATTEST_MALFORMED', 'cose'],
    ['payload is not a map', () => withPayload(base, () => [1, 2, 3]), 'ATTEST_MALFORMED', 'payload'],
    ['payload not CBOR', () => withEnvelope(base, (p) => [p[0]!, p[1]!, Uint8Array.of(0x1c), p[3]!]), 'ATTEST_MALFORMED', 'payload'],
    ['missing module_id', () => withPayload(base, (m) => (m.delete('module_id'), m)), 'ATTEST_MALFORMED', 'payload'],
    ['missing pcrs', () => withPayload(base, (m) => (m.delete('pcrs'), m)), 'ATTEST_MALFORMED', 'payload'],
    ['missing certificate', () => withPayload(base, (m) => (m.delete('certificate'), m)), 'ATTEST_MALFORMED', 'payload'],
    ['extra field', () => withPayload(base, (m) => m.set('extra', 1)), 'ATTEST_MALFORMED', 'payload'],
    ['integer key', () => withPayload(base, (m) => m.set(7, 1)), 'ATTEST_MALFORMED', 'payload'],
    ['module_id is bytes', () => withPayload(base, (m) => m.set('module_id', new Uint8Array(3))), 'ATTEST_MALFORMED', 'payload'],
    ['digest SHA256', () => withPayload(base, (m) => m.set('digest', 'SHA256')), 'ATTEST_MALFORMED', 'payload'],
    ['timestamp is text', () => withPayload(base, (m) => m.set('timestamp', '1')), 'ATTEST_MALFORMED', 'payload'],
    ['timestamp negative', () => withPayload(base, (m) => m.set('timestamp', -5)), 'ATTEST_MALFORMED', 'payload'],
    ['pcr of 32 bytes', () => withPayload(base, (m) => ((m.get('pcrs') as Map<CborKey, CborValue>).set(0, new Uint8Array(32)), m)), 'ATTEST_MALFORMED', 'payload'],
    ['pcr index 40', () => withPayload(base, (m) => ((m.get('pcrs') as Map<CborKey, CborValue>).set(40, new Uint8Array(48)), m)), 'ATTEST_MALFORMED', 'payload'],
    ['pcrs empty', () => withPayload(base, (m) => m.set('pcrs', new Map())), 'ATTEST_MALFORMED', 'payload'],
    ['cabundle is a map', () => withPayload(base, (m) => m.set('cabundle', new Map())), 'ATTEST_MALFORMED', 'payload'],
    ['nonce over 1024 bytes', () => withPayload(base, (m) => m.set('nonce', new Uint8Array(1025))), 'ATTEST_MALFORMED', 'payload'],
    ['user_data is an int', () => withPayload(base, (m) => m.set('user_data', 5)), 'ATTEST_MALFORMED', 'payload'],
    ['certificate garbage', () => withPayload(base, (m) => m.set('certificate', Uint8Array.of(0x30, 0x03, 1, 2, 3))), 'ATTEST_CHAIN', 'chain'],
    ['cabundle null', () => withPayload(base, (m) => m.set('cabundle', null)), 'ATTEST_CHAIN', 'chain'],
    [
      'chain in the wrong order',
      () => withPayload(base, (m) => m.set('cabundle', [...(m.get('cabundle') as Uint8Array[])].reverse())),
      'ATTEST_UNTRUSTED_ROOT',
      'chain',
    ],
    [
      'intermediates swapped',
      () =>
        withPayload(base, (m) => {
          const c = [...(m.get('cabundle') as Uint8Array[])];
          [c[1], c[2]] = [c[2]!, c[1]!];
          return m.set('cabundle', c);
        }),
      'ATTEST_CHAIN',
      'chain',
    ],
    [
      'intermediate missing',
      () => withPayload(base, (m) => m.set('cabundle', (m.get('cabundle') as Uint8Array[]).filter((_, i) => i !== 2))),
      'ATTEST_CHAIN',
      'chain',
    ],
    [
      'root that merely looks like AWS (one byte of its signature changed)',
      () =>
        withPayload(base, (m) => {
          const c = [...(m.get('cabundle') as Uint8Array[])];
          const root = Uint8Array.from(c[0]!);
          root[root.length - 1]! ^= 1;
          c[0] = root;
          return m.set('cabundle', c);
        }),
      'ATTEST_UNTRUSTED_ROOT',
      'chain',
    ],
    ['leaf from another instance', () => withPayload(base, (m) => m.set('certificate', (decodeCbor((decodeCbor(valid.find((x) => x.name.startsWith('capejs'))!.bytes) as CborValue[])[2] as Uint8Array) as Map<CborKey, CborValue>).get('certificate')!)), 'ATTEST_CHAIN', 'chain'],
    ['payload changed (nonce)', () => withPayload(base, (m) => m.set('nonce', new Uint8Array(4))), 'ATTEST_SIGNATURE', 'signature'],
    ['payload re-encoded indefinite-length', () => withPayload(base, (m) => new IndefiniteMap(m as Map<string, CborValue>)), 'ATTEST_SIGNATURE', 'signature'],
    ['payload keys reordered', () => withPayload(base, (m) => new Map([...m].reverse())), 'ATTEST_SIGNATURE', 'signature'],
    ['alg ES256 (-7)', () => withEnvelope(base, (p) => [encodeCbor(new Map([[1, -7]])), p[1]!, p[2]!, p[3]!]), 'ATTEST_ALGORITHM', 'cose'],
    ['alg missing', () => withEnvelope(base, (p) => [encodeCbor(new Map()), p[1]!, p[2]!, p[3]!]), 'ATTEST_ALGORITHM', 'cose'],
    ['extra protected header', () => withEnvelope(base, (p) => [encodeCbor(new Map<CborKey, CborValue>([[1, -35], [4, 'kid']])), p[1]!, p[2]!, p[3]!]), 'ATTEST_MALFORMED', 'cose'],
    ['non-canonical alg encoding', () => withEnvelope(base, (p) => [Uint8Array.of(0xa1, 0x01, 0x39, 0x00, 0x22), p[1]!, p[2]!, p[3]!]), 'ATTEST_MALFORMED', 'cose'],
    ['unprotected header not empty', () => withEnvelope(base, (p) => [p[0]!, new Map([[4, 'x']]), p[2]!, p[3]!]), 'ATTEST_MALFORMED', 'cose'],
    ['unprotected header null', () => withEnvelope(base, (p) => [p[0]!, null, p[2]!, p[3]!]), 'ATTEST_MALFORMED', 'cose'],
    ['signature of 95 bytes', () => withEnvelope(base, (p) => [p[0]!, p[1]!, p[2]!, (p[3] as Uint8Array).subarray(1)]), 'ATTEST_ALGORITHM', 'cose'],
    ['signature zeroed', () => withEnvelope(base, (p) => [p[0]!, p[1]!, p[2]!, new Uint8Array(96)]), 'ATTEST_SIGNATURE', 'signature'],
    ['signature as DER', () => withEnvelope(base, (p) => [p[0]!, p[1]!, p[2]!, Buffer.concat([Buffer.of(0x30, 0x64, 0x02, 0x30), Buffer.from(p[3] as Uint8Array).subarray(0, 48), Buffer.of(0x02, 0x30), Buffer.from(p[3] as Uint8Array).subarray(48)])]), 'ATTEST_ALGORITHM', 'cose'],
    ['deeply nested', () => Buffer.concat([Buffer.alloc(200, 0x81), Buffer.of(0)]), 'ATTEST_MALFORMED', 'cose'],
    ['huge claimed length', () => Buffer.of(0x84, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 'ATTEST_MALFORMED', 'cose'],
  ];
  for (const [name, make, code, check] of cases) {
    it(`${name} → ${code}`, () => {
      const e = expectAttestError(() => verifyAttestation(make(), { at, allowDebug: true }), code, check);
      expect(e.message.length).toBeGreaterThan(10);
    });
  }

  it('rejects non-bytes and invalid dates', () => {
    expectAttestError(() => verifyAttestation('abc' as unknown as Uint8Array), 'ATTEST_INPUT');
    expectAttestError(() => verifyAttestation(base, { at: new Date(NaN) }), 'ATTEST_INPUT');
  });
});
