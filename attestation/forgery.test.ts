/**
 * Forgeries built from real documents: a root that copies AWS's name, a leaf
 * on the wrong curve, a leaf that claims to be a CA. Each document is
 * internally consistent (correctly signed by its own chain), so only the
 * trust and constraint checks stand between it and a pass.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor, type CborKey, type CborValue } from '../common/cbor.js';
import { buildCertificate, ext, type DistinguishedName } from '../dev/ca/certificate.js';
import { attestationFixtures } from '../test/fixtures.js';
import { signCoseSign1 } from './cose.js';
import { AttestationError } from './errors.js';
import { trustRoot } from './roots.js';
import { verifyAttestation } from './verify.js';

const AWS_ROOT_NAME: DistinguishedName = [
  ['C', 'US'],
  ['O', 'Amazon'],
  ['OU', 'AWS'],
  ['CN', 'aws.nitro-enclaves'],
];
const p384 = () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

const real = attestationFixtures().find((f) => f.name.startsWith('blocky_nitrite_nitro'))!;
const at = new Date(real.sidecar.timestamp_raw);
const notBefore = new Date(at.getTime() - 3600_000);
const notAfter = new Date(at.getTime() + 3600_000);

interface Chain {
  rootDer: Uint8Array;
  intDer: Uint8Array;
  leafDer: Uint8Array;
  leafKey: KeyObject;
}

function chain(opts: { leafKey?: KeyObject; leafIsCa?: boolean } = {}): Chain {
  const rootKey = p384();
  const intKey = p384();
  const leafKey = opts.leafKey ?? p384();
  const rootDer = buildCertificate({
    issuer: AWS_ROOT_NAME,
    subject: AWS_ROOT_NAME,
    notBefore: new Date('2019-10-28T13:28:05Z'),
    notAfter: new Date('2049-10-28T14:28:05Z'),
    subjectKey: rootKey,
    signingKey: rootKey,
    extensions: [ext.basicConstraints({ ca: true }), ext.keyUsage(['keyCertSign', 'cRLSign'])],
  });
  const intName: DistinguishedName = [['CN', 'forged.us-east-1.aws.nitro-enclaves']];
  const intDer = buildCertificate({
    issuer: AWS_ROOT_NAME,
    subject: intName,
    notBefore,
    notAfter,
    subjectKey: intKey,
    signingKey: rootKey,
    extensions: [ext.basicConstraints({ ca: true, pathLen: 0 }), ext.keyUsage(['keyCertSign', 'cRLSign'])],
  });
  const leafDer = buildCertificate({
    issuer: intName,
    subject: [['CN', 'i-0000000000000000-enc0000000000000000.us-east-1.aws']],
    notBefore,
    notAfter,
    subjectKey: leafKey,
    signingKey: intKey,
    extensions: opts.leafIsCa
      ? [ext.basicConstraints({ ca: true }), ext.keyUsage(['digitalSignature', 'keyCertSign'])]
      : [ext.basicConstraints({ ca: false }), ext.keyUsage(['digitalSignature'])],
  });
  return { rootDer, intDer, leafDer, leafKey };
}

/** The real document's payload with our chain, signed by our leaf key. */
function forge(c: Chain, signWith: KeyObject = c.leafKey): Uint8Array {
  const top = decodeCbor(real.bytes) as CborValue[];
  const payload = decodeCbor(top[2] as Uint8Array) as Map<CborKey, CborValue>;
  payload.set('certificate', c.leafDer);
  payload.set('cabundle', [c.rootDer, c.intDer]);
  return signCoseSign1(encodeCbor(payload), signWith);
}

function failure(fn: () => unknown): AttestationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    return e as AttestationError;
  }
  throw new Error('a forged document verified');
}

describe('forged documents', () => {
  it('a root that copies AWS name and validity but not its key is untrusted', () => {
    const c = chain();
    const doc = forge(c);
    const e = failure(() => verifyAttestation(doc, { at }));
    expect(e.code).toBe('ATTEST_UNTRUSTED_ROOT');
    expect(e.message).toContain('aws.nitro-enclaves');
    // Sanity: the forgery is otherwise perfect — trusting its root explicitly makes it verify.
    const r = verifyAttestation(doc, { at, root: trustRoot(c.rootDer, 'forged-root') });
    expect(r.document.moduleId).toBe(real.sidecar.module_id);
  });

  it('a P-256 leaf is refused as a wrong curve even under an explicitly trusted root', () => {
    const c = chain({ leafKey: p256() });
    const e = failure(() => verifyAttestation(forge(c), { at, root: trustRoot(c.rootDer, 'test-root') }));
    expect(e.code).toBe('ATTEST_CHAIN');
    expect(e.message).toMatch(/curve/);
  });

  it('a leaf that is a CA is refused', () => {
    const c = chain({ leafIsCa: true });
    const e = failure(() => verifyAttestation(forge(c), { at, root: trustRoot(c.rootDer, 'test-root') }));
    expect(e.code).toBe('ATTEST_CHAIN');
    expect(e.message).toMatch(/CA/);
  });

  it('a document signed by a key other than the leaf fails the signature check', () => {
    const c = chain();
    const e = failure(() => verifyAttestation(forge(c, p384()), { at, root: trustRoot(c.rootDer, 'test-root') }));
    expect(e.code).toBe('ATTEST_SIGNATURE');
  });
});
