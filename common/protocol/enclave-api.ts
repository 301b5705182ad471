/**
 * The enclave's API over the bridge: the only requests the parent can make.
 * Both sides import this file; the enclave validates every request with the
 * guards below (the parent is untrusted), the parent validates every result
 * (the enclave may be an impostor until attested).
 *
 * Params and results travel as CBOR maps (see common/cbor-json.ts); JSON-RPC
 * payloads inside `sign` are passed through as JSON-shaped values and
 * validated by the enclave's signers.
 */
import { SignerError } from '../errors.js';
import type { JsonLike } from '../cbor-json.js';

export const ENCLAVE_API_VERSION = 1;

export type KeyKind = 'secp256k1' | 'bip32-seed';
export const KEY_KINDS: readonly KeyKind[] = ['secp256k1', 'bip32-seed'];

/** Operations that produce signatures or reveal derived public data; every one passes the enclave's policy point. */
export type SignOp =
  | 'eth_signTransaction'
  | 'eth_sign'
  | 'personal_sign'
  | 'eth_signTypedData_v4'
  | 'signer_signDigest'
  | 'signer_signSchnorr'
  | 'signer_signPsbt'
  | 'signer_signAuthorization'
  | 'signer_deriveKey';
export const SIGN_OPS: readonly SignOp[] = [
  'eth_signTransaction',
  'eth_sign',
  'personal_sign',
  'eth_signTypedData_v4',
  'signer_signDigest',
  'signer_signSchnorr',
  'signer_signPsbt',
  'signer_signAuthorization',
  'signer_deriveKey',
];

/**
 * The `request` of `sign` for each op (JSON-shaped; the enclave's signers
 * validate every field). `path` selects a BIP32 child for ops on a
 * `bip32-seed` key and must be absent for `secp256k1` keys.
 *
 *   eth_signTransaction      { tx: <transaction object as in eth_signTransaction>, path? }   → { raw, hash, ... }
 *   eth_sign                 { data: hex, path? }                                            → { signature, ... }
 *   personal_sign            { message: hex | utf8 string, path? }                           → { signature, ... }
 *   eth_signTypedData_v4     { typedData: object, path? }                                    → { signature, ... }
 *   signer_signDigest        { digest: hex32, path? }                                        → { r, s, yParity, signature, ... }
 *   signer_signSchnorr       { message: hex32, path? }                                       → { signature, publicKey }
 *   signer_signAuthorization { authorization: { chainId, address, nonce }, path? }           → { r, s, yParity, ... }
 *   signer_signPsbt          { psbt: base64 }                  (bip32-seed only)             → { psbt, signedInputs, ... }
 *   signer_deriveKey         { path }                          (bip32-seed only)             → { publicKey, xpub, ethereumAddress, ... }
 */
export type SignRequest = Record<string, JsonLike>;

/** What the parent stores about a key: public data and the wrapped blob. */
export interface KeyRecord {
  keyId: string;
  kind: KeyKind;
  keyringId: string;
  /** Compressed secp256k1 public key (hex, 0x-less) of the key, or of the BIP32 master for seeds. */
  publicKey: string;
  /** Checksummed Ethereum address for secp256k1 keys. */
  address?: string;
  /** Master xpub for BIP32 seeds. */
  xpub?: string;
  /** BIP32 master fingerprint (8 hex chars) for seeds. */
  fingerprint?: string;
  /** AES-256-GCM blob under the keyring (docs/keyring.md). */
  blob: Uint8Array;
}

/** A keyring's public record (docs/keyring.md): the parent stores it, only an attested enclave can open it. */
export interface KeyringRecordWire {
  format: 'enclave-signer/keyring';
  version: 1;
  keyringId: string;
  /** The CMK (ARN) that wraps the data key. */
  kmsKeyId: string;
  /** KMS CiphertextBlob of the data key (encryption context {"enclave-signer:keyring": keyringId}). */
  dataKeyCiphertext: Uint8Array;
  createdAt: string;
}

