/**
 * Unwrapped key material kept in a signing worker's memory for a bounded
 * time, so a key that signs again soon skips the AES-GCM unwrap and the
 * derivation of its public facts (two scalar multiplications for a
 * secp256k1 key, a BIP32 master for a seed) — together more CPU than the
 * signature itself.
 *
 * An entry is keyed by (keyring id, key id, kind, SHA-256 of the exact blob
 * bytes). It is created only after that exact blob authenticated under that
 * keyring with that id and kind (AES-GCM over the AAD that binds the three),
 * and AES-GCM decryption is deterministic: a request that hits the cache is
 * one whose unwrap would have succeeded with the same secret. A blob changed
 * by a single bit, another key id, kind or keyring misses and goes through
 * the full unwrap, failing exactly as it would without the cache.
 *
 * Bounded (bounded-lru.ts): at most `maxEntries` (LRU), each for at most
 * `ttlMs` after it was unwrapped (not refreshed by use). The secret is zeroed
 * on eviction, on expiry (a timer sweeps even when idle), on `clear()` (new
 * keyring, lock) and on `close()`. Enclave memory is the protected place; nothing here
 * leaves the worker.
 *
 * The cached secrets live only in slots of a secret arena (secret-arena.ts):
 * in a worker, memory the pool zeroes once the worker has exited, so a worker
 * terminated mid-job leaves none of them behind. An entry's secret is a view
 * of its slot; dropping the entry zeroes the slot and frees it. With no slot
 * free, `put` keeps nothing, as a disabled cache does.
 */
import { createHash } from 'node:crypto';
import type { KeyKind, SignerFacts } from '../common/protocol/enclave-api.js';
import { createBoundedLru } from './bounded-lru.js';
import { arenaBytes, SecretArena } from './secret-arena.js';

export interface KeyCacheOptions {
  /** Entries kept at most (least recently used goes first); 0 disables the cache. */
  maxEntries: number;
  /** Lifetime of an entry from its unwrap, in ms; 0 disables the cache. */
  ttlMs: number;
  /** Clock (tests). */
  now?: () => number;
  /** Sweep period for expired entries, in ms (default ttlMs/4, at least 1 s). */
  sweepMs?: number;
  /**
   * Where the cached secrets live (a worker's: the arena the pool zeroes after the worker exits,
   * job-signer.ts); by default an arena of the cache's own, of cacheArenaSlots(o) slots.
   */
  arena?: SecretArena;
}

/** The facts of a key itself (no derived child): what the unwrap + derivation produce once. */
export type KeyFacts = Omit<SignerFacts, 'child'>;

export interface CachedKey {
  /**
   * The cache's own copy, in a slot of its arena; zeroed (and the slot freed) when the entry goes.
   * Callers copy what they keep, and never use it after the entry went (the slot may hold another key).
   */
  readonly secret: Uint8Array;
  readonly facts: KeyFacts;
}

export const DEFAULT_KEY_CACHE: Readonly<Pick<KeyCacheOptions, 'maxEntries' | 'ttlMs'>> = { maxEntries: 1024, ttlMs: 60_000 };

/**
 * Arena slots a cache with these bounds needs to keep every entry: `maxEntries`, plus one for the
 * moment `put` holds the newcomer before the least recently used entry is dropped; 0 when disabled.
 */
export function cacheArenaSlots(o: Pick<KeyCacheOptions, 'maxEntries' | 'ttlMs'>): number {
  return o.maxEntries > 0 && o.ttlMs > 0 ? Math.floor(o.maxEntries) + 1 : 0;
}

export interface KeyCache {
  /** False when maxEntries or ttlMs is 0: `put` then keeps nothing (see put). */
  readonly enabled: boolean;
  readonly size: number;
  /** The lookup key: binds keyring, key id, kind and the exact blob bytes. */
  slot(keyringId: string, keyId: string, kind: KeyKind, blob: Uint8Array): string;
  get(slot: string): CachedKey | undefined;
  /**
   * Keeps a copy of `secret` in an arena slot (the caller still owns and wipes its own array). When it
   * keeps nothing (disabled, or no slot free) the entry returned holds `secret` itself: the caller's
   * wipe of its own array is then the only one needed.
   */
  put(slot: string, secret: Uint8Array, facts: KeyFacts): CachedKey;
  /** Wipes and drops every entry (keyring change, lock). */
  clear(): void;
  /** clear() and stop the sweep timer. */
  close(): void;
}

/** A cache's lookup key: binds keyring, key id, kind and the exact blob bytes (the pool keys the facts it knows by it too). */
export function keySlot(keyringId: string, keyId: string, kind: KeyKind, blob: Uint8Array): string {
  // Ids are UUIDs and kind an enum (validated before a job is built); the NUL separators keep the fields apart anyway.
  return `${keyringId}\0${keyId}\0${kind}\0${createHash('sha256').update(blob).digest('hex')}`;
}

export function createKeyCache(o: KeyCacheOptions): KeyCache {
  const arena = o.arena ?? new SecretArena(new ArrayBuffer(arenaBytes(cacheArenaSlots(o))));
  // The secret's slot is zeroed and freed whenever an entry leaves: evicted, expired, replaced or cleared.
  const entries = createBoundedLru<CachedKey>({ maxEntries: o.maxEntries, ttlMs: o.ttlMs, ...(o.now ? { now: o.now } : {}), onDrop: (e) => arena.free(e.secret) });
  const { enabled } = entries;
  // Expired secrets are zeroed even when no lookup comes.
  const timer = enabled ? setInterval(() => entries.sweep(), o.sweepMs ?? Math.max(1_000, Math.floor(o.ttlMs / 4))) : undefined;
  timer?.unref();
  return {
    enabled,
    get size() {
      return entries.size;
    },
    slot: keySlot,
    get: (slot) => entries.get(slot),
    put(slot, secret, facts) {
      const copy = enabled ? arena.alloc(secret.length) : undefined;
      // Not kept (disabled, arena full): the caller's own array, which it wipes after use.
      if (copy === undefined) return { secret, facts };
      copy.set(secret);
      const e: CachedKey = { secret: copy, facts };
      entries.put(slot, e);
      return e;
    },
    clear: () => entries.clear(),
    close() {
      entries.clear();
      if (timer) clearInterval(timer);
    },
  };
}
