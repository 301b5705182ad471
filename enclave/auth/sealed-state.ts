/**
 * Sealed enclave state (issue 9 §6): the enclave's durable state (window
 * counters, approvals, replay cache, audit head — ./enclave-state.ts) leaves
 * the enclave only as a record sealed under a key derived from the keyring
 * key, and the parent stores it like it stores key blobs: ciphertext only.
 *
 * Record (JSON; base64url without padding):
 *   { "v": 1, "keyringId": "<id>", "sequence": <safe integer ≥ 1>,
 *     "nonce": <12 bytes>, "ciphertext": <AES-256-GCM ciphertext || 16-byte tag> }
 *
 *   key = HKDF-SHA256(ikm = keyring data key (32 bytes),
 *                     salt = "enclave-signer/sealed-state/v1",
 *                     info = keyringId, length = 32)
 *   AAD = canonical JSON {"domain":"enclave-signer/sealed-state/v1","keyringId":…,"sequence":…,"v":1}
 *   plaintext = canonical JSON of the state
 *
 * The nonce is random, not derived from the sequence: after a host rolls
 * the enclave back to an old record, the enclave would seal the *same*
 * sequence numbers again, and a sequence-derived nonce would then repeat
 * under one key — fatal for GCM.
 *
 * Within one enclave life the store refuses any record older than the
 * newest it has seen (SEALED_STATE_ROLLBACK). Across a restart the enclave
 * remembers nothing, so an old but genuine record is accepted: see
 * docs/principals.md, "What a host can do with old sealed state".
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { canonicalBytes } from '../../attestation/manifest-json.js';
import { toBase64Url } from '../../common/auth/request.js';
import { SealedStateError } from './errors.js';

export const SEALED_STATE_DOMAIN = 'enclave-signer/sealed-state/v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** A sealed record larger than this is refused before decrypting (the state is bounded well below it). */
export const MAX_SEALED_BYTES = 64 * 1024 * 1024;

export interface SealedRecord {
  v: 1;
  keyringId: string;
  sequence: number;
  nonce: string;
  ciphertext: string;
}

function malformed(why: string): SealedStateError {
  return new SealedStateError('SEALED_STATE_MALFORMED', `sealed state record is malformed: ${why}`, { hint: 'the parent\'s stored state is damaged or not a sealed record; see docs/principals.md (recovery)' });
}

/** The AES-256 key for sealed state, derived from the keyring key (never the keyring key itself). */
export function sealedStateKey(keyringKey: Uint8Array, keyringId: string): Buffer {
  if (!(keyringKey instanceof Uint8Array) || keyringKey.length !== 32) throw new SealedStateError('SEALED_STATE_KEY', 'the keyring key must be 32 bytes');
  if (typeof keyringId !== 'string' || keyringId.length === 0) throw new SealedStateError('SEALED_STATE_KEY', 'the keyring id must be a non-empty string');
  return Buffer.from(hkdfSync('sha256', keyringKey, Buffer.from(SEALED_STATE_DOMAIN, 'utf8'), Buffer.from(keyringId, 'utf8'), 32));
}

function aad(keyringId: string, sequence: number): Buffer {
  return Buffer.from(canonicalBytes({ domain: SEALED_STATE_DOMAIN, keyringId, sequence, v: 1 }));
}

export function sealRecord(key: Uint8Array, keyringId: string, sequence: number, plaintext: Uint8Array): SealedRecord {
  if (!Number.isSafeInteger(sequence) || sequence < 1) throw malformed('sequence must be a positive safe integer');
  const nonce = randomBytes(NONCE_BYTES);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad(keyringId, sequence));
  const ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return { v: 1, keyringId, sequence, nonce: toBase64Url(nonce), ciphertext: toBase64Url(ct) };
}

function b64(v: unknown, what: string): Buffer {
  if (typeof v !== 'string' || !/^[A-Za-z0-9_-]*$/.test(v)) throw malformed(`${what} must be base64url`);
  const b = Buffer.from(v, 'base64url');
  if (b.toString('base64url') !== v) throw malformed(`${what} is not canonical base64url`);
  return b;
}

