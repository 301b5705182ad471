/**
 * The public facts of keys a signing worker has authenticated, kept on the
 * enclave's main thread so that the next job with the same exact blob can be
 * decided before it reaches a worker (worker-pool.ts, "Decided ahead"): one
 * message to the worker and one back instead of four.
 *
 * An entry is keyed like the workers' key cache (key-cache.ts `keySlot`:
 * keyring id, key id, kind, SHA-256 of the exact blob bytes) and is made only
 * from a worker's `facts` answer for a job with that slot, i.e. after that
 * blob authenticated under that keyring. It holds public data only (key id,
 * kind, keyring id, public key, address): no secret ever reaches this thread
 * through it. It is a hint, never the authority: the worker unwraps (or finds
 * in its own cache) the blob of every job it signs, derives the facts again
 * and refuses unless they equal the ones the job was decided on
 * (job-signer.ts, KEY_FACTS_MISMATCH).
 *
 * Bounded like the key cache, by the same code (bounded-lru.ts): at most
 * `maxEntries` (LRU), each for at most `ttlMs` after it was learnt (not
 * extended by use; checked on lookup), and cleared with the workers' caches
 * (new keyring, lock, close); the pool does not learn from a job sent before
 * such a change (worker-pool.ts).
 */
import type { SignerFacts } from '../common/protocol/enclave-api.js';
import { createBoundedLru } from './bounded-lru.js';

export interface KnownKeysOptions {
  /** Entries kept at most (least recently used goes first); 0 keeps none. */
  maxEntries: number;
  /** Lifetime of an entry from when it was learnt, in ms; 0 keeps none. */
  ttlMs: number;
  /** Clock (tests). */
  now?: () => number;
}

export interface KnownKeys {
  readonly size: number;
  /** The facts learnt for `slot`, unless they expired. */
  get(slot: string): SignerFacts | undefined;
  /** Remembers a copy of `facts` for `slot` (a worker's answer for a job with that slot). */
  put(slot: string, facts: SignerFacts): void;
  clear(): void;
}

export function createKnownKeys(o: KnownKeysOptions): KnownKeys {
  const entries = createBoundedLru<SignerFacts>(o);
  return {
    get size() {
      return entries.size;
    },
    get: (slot) => entries.get(slot),
    put(slot, facts) {
      const { child, ...own } = facts;
      entries.put(slot, Object.freeze(child ? { ...own, child: { ...child } } : own));
    },
    clear: () => entries.clear(),
  };
}
