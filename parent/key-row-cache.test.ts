import { describe, expect, it } from 'vitest';
import { KEY_ROW_CACHE_ENTRIES, KeyRowCache } from './key-row-cache.js';

const row = (keyId: string) => ({ keyId, label: `label of ${keyId}`, blob: Uint8Array.of(1, 2, 3) });

describe('KeyRowCache', () => {
  it('answers what was put, as a copy the caller may change', () => {
    const c = new KeyRowCache<ReturnType<typeof row>>();
    expect(c.get('a')).toBeUndefined();
    const a = row('a');
    c.put(a);
    a.label = 'changed after put';
    const got = c.get('a')!;
    expect(got.label).toBe('label of a');
    got.label = 'changed after get';
    expect(c.get('a')!.label).toBe('label of a');
  });

  it('holds at most max rows and drops the least recently used first', () => {
    const c = new KeyRowCache<ReturnType<typeof row>>(3);
    for (const id of ['a', 'b', 'c']) c.put(row(id));
    c.get('a'); // a is now the most recently used; b the least
    c.put(row('d'));
    expect(c.size).toBe(3);
    expect(c.get('b')).toBeUndefined();
    expect(['a', 'c', 'd'].map((id) => c.get(id)?.keyId)).toEqual(['a', 'c', 'd']);
    // Putting a row again refreshes it rather than taking a second slot.
    c.put(row('c'));
    expect(c.size).toBe(3);
  });

  it('is bounded by default and refuses a bound that is not a positive integer', () => {
    expect(KEY_ROW_CACHE_ENTRIES).toBe(4096);
    const c = new KeyRowCache<ReturnType<typeof row>>();
    for (let i = 0; i < KEY_ROW_CACHE_ENTRIES + 10; i++) c.put(row(`k${i}`));
    expect(c.size).toBe(KEY_ROW_CACHE_ENTRIES);
    expect(c.get('k0')).toBeUndefined();
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new KeyRowCache(bad)).toThrow(/positive integer/);
  });
});