/** Checks shape and keyring, then authenticates and decrypts. Does not check freshness (the store does). */
export function unsealRecord(key: Uint8Array, keyringId: string, record: unknown): { sequence: number; plaintext: Uint8Array } {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) throw malformed('expected an object');
  const r = record as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!['v', 'keyringId', 'sequence', 'nonce', 'ciphertext'].includes(k)) throw malformed(`unknown member ${JSON.stringify(k.slice(0, 32))}`);
  if (r.v !== 1) throw malformed('"v" must be 1');
  if (typeof r.keyringId !== 'string') throw malformed('"keyringId" must be a string');
  if (typeof r.sequence !== 'number' || !Number.isSafeInteger(r.sequence) || r.sequence < 1) throw malformed('"sequence" must be a positive safe integer');
  if (typeof r.ciphertext === 'string' && r.ciphertext.length > (MAX_SEALED_BYTES * 4) / 3 + 4) throw malformed('record too large');
  const nonce = b64(r.nonce, '"nonce"');
  const ct = b64(r.ciphertext, '"ciphertext"');
  if (nonce.length !== NONCE_BYTES) throw malformed(`"nonce" must be ${NONCE_BYTES} bytes`);
  if (ct.length < TAG_BYTES) throw malformed('"ciphertext" is shorter than the tag');
  if (r.keyringId !== keyringId) {
    throw new SealedStateError('SEALED_STATE_WRONG_KEYRING', `sealed state belongs to keyring ${JSON.stringify(r.keyringId.slice(0, 64))}, not ${keyringId}`, { hint: 'the parent handed in another keyring\'s state' });
  }
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce);
    d.setAAD(aad(keyringId, r.sequence));
    d.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
    const pt = Buffer.concat([d.update(ct.subarray(0, ct.length - TAG_BYTES)), d.final()]);
    return { sequence: r.sequence, plaintext: new Uint8Array(pt) };
  } catch (e) {
    throw new SealedStateError('SEALED_STATE_TAMPERED', `sealed state record ${r.sequence} failed authentication: it was altered, or not sealed by this keyring`, {
      cause: e,
      hint: 'the enclave refuses to sign until an operator resolves it (docs/principals.md, recovery)',
    });
  }
}

/**
 * The enclave's view of its sealed state in one life: a monotonic sequence
 * (each seal is newer than anything seen) and the refusal of older records.
 * Holds the derived key, never the keyring key.
 */
export class SealedStateStore {
  readonly #key: Buffer;
  readonly #keyringId: string;
  #highest = 0;

  constructor(keyringKey: Uint8Array, keyringId: string) {
    this.#key = sealedStateKey(keyringKey, keyringId);
    this.#keyringId = keyringId;
  }

  /** The newest sequence sealed or accepted in this enclave life (0: none yet). */
  get sequence(): number {
    return this.#highest;
  }

  seal(plaintext: Uint8Array): SealedRecord {
    const rec = sealRecord(this.#key, this.#keyringId, this.#highest + 1, plaintext);
    this.#highest = rec.sequence;
    return rec;
  }

  /** Authenticates a record and refuses one older than this enclave has already seen. */
  unseal(record: unknown): { sequence: number; plaintext: Uint8Array } {
    const out = unsealRecord(this.#key, this.#keyringId, record);
    if (out.sequence < this.#highest) {
      throw new SealedStateError('SEALED_STATE_ROLLBACK', `sealed state ${out.sequence} is older than ${this.#highest}, which this enclave already saw`, {
        hint: 'the parent handed back an old record; the enclave refuses to sign until an operator resolves it',
      });
    }
    this.#highest = out.sequence;
    return out;
  }

  /**
   * Fleet scope (docs/scale-out.md): continues from a record any enclave of the keyring sealed,
   * which may be older than this enclave's own newest seal (that one lost the compare-and-swap
   * and was never stored). Authenticates it like `unseal`; freshness is the caller's
   * (enclave/policy/fleet-lineage.ts refuses anything older than what it was last handed).
   */
  adoptJson(record: unknown): { sequence: number; value: unknown } {
    const out = unsealRecord(this.#key, this.#keyringId, record);
    this.#highest = out.sequence;
    return { sequence: out.sequence, value: this.#json(out.plaintext) };
  }

  /**
   * Seals a JSON value. Plain JSON.stringify, not canonical JSON: the record is authenticated by
   * AES-GCM and nothing hashes or compares its text, and the canonical serialiser cost most of
   * every seal (bench/policy-window-cost.ts). The value is validated member by member on unseal.
   */
  sealJson(value: unknown): SealedRecord {
    return this.seal(new TextEncoder().encode(JSON.stringify(value)));
  }

  unsealJson(record: unknown): { sequence: number; value: unknown } {
    const { sequence, plaintext } = this.unseal(record);
    return { sequence, value: this.#json(plaintext) };
  }

  #json(plaintext: Uint8Array): unknown {
    try {
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext)) as unknown;
    } catch (e) {
      // Authenticated but not JSON: we sealed it, so this is a bug or a key misuse; fail closed.
      throw new SealedStateError('SEALED_STATE_MALFORMED', 'sealed state decrypted to something that is not JSON', { cause: e });
    }
  }
}
