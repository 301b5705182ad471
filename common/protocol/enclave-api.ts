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

/**
 * What the enclave learnt about the key that signed, from the unwrapped secret
 * itself (never from the parent's record): the id, kind and keyring bound by
 * the blob's AAD, and the public data derived inside. The enclave's policy
 * sees only this; the parent refuses an answer whose facts are not the
 * requested key's.
 */
export interface SignerFacts {
  keyId: string;
  kind: KeyKind;
  keyringId: string;
  /** Compressed public key (hex, 0x-less): the key's, or the BIP32 master's for seeds. */
  publicKey: string;
  /** secp256k1: the key's checksummed address. */
  address?: string;
  /** bip32-seed: master xpub and fingerprint. */
  xpub?: string;
  fingerprint?: string;
  /** bip32-seed ops on a child (`path`): the child that signs (or is derived). */
  child?: { path: string; publicKey: string; address: string };
}

/** The result of `sign`: the op's own result and the facts of the key that produced it. */
export interface SignResultWire {
  result: JsonLike;
  signer: SignerFacts;
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
  'key.create': { params: { kind: KeyKind } | { auth: { method: 'signer_createKey'; params: JsonLike; signerAuth: JsonLike } }; result: Omit<KeyRecord, 'blob'> & { blob: Uint8Array } };
  /** Every signing request: the op, its JSON-RPC-shaped request, and the key's stored record. */
  /** Unsigned form `{ op, key, request }`, or for a principal's signed request `{ key, auth: { method, params, signerAuth } }` (docs/enclave.md). */
  sign: { params: { op: SignOp; key: KeyRecord; request: JsonLike } | { key: KeyRecord; auth: { method: string; params: JsonLike; signerAuth: JsonLike } }; result: SignResultWire };
  /**
   * The audit chain (docs/audit.md). Every key.create / keyring.* / sign answer
   * also carries `audit`: the signed record(s) of that decision, which the
   * parent persists before it releases anything; a recorded refusal carries its
   * record in the bridge error's data.audit.
   */
  'audit.open': { params: { head?: Uint8Array }; result: { records: Uint8Array[]; auditKey: Uint8Array; opened: boolean; headSeq: number } };
  'audit.records': { params: { fromSeq: number; limit?: number }; result: { records: Uint8Array[]; headSeq: number } };
  'audit.checkpoint': { params: { nonce?: Uint8Array }; result: { checkpoint: Uint8Array; attestation: Uint8Array } };
  /** Durable limits: the parent's latest sealed record (or null); answers the record to store now. */
  'state.restore': { params: { record: JsonLike | null }; result: { record: JsonLike; unclean: boolean; restored: boolean } };
  /** Quorum approvals (docs/principals.md): the view, with the request its digest covers and the intent decoded in the enclave. */
  'approval.get': { params: { approvalId: string }; result: JsonLike };
  'approval.list': { params: Record<string, never>; result: { approvals: JsonLike[] } };
  /** An approver's signature over the approval message; the enclave verifies it with the key from its policy. */
  'approval.approve': { params: { approvalId: string; approver: string; signature: string; webauthn?: { authenticatorData: string; clientDataJSON: string } }; result: JsonLike };
  'approval.reject': { params: { approvalId: string; approver: string; signature: string; webauthn?: { authenticatorData: string; clientDataJSON: string } }; result: JsonLike };
  /**
   * A principal's signed signer_openSession, as the client sent it (docs/principals.md "Sessions").
   * The answer is the session's public half and the opening's audit record; the key never leaves.
   */
  'session.open': {
    params: { auth: { method: 'signer_openSession'; params: JsonLike; signerAuth?: JsonLike } };
    result: { session: string; enclavePublicKey: string; expiresAt: number; principal: string; audit: Uint8Array[] };
  };
}

export type EnclaveMethod = keyof EnclaveMethods;
export const ENCLAVE_METHODS: readonly EnclaveMethod[] = ['attest', 'status', 'credentials.set', 'keyring.create', 'keyring.unlock', 'keyring.current', 'key.create', 'sign', 'audit.open', 'audit.records', 'audit.checkpoint', 'approval.get', 'approval.list', 'approval.approve', 'approval.reject', 'state.restore', 'session.open'];

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

/**
 * Key ids are what `key.create` makes: a lowercase canonical UUID v4 (crypto
 * randomUUID). Nothing else is accepted anywhere a key id enters, so an id can
 * never carry separators, quotes or line breaks into a log or a message.
 */
export const KEY_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export function isKeyId(v: unknown): v is string {
  return typeof v === 'string' && KEY_ID_PATTERN.test(v);
}

export function asKeyId(v: unknown, field = 'keyId'): string {
  if (!isKeyId(v)) fail(field, 'must be a key id (a lowercase UUID as made by key.create)');
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
    keyId: asKeyId(o.keyId, `${field}.keyId`),
    kind: asKind(o.kind, `${field}.kind`),
    keyringId: asKeyId(o.keyringId, `${field}.keyringId`),
    publicKey: asString(o.publicKey, `${field}.publicKey`, 132),
    blob: asBytes(o.blob, `${field}.blob`, 1, 1024),
  };
  if (o.address !== undefined) r.address = asString(o.address, `${field}.address`, 42);
  if (o.xpub !== undefined) r.xpub = asString(o.xpub, `${field}.xpub`, 128);
  if (o.fingerprint !== undefined) r.fingerprint = asString(o.fingerprint, `${field}.fingerprint`, 8);
  return r;
}

const HEX_PUB = /^(?:02|03)[0-9a-f]{64}$/;
const HEX_PUB_0X = /^0x(?:02|03)[0-9a-f]{64}$/;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** The parent's check of the `signer` facts of a `sign` result (shapes only; it compares values itself). */
export function asSignerFacts(v: unknown, field = 'signer'): SignerFacts {
  const o = asRecord(v, field);
  onlyKeys(o, ['keyId', 'kind', 'keyringId', 'publicKey', 'address', 'xpub', 'fingerprint', 'child'], field);
  const publicKey = asString(o.publicKey, `${field}.publicKey`, 66);
  if (!HEX_PUB.test(publicKey)) fail(`${field}.publicKey`, 'must be a compressed public key in lowercase hex');
  const r: SignerFacts = { keyId: asKeyId(o.keyId, `${field}.keyId`), kind: asKind(o.kind, `${field}.kind`), keyringId: asKeyId(o.keyringId, `${field}.keyringId`), publicKey };
  if (o.address !== undefined) {
    r.address = asString(o.address, `${field}.address`, 42);
    if (!ADDRESS.test(r.address)) fail(`${field}.address`, 'must be a 20-byte 0x address');
  }
  if (o.xpub !== undefined) r.xpub = asString(o.xpub, `${field}.xpub`, 128);
  if (o.fingerprint !== undefined) r.fingerprint = asString(o.fingerprint, `${field}.fingerprint`, 8);
  if (o.child !== undefined) {
    const c = asRecord(o.child, `${field}.child`);
    onlyKeys(c, ['path', 'publicKey', 'address'], `${field}.child`);
    const child = { path: asString(c.path, `${field}.child.path`, 256), publicKey: asString(c.publicKey, `${field}.child.publicKey`, 68), address: asString(c.address, `${field}.child.address`, 42) };
    if (!HEX_PUB_0X.test(child.publicKey)) fail(`${field}.child.publicKey`, 'must be a 0x compressed public key');
    if (!ADDRESS.test(child.address)) fail(`${field}.child.address`, 'must be a 20-byte 0x address');
    r.child = child;
  }
  return r;
}
