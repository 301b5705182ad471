/**
 * The JSON-RPC methods the signing socket serves, and nothing else: every
 * other name is "method not found" and never reaches the enclave. A signing
 * method reads its params into the enclave call (common/rpc/sign-call.ts has
 * the table of methods, ops and request shapes), looks the key up in the
 * keystore, and forwards one enclave call through the gate; the enclave
 * decides and signs. A request signed by a principal is forwarded as the
 * client sent it, and the enclave reads it itself (docs/principals.md).
 */
import { parseAttestation } from '../attestation/verify.js';
import { BridgeRemoteError } from '../common/bridge/index.js';
import { auditRecordsOf } from './boot.js';
import { AUDIT_METHODS, persistRefusal, recordReleased } from './audit-methods.js';
import type { JsonLike } from '../common/cbor-json.js';
import { asKeyRecord, asRecord, asSignerFacts, type KeyRecord, type SignerFacts, type SignOp } from '../common/protocol/enclave-api.js';
import { checkKind, readSignCall, type SignMethod } from '../common/rpc/sign-call.js';
import { ParentError, invalidParam } from './errors.js';
import { jsonSafe } from './json-safe.js';
import { reasonOf, type Gate } from './gate.js';
import { KeystoreError, type Keystore, type StoredKey } from './keystore.js';
import { FLEET_ATTEMPTS, isStateConflict } from './sealed-state.js';
import { named, positional, readAddress, readHexBytes, readKeyId, readKeyKind, readLabel } from '../common/rpc/params.js';
import type { Cancellation } from '../common/cancellation.js';

export interface MethodContext {
  gate: Gate;
  keystore: Keystore;
  keystoreReadonly: boolean;
  /** The configured chain id (--chain-id), checked by eth_signTransaction (chain-id.ts); none: every transaction names its own. */
  chainId?: number;
  /** Aborted when the client disconnects. */
  cancellation: Cancellation;
  /** Told the stored audit record of a released result (inline receipts: docs/json-rpc.md). */
  released?: (record: Uint8Array) => void;
  /** The request's `signer_auth` member, when the client signed it as a principal (docs/principals.md). */
  auth?: unknown;
}

export type Method = (params: unknown, ctx: MethodContext) => Promise<unknown>;

// ------------------------------------------------------------ keys

/** What clients see of a key: public data only, never the blob. */
export function publicKeyInfo(k: StoredKey): Record<string, unknown> {
  const out: Record<string, unknown> = { keyId: k.keyId, kind: k.kind, keyringId: k.keyringId, publicKey: k.publicKey };
  if (k.address !== undefined) out.address = k.address;
  if (k.xpub !== undefined) out.xpub = k.xpub;
  if (k.fingerprint !== undefined) out.fingerprint = k.fingerprint;
  out.label = k.label;
  out.createdAt = k.createdAt;
  return out;
}

/** The stored key as the enclave API's KeyRecord (exactly its fields). */
function keyRecordOf(k: StoredKey): KeyRecord {
  const r: KeyRecord = { keyId: k.keyId, kind: k.kind, keyringId: k.keyringId, publicKey: k.publicKey, blob: k.blob };
  if (k.address !== undefined) r.address = k.address;
  if (k.xpub !== undefined) r.xpub = k.xpub;
  if (k.fingerprint !== undefined) r.fingerprint = k.fingerprint;
  return r;
}

async function keyById(ctx: MethodContext, v: unknown, field = 'keyId'): Promise<StoredKey> {
  const id = readKeyId(v, field);
  const k = await ctx.keystore.getKey(id);
  if (!k) throw invalidParam(field, 'no key with this id in the keystore', 'signer_listKeys lists the keys');
  return k;
}

async function keyByAddress(ctx: MethodContext, v: unknown, field: string): Promise<StoredKey> {
  const address = readAddress(v, field);
  const k = await ctx.keystore.getKeyByAddress(address);
  if (!k || k.kind !== 'secp256k1') throw invalidParam(field, 'no secp256k1 key with this address in the keystore', 'eth_accounts lists the addresses');
  return k;
}

// ------------------------------------------------------------ results

function badResponse(what: string): ParentError {
  return new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `the enclave's answer has no valid ${what}`);
}

function hexField(res: Record<string, unknown>, name: string, bytes?: number): string {
  const v = res[name];
  const re = bytes === undefined ? /^0x(?:[0-9a-fA-F]{2})+$/ : new RegExp(`^0x[0-9a-fA-F]{${bytes * 2}}$`);
  if (typeof v !== 'string' || !re.test(v)) throw badResponse(name);
  return v;
}

