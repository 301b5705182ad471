/**
 * The enclave's `key.create` method: a new key, generated here from the NSM's randomness mixed
 * with the OS CSPRNG, wrapped under the adopted keyring, and decided by the policy first
 * (docs/policy.md). Only its public half and its blob leave the enclave.
 */
import { createHash, randomFillSync, randomUUID } from 'node:crypto';
import { requestDigest } from '../common/audit/digest.js';
import { keyPublicDigest } from '../common/audit/result.js';
import { toHex, wipe } from '../common/bytes.js';
import { SignerError } from '../common/errors.js';
import { asKind, onlyKeys, type KeyKind } from '../common/protocol/enclave-api.js';
import { named, readKeyKind } from '../common/rpc/params.js';
import type { ApprovalRecord } from './auth/approvals.js';
import { withAuditRecord } from './audit/trail.js';
import { errorRule, staleUnderRequest, type Decisions } from './decisions.js';
import type { RequestContext } from './method.js';
import type { Keyring } from './kms/keyring.js';
import type { Nsm } from './nsm/nsm.js';
import type { Ticket } from './policy/gate.js';

/** secp256k1's group order n, 32 bytes big-endian (public). */
const SECP256K1_N = new Uint8Array(Buffer.from('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141', 'hex'));

/**
 * The audit record of a key or keyring change, by `principal`: the bytes the parent stores with
 * it. `resultDigest`, for a made key: its public data (keyPublicDigest), so the record proves the
 * address or xpub the parent later serves from its own store.
 */
export type Recorded = (kind: 'key.create' | 'keyring.create' | 'keyring.unlock', keyId: string, principal?: string, resultDigest?: Uint8Array) => Uint8Array[];

export async function createKeyDecided(d: Decisions, nsm: Nsm, recorded: Recorded, p: Record<string, unknown>, ctx?: RequestContext) {
  const { trail, durable, approvals, policy } = d;
  const signed = p.auth !== undefined;
  onlyKeys(p, signed ? ['auth', 'state'] : ['kind', 'state'], 'params');
  // As in `sign`: the audit log and the state first, so a signed request's id is spent only when
  // its decision can be recorded, and a refused signature is on the chain like any refusal.
  const digest = requestDigest('key.create', ctx?.raw ?? null);
  d.readyToDecide(p.state, { principal: 'host', op: 'signer_createKey', keyId: null, requestDigest: digest });
  // A signed request is read from the params the principal signed; the host's `kind` is not asked.
  let who: ReturnType<Decisions['authenticate']> | undefined;
  let kind: KeyKind;
  try {
    who = signed ? d.authenticate(p.auth, 'signer_createKey') : undefined;
    kind = who ? readKeyKind(named(who.params, ['kind', 'label', 'requestId']).kind) : asKind(p.kind);
  } catch (e) {
    if (!signed) throw e; // the host's own malformed call: nothing was asked of the policy
    throw withAuditRecord(e as Error, trail.denied({ principal: who?.request.principal ?? 'host', op: 'signer_createKey', keyId: null, requestDigest: digest, rule: errorRule(e) }));
  }
  const principal = who?.request.principal ?? 'host';
  const decision = { principal, op: 'signer_createKey', keyId: null, requestDigest: digest };
  // The policy first: a refused creation says so whatever the keyring's state.
  let ticket: Ticket;
  let approval: ApprovalRecord | undefined;
  try {
    ({ ticket, approval } = approvals.authorize({ op: 'signer_createKey', keyId: null, request: { kind }, intent: { op: 'signer_createKey', kind }, principal }));
  } catch (e) {
    throw d.refusalRecorded(e, decision);
  }
  const release = () => {
    policy.release(ticket);
    if (approval) approvals.released(approval);
  };
  const epoch = durable.epoch;
  const keyring = d.slot.keyring;
  if (!keyring) {
    release();
    // Allowed by the policy, refused by the enclave's state: on the chain like any refusal.
    throw d.refusalRecorded(new SignerError('KEYRING_LOCKED', 'no keyring is unlocked in this enclave'), decision);
  }
  try {
    const out = await createKey(nsm, recorded, kind, keyring, principal);
    // A window or an approval changes the durable state (sealed with the answer). Reserved
    // against state since taken over (fleet scope): not counted.
    const changed = d.changesState(ticket, approval);
    if (changed && durable.epoch !== epoch) throw staleUnderRequest();
    policy.commit(ticket);
    if (approval) approvals.consumed(approval);
    return changed ? d.withSealed(out) : out;
  } finally {
    release();
  }
}

