/**
 * Decryption of the real-format vector, and each way opening can fail:
 * wrong recipient, mismatched or non-RSA key, a CEK of the wrong size, bad
 * PKCS#7 padding, a bad OAEP block. Failing vectors are made from the real
 * one with the test's own RSA key, so only the one property under test changes.
 */
import { constants, createCipheriv, createPrivateKey, createPublicKey, generateKeyPairSync, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toHex } from '../bytes.js';
import { readFixture } from '../../test/fixtures.js';
import { decryptEnvelopedData, openEnvelopedData } from './decrypt.js';
import { CmsError, type CmsErrorCode } from './errors.js';
import { parseEnvelopedData } from './parse.js';
import { recipientKeyId } from './recipient-id.js';

const ber = readFixture('kms', 'edgebit_ciphertext_for_recipient.ber');
const key = createPrivateKey(Buffer.from(readFixture('kms', 'edgebit_test_rsa2048_private_key.pem')));
const spki = readFixture('kms', 'edgebit_test_rsa2048_public_spki.der');
const expected = readFixture('kms', 'edgebit_expected_plaintext_datakey.bin');
const info = parseEnvelopedData(ber);

function fails(f: () => unknown, code: CmsErrorCode): CmsError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CmsError);
    expect((e as CmsError).code).toBe(code);
    return e as CmsError;
  }
  throw new Error(`expected ${code}`);
}

/** Replaces `what` (found once in the vector) by `by` of the same length. */
function splice(what: Uint8Array, by: Uint8Array): Uint8Array {
  expect(by.length).toBe(what.length);
  const out = Buffer.from(ber);
  const at = out.indexOf(Buffer.from(what));
  expect(at).toBeGreaterThan(0);
  out.set(by, at);
  return new Uint8Array(out);
}

const oaepWrap = (cek: Uint8Array) => new Uint8Array(publicEncrypt({ key: createPublicKey(key), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek));
const cbcRaw = (cek: Uint8Array, iv: Uint8Array, data: Uint8Array) => {
  const c = createCipheriv('aes-256-cbc', cek, iv).setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
};

describe('decryptEnvelopedData', () => {
  it('opens the edgebit vector to exactly the expected 32-byte data key', () => {
    const pt = decryptEnvelopedData(ber, key, spki);
    expect(pt.length).toBe(32);
    expect(toHex(pt)).toBe(toHex(expected));
    expect(Object.getPrototypeOf(pt)).toBe(Uint8Array.prototype);
  });

  it('openEnvelopedData on a parsed value gives the same', () => {
    expect(toHex(openEnvelopedData(info, key, spki))).toBe(toHex(expected));
  });

  it('accepts a PKCS#8 re-encoding of the same key', () => {
    const p8 = createPrivateKey(key.export({ format: 'pem', type: 'pkcs8' }));
    expect(toHex(decryptEnvelopedData(ber, p8, spki))).toBe(toHex(expected));
  });

  it('refuses a ciphertext addressed to another key (rid ≠ SHA-256 of our SPKI)', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const otherSpki = new Uint8Array(other.publicKey.export({ format: 'der', type: 'spki' }));
    const e = fails(() => decryptEnvelopedData(ber, other.privateKey, otherSpki), 'CMS_WRONG_RECIPIENT');
    expect(e.hint).toBeDefined();
    // and a rid rewritten to the other key's id does not help: the OAEP unwrap fails
    const forged = splice(info.recipient.subjectKeyIdentifier, recipientKeyId(otherSpki));
    fails(() => decryptEnvelopedData(forged, other.privateKey, otherSpki), 'CMS_DECRYPT_FAILED');
  });

  it('refuses a private key that does not match the SPKI, or is not RSA', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    fails(() => decryptEnvelopedData(ber, other.privateKey, spki), 'CMS_BAD_KEY');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    fails(() => decryptEnvelopedData(ber, ec.privateKey, spki), 'CMS_BAD_KEY');
    fails(() => decryptEnvelopedData(ber, createPublicKey(key), spki), 'CMS_BAD_KEY');
    fails(() => decryptEnvelopedData(ber, undefined as unknown as KeyObject, spki), 'CMS_BAD_KEY');
  });

  it('refuses an encryptedKey whose size is not the modulus size', () => {
    const short = { ...info, recipient: { ...info.recipient, encryptedKey: info.recipient.encryptedKey.subarray(1) } };
    fails(() => openEnvelopedData(short, key, spki), 'CMS_MALFORMED');
  });

  it('an OAEP block that does not decode fails as CMS_DECRYPT_FAILED without key bytes in the message', () => {
    const ek = info.recipient.encryptedKey.slice();
    ek[100]! ^= 1;
    const e = fails(() => decryptEnvelopedData(splice(info.recipient.encryptedKey, ek), key, spki), 'CMS_DECRYPT_FAILED');
    const pem = key.export({ format: 'pem', type: 'pkcs1' }).toString();
    const dump = JSON.stringify(e) + e.message + String(e.stack);
    expect(dump).not.toContain(pem.split('\n')[1]!);
    expect(dump).not.toContain(toHex(expected));
  });

  it('a wrapped key of the wrong size fails as CMS_BAD_CEK_LENGTH', () => {
    for (const n of [16, 24, 31, 33]) {
      const bad = splice(info.recipient.encryptedKey, oaepWrap(new Uint8Array(n).fill(7)));
      fails(() => decryptEnvelopedData(bad, key, spki), 'CMS_BAD_CEK_LENGTH');
    }
  });

  it('invalid PKCS#7 padding fails as CMS_BAD_PADDING; valid padding of any length is removed', () => {
    // Recover the real CEK with the test key, then encrypt chosen final blocks under it.
    const cek = new Uint8Array(privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, info.recipient.encryptedKey));
    const iv = info.contentEncryptionAlgorithm.iv;
    const withLastBlock = (last: number[]) => {
      const data = new Uint8Array(48);
      data.set(expected, 0);
      data.set(last, 32);
      return splice(info.encryptedContent, cbcRaw(cek, iv, data));
    };
    const block = (fill: number, lastByte: number) => [...new Array<number>(15).fill(fill), lastByte];
    fails(() => decryptEnvelopedData(withLastBlock(block(0, 0)), key, spki), 'CMS_BAD_PADDING'); // pad 0
    fails(() => decryptEnvelopedData(withLastBlock(block(17, 17)), key, spki), 'CMS_BAD_PADDING'); // pad 17 > block
    fails(() => decryptEnvelopedData(withLastBlock(block(0, 16)), key, spki), 'CMS_BAD_PADDING'); // wrong pad bytes
    const almost = block(16, 16);
    almost[0] = 15; // first of the sixteen pad bytes wrong
    fails(() => decryptEnvelopedData(withLastBlock(almost), key, spki), 'CMS_BAD_PADDING');
    // pad value 3 with three correct bytes: 45 bytes of plaintext
    const pt = decryptEnvelopedData(withLastBlock(block(9, 3).map((b, i) => (i >= 13 ? 3 : b))), key, spki);
    expect(pt.length).toBe(45);
    expect(toHex(pt.subarray(0, 32))).toBe(toHex(expected));
  });
});
