import { describe, expect, it } from 'vitest';
import type { SignerFacts } from '../common/protocol/enclave-api.js';
import { createKnownKeys } from './known-keys.js';

const facts = (keyId: string): SignerFacts => ({ keyId, kind: 'secp256k1', keyringId: 'ring', publicKey: '02'.padEnd(66, '0'), address: '0x' });

describe('known keys (the facts the pool decides ahead on)', () => {
  it('keeps a frozen copy: the caller changing its object changes nothing known', () => {
    const k = createKnownKeys({ maxEntries: 4, ttlMs: 60_000 });
    const mine = facts('a');
    k.put('a', mine);
    mine.address = '0xother';
    expect(k.get('a')?.address).toBe('0x');
    expect(Object.isFrozen(k.get('a'))).toBe(true);
  });

  it('holds at most maxEntries, dropping the least recently used', () => {
    const k = createKnownKeys({ maxEntries: 2, ttlMs: 60_000 });
    k.put('a', facts('a'));
    k.put('b', facts('b'));
    expect(k.get('a')?.keyId).toBe('a'); // now b is the least recently used
    k.put('c', facts('c'));
    expect(k.size).toBe(2);
    expect(k.get('b')).toBeUndefined();
    expect(k.get('a')?.keyId).toBe('a');
    expect(k.get('c')?.keyId).toBe('c');
  });

  it('forgets an entry ttlMs after it was learnt, however often it is used', () => {
    let t = 1_000;
    const k = createKnownKeys({ maxEntries: 4, ttlMs: 100, now: () => t });
    k.put('a', facts('a'));
    t += 60;
    expect(k.get('a')).toBeDefined();
    t += 39;
    expect(k.get('a')).toBeDefined();
    t += 1;
    expect(k.get('a')).toBeUndefined();
    expect(k.size).toBe(0);
  });

  it('keeps nothing when the bounds are 0 (the key cache is off), and clear() forgets everything', () => {
    for (const o of [
      { maxEntries: 0, ttlMs: 60_000 },
      { maxEntries: 4, ttlMs: 0 },
    ]) {
      const off = createKnownKeys(o);
      off.put('a', facts('a'));
      expect(off.get('a')).toBeUndefined();
    }
    const k = createKnownKeys({ maxEntries: 4, ttlMs: 60_000 });
    k.put('a', facts('a'));
    k.put('b', facts('b'));
    k.clear();
    expect(k.size).toBe(0);
    expect(k.get('a')).toBeUndefined();
  });
});
