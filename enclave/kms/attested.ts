/**
 * KMS calls made *as the enclave*: every Decrypt / GenerateDataKey carries a
 * fresh attestation document whose public_key is the enclave's per-life RSA
 * recipient key, so KMS returns the secret only as a CiphertextForRecipient
 * that this process alone can open. A response that carries a plaintext is
 * refused: it would mean the secret crossed the parent in the clear.
 */
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { randomBytes } from 'node:crypto';
import { wipe } from '../../common/bytes.js';
import { SignerError } from '../../common/errors.js';
import type { Nsm } from '../nsm/nsm.js';
import type { KmsRecipient } from './recipient.js';

export interface AttestedKms {
  /** A new 32-byte data key: its KMS ciphertext (storable anywhere) and the plaintext (enclave memory only). */
  generateDataKey(keyId: string, encryptionContext?: Record<string, string>): Promise<{ ciphertextBlob: Uint8Array; plaintext: Uint8Array; keyArn: string }>;
  /**
   * Opens a KMS ciphertext blob for this enclave. `keyId` is sent as Decrypt's
   * KeyId, so KMS itself refuses (IncorrectKeyException) a ciphertext made
   * under any other key; `keyArn` is the key KMS says it used.
   */
  decrypt(ciphertextBlob: Uint8Array, keyId: string, encryptionContext?: Record<string, string>): Promise<{ plaintext: Uint8Array; keyArn: string }>;
}

export class KmsCallError extends SignerError {}

function refusePlaintext(p: Uint8Array | undefined): void {
  if (p && p.length > 0) {
    wipe(p);
    throw new KmsCallError('KMS_PLAINTEXT_RETURNED', 'KMS returned a plaintext despite the Recipient: refusing to use a secret that crossed the parent in the clear');
  }
}

/** Maps SDK exceptions (AccessDeniedException, DisabledException, …) to codes without leaking request data. */
export function kmsFailure(op: string, e: unknown): KmsCallError {
  const name = (e as { name?: string })?.name ?? 'Error';
  const message = (e as { message?: string })?.message ?? String(e);
  return new KmsCallError(`KMS_${name.replace(/Exception$/, '').replace(/[^A-Za-z]/g, '').toUpperCase()}`, `KMS ${op} failed: ${name}: ${message}`, { cause: e });
}

export function attestedKms(client: KMSClient, nsm: Nsm, recipient: KmsRecipient): AttestedKms {
  async function recipientField() {
    // The nonce makes each document unique; KMS does not check it, but it keeps documents unreplayable in logs.
    const doc = await nsm.attest({ publicKey: recipient.spkiDer, nonce: new Uint8Array(randomBytes(32)) });
    return { AttestationDocument: doc, KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' as const };
  }

  return {
    async generateDataKey(keyId, encryptionContext) {
      let out;
      try {
        out = await client.send(
          new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', Recipient: await recipientField(), ...(encryptionContext ? { EncryptionContext: encryptionContext } : {}) }),
        );
      } catch (e) {
        throw kmsFailure('GenerateDataKey', e);
      }
      refusePlaintext(out.Plaintext);
      if (!out.CiphertextForRecipient || !out.CiphertextBlob) throw new KmsCallError('KMS_BAD_RESPONSE', 'GenerateDataKey response lacks CiphertextForRecipient or CiphertextBlob');
      // No fallback to the requested id: the caller checks the key KMS actually used.
      if (!out.KeyId) throw new KmsCallError('KMS_BAD_RESPONSE', 'GenerateDataKey response lacks KeyId');
      const plaintext = recipient.decrypt(out.CiphertextForRecipient);
      if (plaintext.length !== 32) {
        wipe(plaintext);
        throw new KmsCallError('KMS_BAD_RESPONSE', `data key is ${plaintext.length} bytes, expected 32`);
      }
      return { ciphertextBlob: out.CiphertextBlob, plaintext, keyArn: out.KeyId };
    },

    async decrypt(ciphertextBlob, keyId, encryptionContext) {
      let out;
      try {
        out = await client.send(
          new DecryptCommand({
            CiphertextBlob: ciphertextBlob,
            Recipient: await recipientField(),
            KeyId: keyId,
            ...(encryptionContext ? { EncryptionContext: encryptionContext } : {}),
          }),
        );
      } catch (e) {
        throw kmsFailure('Decrypt', e);
      }
      refusePlaintext(out.Plaintext);
      if (!out.CiphertextForRecipient) throw new KmsCallError('KMS_BAD_RESPONSE', 'Decrypt response lacks CiphertextForRecipient');
      if (!out.KeyId) throw new KmsCallError('KMS_BAD_RESPONSE', 'Decrypt response lacks KeyId');
      return { plaintext: recipient.decrypt(out.CiphertextForRecipient), keyArn: out.KeyId };
    },
  };
}
