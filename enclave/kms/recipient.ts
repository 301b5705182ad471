/**
 * The enclave's per-life KMS recipient key: an RSA-2048 pair generated at
 * boot, whose public half (DER SPKI) goes into the attestation document's
 * `public_key` so KMS answers with a `CiphertextForRecipient` only this
 * enclave can open. The private KeyObject lives in this closure only: it is
 * never exported, serialised or logged, and `destroy()` drops it.
 *
 * Node gives no way to zero a KeyObject's OpenSSL memory; dropping the last
 * reference lets OpenSSL free it (RSA private components are freed with
 * BN_clear_free, which does zero them). Keep the recipient's life short.
 */
import { generateKeyPair, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { decryptEnvelopedData } from '../../common/cms/decrypt.js';
import { recipientKeyId } from '../../common/cms/recipient-id.js';
import { toHex } from '../../common/bytes.js';
import { SignerError } from '../../common/errors.js';

export const RECIPIENT_RSA_BITS = 2048;
export const RECIPIENT_RSA_EXPONENT = 65537;

export interface KmsRecipient {
  /** DER SubjectPublicKeyInfo for the attestation document's `public_key` (a fresh copy each read). */
  readonly spkiDer: Uint8Array;
  /** SHA-256 of spkiDer: the rid KMS will put in the CiphertextForRecipient. */
  readonly keyId: Uint8Array;
  /** Opens a KMS CiphertextForRecipient addressed to this key; throws CmsError otherwise. */
  decrypt(ciphertextForRecipient: Uint8Array): Uint8Array;
  /** Forgets the private key; later decrypts throw KMS_RECIPIENT_DESTROYED. Idempotent. */
  destroy(): void;
  readonly destroyed: boolean;
}

export function createRecipient(): KmsRecipient {
  return recipientOf(generateKeyPairSync('rsa', { modulusLength: RECIPIENT_RSA_BITS, publicExponent: RECIPIENT_RSA_EXPONENT }));
}

/**
 * The same, with the RSA key generated on libuv's thread pool: the enclave
 * starts it at boot and answers attest/status while it runs (cold start);
 * only the first KMS call waits for it.
 */
export function createRecipientAsync(): Promise<KmsRecipient> {
  return new Promise((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: RECIPIENT_RSA_BITS, publicExponent: RECIPIENT_RSA_EXPONENT }, (err, publicKey, privateKey) => {
      if (err) reject(new SignerError('KMS_RECIPIENT_KEYGEN', 'could not generate the KMS recipient key', { cause: err }));
      else resolve(recipientOf({ publicKey, privateKey }));
    });
  });
}

function recipientOf(pair: { publicKey: KeyObject; privateKey: KeyObject }): KmsRecipient {
  let privateKey: KeyObject | undefined = pair.privateKey;
  const spki = new Uint8Array(pair.publicKey.export({ format: 'der', type: 'spki' }));
  const keyId = recipientKeyId(spki);
  const label = `KmsRecipient(rsa-${RECIPIENT_RSA_BITS}, keyId ${toHex(keyId).slice(0, 16)}…)`;

  const recipient: KmsRecipient = {
    get spkiDer() {
      return spki.slice();
    },
    get keyId() {
      return keyId.slice();
    },
    get destroyed() {
      return privateKey === undefined;
    },
    decrypt(ciphertextForRecipient: Uint8Array): Uint8Array {
      if (privateKey === undefined) {
        throw new SignerError('KMS_RECIPIENT_DESTROYED', 'the KMS recipient key was destroyed', { hint: 'create a new recipient and attest again' });
      }
      return decryptEnvelopedData(ciphertextForRecipient, privateKey, spki);
    },
    destroy(): void {
      privateKey = undefined;
    },
  };
  // Whatever logs this object sees only the public fingerprint.
  Object.defineProperties(recipient, {
    toJSON: { value: () => ({ kind: 'KmsRecipient', keyId: toHex(keyId) }) },
    toString: { value: () => label },
    [Symbol.for('nodejs.util.inspect.custom')]: { value: () => label },
  });
  return Object.freeze(recipient);
}
