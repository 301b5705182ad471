/**
 * The enclave's audit log: holds the audit key and the chain head, turns each
 * decision into a signed record, and answers for the key in attestation.
 *
 * - The audit key is Ed25519, generated here at open() from fresh entropy.
 *   Its seed exists in JS memory only for the instant it takes to build the
 *   KeyObject and is wiped right after; the key object is never exported and
 *   is dropped on close() (OpenSSL clears Ed25519 private keys when it frees
 *   them). No API returns private bytes.
 * - The first record of every log is a hand-over: it continues the head the
 *   parent shows (after checking that head's signature), names the previous
 *   audit key, and carries an attestation document whose user_data binds the
 *   new key (common/audit/binding.ts). A verifier follows the chain from key
 *   to key through these records.
 * - append() is synchronous: records are strictly sequential, and the caller
 *   gets the signed bytes to return with the result, so the parent can
 *   persist the record before it releases anything.
 */
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { wipe } from '../../common/bytes.js';
import { encodeAuditBinding } from '../../common/audit/binding.js';
import { encodeCheckpointBody } from '../../common/audit/checkpoint.js';
import { rawEd25519PublicKey, signEnvelope } from '../../common/audit/envelope.js';
import { AuditError } from '../../common/audit/errors.js';
import {
  AUDIT_RECORD_VERSION,
  ZERO_HASH,
  encodeRecordBody,
  parseRecord,
  recordSignatureValid,
  sha256,
  type AuditEntry,
  type AuditRecordBody,
} from '../../common/audit/record.js';
import type { AttestRequest } from '../nsm/nsm.js';

/** PKCS#8 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Uint8Array.from(Buffer.from('302e020100300506032b657004220420', 'hex'));

export interface SignedRecord {
  seq: number;
  /** SHA-256 of the payload: the next record's prev. */
  hash: Uint8Array;
  /** The exact signed bytes the parent must persist (audit_records.record). */
  bytes: Uint8Array;
}

export interface AuditHead {
  seq: number;
  hash: Uint8Array;
}

export interface OpenAuditLogOptions {
  /** Anything that can attest (the NSM client). */
  nsm: { attest(req: AttestRequest): Promise<Uint8Array> };
  /** The last record the parent has stored, or undefined for a new chain. */
  lastRecord?: Uint8Array;
  /** Hash of the policy in force at boot (null until the policy engine is wired). */
  policyHash?: Uint8Array | null;
  /** Enclave clock, ms since the epoch. Default Date.now. */
  now?: () => number;
  /** TESTS ONLY: a fixed 32-byte seed, for test vectors. Wiped after use. */
  seed?: Uint8Array;
}

function keyFromSeed(seed: Uint8Array): KeyObject {
  const der = new Uint8Array(PKCS8_ED25519_PREFIX.length + 32);
  der.set(PKCS8_ED25519_PREFIX);
  der.set(seed, PKCS8_ED25519_PREFIX.length);
  try {
    return createPrivateKey({ key: Buffer.from(der.buffer, der.byteOffset, der.byteLength), format: 'der', type: 'pkcs8' });
  } finally {
    wipe(der, seed);
  }
}

export class AuditLog {
  #key: KeyObject | undefined;
  #seq: number;
  #hash: Uint8Array;
  #time: number;
  #policyHash: Uint8Array | null;
  readonly #now: () => number;
  readonly #nsm: OpenAuditLogOptions['nsm'];
  /** Raw Ed25519 public key (32 bytes). */
  readonly auditKey: Uint8Array;
  /** The user_data every attestation document of this enclave should carry. */
  readonly binding: Uint8Array;
  /** The hand-over record that opened this log (persist it first). */
  readonly handover: SignedRecord;
  /** The attestation document in the hand-over (binds auditKey). */
  readonly attestation: Uint8Array;

