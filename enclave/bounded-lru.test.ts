/**
 * The bounds the key cache and the known facts share (bounded-lru.ts): count, age, and the drop
 * hook that sees every entry leave exactly once — the key cache zeroes secrets there, so an entry
 * that left without it would leave a secret in memory.
 */
import { describe, expect, it } from 'vitest';
import { createBoundedLru } from './bounded-lru.js';

function lru(maxEntries = 3, ttlMs = 1_000) {
  let t = 0;
  const dropped: string[] = [];
  const m = createBoundedLru<string>({ maxEntries, ttlMs, now: () => t, onDrop: (v) => dropped.push(v) });
  return { m, dropped, at: (ms: number) => (t = ms) };
}

describe('bounded LRU', () => {
  it('keeps at most maxEntries; the least recently used goes first, through the hook', () => {
    const { m, dropped } = lru();
    for (const k of ['a', 'b', 'c']) m.put(k, `v${k}`);
    expect(m.get('a')).toBe('va'); // a is now the most recently used
    m.put('d', 'vd');
    expect(dropped).toEqual(['vb']);
    expect([m.get('b'), m.get('a'), m.get('c'), m.get('d')]).toEqual([undefined, 'va', 'vc', 'vd']);
    expect(m.size).toBe(3);
  });

  it('an entry lives ttlMs from its put, not from its last use; an expired one is dropped on lookup or sweep', () => {
    const { m, dropped, at } = lru();
    m.put('a', 'va');
    at(500);
    m.put('b', 'vb');
    at(999);
    expect(m.get('a')).toBe('va'); // a use does not extend it
    at(1_000);
    expect(m.get('a')).toBeUndefined();
    expect(dropped).toEqual(['va']);
    at(1_500);
    m.sweep();
    expect(dropped).toEqual(['va', 'vb']);
    expect(m.size).toBe(0);
  });

  it('a put under a key in use drops the old value; clear drops every value; each value is dropped once', () => {
    const { m, dropped } = lru();
    m.put('a', 'old');
    m.put('a', 'new');
    m.put('b', 'vb');
    expect(dropped).toEqual(['old']);
    m.clear();
    m.clear();
    expect(dropped.sort()).toEqual(['new', 'old', 'vb']);
    expect(m.size).toBe(0);
  });

  it('maxEntries or ttlMs 0 keeps nothing and says so', () => {
    for (const [n, ttl] of [[0, 1_000], [3, 0]] as const) {
      const { m, dropped } = lru(n, ttl);
      expect(m.enabled).toBe(false);
      expect(m.put('a', 'va')).toBe(false);
      expect(m.get('a')).toBeUndefined();
      expect(dropped).toEqual([]); // never kept, so never dropped: the caller still owns it
    }
  });
});
