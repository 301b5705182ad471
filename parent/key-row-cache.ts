/**
 * Rows of `keys` the parent has read, by key id, so that a signing request does not read the
 * store for a key it has already seen (one SQLite statement, or one PostgreSQL round trip, per
 * request: about 16 µs of the parent's CPU per signature on the development box, docs/performance.md).
 *
 * Sound because a stored key row never changes: nothing in the product updates or deletes one,
 * and a key id is unique. Only keys that were found are kept, so a key that another instance of
 * a fleet adds is read as soon as it exists. The cache serves what the store held when the row
 * was read; a row edited behind the parent's back changes nothing that matters, because the
 * enclave decides on the blob's AAD (key id, kind, keyring) and the parent checks the facts the
 * enclave derived from the unwrapped key against the row it sent (PARENT_SIGNER_MISMATCH).
 *
 * Bounded (least recently used out first), so a caller cycling through many keys costs memory
 * for `max` rows at most; each row is public data and ciphertext only.
 */
import { ChurnMap } from '../common/churn-map.js';

export const KEY_ROW_CACHE_ENTRIES = 4096;

export class KeyRowCache<K extends { keyId: string }> {
  /** Re-inserted on every use: a ChurnMap, not a Map (common/churn-map.ts says why). */
  readonly #rows = new ChurnMap<string, K>();
  readonly #max: number;

  constructor(max = KEY_ROW_CACHE_ENTRIES) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`KeyRowCache: max must be a positive integer, got ${max}`);
    this.#max = max;
  }

  get size(): number {
    return this.#rows.size;
  }

  /** A copy of the cached row (callers own what they get; the blob bytes are shared and never written). */
  get(keyId: string): K | undefined {
    const k = this.#rows.get(keyId);
    if (k === undefined) return undefined;
    // A Map iterates in insertion order: re-inserting makes this row the most recently used.
    this.#rows.delete(keyId);
    this.#rows.set(keyId, k);
    return { ...k };
  }

  put(k: K): void {
    this.#rows.delete(k.keyId);
    this.#rows.set(k.keyId, { ...k });
    if (this.#rows.size > this.#max) this.#rows.delete(this.#rows.first()![0]);
  }
}
