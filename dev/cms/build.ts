/**
 * Builds a `CiphertextForRecipient` byte-for-byte in KMS's layout (for the
 * KMS emulator and tests): BER indefinite lengths on the ContentInfo,
 * [0], EnvelopedData, EncryptedContentInfo and a constructed encryptedContent;
 * definite (DER) lengths everywhere inside the RecipientInfo SET. A fresh
 * random CEK and IV per call; the CEK is wiped once wrapped.
 *
 * Lives in dev/: production never builds an EnvelopedData (only KMS does), so
 * the enclave image must not carry this code (docs/boundaries.md).
 */
import { constants, createCipheriv, createPublicKey, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { concatBytes, wipe } from '../../common/bytes.js';
import { der } from '../../common/der.js';
import { CmsError } from '../../common/cms/errors.js';
import { pkcs7Pad } from '../../common/cms/padding.js';
import type { EncryptedContentEncoding } from '../../common/cms/parse.js';
import { AES256_IV_BYTES, CEK_BYTES, OID } from '../../common/cms/profile.js';
import { recipientKeyId } from '../../common/cms/recipient-id.js';

export interface BuildEnvelopedDataOptions {
  /** KMS emits both; default 'constructed' (what the reference vectors show). */
  encryptedContent?: EncryptedContentEncoding;
  /**
   * Segment size for the constructed form. Default 1000 — the BER segment size
   * of BouncyCastle's stream generators; KMS payloads (≤ 4 KiB plaintext) are
   * one segment for data keys either way.
   */
  chunkSize?: number;
}

export const DEFAULT_CHUNK_SIZE = 1000;

/** Encrypts `plaintext` to the RSA key `recipientSpkiDer` as KMS would. */
export function buildEnvelopedData(plaintext: Uint8Array, recipientSpkiDer: Uint8Array, opts: BuildEnvelopedDataOptions = {}): Uint8Array {
  const encoding = opts.encryptedContent ?? 'constructed';
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (encoding !== 'constructed' && encoding !== 'primitive') throw new CmsError('CMS_BAD_ARGUMENT', `unknown encryptedContent encoding ${String(encoding)}`);
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new CmsError('CMS_BAD_ARGUMENT', 'chunkSize must be a positive integer');
  if (!(plaintext instanceof Uint8Array)) throw new CmsError('CMS_BAD_ARGUMENT', 'plaintext must be bytes');
  const publicKey = rsaPublicKey(recipientSpkiDer);

  const cek = new Uint8Array(randomBytes(CEK_BYTES));
  const iv = new Uint8Array(randomBytes(AES256_IV_BYTES));
  let encryptedKey: Uint8Array;
  let ciphertext: Uint8Array;
  const padded = pkcs7Pad(plaintext);
  try {
    encryptedKey = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek);
    const c = createCipheriv('aes-256-cbc', cek, iv);
    c.setAutoPadding(false); // padded above, so both sides share one PKCS#7 definition
    ciphertext = concatBytes(c.update(padded), c.final());
  } finally {
    wipe(cek, padded);
  }

  const ktri = der.seq(der.int(2), der.implicitPrim(0, recipientKeyId(recipientSpkiDer)), OAEP_SHA256_ALGORITHM, der.octets(encryptedKey));
  const content =
    encoding === 'primitive' ? der.implicitPrim(0, ciphertext) : indefinite(0xa0, ...chunks(ciphertext, chunkSize).map((c) => der.octets(c)));
  const eci = indefinite(0x30, der.oid(OID.data), der.seq(der.oid(OID.aes256Cbc), der.octets(iv)), content);
  const envelopedData = indefinite(0x30, der.int(2), der.set(ktri), eci);
  return indefinite(0x30, der.oid(OID.envelopedData), indefinite(0xa0, envelopedData));
}

/** id-RSAES-OAEP { hashFunc [0] sha256(NULL), maskGenFunc [1] mgf1(sha256(NULL)) }, label omitted (= empty). */
const OAEP_SHA256_ALGORITHM = der.seq(
  der.oid(OID.rsaesOaep),
  der.seq(der.explicit(0, der.seq(der.oid(OID.sha256), der.null())), der.explicit(1, der.seq(der.oid(OID.mgf1), der.seq(der.oid(OID.sha256), der.null())))),
);

/** BER indefinite-length constructed element: identifier, 0x80, contents, end-of-contents. */
function indefinite(identifier: number, ...items: Uint8Array[]): Uint8Array {
  return concatBytes(Uint8Array.of(identifier, 0x80), ...items, Uint8Array.of(0, 0));
}

function chunks(b: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

function rsaPublicKey(spkiDer: Uint8Array): KeyObject {
  let k: KeyObject;
  try {
    k = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  } catch (e) {
    throw new CmsError('CMS_BAD_KEY', 'recipient public key is not a DER SubjectPublicKeyInfo', { cause: e });
  }
  if (k.asymmetricKeyType !== 'rsa') throw new CmsError('CMS_BAD_KEY', `recipient public key is ${String(k.asymmetricKeyType)}, KMS wraps to RSA`);
  return k;
}