async function createKey(nsm: Nsm, recorded: Recorded, kind: KeyKind, keyring: Keyring, principal: string) {
  const { addressFromPrivateKey, deriveBip32PublicKey, publicKeyOf } = await import('./lazy-kms.js');
  const keyId = randomUUID();
  const secret = kind === 'secp256k1' ? await newSecp256k1Secret(nsm) : await freshSecret(nsm);
  try {
    const blob = keyring.wrap(keyId, kind, secret);
    const keyringId = keyring.id;
    if (kind === 'secp256k1') {
      const pub = { keyId, kind, keyringId, publicKey: toHex(publicKeyOf(secret)), address: addressFromPrivateKey(secret) };
      return { ...pub, blob, audit: recorded('key.create', keyId, principal, keyPublicDigest(pub)) };
    }
    const master = deriveBip32PublicKey(secret, 'm');
    const pub = { keyId, kind, keyringId, publicKey: master.publicKey.replace(/^0x/, ''), xpub: master.xpub, fingerprint: master.masterFingerprint };
    return { ...pub, blob, audit: recorded('key.create', keyId, principal, keyPublicDigest(pub)) };
  } finally {
    wipe(secret);
  }
}

/**
 * 32 bytes from the NSM mixed with the OS CSPRNG: neither source alone decides the key.
 * The secret is SHA-256(0x01 ‖ NSM bytes ‖ OS bytes), 0x01 separating this use of the hash.
 */
async function freshSecret(nsm: Nsm): Promise<Uint8Array> {
  const a = await nsm.getRandom(32);
  // Filled in place: randomBytes() would return a Buffer of its own, and a copy of it would
  // leave that Buffer (half the key's preimage) un-wiped.
  const b = randomFillSync(new Uint8Array(32));
  try {
    // The parts are fed one by one: the same SHA-256(0x01 ‖ a ‖ b) as hashing their
    // concatenation, without a buffer holding both halves, whose hash IS the key.
    const h = createHash('sha256').update(Uint8Array.of(0x01)).update(a).update(b).digest();
    return new Uint8Array(h.buffer, h.byteOffset, 32);
  } finally {
    wipe(a, b);
  }
}

async function newSecp256k1Secret(nsm: Nsm): Promise<Uint8Array> {
  for (;;) {
    const s = await freshSecret(nsm);
    if (isSecp256k1SecretKey(s)) return s;
    wipe(s);
  }
}

/**
 * Whether 32 big-endian bytes are a valid secp256k1 secret key, 1 ≤ s < n, decided on the
 * bytes themselves: BigInt('0x' + hex) would leave a hex string and a bigint of every
 * candidate in the heap, and neither can be zeroed. (@noble's isValidSecretKey converts
 * through hex and a bigint internally, so it would not avoid them.) No early exit: the time
 * does not depend on where s and n first differ. Exported for its test.
 */
export function isSecp256k1SecretKey(s: Uint8Array): boolean {
  if (s.length !== 32) return false;
  let borrow = 0; // borrow out of s − n, least significant byte first: 1 at the end iff s < n
  let any = 0; // OR of all bytes: 0 iff s = 0
  for (let i = 31; i >= 0; i--) {
    const d = s[i]! - SECP256K1_N[i]! - borrow; // in [-256, 255]
    borrow = (d >> 8) & 1; // 1 iff d < 0
    any |= s[i]!;
  }
  return (borrow & Number(any !== 0)) === 1;
}
