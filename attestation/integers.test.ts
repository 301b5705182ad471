/**
 * Issue 8, finding 10c: an attestation document whose integers are written
 * as CBOR floats — a PCR index 1.0 or 1.5, a timestamp 1.7e12 or 1.5 — is
 * malformed (AttestationError ATTEST_MALFORMED), even when correctly signed.
 * The documents here are the real fixture's payload, re-encoded with one
 * float by hand, and signed by a test chain that the verifier is told to
 * trust, so the only thing wrong with each is the float.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { concatBytes } from '../common/bytes.js';
import { decodeCbor, encodeCbor, type CborKey, type CborValue } from '../common/cbor.js';
import { buildCertificate, ext, type DistinguishedName } from '../dev/ca/certificate.js';
import { attestationFixtures } from '../test/fixtures.js';
import { signCoseSign1 } from './cose.js';
import { AttestationError } from './errors.js';
import { trustRoot } from './roots.js';
import { verifyAttestation } from './verify.js';

const real = attestationFixtures().find((f) => f.name.startsWith('blocky_nitrite_nitro'))!;
const at = new Date(real.sidecar.timestamp_raw);
const p384 = () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;

function testChain(): { rootDer: Uint8Array; leafDer: Uint8Array; leafKey: KeyObject } {
  const rootKey = p384();
  const leafKey = p384();
  const rootName: DistinguishedName = [['CN', 'float-test-root']];
  const window = { notBefore: new Date(at.getTime() - 3600_000), notAfter: new Date(at.getTime() + 3600_000) };
  const rootDer = buildCertificate({
    issuer: rootName,
    subject: rootName,
    ...window,
    subjectKey: rootKey,
    signingKey: rootKey,
    extensions: [ext.basicConstraints({ ca: true }), ext.keyUsage(['keyCertSign', 'cRLSign'])],
  });
  const leafDer = buildCertificate({
    issuer: rootName,
    subject: [['CN', 'i-0000000000000000-enc0000000000000000.us-east-1.aws']],
    ...window,
    subjectKey: leafKey,
    signingKey: rootKey,
    extensions: [ext.basicConstraints({ ca: false }), ext.keyUsage(['digitalSignature'])],
  });
  return { rootDer, leafDer, leafKey };
}

const c = testChain();
const root = trustRoot(c.rootDer, 'float-test-root');

/** The real payload with our chain, encoded; `edit` may rewrite the encoded bytes. */
function document(edit: (payload: Uint8Array) => Uint8Array = (p) => p): Uint8Array {
  const top = decodeCbor(real.bytes) as CborValue[];
  const payload = decodeCbor(top[2] as Uint8Array) as Map<CborKey, CborValue>;
  payload.set('certificate', c.leafDer);
  payload.set('cabundle', [c.rootDer]);
  return signCoseSign1(edit(encodeCbor(payload)), c.leafKey);
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  return Buffer.from(hay).indexOf(Buffer.from(needle), from);
}

/** Replaces the first occurrence of `what` at or after `from` (asserting there is one). */
function replace(b: Uint8Array, what: Uint8Array, by: Uint8Array, from = 0): Uint8Array {
  const i = indexOf(b, what, from);
  expect(i).toBeGreaterThanOrEqual(0);
  return concatBytes(b.subarray(0, i), by, b.subarray(i + what.length));
}

const f64 = (n: number) => {
  const b = new Uint8Array(9);
  b[0] = 0xfb;
  new DataView(b.buffer).setFloat64(1, n);
  return b;
};

/** PCR index `i` is written as the key byte i followed by bstr(48) (0x58 0x30), inside "pcrs". */
function floatPcrIndex(index: number, float: Uint8Array) {
  return (p: Uint8Array) => replace(p, Uint8Array.of(index, 0x58, 0x30), concatBytes(float, Uint8Array.of(0x58, 0x30)), indexOf(p, encodeCbor('pcrs')));
}

function floatTimestamp(float: Uint8Array) {
  return (p: Uint8Array) => {
    const ts = (decodeCbor(p) as Map<CborKey, CborValue>).get('timestamp') as number;
    return replace(p, concatBytes(encodeCbor('timestamp'), encodeCbor(ts)), concatBytes(encodeCbor('timestamp'), float));
  };
}

function malformed(doc: Uint8Array): AttestationError {
  try {
    verifyAttestation(doc, { at, root });
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    expect((e as AttestationError).code).toBe('ATTEST_MALFORMED');
    return e as AttestationError;
  }
  throw new Error('a document with a float where an integer belongs verified');
}

describe('finding 10c: integers in attestation documents are CBOR integers', () => {
  it('control: the re-signed real payload verifies under the test root', () => {
    expect(verifyAttestation(document(), { at, root }).document.moduleId).toBe(real.sidecar.module_id);
  });

  it('a PCR index written as the float 1.0 is malformed', () => {
    expect(malformed(document(floatPcrIndex(1, Uint8Array.of(0xf9, 0x3c, 0x00)))).message).toMatch(/integral value|map key/);
  });

  it('a PCR index written as the float 1.5 is malformed', () => {
    expect(malformed(document(floatPcrIndex(1, Uint8Array.of(0xf9, 0x3e, 0x00)))).message).toMatch(/map key must be an integer or text string/);
  });

  it('a timestamp written as a float with its exact integral value is malformed', () => {
    const ts = (decodeCbor((decodeCbor(real.bytes) as CborValue[])[2] as Uint8Array) as Map<CborKey, CborValue>).get('timestamp') as number;
    expect(malformed(document(floatTimestamp(f64(ts)))).message).toMatch(/integral value/);
  });

  it('a timestamp written as the float 1.5 is malformed', () => {
    expect(malformed(document(floatTimestamp(f64(1.5)))).message).toMatch(/timestamp must be an unsigned integer/);
  });
});
