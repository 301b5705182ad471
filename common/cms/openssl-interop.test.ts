/**
 * Cross-check against an independent CMS implementation: the `openssl cms`
 * command. Our builder's output must decrypt with OpenSSL, and envelopes
 * OpenSSL writes in the KMS profile (SHA-256 key id, OAEP-SHA-256, aes256,
 * streamed BER or definite DER) must parse and decrypt with ours.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../bytes.js';
import { fixturePath, readFixture } from '../../test/fixtures.js';
import { buildEnvelopedData } from '../../dev/cms/build.js';
import { decryptEnvelopedData } from './decrypt.js';
import { parseEnvelopedData } from './parse.js';
import { recipientKeyId } from './recipient-id.js';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const keyPem = fixturePath('kms', 'edgebit_test_rsa2048_private_key.pem');
const key = createPrivateKey(readFileSync(keyPem));
const spki = readFixture('kms', 'edgebit_test_rsa2048_public_spki.der');

describe.skipIf(!hasOpenssl())('interop with openssl cms', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cms-interop-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

  it('openssl decrypts what buildEnvelopedData writes (both encodings, several chunks)', () => {
    for (const [encoding, chunkSize] of [['constructed', 1000], ['constructed', 7], ['primitive', 1000]] as const) {
      const pt = randomBytes(77);
      writeFileSync(join(dir, 'ours.ber'), buildEnvelopedData(pt, spki, { encryptedContent: encoding, chunkSize }));
      const out = openssl('cms', '-decrypt', '-inform', 'DER', '-in', 'ours.ber', '-inkey', keyPem, '-binary');
      expect(toHex(out)).toBe(toHex(pt));
    }
  });

  it('we parse and decrypt what openssl writes in the KMS profile', () => {
    // A certificate whose subjectKeyIdentifier is SHA-256 of the SPKI, as KMS uses for the rid.
    const ski = toHex(recipientKeyId(spki)).replace(/(..)(?!$)/g, '$1:');
    openssl('req', '-x509', '-new', '-key', keyPem, '-subj', '/CN=kms-interop', '-days', '1', '-addext', `subjectKeyIdentifier=${ski}`, '-out', 'cert.pem');
    const pt = randomBytes(1500);
    writeFileSync(join(dir, 'pt.bin'), pt);
    const common = ['-binary', '-aes256', '-keyid', '-recip', 'cert.pem', '-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256', '-keyopt', 'rsa_mgf1_md:sha256', '-outform', 'DER', '-in', 'pt.bin'];
    for (const [stream, encoding] of [[true, 'constructed'], [false, 'primitive']] as const) {
      openssl('cms', '-encrypt', ...common, ...(stream ? ['-stream'] : []), '-out', 'theirs.ber');
      const ber = new Uint8Array(readFileSync(join(dir, 'theirs.ber')));
      const info = parseEnvelopedData(ber);
      expect(info.encryptedContentEncoding).toBe(encoding);
      expect(toHex(decryptEnvelopedData(ber, key, spki))).toBe(toHex(pt));
    }
  });
});
