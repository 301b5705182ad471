/**
 * Opens a KMS `CiphertextForRecipient` with the recipient's RSA private key:
 * check the rid names our key, RSA-OAEP(SHA-256) unwrap the 32-byte CEK,
 * AES-256-CBC decrypt, strip PKCS#7 padding. The CEK and the padded
 * plaintext are wiped before returning; errors carry codes and field names,
 * never key or plaintext bytes (OpenSSL's own error is kept only as `cause`,
 * and it holds no key material).
 */
import { constants, createDecipheriv, createPublicKey, privateDecrypt, type KeyObject } from 'node:crypto';
import { bytesEqual, wipe } from '../bytes.js';
import { CmsError } from './errors.js';
import { parseEnvelopedData, type EnvelopedInfo } from './parse.js';
import { CEK_BYTES } from './profile.js';
import { recipientKeyId } from './recipient-id.js';
import { pkcs7UnpadLength } from './padding.js';

/** Parses and decrypts in one step. Returns the KMS plaintext (e.g. a 32-byte data key). */
export function decryptEnvelopedData(ber: Uint8Array, privateKey: KeyObject, recipientSpkiDer: Uint8Array): Uint8Array {
  return openEnvelopedData(parseEnvelopedData(ber), privateKey, recipientSpkiDer);
}

/** Decrypts an already parsed EnvelopedData (lets callers show the structure and the result from one parse). */
export function openEnvelopedData(info: EnvelopedInfo, privateKey: KeyObject, recipientSpkiDer: Uint8Array): Uint8Array {
  const modulusBytes = checkKeyPair(privateKey, recipientSpkiDer);
  if (!bytesEqual(info.recipient.subjectKeyIdentifier, recipientKeyId(recipientSpkiDer))) {
    throw new CmsError('CMS_WRONG_RECIPIENT', 'CiphertextForRecipient is addressed to a different RSA key (rid ≠ SHA-256 of our SPKI)', {
      hint: 'the attestation document sent to KMS must carry this recipient public key',
    });
  }
  const ek = info.recipient.encryptedKey;
  if (ek.length !== modulusBytes) {
    throw new CmsError('CMS_MALFORMED', `encryptedKey is ${ek.length} bytes, an RSA-${modulusBytes * 8} ciphertext is ${modulusBytes}`);
  }
  let cek: Uint8Array;
  try {
    cek = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, ek);
  } catch (e) {
    throw new CmsError('CMS_DECRYPT_FAILED', 'RSA-OAEP (SHA-256) unwrap of the content-encryption key failed', { cause: e });
  }
  let padded: Uint8Array | undefined;
  try {
    if (cek.length !== CEK_BYTES) throw new CmsError('CMS_BAD_CEK_LENGTH', `unwrapped content-encryption key is ${cek.length} bytes, aes256-CBC needs ${CEK_BYTES}`);
    const d = createDecipheriv('aes-256-cbc', cek, info.contentEncryptionAlgorithm.iv);
    // Padding is checked by us so a failure is a typed CMS_BAD_PADDING, not OpenSSL's "bad decrypt".
    d.setAutoPadding(false);
    const a = d.update(info.encryptedContent);
    const b = d.final();
    padded = new Uint8Array(a.length + b.length);
    padded.set(a, 0);
    padded.set(b, a.length);
    wipe(a, b);
    const len = pkcs7UnpadLength(padded);
    return padded.slice(0, len);
  } finally {
    wipe(cek, padded);
  }
}

/** Refuses keys that are not an RSA private key matching `recipientSpkiDer`; returns the modulus size in bytes. */
function checkKeyPair(privateKey: KeyObject, recipientSpkiDer: Uint8Array): number {
  if (privateKey?.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa') {
    throw new CmsError('CMS_BAD_KEY', 'recipient key must be an RSA private KeyObject');
  }
  const bits = privateKey.asymmetricKeyDetails?.modulusLength;
  if (bits === undefined || bits % 8 !== 0) throw new CmsError('CMS_BAD_KEY', 'recipient RSA key has no usable modulus length');
  const ours = new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }));
  if (!(recipientSpkiDer instanceof Uint8Array) || !bytesEqual(ours, recipientSpkiDer)) {
    throw new CmsError('CMS_BAD_KEY', 'recipient SPKI does not belong to the given private key');
  }
  return bits / 8;
}
