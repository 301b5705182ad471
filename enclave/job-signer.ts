/**
 * The two steps of a signing job, whichever thread runs them: a signing
 * worker (worker.ts) or, when the pool runs a job inline, the enclave's main
 * thread (worker-pool.ts, "Inline"). One implementation, so both paths
 * authenticate, cache, parse and sign identically.
 *
 *   1. prepare(id, job): unwrap the blob — AES-GCM authenticates key id, kind
 *      and keyring — or find that exact blob in the key cache, derive the
 *      key's public facts from the secret, parse the request once into its
 *      typed intent, and keep the prepared operation under `id`. Nothing is
 *      signed yet.
 *   2. sign(id) once the enclave's policy allowed it and the decision was
 *      recorded: sign what prepare parsed, then wipe it; or abort(id): wipe.
 *
 * Holds its own copy of the keyring key (wiped on a new keyring, on lock and
 * on close) and the key cache (key-cache.ts). Errors are SignerErrors; what
 * leaves the thread is failureOf(e): a code and a message, never a stack or
 * bytes of the request.
 */
import { isDeepStrictEqual } from 'node:util';
import { wipe } from '../common/bytes.js';
import { isSignerError, SignerError } from '../common/errors.js';
import type { JsonLike } from '../common/cbor-json.js';
import type { KeyKind, SignerFacts, SignOp } from '../common/protocol/enclave-api.js';
import { createKeyCache, DEFAULT_KEY_CACHE, type KeyCacheOptions } from './key-cache.js';
import { unwrapKey } from './kms/wrapped-key.js';
import { ChurnMap } from '../common/churn-map.js';
import type { Intent } from './policy/intent.js';
import { keyFacts, prepareOperation, type PreparedOperation } from './operations.js';

/** A signing job: the op, the key's wrapped record (id, kind and keyring bound by the blob's AAD) and the request. */
export interface SignJob {
  op: SignOp;
  keyId: string;
  kind: KeyKind;
  keyringId: string;
  blob: Uint8Array;
  request: Record<string, JsonLike>;
}

/** The key cache's bounds (the pool passes them to every worker and to its inline signer). */
export interface JobSignerConfig {
  keyCache?: Pick<KeyCacheOptions, 'maxEntries' | 'ttlMs'>;
}

/** What a job was decided on: the key's facts and the request's intent. */
export interface Decision {
  facts: SignerFacts;
  intent: Intent;
}

export interface JobFailure {
  code: string;
  message: string;
  field?: string;
}

export interface JobSigner {
  /** Takes ownership of `key` (wiped when replaced, on lock and on close); drops every cached key. */
  setKeyring(keyringId: string, key: Uint8Array): void;
  /** Wipes the keyring key, the key cache and every prepared job. */
  lock(): void;
  /** lock() and stop the cache's sweep timer. */
  close(): void;
  /**
   * Step 1; throws (nothing kept) if the key does not authenticate, the job expired or the request
   * does not parse — or, for a job decided ahead (`decided`: the facts and intent the main thread
   * decided on, worker-pool.ts "Decided ahead"), if this key's facts or this parse's intent are
   * not exactly those. `slot` is the blob's key-cache slot (key-cache.ts keySlot), which the
   * inline path learns the facts under without digesting the blob again.
   */
  prepare(id: number, job: SignJob, deadline: number, decided?: Decision): { facts: SignerFacts; intent: Intent; slot: string };
  /** Step 2: signs the job prepared under `id` (unless past its deadline) and wipes it, signed or not. */
  sign(id: number): unknown;
  /** Wipes the job prepared under `id`, if any. */
  abort(id: number): void;
}

export function jobExpired(): SignerError {
  return new SignerError('JOB_DEADLINE_EXCEEDED', 'the request ran out of time before it was signed; nothing was signed');
}

/** The code and message of a SignerError; anything else is INTERNAL with a fixed message (no stack, no bytes). */
export function failureOf(e: unknown): JobFailure {
  if (isSignerError(e)) {
    const j = e.toJSON() as { code: string; message: string; field?: string };
    return j.field === undefined ? { code: j.code, message: j.message } : { code: j.code, message: j.message, field: j.field };
  }
  return { code: 'INTERNAL', message: 'signing failed with an internal error' };
}

export function createJobSigner(config: JobSignerConfig = {}): JobSigner {
  let keyring: { id: string; key: Uint8Array } | undefined;
  const cache = createKeyCache({ ...DEFAULT_KEY_CACHE, ...(config.keyCache ?? {}) });
  /** Jobs whose key authenticated and that wait for the enclave's decision. */
  // A job comes and goes per signature: not a plain Map (common/churn-map.ts says why).
  const pending = new ChurnMap<number, { prepared: PreparedOperation; deadline: number }>();

  const forget = (id: number): void => {
    const p = pending.get(id);
    pending.delete(id);
    p?.prepared.wipe();
  };
  const lock = (): void => {
    if (keyring) wipe(keyring.key);
    keyring = undefined;
    cache.clear();
    for (const id of [...pending.keys()]) forget(id);
  };

  return {
    setKeyring(keyringId, key) {
      if (keyring) wipe(keyring.key);
      cache.clear();
      keyring = { id: keyringId, key };
    },
    lock,
    close() {
      lock();
      cache.close();
    },
    prepare(id, job, deadline, decided) {
      if (!keyring) throw new SignerError('KEYRING_LOCKED', 'no keyring is unlocked in this enclave');
      if (job.keyringId !== keyring.id) throw new SignerError('KEYRING_MISMATCH', `key ${job.keyId} belongs to keyring ${job.keyringId}, not the unlocked ${keyring.id}`);
      let secret: Uint8Array | undefined;
      let uncached: Uint8Array | undefined;
      try {
        if (Date.now() >= deadline) throw jobExpired();
        const meta = { keyringId: keyring.id, keyId: job.keyId, kind: job.kind };
        // The keyring id was checked above; the slot binds it again with the id, kind and exact blob bytes.
        const slot = cache.slot(keyring.id, job.keyId, job.kind, job.blob);
        let hit = cache.get(slot);
        if (!hit) {
          secret = unwrapKey(keyring.key, meta, job.blob);
          hit = cache.put(slot, secret, keyFacts(meta, secret));
          if (!cache.enabled) uncached = hit.secret;
        }
        const prepared = prepareOperation(job.op, meta, hit.secret, job.request, hit.facts);
        if (decided !== undefined) {
          // The main thread decided on facts it learnt earlier and on its own parse of this request:
          // sign only if this key and this parse are exactly what was decided.
          if (!isDeepStrictEqual(prepared.facts, decided.facts)) {
            prepared.wipe();
            throw new SignerError('KEY_FACTS_MISMATCH', `key ${job.keyId} is not the key its request was decided on; nothing was signed`);
          }
          if (!isDeepStrictEqual(prepared.intent, decided.intent)) {
            prepared.wipe();
            throw new SignerError('INTENT_MISMATCH', 'the request parsed to another intent than the one it was decided on; nothing was signed');
          }
        }
        pending.set(id, { prepared, deadline });
        return { facts: prepared.facts, intent: prepared.intent, slot };
      } finally {
        // prepareOperation keeps its own copy of what it needs; the cache keeps its own
        wipe(secret, uncached);
      }
    },
    sign(id) {
      const p = pending.get(id);
      if (!p) throw new SignerError('INTERNAL', 'no prepared job with this id');
      try {
        if (Date.now() >= p.deadline) throw jobExpired();
        return p.prepared.sign();
      } finally {
        forget(id);
      }
    },
    abort: forget,
  };
}