/**
 * The enclave reports which key signed, from the unwrapped secret. Refuse an
 * answer whose signer is not the key the client asked for: the keystore row
 * was tampered with (e.g. the address cells of two keys swapped), and the
 * signature must not reach the client as if it were the requested key's.
 */
function checkSigner(key: StoredKey, signer: SignerFacts): void {
  const mismatch = (what: string) =>
    new ParentError('PARENT_SIGNER_MISMATCH', `refused: the enclave signed with a key whose ${what} is not the requested key's; the keystore record of ${key.keyId} does not match its wrapped key (nothing was returned)`, {
      hint: 'the keystore was modified outside the parent: restore it from a backup and check who can write it',
    });
  if (signer.keyId !== key.keyId) throw mismatch('id');
  if (signer.kind !== key.kind) throw mismatch('kind');
  if (signer.keyringId !== key.keyringId) throw mismatch('keyring');
  if (signer.publicKey.toLowerCase() !== key.publicKey.toLowerCase()) throw mismatch('public key');
  if (key.kind === 'secp256k1' && (key.address === undefined || signer.address?.toLowerCase() !== key.address.toLowerCase())) throw mismatch('address');
  if (key.kind === 'bip32-seed' && (signer.xpub !== key.xpub || signer.fingerprint !== key.fingerprint)) throw mismatch('xpub or fingerprint');
}

/**
 * The enclave call for one request. A request the client signed goes as { key, auth }: the
 * JSON-RPC method and params exactly as received and the signer_auth member, and the enclave
 * reads the call from those params itself (common/rpc/sign-call.ts) — what this parent made of
 * them is not sent, so it cannot matter.
 */
function signParams(ctx: MethodContext, method: string, params: unknown, op: SignOp, key: StoredKey, request: Record<string, unknown>): Record<string, unknown> {
  if (ctx.auth === undefined) return { op, key: keyRecordOf(key), request };
  return { key: keyRecordOf(key), auth: { method, params: params ?? null, signerAuth: ctx.auth } };
}

async function sign(ctx: MethodContext, key: StoredKey, params: Record<string, unknown>): Promise<Record<string, unknown>> {
  const unlocked = ctx.gate.keyringId();
  if (unlocked !== undefined && key.keyringId !== unlocked) {
    throw new ParentError('PARENT_KEYRING_LOCKED', `key ${key.keyId} belongs to keyring ${key.keyringId}, but keyring ${unlocked} is unlocked`);
  }
  // Fleet scope: another instance may count first; a request the client did not sign is then
  // decided again on the new head. A signed one is not (its id is spent: the client re-signs).
  return ctx.gate.sealed.retry(ctx.auth === undefined ? FLEET_ATTEMPTS : 1, () => signOnce(ctx, key, params));
}

async function signOnce(ctx: MethodContext, key: StoredKey, params: Record<string, unknown>): Promise<Record<string, unknown>> {
  let res;
  try {
    const state = await ctx.gate.sealed.stateParam(key.keyringId);
    res = await ctx.gate.call('sign', { ...params, ...state } as Record<string, JsonLike>, { needKeyring: true, cancellation: ctx.cancellation });
  } catch (e) {
    // A recorded refusal is stored before it is relayed (its record is part of the chain).
    if (e instanceof BridgeRemoteError) await persistRefusal(ctx.gate.audit, e, ctx.gate.sealed, key.keyringId);
    throw e;
  }
  if (res === null || typeof res !== 'object' || Array.isArray(res) || res instanceof Uint8Array) throw badResponse('result object');
  // Nothing released before it is recorded: the record (and every earlier seq) is durable before the result leaves.
  const records = auditRecordsOf(res as Record<string, unknown>, 'sign');
  await ctx.gate.audit.persist(records);
  const { result, signer } = res as Record<string, JsonLike>;
  let facts: SignerFacts;
  try {
    facts = asSignerFacts(signer);
  } catch (e) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `the enclave's answer has no valid signer: ${(e as Error).message}`, { cause: e });
  }
  checkSigner(key, facts);
  // The enclave's new counters/approvals: stored before the signature leaves (no store, no signature).
  await ctx.gate.sealed.store(key.keyringId, res as Record<string, unknown>);
  if (result === null || typeof result !== 'object' || Array.isArray(result) || result instanceof Uint8Array) throw badResponse('result object');
  const out = jsonSafe(result) as Record<string, unknown>;
  recordReleased(ctx.gate.audit, records);
  for (const r of records) ctx.released?.(r);
  return out;
}

// ------------------------------------------------------------ eth_* methods

