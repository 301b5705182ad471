import { createHash } from 'node:crypto';

/**
 * The rid KMS writes for a recipient: SHA-256 of its SubjectPublicKeyInfo DER
 * (the same bytes the enclave put in the attestation document's public_key).
 */
export function recipientKeyId(spkiDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(spkiDer).digest());
}
