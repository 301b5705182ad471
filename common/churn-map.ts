/**
 * A Map for entries that come and go all the time (requests in flight, records
 * waiting to be written), which keeps V8 from retaining the entries it has
 * already deleted.
 *
 * Why: a JS Map stores its entries in a hash table that V8 replaces with a new
 * one whenever inserts fill it up (deleted entries leave holes until then), and
 * under churn that happens every few dozen inserts. The replaced table is not
 * cleared: it keeps pointing at the entries it held and at its successor (for
 * iterators that were open). Two V8 details turn that into a leak-like cost:
 * once a table has been promoted to the old generation (it lived through two
 * young-generation collections, e.g. while the process was idle), every
 * successor is allocated in the old generation too, for the rest of the Map's
 * life; and the young-generation collector treats every pointer from an old
 * object as live, dead or not. So each replaced table keeps the entries that
 * were live when it was replaced — with everything they reference: a pending
 * request's resolver holds the whole request — alive until the next full
 * collection, and they get promoted. Measured (Node 20 and 22): 400,000
 * inserts and deletes with 64 live, each entry ~2 KB of objects: the old
 * generation grows 15–34 MB and the loop is 3–7× slower when the table was
 * promoted first, 0.3 MB when it was not. In the parent this was the
 * "collector mode" picked per process start (docs/performance.md, Session 12):
 * ~1.8 MB promoted per scavenge instead of ~0.13 MB.
 *
 * What: every few inserts (at least RENEW_MIN, and at least RENEW_FACTOR
 * times the entries held, so copying costs at most ~1/RENEW_FACTOR of a copy
 * per insert) the entries move to a new Map, whose table is young again. A
 * promoted table can then retain at most that many entries, once.
 *
 * Renewal keeps insertion order, so an LRU built on re-insertion stays one.
 * Iteration (keys, values, entries, for…of) is over a snapshot taken when it
 * starts, so a caller may delete or insert while iterating. Iteration is for
 * the rare paths (close, timeouts); the hot path is get/set/has/delete/first.
 */

/** Inserts between renewals, at least. */
export const RENEW_MIN = 256;
/** Inserts between renewals, at least this many times the entries held. */
export const RENEW_FACTOR = 4;

export class ChurnMap<K, V> {
  #map = new Map<K, V>();
  #inserts = 0;
  /** Times the entries moved to a new Map (tests). */
  renewals = 0;

  get size(): number {
    return this.#map.size;
  }

  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  set(key: K, value: V): this {
    this.#map.set(key, value);
    if (++this.#inserts >= RENEW_MIN && this.#inserts >= RENEW_FACTOR * this.#map.size) {
      this.#map = new Map(this.#map);
      this.#inserts = 0;
      this.renewals++;
    }
    return this;
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  /** Empties the map; the old table is dropped, not cleared in place. */
  clear(): void {
    this.#map = new Map();
    this.#inserts = 0;
  }

  /** The oldest entry (insertion order; an LRU's least recently used), without a snapshot. */
  first(): [K, V] | undefined {
    return this.#map.entries().next().value;
  }

  /** A snapshot of the keys, in insertion order. */
  keys(): K[] {
    return [...this.#map.keys()];
  }

  /** A snapshot of the values, in insertion order. */
  values(): V[] {
    return [...this.#map.values()];
  }

  /** A snapshot of the entries, in insertion order. */
  entries(): [K, V][] {
    return [...this.#map.entries()];
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries()[Symbol.iterator]();
  }
}
