import { afterEach, describe, expect, it } from 'vitest';
import { cacheArenaSlots, createKeyCache, type KeyCache, type KeyFacts } from './key-cache.js';
import { arenaBytes, SecretArena } from './secret-arena.js';

const facts = (keyId: string): KeyFacts => ({ keyId, kind: 'secp256k1', keyringId: 'ring', publicKey: '02'.padEnd(66, '0'), address: '0x' });
const secretOf = (b: number) => new Uint8Array(32).fill(b);
const blob = (b: number) => new Uint8Array(60).fill(b);
const zero = (u: Uint8Array) => u.every((x) => x === 0);

let caches: KeyCache[] = [];
afterEach(() => {
  for (const c of caches) c.close();
  caches = [];
});
function cache(o: Parameters<typeof createKeyCache>[0]): KeyCache {
  const c = createKeyCache(o);
  caches.push(c);
  return c;
}

describe('key cache', () => {
  it('the slot binds keyring, key id, kind and every byte of the blob', () => {
    const c = cache({ maxEntries: 4, ttlMs: 60_000 });
    const b = blob(7);
    const s = c.slot('ring', 'k', 'secp256k1', b);
    const flipped = b.slice();
    flipped[59]! ^= 1;
    expect(new Set([s, c.slot('ring2', 'k', 'secp256k1', b), c.slot('ring', 'k2', 'secp256k1', b), c.slot('ring', 'k', 'bip32-seed', b), c.slot('ring', 'k', 'secp256k1', flipped)]).size).toBe(5);
    c.put(s, secretOf(1), facts('k'));
    expect(c.get(c.slot('ring', 'k', 'secp256k1', flipped))).toBeUndefined();
    expect(c.get(s)?.secret).toEqual(secretOf(1));
  });

  it('keeps its own copy: the caller wiping its array does not touch the entry', () => {
    const c = cache({ maxEntries: 4, ttlMs: 60_000 });
    const mine = secretOf(3);
    const e = c.put('a', mine, facts('a'));
    mine.fill(0);
    expect(e.secret).toEqual(secretOf(3));
  });

  it('LRU eviction zeroes the evicted secret', () => {
    const c = cache({ maxEntries: 2, ttlMs: 60_000 });
    const a = c.put('a', secretOf(1), facts('a')).secret;
    const b = c.put('b', secretOf(2), facts('b')).secret;
    c.get('a'); // a is now the most recently used: b goes first
    c.put('c', secretOf(3), facts('c'));
    expect(c.size).toBe(2);
    expect(zero(b)).toBe(true);
    expect(zero(a)).toBe(false);
    expect(c.get('b')).toBeUndefined();
  });

  it('expiry zeroes the secret, on lookup and by the sweep when idle; use does not extend the lifetime', async () => {
    let t = 1_000;
    const c = cache({ maxEntries: 8, ttlMs: 100, now: () => t, sweepMs: 5 });
    const a = c.put('a', secretOf(1), facts('a')).secret;
    const b = c.put('b', secretOf(2), facts('b')).secret;
    t += 60;
    expect(c.get('a')).toBeDefined();
    t += 50; // 110 ms after the unwrap
    expect(c.get('a')).toBeUndefined();
    expect(zero(a)).toBe(true);
    // b is never looked up again: the sweep wipes it
    await new Promise((r) => setTimeout(r, 50));
    expect(zero(b)).toBe(true);
    expect(c.size).toBe(0);
  });

  it('clear() (keyring change, lock) and close() zero every secret', () => {
    const c = cache({ maxEntries: 8, ttlMs: 60_000 });
    const s = [1, 2, 3].map((i) => c.put(`k${i}`, secretOf(i), facts(`k${i}`)).secret);
    c.clear();
    expect(s.every(zero)).toBe(true);
    const d = c.put('d', secretOf(4), facts('d')).secret;
    c.close();
    expect(zero(d)).toBe(true);
    expect(c.size).toBe(0);
  });

  it('disabled (maxEntries 0 or ttlMs 0): nothing is kept', () => {
    for (const o of [{ maxEntries: 0, ttlMs: 60_000 }, { maxEntries: 8, ttlMs: 0 }]) {
      const c = cache(o);
      expect(c.enabled).toBe(false);
      c.put('a', secretOf(1), facts('a'));
      expect(c.get('a')).toBeUndefined();
      expect(c.size).toBe(0);
    }
  });

  it('keeps its secrets only in its arena: each entry a view of a slot, zeroed and freed when it goes', () => {
    const buf = new SharedArrayBuffer(arenaBytes(cacheArenaSlots({ maxEntries: 2, ttlMs: 60_000 })));
    const arena = new SecretArena(buf);
    const c = cache({ maxEntries: 2, ttlMs: 60_000, arena });
    const a = c.put('a', secretOf(1), facts('a')).secret;
    const seed = new Uint8Array(64).fill(2);
    const b = c.put('b', seed, facts('b')).secret;
    expect([a.buffer, b.buffer]).toEqual([buf, buf]);
    expect(b).toEqual(seed);
    expect(arena.available).toBe(1);
    c.put('c', secretOf(3), facts('c')); // evicts a: its slot is zeroed and free again
    expect(zero(a)).toBe(true);
    expect(arena.available).toBe(1);
    c.clear();
    expect(arena.available).toBe(3);
    expect(zero(new Uint8Array(buf))).toBe(true);
  });

  it('with its arena full it keeps nothing: the entry returned is the caller’s own array, to wipe', () => {
    const arena = new SecretArena(new ArrayBuffer(arenaBytes(1)));
    const c = cache({ maxEntries: 8, ttlMs: 60_000, arena });
    const kept = c.put('a', secretOf(1), facts('a'));
    const mine = secretOf(2);
    const e = c.put('b', mine, facts('b'));
    expect(e.secret).toBe(mine);
    expect(c.get('b')).toBeUndefined();
    expect(c.size).toBe(1);
    expect(c.get('a')?.secret).toBe(kept.secret);
  });
});
