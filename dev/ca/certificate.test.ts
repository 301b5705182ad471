import { generateKeyPairSync, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../common/bytes.js';
import { children, parseDer } from '../../common/der.js';
import { awsNitroRoot } from '../../attestation/roots.js';
import { parseAttestation } from '../../attestation/verify.js';
import { attestationFixtures } from '../../test/fixtures.js';
import { KeyUsage, parseCertificate } from '../../attestation/x509.js';
import { buildCertificate, encodeName, ext, ipAddressBytes, keyIdentifier, randomSerial, spkiOf } from './certificate.js';

const p384 = () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;

/** The extension TLVs of a certificate, as hex, for comparing with known encodings. */
function extensionsHex(certDer: Uint8Array): string[] {
  const [tbs] = children(parseDer(certDer));
  const exts = children(tbs!).find((n) => n.cls === 2 && n.tag === 3)!;
  return children(children(exts)[0]!).map((e) => toHex(e.buf.subarray(e.start, e.end)));
}

describe('extension encodings match AWS_NitroEnclaves_Root-G1 byte for byte', () => {
  const aws = extensionsHex(awsNitroRoot().der);

  it('basicConstraints cA critical', () => {
    expect(aws).toContain(toHex(ext.basicConstraints({ ca: true })));
  });

  it('keyUsage digitalSignature+keyCertSign+cRLSign critical (named-bit DER: 03 02 01 86)', () => {
    expect(aws).toContain(toHex(ext.keyUsage(['digitalSignature', 'keyCertSign', 'cRLSign'])));
  });

  it('subjectKeyIdentifier is SHA-1 of the key bits (RFC 5280 method 1), as AWS computes it', () => {
    const root = parseCertificate(awsNitroRoot().der);
    expect(aws).toContain(toHex(ext.subjectKeyIdentifier(root.spkiDer)));
    expect(toHex(keyIdentifier(root.spkiDer)).toUpperCase()).toBe('9025B50DD90547E796C396FA729DCF99A9DF4B96');
  });
});

describe('extension encodings match a real NSM leaf certificate', () => {
  it('non-critical keyUsage digitalSignature+nonRepudiation and critical cA:FALSE', () => {
    const fx = attestationFixtures().find((f) => f.name.startsWith('blocky_nitrite_nitro'))!;
    const doc = parseAttestation(fx.bytes).doc;
    const leaf = extensionsHex(doc.certificate);
    expect(leaf).toContain(toHex(ext.keyUsage(['digitalSignature', 'nonRepudiation'], false)));
    expect(leaf).toContain(toHex(ext.basicConstraints({ ca: false })));
    // And an AWS intermediate's pathLen encoding.
    const intermediates = doc.cabundle.slice(1).flatMap(extensionsHex);
    expect(intermediates).toContain(toHex(ext.basicConstraints({ ca: true, pathLen: 0 })));
    expect(intermediates).toContain(toHex(ext.basicConstraints({ ca: true, pathLen: 2 })));
  });
});

describe('keyUsage named bits', () => {
  it.each([
    [['digitalSignature'], '03020780'],
    [['keyCertSign', 'cRLSign'], '03020106'],
    [['digitalSignature', 'nonRepudiation'], '030206c0'],
    [['keyCertSign'], '03020204'],
  ] as const)('%j → %s', (usages, bits) => {
    expect(toHex(ext.keyUsage(usages))).toMatch(new RegExp(`${bits}$`));
  });
});

describe('ipAddressBytes', () => {
  it.each([
    ['127.0.0.1', '7f000001'],
    ['::1', '00000000000000000000000000000001'],
    ['2001:db8::8a2e:370:7334', '20010db80000000000008a2e03707334'],
    ['fe80::', 'fe800000000000000000000000000000'],
    ['::ffff:192.0.2.1', '00000000000000000000ffffc0000201'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
  ])('%s', (ip, hex) => {
    expect(toHex(ipAddressBytes(ip))).toBe(hex);
  });

  it('refuses non-addresses', () => {
    expect(() => ipAddressBytes('256.1.1.1')).toThrow(/not an IP address/);
    expect(() => ipAddressBytes('localhost')).toThrow(/not an IP address/);
  });
});

describe('subjectAltName', () => {
  it('encodes dNSName [2] and iPAddress [7]', () => {
    const hex = toHex(ext.subjectAltName(['a.example', '10.0.0.1']));
    expect(hex).toContain(`8209${Buffer.from('a.example').toString('hex')}`);
    expect(hex).toContain('87040a000001');
  });

  it.each(['', 'bad host', '-lead.example', 'x'.repeat(64) + '.com', '*.com', 'a..b', 'ünï.example'])('refuses %j', (name) => {
    expect(() => ext.subjectAltName([name])).toThrow(expect.objectContaining({ code: 'DEVCA_BAD_CERT_SPEC' }));
  });

  it('refuses an empty list', () => {
    expect(() => ext.subjectAltName([])).toThrow(/at least one/);
  });
});

describe('buildCertificate', () => {
  const issuerKey = p384();
  const subjectKey = p384();
  const notBefore = new Date('2030-01-01T00:00:00Z');
  const notAfter = new Date('2030-01-01T03:00:00Z');

  it('produces a v3 certificate the verifier parses, signed ecdsa-with-SHA384 by the issuer key', () => {
    const der = buildCertificate({
      issuer: [['C', 'US'], ['O', 'Issuer Org'], ['CN', 'Issuer — CA']],
      subject: [['O', 'Subject Org'], ['CN', 'leaf']],
      notBefore,
      notAfter,
      subjectKey,
      signingKey: issuerKey,
      extensions: [ext.basicConstraints({ ca: false }), ext.keyUsage(['digitalSignature'])],
    });
    const c = parseCertificate(der);
    expect(c.subject).toBe('O=Subject Org,CN=leaf');
    expect(Buffer.from(c.issuerDer)).toEqual(Buffer.from(encodeName([['C', 'US'], ['O', 'Issuer Org'], ['CN', 'Issuer — CA']])));
    expect(c.notBefore).toEqual(notBefore);
    expect(c.notAfter).toEqual(notAfter);
    expect(c.curve).toBe('1.3.132.0.34');
    expect(c.signatureHash).toBe('sha384');
    expect(c.ca).toBe(false);
    expect(c.keyUsage).toEqual(new Set([KeyUsage.digitalSignature]));
    expect(Buffer.from(c.spkiDer)).toEqual(Buffer.from(spkiOf(subjectKey)));
    expect(nodeVerify('sha384', c.tbs, { key: createPublicKey(issuerKey), dsaEncoding: 'der' }, c.signature)).toBe(true);
    expect(nodeVerify('sha384', c.tbs, { key: createPublicKey(subjectKey), dsaEncoding: 'der' }, c.signature)).toBe(false);
  });

  it('writes GeneralizedTime from 2050 on, as RFC 5280 requires', () => {
    const der = buildCertificate({
      issuer: [['CN', 'x']],
      subject: [['CN', 'x']],
      notBefore,
      notAfter: new Date('2060-06-01T00:00:00Z'),
      subjectKey,
      signingKey: issuerKey,
      extensions: [],
    });
    expect(parseCertificate(der).notAfter.toISOString()).toBe('2060-06-01T00:00:00.000Z');
    expect(toHex(der)).toContain(`180f${Buffer.from('20600601000000Z').toString('hex')}`);
  });

  it('refuses a non-P-384 signing key, a public signing key and an inverted validity', () => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const base = { issuer: [['CN', 'x']] as const, subject: [['CN', 'x']] as const, notBefore, notAfter, subjectKey, extensions: [] };
    expect(() => buildCertificate({ ...base, signingKey: p256 })).toThrow(/P-384/);
    expect(() => buildCertificate({ ...base, signingKey: createPublicKey(issuerKey) })).toThrow(/private/);
    expect(() => buildCertificate({ ...base, signingKey: issuerKey, notBefore: notAfter, notAfter: notBefore })).toThrow(/precede/);
    expect(() => buildCertificate({ ...base, signingKey: issuerKey, serial: new Uint8Array(21).fill(1) })).toThrow(/serial/);
  });

  it('refuses bad names', () => {
    expect(() => encodeName([])).toThrow(/at least one/);
    expect(() => encodeName([['C', 'USA']])).toThrow(/two-letter/);
    expect(() => encodeName([['CN', 'x'.repeat(65)]])).toThrow(/1\.\.64/);
  });

  it('random serials are positive 16-byte integers', () => {
    for (let i = 0; i < 50; i++) {
      const s = randomSerial();
      expect(s.length).toBe(16);
      expect(s[0]! & 0x80).toBe(0);
      expect(s[0]! & 0x40).toBe(0x40);
    }
  });
});