const ethAccounts: Method = async (params, ctx) => {
  positional(params, 0, 0, '(eth_accounts takes no params)');
  return (await ctx.keystore
    .listKeys())
    .filter((k) => k.kind === 'secp256k1' && k.address !== undefined)
    .map((k) => k.address);
};

/**
 * A signing method: its params read into the enclave call (common/rpc/sign-call.ts, the same
 * reader the enclave runs on signed requests), the key found in the keystore, one enclave call.
 */
function signMethod(method: SignMethod, answer: (res: Record<string, unknown>) => unknown = (res) => res): Method {
  return async (params, ctx) => {
    const call = readSignCall(method, params, ctx.chainId === undefined ? {} : { chainId: ctx.chainId });
    const key = 'keyId' in call.key ? await keyById(ctx, call.key.keyId, call.key.field) : await keyByAddress(ctx, call.key.address, call.key.field);
    checkKind(call, key.kind, method);
    return answer(await sign(ctx, key, signParams(ctx, method, params, call.op, key, call.request(key.kind))));
  };
}

const signature = (res: Record<string, unknown>) => hexField(res, 'signature', 65);

// ------------------------------------------------------------ signer_* methods

const createKey: Method = async (params, ctx) => {
  // requestId is read by the wrapper around this method (keystore-request-id.ts, installed in main.ts).
  const p = named(params, ['kind', 'label', 'requestId']);
  const kind = readKeyKind(p.kind);
  const label = p.label === undefined ? undefined : readLabel(p.label);
  if (ctx.keystoreReadonly) {
    throw new KeystoreError('KEYSTORE_UNAVAILABLE', 'the keystore is open read-only: keys cannot be created here', { hint: 'create keys on a parent started without --keystore-readonly' });
  }
  // No client signal: once the enclave made the key, it is stored even if the client left.
  // A signed request goes as the client sent it: the enclave reads the kind from the signed params.
  const call = ctx.auth === undefined ? { kind } : { auth: { method: 'signer_createKey', params: (params ?? null) as JsonLike, signerAuth: ctx.auth as JsonLike } };
  const ringId = ctx.gate.keyringId();
  let res;
  try {
    const state = ringId === undefined ? {} : await ctx.gate.sealed.stateParam(ringId);
    res = await ctx.gate.call('key.create', { ...call, ...state }, { needKeyring: true });
  } catch (e) {
    // A refusal (denied, or pending approvals) is a decision on the chain: stored before it is relayed.
    if (e instanceof BridgeRemoteError) await persistRefusal(ctx.gate.audit, e, ctx.gate.sealed, ringId);
    if (isStateConflict(e)) ctx.gate.sealed.forget();
    throw e;
  }
  let rec: KeyRecord;
  let records: Uint8Array[];
  let sealed: Record<string, unknown> = {};
  try {
    const { audit: _, sealed: s, sealedLineage: l, ...key } = asRecord(res, 'key.create result');
    sealed = { sealed: s, sealedLineage: l };
    records = auditRecordsOf(asRecord(res, 'key.create result'), 'key.create');
    rec = asKeyRecord(key, 'key.create result');
  } catch (e) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', (e as Error).message, { cause: e });
  }
  const expectRing = ctx.gate.keyringId();
  if (rec.kind !== kind) throw badResponse(`kind (asked for ${kind}, got ${rec.kind})`);
  if (expectRing !== undefined && rec.keyringId !== expectRing) throw badResponse('keyringId (not the unlocked keyring)');
  if (kind === 'secp256k1' && (rec.address === undefined || !/^0x[0-9a-fA-F]{40}$/.test(rec.address))) throw badResponse('address');
  if (kind === 'bip32-seed' && (rec.xpub === undefined || rec.fingerprint === undefined)) throw badResponse('xpub and fingerprint');
  if (await ctx.keystore.getKey(rec.keyId)) throw badResponse(`keyId (${rec.keyId} already exists)`);
  // A creation that used an approval or a window changed the enclave's state: stored before the key is, so a
  // lost fleet swap (the approval counted elsewhere) never leaves a key made on a spent approval.
  await ctx.gate.sealed.store(rec.keyringId, sealed);
  // The key and its audit record in one transaction: both are stored, or neither (and the client gets an error).
  const stored = await ctx.gate.audit.persist(records, (recs) => ctx.keystore.putKey(rec, label, recs));
  // The persister resolves with the change's result; without one the key was not stored, so nothing is reported as made.
  if (stored === undefined) throw new ParentError('PARENT_AUDIT_UNAVAILABLE', `key ${rec.keyId} was not stored with its audit record, so it was not made; retry`);
  // The record names the key's public data (docs/audit.md): a receipt for it proves the address.
  recordReleased(ctx.gate.audit, records);
  for (const r of records) ctx.released?.(r);
  return publicKeyInfo(stored);
};

