/**
 * The builder must emit KMS's exact layout (so the emulator's answers look
 * like the real thing byte for byte, save the random parts) and round-trip
 * through the parser and decryptor for any plaintext, encoding and chunking.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../common/bytes.js';
import { readFixture } from '../../test/fixtures.js';
import { buildEnvelopedData } from './build.js';
import { decryptEnvelopedData } from '../../common/cms/decrypt.js';
import { CmsError } from '../../common/cms/errors.js';
import { parseEnvelopedData, type EnvelopedInfo } from '../../common/cms/parse.js';

const fixture = readFixture('kms', 'edgebit_ciphertext_for_recipient.ber');
const key = createPrivateKey(Buffer.from(readFixture('kms', 'edgebit_test_rsa2048_private_key.pem')));
const spki = readFixture('kms', 'edgebit_test_rsa2048_public_spki.der');

/** Zeroes the random parts (encrypted key, IV, ciphertext) so two envelopes can be compared byte by byte. */
function skeleton(ber: Uint8Array, info: EnvelopedInfo): string {
  const out = Buffer.from(ber);
  for (const part of [info.recipient.encryptedKey, info.contentEncryptionAlgorithm.iv, info.encryptedContent]) {
    const at = out.indexOf(Buffer.from(part));
    expect(at).toBeGreaterThan(0);
    out.fill(0, at, at + part.length);
  }
  return out.toString('hex');
}

describe('buildEnvelopedData', () => {
  it('emits the fixture layout byte for byte except the random parts (32-byte data key, constructed)', () => {
    const built = buildEnvelopedData(new Uint8Array(32).fill(0xa5), spki);
    expect(built.length).toBe(fixture.length);
    const info = parseEnvelopedData(built);
    expect(skeleton(built, info)).toBe(skeleton(fixture, parseEnvelopedData(fixture)));
    expect(toHex(info.recipient.subjectKeyIdentifier)).toBe(toHex(parseEnvelopedData(fixture).recipient.subjectKeyIdentifier));
  });

  it('draws a fresh CEK and IV each call', () => {
    const a = parseEnvelopedData(buildEnvelopedData(new Uint8Array(32), spki));
    const b = parseEnvelopedData(buildEnvelopedData(new Uint8Array(32), spki));
    expect(toHex(a.contentEncryptionAlgorithm.iv)).not.toBe(toHex(b.contentEncryptionAlgorithm.iv));
    expect(toHex(a.encryptedContent)).not.toBe(toHex(b.encryptedContent));
  });

  it('primitive encoding: [0] 0x80 with a definite length inside the indefinite EncryptedContentInfo', () => {
    const built = buildEnvelopedData(new Uint8Array(32), spki, { encryptedContent: 'primitive' });
    const info = parseEnvelopedData(built);
    expect(info.encryptedContentEncoding).toBe('primitive');
    const at = Buffer.from(built).indexOf(Buffer.from(info.encryptedContent));
    expect(toHex(built.subarray(at - 2, at))).toBe('8030'); // [0] primitive, 48 bytes
    expect(built.length).toBe(fixture.length - 4); // no inner OCTET STRING header, no end-of-contents
  });

  it('splits the constructed form into chunkSize segments', () => {
    const info = parseEnvelopedData(buildEnvelopedData(new Uint8Array(100), spki, { chunkSize: 16 }));
    expect(info.encryptedContent.length).toBe(112);
    expect(info.encryptedContentChunks).toBe(7);
    expect(parseEnvelopedData(buildEnvelopedData(new Uint8Array(2500), spki)).encryptedContentChunks).toBe(3); // default 1000
  });

  it('round-trips build → parse → decrypt for random plaintexts, both encodings, any chunk size', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 4096 }),
        fc.constantFrom('constructed' as const, 'primitive' as const),
        fc.integer({ min: 1, max: 5000 }),
        (pt, encoding, chunkSize) => {
          const built = buildEnvelopedData(pt, spki, { encryptedContent: encoding, chunkSize });
          const info = parseEnvelopedData(built);
          expect(info.encryptedContentEncoding).toBe(encoding);
          expect(info.encryptedContent.length).toBe(pt.length + 16 - (pt.length % 16));
          expect(toHex(decryptEnvelopedData(built, key, spki))).toBe(toHex(pt));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('round-trips to a freshly generated key', () => {
    const kp = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const s = new Uint8Array(kp.publicKey.export({ format: 'der', type: 'spki' }));
    const pt = new Uint8Array(32).map((_, i) => i);
    expect(toHex(decryptEnvelopedData(buildEnvelopedData(pt, s), kp.privateKey, s))).toBe(toHex(pt));
  });

  it('refuses non-RSA or unparsable recipient keys and bad options with typed errors', () => {
    const ec = new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }));
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(CmsError);
        return (e as CmsError).code;
      }
      return 'none';
    };
    expect(code(() => buildEnvelopedData(new Uint8Array(1), ec))).toBe('CMS_BAD_KEY');
    expect(code(() => buildEnvelopedData(new Uint8Array(1), new Uint8Array(10)))).toBe('CMS_BAD_KEY');
    expect(code(() => buildEnvelopedData(new Uint8Array(1), spki, { chunkSize: 0 }))).toBe('CMS_BAD_ARGUMENT');
    expect(code(() => buildEnvelopedData(new Uint8Array(1), spki, { chunkSize: 1.5 }))).toBe('CMS_BAD_ARGUMENT');
    expect(code(() => buildEnvelopedData(new Uint8Array(1), spki, { encryptedContent: 'definite' as 'primitive' }))).toBe('CMS_BAD_ARGUMENT');
    expect(code(() => buildEnvelopedData('hi' as unknown as Uint8Array, spki))).toBe('CMS_BAD_ARGUMENT');
  });
});
