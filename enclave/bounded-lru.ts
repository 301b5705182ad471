/**
 * A map bounded by count and by age, for what the enclave keeps about keys
 * between requests: the workers' unwrapped keys (key-cache.ts) and the main
 * thread's known facts (known-keys.ts). One implementation, so the two keep
 * the same bounds the same way.
 *
 *   count  at most `maxEntries`; a use re-inserts, so the first entry is the
 *          least recently used and goes first;
 *   age    an entry lives `ttlMs` from its `put`, not extended by use: checked
 *          on every lookup, and by `sweep()` for whoever runs a timer;
 *   drop   every entry that leaves — evicted, expired, replaced, cleared — is
 *          handed to `onDrop` once (the key cache zeroes its secret there).
 *
 * `maxEntries` or `ttlMs` 0 disables it: `put` keeps nothing and says so.
 */
import { ChurnMap } from '../common/churn-map.js';

export interface BoundedLruOptions<V> {
  /** Entries kept at most (least recently used goes first); 0 keeps none. */
  maxEntries: number;
  /** Lifetime of an entry from its put, in ms; 0 keeps none. */
  ttlMs: number;
  /** Clock (tests). */
  now?: () => number;
  /** Sees every value that leaves the map, once. */
  onDrop?: (value: V) => void;
}

export interface BoundedLru<V> {
  /** False when maxEntries or ttlMs is 0. */
  readonly enabled: boolean;
  readonly size: number;
  /** The value under `key` unless it expired (then dropped); a hit becomes the most recently used. */
  get(key: string): V | undefined;
  /** Keeps `value` (dropping one under the same key, then the least recently used beyond the bound); false when disabled. */
  put(key: string, value: V): boolean;
  /** Drops every expired entry. */
  sweep(): void;
  /** Drops every entry. */
  clear(): void;
}

export function createBoundedLru<V>(o: BoundedLruOptions<V>): BoundedLru<V> {
  const now = o.now ?? Date.now;
  const enabled = o.maxEntries > 0 && o.ttlMs > 0;
  // A ChurnMap, not a Map: every use re-inserts (common/churn-map.ts says why).
  const entries = new ChurnMap<string, { value: V; expires: number }>();
  const drop = (key: string, value: V) => {
    entries.delete(key);
    o.onDrop?.(value);
  };
  return {
    enabled,
    get size() {
      return entries.size;
    },
    get(key) {
      const e = entries.get(key);
      if (!e) return undefined;
      if (e.expires <= now()) {
        drop(key, e.value);
        return undefined;
      }
      entries.delete(key);
      entries.set(key, e);
      return e.value;
    },
    put(key, value) {
      if (!enabled) return false;
      const old = entries.get(key);
      if (old) drop(key, old.value);
      entries.set(key, { value, expires: now() + o.ttlMs });
      while (entries.size > o.maxEntries) {
        const [k, lru] = entries.first()!;
        drop(k, lru.value);
      }
      return true;
    },
    sweep() {
      const t = now();
      for (const [k, e] of entries) if (e.expires <= t) drop(k, e.value);
    },
    clear() {
      for (const [k, e] of entries) drop(k, e.value);
    },
  };
}