const listKeys: Method = async (params, ctx) => {
  const p = named(params, ['kind']);
  const kind = p.kind === undefined ? undefined : readKeyKind(p.kind);
  return (await ctx.keystore.listKeys())
    .filter((k) => kind === undefined || k.kind === kind)
    .map(publicKeyInfo);
};

const getKey: Method = async (params, ctx) => publicKeyInfo(await keyById(ctx, named(params, ['keyId']).keyId));

const attest: Method = async (params, ctx) => {
  const p = named(params, ['nonce', 'userData']);
  if (p.nonce === undefined) throw invalidParam('nonce', 'required: 16..512 bytes of your own randomness, as 0x hex');
  const nonce = Buffer.from(readHexBytes(p.nonce, 'nonce', { min: 16, max: 512 }).slice(2), 'hex');
  if (p.userData !== undefined) {
    throw invalidParam('userData', 'the enclave owns user_data: it carries the audit key binding (docs/audit.md); choose only the nonce');
  }
  const res = await ctx.gate.call('attest', { nonce }, { needKeyring: false, cancellation: ctx.cancellation });
  const document = (res as Record<string, unknown> | null)?.document;
  if (!(document instanceof Uint8Array)) throw badResponse('document');
  const out: Record<string, unknown> = { document: Buffer.from(document).toString('base64') };
  // A convenience only: the caller must verify the document itself (this host is not trusted).
  try {
    const a = ctx.gate.verifier(document, nonce);
    out.verifiedByParent = { ok: true, ...a };
  } catch (e) {
    out.verifiedByParent = { ok: false, error: reasonOf(e).reason };
    try {
      const d = parseAttestation(document).doc;
      out.moduleId = d.moduleId;
    } catch {
      // unparseable: the error above says so
    }
  }
  return out;
};

const status: Method = async (params, ctx) => {
  named(params, []);
  const s = ctx.gate.snapshot();
  let enclave: unknown = null;
  if (s.gate.state === 'ready') {
    try {
      const r = await ctx.gate.call('status', {}, { needKeyring: false, cancellation: ctx.cancellation, deadlineMs: 5_000 });
      enclave = jsonSafe(asRecord(r, 'status result') as JsonLike);
    } catch (e) {
      enclave = { error: reasonOf(e).reason };
    }
  }
  let keys: number | null = null;
  try {
    keys = await ctx.keystore.countKeys();
  } catch {
    // reported as null: the keystore's trouble shows in the request that needs it
  }
  return {
    ready: s.ready,
    gate: s.gate,
    keyring: s.keyring,
    attestation: s.attestation ?? null,
    attestationAgeSeconds: s.attestationAgeSeconds ?? null,
    lastFailure: s.lastFailure ?? null,
    reconnects: s.reconnects,
    keys,
    // The enclave's policy (name, SHA-256, source), from the enclave itself: what signed requests address (docs/principals.md).
    policy: policyOf(enclave),
    enclave,
  };
};

function policyOf(enclave: unknown): unknown {
  const p = (enclave as { policy?: unknown } | null)?.policy;
  return p !== null && typeof p === 'object' ? p : null;
}

// ------------------------------------------------------------ approvals (docs/principals.md)
// Pass-throughs: the enclave keeps the approvals, verifies every approver signature with the
// keys of its policy, and decodes the intent it shows. The parent only checks shapes.

const APPROVAL_ID = /^[A-Za-z0-9_-]{1,128}$/;

function approvalId(v: unknown): string {
  if (typeof v !== 'string' || !APPROVAL_ID.test(v)) throw invalidParam('approvalId', 'expected the approvalId of a -32010 answer');
  return v;
}

/**
 * signer_openSession (docs/principals.md "Sessions"): forwarded as the client sent it — the
 * enclave verifies the principal's signature and keeps the session key; this parent sees the
 * public halves only. The opening's audit record is stored before the answer is released.
 */
const openSession: Method = async (params, ctx) => {
  const auth = { method: 'signer_openSession', params: (params ?? null) as JsonLike, ...(ctx.auth !== undefined ? { signerAuth: ctx.auth as JsonLike } : {}) };
  let res;
  try {
    res = asRecord(await ctx.gate.call('session.open', { auth }, { needKeyring: false, cancellation: ctx.cancellation }), 'session.open result');
  } catch (e) {
    if (e instanceof BridgeRemoteError) await persistRefusal(ctx.gate.audit, e, ctx.gate.sealed, ctx.gate.keyringId());
    throw e;
  }
  await ctx.gate.audit.persist(auditRecordsOf(res, 'session.open'));
  const { audit: _audit, ...answer } = res;
  return jsonSafe(answer as JsonLike);
};

