import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../common/bytes.js';
import { fixturePath, readFixture } from '../test/fixtures.js';
import { kmsInspect } from './kms-inspect.js';

const BER = fixturePath('kms', 'edgebit_ciphertext_for_recipient.ber');
const KEY = fixturePath('kms', 'edgebit_test_rsa2048_private_key.pem');
const RESPONSE = fixturePath('kms', 'sample_decrypt_response_shape.json');
const expected = toHex(readFixture('kms', 'edgebit_expected_plaintext_datakey.bin'));
const rid = '9631a0c659910ad5aabc1fecfc0c3e64d4c395ce9491af3a48b56694d9851803';

const dir = mkdtempSync(join(tmpdir(), 'kms-inspect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, data: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await kmsInspect(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

describe('kms inspect', () => {
  it('prints the structure of raw BER', async () => {
    const r = await run(BER);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toContain(rid);
    expect(r.out).toContain('id-RSAES-OAEP (1.2.840.113549.1.1.7) hash sha256, MGF1-sha256');
    expect(r.out).toContain('aes256-CBC (2.16.840.1.101.3.4.1.42)');
    expect(r.out).toContain('432bffaba264af82ce07c9bebeb52531');
    expect(r.out).toMatch(/encryptedKey\s+256 bytes/);
    expect(r.out).toMatch(/encryptedContent\s+48 bytes, constructed \(1 chunk\)/);
    expect(r.out).not.toContain('plaintext');
  });

  it('with --key prints the plaintext hex', async () => {
    const r = await run(BER, '--key', KEY);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`32 bytes: ${expected}`);
  });

  it('--json gives one object with the structure and plaintextHex', async () => {
    const r = await run('--json', `--key=${KEY}`, BER);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toEqual({
      bytes: 493,
      version: 2,
      recipient: {
        version: 2,
        subjectKeyIdentifierHex: rid,
        keyEncryptionAlgorithm: { oid: '1.2.840.113549.1.1.7', name: 'id-RSAES-OAEP', hash: 'sha256', mgfHash: 'sha256', label: '' },
        encryptedKeyLength: 256,
      },
      contentType: { oid: '1.2.840.113549.1.7.1', name: 'id-data' },
      contentEncryptionAlgorithm: { oid: '2.16.840.1.101.3.4.1.42', name: 'aes256-CBC', ivHex: '432bffaba264af82ce07c9bebeb52531' },
      encryptedContentLength: 48,
      encryptedContentEncoding: 'constructed',
      encryptedContentChunks: 1,
      plaintextLength: 32,
      plaintextHex: expected,
    });
  });

  it('auto-detects base64 text (with line breaks) and a KMS JSON response', async () => {
    const b64 = Buffer.from(readFixture('kms', 'edgebit_ciphertext_for_recipient.ber')).toString('base64').replace(/(.{64})/g, '$1\n');
    const r = await run(file('ct.b64', b64 + '\n'), '--key', KEY, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).plaintextHex).toBe(expected);
    const j = await run(RESPONSE, '--json');
    expect(j.code).toBe(0);
    expect(JSON.parse(j.out).encryptedContentLength).toBe(16);
  });

  it('exit 1 with the reason when the ciphertext is for another key', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' });
    const r = await run(BER, '--key', file('other.pem', other));
    expect(r.code).toBe(1);
    expect(r.err).toContain('CMS_WRONG_RECIPIENT');
    expect(r.out).toBe('');
    const j = await run(BER, '--key', join(dir, 'other.pem'), '--json');
    expect(j.code).toBe(1);
    expect(JSON.parse(j.out).error.code).toBe('CMS_WRONG_RECIPIENT');
  });

  it('exit 1 with the reason on malformed or tampered input', async () => {
    const ber = readFixture('kms', 'edgebit_ciphertext_for_recipient.ber');
    const t = await run(file('trunc.ber', ber.subarray(0, 300)));
    expect(t.code).toBe(1);
    expect(t.err).toContain('CMS_MALFORMED');
    const swapped = ber.slice();
    swapped[0x4a] = 0x01; // last byte of id-RSAES-OAEP → rsaEncryption
    const s = await run(file('pkcs1.ber', swapped), '--json');
    expect(s.code).toBe(1);
    expect(JSON.parse(s.out).error.code).toBe('CMS_UNSUPPORTED_ALGORITHM');
    expect((await run(file('junk.txt', 'hello, world!'))).code).toBe(1);
    expect((await run(file('bad.json', '{"CiphertextForRecipient": 5}'))).code).toBe(1);
    expect((await run(file('empty', ''))).code).toBe(1);
  });

  it('exit 1 when the input or key file is missing or the key is not a private key', async () => {
    expect((await run(join(dir, 'nope.ber'))).code).toBe(1);
    const r = await run(BER, '--key', join(dir, 'nope.pem'));
    expect(r.code).toBe(1);
    expect(r.err).toContain('KEY_UNREADABLE');
    const k = await run(BER, '--key', fixturePath('kms', 'edgebit_test_rsa2048_public_spki.der'));
    expect(k.code).toBe(1);
    expect(k.err).toContain('KEY_INVALID');
  });

  it('exit 2 on usage errors, 0 with usage on --help', async () => {
    for (const argv of [[], ['--bogus', BER], [BER, BER], [BER, '--key'], [BER, '--key='], ['-x', BER], [BER, '--key', KEY, '--key', KEY]]) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toContain('usage: enclave-signer kms inspect');
      expect(r.out).toBe('');
    }
    for (const h of ['--help', '-h']) {
      const r = await run(h);
      expect(r.code).toBe(0);
      expect(r.out).toContain('usage: enclave-signer kms inspect');
    }
  });

  it('-- ends options: what follows is a file name', async () => {
    const r = await run('--', '--json');
    expect(r.code).toBe(1);
    expect(r.err).toContain('INPUT_UNREADABLE');
  });
});