  private constructor(init: {
    key: KeyObject;
    auditKey: Uint8Array;
    binding: Uint8Array;
    attestation: Uint8Array;
    head: AuditHead;
    prevAuditKey: Uint8Array | null;
    policyHash: Uint8Array | null;
    now: () => number;
    nsm: OpenAuditLogOptions['nsm'];
  }) {
    this.#key = init.key;
    this.auditKey = init.auditKey;
    this.binding = init.binding;
    this.attestation = init.attestation;
    this.#seq = init.head.seq;
    this.#hash = init.head.hash;
    this.#time = 0;
    this.#policyHash = init.policyHash;
    this.#now = init.now;
    this.#nsm = init.nsm;
    this.handover = this.#write({
      kind: 'handover',
      decision: 'done',
      policyHash: init.policyHash,
      prevAuditKey: init.prevAuditKey,
      attestation: init.attestation,
    });
  }

  /** Generates the audit key, attests to it, and writes the hand-over record. */
  static async open(opts: OpenAuditLogOptions): Promise<AuditLog> {
    let head: AuditHead = { seq: -1, hash: ZERO_HASH };
    let prevAuditKey: Uint8Array | null = null;
    if (opts.lastRecord !== undefined) {
      // The parent is untrusted: continue only a head that is a real record of some audit key.
      const last = parseRecord(opts.lastRecord);
      if (!recordSignatureValid(last)) throw new AuditError('AUDIT_SIGNATURE', `the head the parent shows (seq ${last.body.seq}) is not validly signed`, { seq: last.body.seq });
      head = { seq: last.body.seq, hash: last.hash };
      prevAuditKey = last.body.auditKey;
    }
    const seed = opts.seed ? Uint8Array.from(opts.seed) : new Uint8Array(randomBytes(32));
    if (opts.seed) wipe(opts.seed);
    if (seed.length !== 32) throw new AuditError('AUDIT_MALFORMED', 'audit key seed must be 32 bytes');
    const key = keyFromSeed(seed);
    const auditKey = rawEd25519PublicKey(createPublicKey(key));
    const policyHash = opts.policyHash ?? null;
    const binding = encodeAuditBinding({ auditKey, policyHash });
    const attestation = await opts.nsm.attest({ userData: binding });
    return new AuditLog({ key, auditKey, binding, attestation, head, prevAuditKey, policyHash, now: opts.now ?? Date.now, nsm: opts.nsm });
  }

  head(): AuditHead {
    return { seq: this.#seq, hash: Uint8Array.from(this.#hash) };
  }

  get policyHash(): Uint8Array | null {
    return this.#policyHash;
  }

  #signer(): KeyObject {
    if (!this.#key) throw new AuditError('AUDIT_KEY_CLOSED', 'the audit log is closed: no decision can be recorded');
    return this.#key;
  }

  #write(e: AuditEntry & { prevAuditKey?: Uint8Array | null; attestation?: Uint8Array | null }): SignedRecord {
    const key = this.#signer();
    // Enclave time never goes backwards within one log, whatever the clock does.
    this.#time = Math.max(this.#time, Math.floor(this.#now()));
    const body: AuditRecordBody = {
      version: AUDIT_RECORD_VERSION,
      seq: this.#seq + 1,
      prev: this.#hash,
      time: this.#time,
      auditKey: this.auditKey,
      kind: e.kind,
      decision: e.decision,
      principal: e.principal ?? null,
      op: e.op ?? null,
      keyId: e.keyId ?? null,
      requestDigest: e.requestDigest ?? null,
      rule: e.rule ?? null,
      policyHash: e.policyHash ?? null,
      resultDigest: e.resultDigest ?? null,
      prevAuditKey: e.prevAuditKey ?? null,
      attestation: e.attestation ?? null,
    };
    const payload = encodeRecordBody(body); // validates: a bad entry throws before the head moves
    const bytes = signEnvelope(payload, key);
    const hash = sha256(payload);
    this.#seq = body.seq;
    this.#hash = hash;
    return { seq: body.seq, hash, bytes };
  }

  /**
   * Records one decision and returns the signed record. The policy hash is the
   * one in force unless the entry loads a new policy; an entry that claims a
   * different policy is a bug and is refused.
   */
  append(e: AuditEntry): SignedRecord {
    if (e.kind === 'handover') throw new AuditError('AUDIT_HANDOVER', 'a hand-over is written only when the log opens');
    if (e.kind === 'policy.load') {
      if (!(e.policyHash instanceof Uint8Array)) throw new AuditError('AUDIT_MALFORMED', 'policy.load needs the new policy hash');
      const r = this.#write(e);
      if (e.decision === 'done') this.#policyHash = Uint8Array.from(e.policyHash);
      return r;
    }
    if (e.policyHash !== undefined && !sameHash(e.policyHash, this.#policyHash)) {
      throw new AuditError('AUDIT_POLICY', 'entry names a policy hash other than the one in force');
    }
    return this.#write({ ...e, policyHash: this.#policyHash });
  }

  /** An enclave-signed statement of the current head (optionally answering a nonce). */
  checkpoint(nonce?: Uint8Array): Uint8Array {
    const key = this.#signer();
    this.#time = Math.max(this.#time, Math.floor(this.#now()));
    const payload = encodeCheckpointBody({ version: 1, seq: this.#seq, head: this.#hash, time: this.#time, auditKey: this.auditKey, nonce: nonce ?? null });
    return signEnvelope(payload, key);
  }

  /** A fresh attestation document that binds the audit key, for a verifier's nonce. */
  attest(nonce?: Uint8Array): Promise<Uint8Array> {
    this.#signer();
    return this.#nsm.attest({ userData: this.binding, ...(nonce ? { nonce } : {}) });
  }

  /** Drops the audit key; later appends fail with AUDIT_KEY_CLOSED. Idempotent. */
  close(): void {
    this.#key = undefined;
  }
}

function sameHash(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return Buffer.compare(a, b) === 0;
}
