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
 * on close), the key cache (key-cache.ts) and each prepared job's copy of its
 * key (operations.ts KeyCopies: wiped when the job is signed or aborted), all
 * in slots of its secret arena (secret-arena.ts): in a worker, memory the pool
 * hands it and zeroes once the worker has exited, so a worker terminated
 * mid-job (its deadline, a cancellation) leaves none of them behind. Errors
 * are SignerErrors; what leaves the thread is failureOf(e): a code and a
 * message, never a stack or bytes of the request.
 */
import { isDeepStrictEqual } from 'node:util';
import { wipe } from '../common/bytes.js';
import { isSignerError, SignerError } from '../common/errors.js';
import type { JsonLike } from '../common/cbor-json.js';
import type { KeyKind, SignerFacts, SignOp } from '../common/protocol/enclave-api.js';
import { cacheArenaSlots, createKeyCache, DEFAULT_KEY_CACHE, type KeyCacheOptions } from './key-cache.js';
import { unwrapKey } from './kms/wrapped-key.js';
import { ChurnMap } from '../common/churn-map.js';
import type { Intent } from './policy/intent.js';
import { type KeyCopies, keyFacts, prepareOperation, type PreparedOperation } from './operations.js';
import { arenaBytes, SecretArena, SLOT_BYTES } from './secret-arena.js';

/** A signing job: the op, the key's wrapped record (id, kind and keyring bound by the blob's AAD) and the request. */
export interface SignJob {
  op: SignOp;
  keyId: string;
  kind: KeyKind;
  keyringId: string;
  blob: Uint8Array;
  request: Record<string, JsonLike>;
}

/** The key cache's bounds (the pool passes them to every worker and to its inline signer), and a worker's arena. */
export interface JobSignerConfig {
  keyCache?: Pick<KeyCacheOptions, 'maxEntries' | 'ttlMs'>;
  /**
   * Jobs the signer holds prepared at once, at most (a worker: the pool's depth); sizes the arena
   * (signerArenaBytes). Default 1: the inline lane runs one job at a time. More jobs than this
   * still sign: the key copies that find no slot are kept on the heap.
   */
  prepared?: number;
  /**
   * The memory the keyring key, the cached secrets and the prepared jobs' keys live in
   * (secret-arena.ts), of at least signerArenaBytes(config) bytes: a worker's comes from the pool,
   * which zeroes it once the worker has exited. Without it the signer allocates its own (the inline
   * lane: the main thread is never terminated, and its signer wipes what it holds on lock and close).
   */
  arena?: SharedArrayBuffer;
}

/**
 * The arena a signer with this config needs: a slot for the keyring key, the key cache's (key-cache.ts
 * cacheArenaSlots) and one per job it holds prepared (`prepared`: a job keeps one copy of key material,
 * operations.ts). With the default bounds and the pool's depth of 32: 1 + 1,025 + 32 slots, 67,712 bytes.
 */
export function signerArenaBytes(config: Pick<JobSignerConfig, 'keyCache' | 'prepared'> = {}): number {
  return arenaBytes(1 + cacheArenaSlots({ ...DEFAULT_KEY_CACHE, ...(config.keyCache ?? {}) }) + Math.max(0, Math.floor(config.prepared ?? 1)));
}

/** Whether `key` fits the keyring key's arena slot (a keyring key is 32 bytes; the pool refuses others before a worker sees them). */
export function keyringKeyFits(key: Uint8Array): boolean {
  return key.length <= SLOT_BYTES;
}

/**
 * Where a prepared job keeps its copy of its key (operations.ts KeyCopies): a slot of `arena`. With
 * none free (more jobs prepared than the arena was sized for) the copy goes on the heap, as the key
 * cache then keeps nothing: a job is never refused for lack of a slot. A heap copy is wiped on
 * release all the same (arena.free wipes a view of other memory); only a worker terminated before
 * then would leave it in its freed heap.
 */
export function arenaKeyCopies(arena: SecretArena): KeyCopies {
  return {
    keep(bytes) {
      const slot = arena.alloc(bytes.length);
      if (slot === undefined) return bytes.slice();
      slot.set(bytes);
      return slot;
    },
    release: (copy) => arena.free(copy),
  };
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
  /**
   * Copies `key` into the arena and wipes `key` (the copy is wiped when replaced, on lock and on
   * close); drops every cached key. Throws (keeping no keyring) for a key that does not fit.
   */
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
  // The keyring key's slot is taken right after the previous keyring's slot was freed and the cache
  // cleared (no job is prepared without a keyring, and lock frees every job's slot): a slot is always
  // free for it. The cache falls back to keeping nothing when full, a prepared job to the heap.
  const arena = new SecretArena(config.arena ?? new ArrayBuffer(signerArenaBytes(config)));
  const copies = arenaKeyCopies(arena);
  /** `key` is a view of the keyring key's arena slot. */
  let keyring: { id: string; key: Uint8Array } | undefined;
  const cache = createKeyCache({ ...DEFAULT_KEY_CACHE, ...(config.keyCache ?? {}), arena });
  /** Jobs whose key authenticated and that wait for the enclave's decision. */
  // A job comes and goes per signature: not a plain Map (common/churn-map.ts says why).
  const pending = new ChurnMap<number, { prepared: PreparedOperation; deadline: number }>();

  const forget = (id: number): void => {
    const p = pending.get(id);
    pending.delete(id);
    p?.prepared.wipe();
  };
  const dropKeyring = (): void => {
    if (keyring) arena.free(keyring.key);
    keyring = undefined;
  };
  const lock = (): void => {
    dropKeyring();
    cache.clear();
    for (const id of [...pending.keys()]) forget(id);
  };

  return {
    setKeyring(keyringId, key) {
      try {
        dropKeyring();
        cache.clear();
        const slot = keyringKeyFits(key) ? arena.alloc(key.length) : undefined;
        if (slot === undefined) throw new SignerError('WRAPPED_KEY_BAD_KEYRING', `a keyring key cannot be ${key.length} bytes`);
        slot.set(key);
        keyring = { id: keyringId, key: slot };
      } finally {
        wipe(key); // the only copy kept is the arena's
      }
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
      try {
        if (Date.now() >= deadline) throw jobExpired();
        const meta = { keyringId: keyring.id, keyId: job.keyId, kind: job.kind };
        // The keyring id was checked above; the slot binds it again with the id, kind and exact blob bytes.
        const slot = cache.slot(keyring.id, job.keyId, job.kind, job.blob);
        let hit = cache.get(slot);
        if (!hit) {
          secret = unwrapKey(keyring.key, meta, job.blob);
          // Not kept (cache disabled or its arena full): hit.secret is `secret` itself, wiped below.
          hit = cache.put(slot, secret, keyFacts(meta, secret));
        }
        const prepared = prepareOperation(job.op, meta, hit.secret, job.request, hit.facts, copies);
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
        // prepareOperation keeps its own copy of what it needs (in the arena); the cache keeps its own
        wipe(secret);
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
