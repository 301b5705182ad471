/**
 * `Recipient` handling: verify the attestation document against the
 * configured trust root, expose its PCRs as the `kms:RecipientAttestation:*`
 * condition keys, and wrap results to its `public_key` as a CMS
 * EnvelopedData (common/cms), exactly what KMS returns as
 * `CiphertextForRecipient`.
 *
 * Debug documents are accepted here (`allowDebug: true`): whether all-zero
 * PCRs may unwrap anything is the key policy's decision, and a policy that
 * names real measurements will not match zeros.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { toHex } from '../../common/bytes.js';
import { buildEnvelopedData } from '../cms/build.js';
import { AttestationError } from '../../attestation/errors.js';
import type { TrustRoot } from '../../attestation/types.js';
import { verifyAttestation } from '../../attestation/verify.js';
import { KmsError } from './errors.js';
import { decodeBase64, optEnum, validation, type Input } from './input.js';

export const KEY_ENCRYPTION_ALGORITHMS = ['RSAES_OAEP_SHA_256'] as const;
/** KMS's limit on Recipient.AttestationDocument. */
export const MAX_ATTESTATION_DOCUMENT_BYTES = 262144;
export const MIN_RSA_BITS = 2048;
export const MAX_RSA_BITS = 4096;

export interface VerifiedRecipient {
  /** DER SubjectPublicKeyInfo of the enclave's RSA key. */
  publicKeySpki: Uint8Array;
  /** Lowercased condition key → lowercase hex value. */
  conditionKeys: Map<string, string>;
  debug: boolean;
}

/** Reads and verifies `Recipient` if present. Throws ValidationException for any document or key problem. */
export function readRecipient(input: Input, root: TrustRoot, now: Date): VerifiedRecipient | undefined {
  const r = Object.hasOwn(input, 'Recipient') ? input.Recipient : undefined;
  if (r === undefined || r === null) return undefined;
  if (typeof r !== 'object' || Array.isArray(r)) throw new KmsError('SerializationException', 'Recipient must be an object');
  const rec = r as Input;
  optEnum(rec, 'KeyEncryptionAlgorithm', KEY_ENCRYPTION_ALGORITHMS);
  const docText = rec.AttestationDocument;
  if (docText === undefined || docText === null) throw validation('recipient.attestationDocument', 'Member must not be null');
  if (typeof docText !== 'string') throw new KmsError('SerializationException', 'Recipient.AttestationDocument must be a base64 string');
  const doc = decodeBase64(docText, 'Recipient.AttestationDocument');
  if (doc.length === 0 || doc.length > MAX_ATTESTATION_DOCUMENT_BYTES) {
    throw validation('recipient.attestationDocument', `Member must have length between 1 and ${MAX_ATTESTATION_DOCUMENT_BYTES}`);
  }

  let verified;
  try {
    verified = verifyAttestation(doc, { root, at: now, allowDebug: true });
  } catch (e) {
    if (e instanceof AttestationError) {
      throw new KmsError('ValidationException', `The attestation document in Recipient is not valid (${e.check}: ${e.message})`, {
        cause: e,
        hint: `the emulator trusts the root ${root.name} (${root.fingerprint.slice(0, 16)}…)`,
      });
    }
    throw e;
  }
  const spki = verified.document.publicKey;
  if (spki === null || spki.length === 0) {
    throw new KmsError('ValidationException', 'The attestation document in Recipient has no public_key to encrypt to');
  }
  checkRsaKey(spki);

  const conditionKeys = new Map<string, string>();
  for (const [idx, value] of verified.document.pcrs) conditionKeys.set(`kms:recipientattestation:pcr${idx}`, toHex(value));
  const pcr0 = verified.document.pcrs.get(0);
  if (pcr0 !== undefined) conditionKeys.set('kms:recipientattestation:imagesha384', toHex(pcr0));
  return { publicKeySpki: spki, conditionKeys, debug: verified.debug };
}

function checkRsaKey(spki: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new KmsError('ValidationException', 'The public_key in the attestation document is not a DER SubjectPublicKeyInfo', { cause: e });
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new KmsError('ValidationException', `The public_key in the attestation document is ${String(key.asymmetricKeyType)}; RSAES_OAEP_SHA_256 needs an RSA key`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
    throw new KmsError('ValidationException', `The public_key in the attestation document is RSA-${bits}; KMS accepts ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
  }
  return key;
}

/** CiphertextForRecipient: the plaintext sealed to the verified RSA key. */
export function sealForRecipient(plaintext: Uint8Array, recipient: VerifiedRecipient): Uint8Array {
  return buildEnvelopedData(plaintext, recipient.publicKeySpki);
}