export interface EnclaveMethods {
  /** A fresh attestation document binding the caller's nonce. */
  attest: { params: { nonce: Uint8Array; userData?: Uint8Array }; result: { document: Uint8Array } };
  status: {
    params: Record<string, never>;
    result: { version: string; nsm: 'hardware' | 'simulated'; keyringId: string | null; workers: number; credentialsExpire: string | null };
  };
  /** AWS credentials for KMS (instance role), handed over by the parent and refreshed before expiry. */
  'credentials.set': {
    params: { accessKeyId: string; secretAccessKey: string; sessionToken?: string; expiration?: string };
    result: { ok: true };
  };
  /** First boot: a new keyring under the CMK. The record is public; the parent stores it. */
  'keyring.create': { params: { kmsKeyId: string }; result: { record: KeyringRecordWire } };
  /** Every boot: unwrap the keyring through an attested KMS Decrypt. */
  'keyring.unlock': { params: { record: KeyringRecordWire }; result: { keyringId: string } };
  /**
   * The public record of the keyring this enclave holds, or null. Lets a parent
   * that lost the answer to `keyring.create` (connection dropped, store failed)
   * store the record instead of asking for a second keyring.
   */
  'keyring.current': { params: Record<string, never>; result: { record: KeyringRecordWire | null } };
  /** A new key from NSM entropy, returned wrapped. */
  'key.create': { params: { kind: KeyKind }; result: Omit<KeyRecord, 'blob'> & { blob: Uint8Array } };
  /** Every signing request: the op, its JSON-RPC-shaped request, and the key's stored record. */
  sign: { params: { op: SignOp; key: KeyRecord; request: JsonLike }; result: JsonLike };
}

export type EnclaveMethod = keyof EnclaveMethods;
export const ENCLAVE_METHODS: readonly EnclaveMethod[] = ['attest', 'status', 'credentials.set', 'keyring.create', 'keyring.unlock', 'keyring.current', 'key.create', 'sign'];

// ------------------------------------------------------------------ guards

export class ProtocolError extends SignerError {}

function fail(field: string, msg: string): never {
  throw new ProtocolError('INVALID_PARAMS', `${field}: ${msg}`);
}

export function asRecord(v: unknown, field: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) fail(field, 'must be an object');
  return v as Record<string, unknown>;
}

export function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], field: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(field, `unknown field ${JSON.stringify(k)}`);
}

export function asString(v: unknown, field: string, max = 256): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) fail(field, `must be a non-empty string of at most ${max} characters`);
  return v;
}

export function asBytes(v: unknown, field: string, min: number, max: number): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(field, 'must be bytes');
  if (v.length < min || v.length > max) fail(field, `must be ${min}..${max} bytes, got ${v.length}`);
  return v;
}

export function asKind(v: unknown, field = 'kind'): KeyKind {
  if (!KEY_KINDS.includes(v as KeyKind)) fail(field, `must be one of ${KEY_KINDS.join(', ')}`);
  return v as KeyKind;
}

export function asSignOp(v: unknown, field = 'op'): SignOp {
  if (!SIGN_OPS.includes(v as SignOp)) fail(field, `unknown operation ${JSON.stringify(v)}`);
  return v as SignOp;
}

export function asKeyringRecord(v: unknown, field = 'record'): KeyringRecordWire {
  const o = asRecord(v, field);
  onlyKeys(o, ['format', 'version', 'keyringId', 'kmsKeyId', 'dataKeyCiphertext', 'createdAt'], field);
  if (o.format !== 'enclave-signer/keyring') fail(`${field}.format`, 'must be "enclave-signer/keyring"');
  if (o.version !== 1) fail(`${field}.version`, 'must be 1');
  return {
    format: 'enclave-signer/keyring',
    version: 1,
    keyringId: asString(o.keyringId, `${field}.keyringId`, 64),
    kmsKeyId: asString(o.kmsKeyId, `${field}.kmsKeyId`, 2048),
    dataKeyCiphertext: asBytes(o.dataKeyCiphertext, `${field}.dataKeyCiphertext`, 1, 6144),
    createdAt: asString(o.createdAt, `${field}.createdAt`, 64),
  };
}

export function asKeyRecord(v: unknown, field = 'key'): KeyRecord {
  const o = asRecord(v, field);
  onlyKeys(o, ['keyId', 'kind', 'keyringId', 'publicKey', 'address', 'xpub', 'fingerprint', 'blob'], field);
  const r: KeyRecord = {
    keyId: asString(o.keyId, `${field}.keyId`, 128),
    kind: asKind(o.kind, `${field}.kind`),
    keyringId: asString(o.keyringId, `${field}.keyringId`, 64),
    publicKey: asString(o.publicKey, `${field}.publicKey`, 132),
    blob: asBytes(o.blob, `${field}.blob`, 1, 1024),
  };
  if (o.address !== undefined) r.address = asString(o.address, `${field}.address`, 42);
  if (o.xpub !== undefined) r.xpub = asString(o.xpub, `${field}.xpub`, 128);
  if (o.fingerprint !== undefined) r.fingerprint = asString(o.fingerprint, `${field}.fingerprint`, 8);
  return r;
}