/** Fleet scope: the shared record for the enclave, when it may not hold the store's head. */
async function fleetState(ctx: MethodContext): Promise<{ state?: JsonLike }> {
  const ringId = ctx.gate.keyringId();
  return ringId === undefined ? {} : ctx.gate.sealed.stateParam(ringId);
}

const getApproval: Method = async (params, ctx) => {
  const p = named(params, ['approvalId']);
  return jsonSafe((await ctx.gate.call('approval.get', { approvalId: approvalId(p.approvalId), ...(await fleetState(ctx)) }, { needKeyring: false, cancellation: ctx.cancellation })) as JsonLike);
};

const listApprovals: Method = async (params, ctx) => {
  named(params, []);
  const r = asRecord(await ctx.gate.call('approval.list', await fleetState(ctx), { needKeyring: false, cancellation: ctx.cancellation }), 'approval.list result');
  return jsonSafe((r.approvals ?? []) as JsonLike);
};

function decideApproval(method: 'approval.approve' | 'approval.reject'): Method {
  return async (params, ctx) => {
    const p = named(params, ['approvalId', 'approver', 'signature', 'webauthn']);
    const str = (v: unknown, f: string, max: number) => {
      if (typeof v !== 'string' || v.length === 0 || v.length > max) throw invalidParam(f, `expected a string of 1..${max} characters`);
      return v;
    };
    const out: Record<string, unknown> = { approvalId: approvalId(p.approvalId), approver: str(p.approver, 'approver', 64), signature: str(p.signature, 'signature', 512) };
    if (p.webauthn !== undefined) {
      const w = named(p.webauthn, ['authenticatorData', 'clientDataJSON']);
      out.webauthn = { authenticatorData: str(w.authenticatorData, 'webauthn.authenticatorData', 4096), clientDataJSON: str(w.clientDataJSON, 'webauthn.clientDataJSON', 4096) };
    }
    // Fleet scope: a vote that lost the swap was not stored; the same signed vote is presented
    // again on the fleet's new head (it is the approver's signature over id, decision and digest:
    // counting it once more changes nothing).
    return ctx.gate.sealed.retry(FLEET_ATTEMPTS, () => decideOnce(ctx, method, out));
  };
}

async function decideOnce(ctx: MethodContext, method: 'approval.approve' | 'approval.reject', out: Record<string, unknown>): Promise<unknown> {
  const res = asRecord(await ctx.gate.call(method, { ...out, ...(await fleetState(ctx)) }, { needKeyring: false, cancellation: ctx.cancellation }), `${method} result`);
  // The approval's audit record is stored before the answer is released, like a signature's.
  await ctx.gate.audit.persist(auditRecordsOf(res, method));
  const { sealed, sealedLineage, audit: _audit, ...view } = res;
  const keyringId = ctx.gate.keyringId();
  if (sealed !== undefined) {
    if (keyringId === undefined) throw new ParentError('PARENT_KEYRING_LOCKED', 'no keyring is unlocked: the approval state cannot be stored');
    await ctx.gate.sealed.store(keyringId, { sealed, sealedLineage });
  }
  return jsonSafe(view as JsonLike);
}

export const METHODS: ReadonlyMap<string, Method> = new Map<string, Method>([
  ['eth_accounts', ethAccounts],
  ['eth_signTransaction', signMethod('eth_signTransaction', (res) => hexField(res, 'raw'))],
  ['eth_sign', signMethod('eth_sign', signature)],
  ['personal_sign', signMethod('personal_sign', signature)],
  ['eth_signTypedData_v4', signMethod('eth_signTypedData_v4', signature)],
  ['signer_createKey', createKey],
  ['signer_listKeys', listKeys],
  ['signer_getKey', getKey],
  ['signer_deriveKey', signMethod('signer_deriveKey')],
  ['signer_signDigest', signMethod('signer_signDigest')],
  ['signer_signSchnorr', signMethod('signer_signSchnorr')],
  ['signer_signPsbt', signMethod('signer_signPsbt')],
  ['signer_signAuthorization', signMethod('signer_signAuthorization')],
  ['signer_attest', attest],
  ['signer_status', status],
  ...AUDIT_METHODS,
  ['signer_getApproval', getApproval],
  ['signer_listApprovals', listApprovals],
  ['signer_approve', decideApproval('approval.approve')],
  ['signer_reject', decideApproval('approval.reject')],
  ['signer_openSession', openSession],
]);
