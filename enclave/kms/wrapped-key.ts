/**
 * Wrapped private keys (format v1, see docs/keyring.md): each secp256k1
 * secret or BIP32 seed is sealed with AES-256-GCM under the keyring key.
 * The AAD binds the blob to its key id, its kind and its keyring, so the
 * untrusted parent cannot swap blobs between keys, kinds or keyrings.
 *
 *   blob = "ESWK" ‖ 0x01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)
 *   AAD  = CBOR(["enclave-signer/wrapped-key", 1, keyringId, keyId, kind])
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { encodeCbor } from '../../common/cbor.js';
import { SignerError } from '../../common/errors.js';
import { KEY_KINDS, type KeyKind } from '../../common/protocol/enclave-api.js';

export type { KeyKind };

export interface WrappedKeyMeta {
  keyringId: string;
  keyId: string;
  kind: KeyKind;
}

const MAGIC = Buffer.from('ESWK', 'latin1');
const VERSION = 1;
const NONCE = 12;
const TAG = 16;
const HEADER = MAGIC.length + 1 + NONCE;

export class WrappedKeyError extends SignerError {}

function aad(m: WrappedKeyMeta): Uint8Array {
  return encodeCbor(['enclave-signer/wrapped-key', VERSION, m.keyringId, m.keyId, m.kind]);
}

function checkSecretLength(kind: KeyKind, n: number): void {
  const ok = kind === 'secp256k1' ? n === 32 : n >= 16 && n <= 64;
  if (!ok) throw new WrappedKeyError('WRAPPED_KEY_BAD_SECRET', `a ${kind} secret cannot be ${n} bytes`);
}

export function wrapKey(keyringKey: Uint8Array, meta: WrappedKeyMeta, secret: Uint8Array): Uint8Array {
  if (keyringKey.length !== 32) throw new WrappedKeyError('WRAPPED_KEY_BAD_KEYRING', 'keyring key must be 32 bytes');
  if (!KEY_KINDS.includes(meta.kind)) throw new WrappedKeyError('WRAPPED_KEY_BAD_KIND', `unknown key kind ${JSON.stringify(meta.kind)}`);
  checkSecretLength(meta.kind, secret.length);
  const nonce = randomBytes(NONCE);
  const c = createCipheriv('aes-256-gcm', keyringKey, nonce, { authTagLength: TAG });
  c.setAAD(aad(meta));
  const body = Buffer.concat([c.update(secret), c.final()]);
  return new Uint8Array(Buffer.concat([MAGIC, Buffer.of(VERSION), nonce, body, c.getAuthTag()]));
}

/** Returns the secret; the caller owns it and must wipe it. */
export function unwrapKey(keyringKey: Uint8Array, meta: WrappedKeyMeta, blob: Uint8Array): Uint8Array {
  if (blob.length < HEADER + TAG + 16 || !MAGIC.equals(Buffer.from(blob.subarray(0, 4)))) {
    throw new WrappedKeyError('WRAPPED_KEY_MALFORMED', `wrapped key for ${meta.keyId} is not an ESWK blob`);
  }
  if (blob[4] !== VERSION) throw new WrappedKeyError('WRAPPED_KEY_MALFORMED', `wrapped key for ${meta.keyId} has unsupported version ${blob[4]}`);
  const nonce = blob.subarray(5, HEADER);
  const tag = blob.subarray(blob.length - TAG);
  const d = createDecipheriv('aes-256-gcm', keyringKey, nonce, { authTagLength: TAG });
  d.setAAD(aad(meta));
  d.setAuthTag(tag);
  const out = Buffer.alloc(blob.length - HEADER - TAG);
  // update() returns plaintext in a Buffer of its own (possibly from Node's
  // shared pool): copy it out and wipe it, on success and failure alike.
  let chunk: Buffer | undefined;
  let tail: Buffer | undefined;
  try {
    chunk = d.update(blob.subarray(HEADER, blob.length - TAG));
    const n = chunk.copy(out);
    tail = d.final();
    if (n !== out.length || tail.length !== 0) throw new Error('length');
  } catch (e) {
    out.fill(0);
    throw new WrappedKeyError(
      'WRAPPED_KEY_INVALID',
      `wrapped key ${meta.keyId} does not authenticate under keyring ${meta.keyringId} (tampered, or stored under another key id, kind or keyring)`,
      { cause: e },
    );
  } finally {
    chunk?.fill(0);
    tail?.fill(0);
  }
  try {
    checkSecretLength(meta.kind, out.length);
  } catch (e) {
    out.fill(0);
    throw e;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}
