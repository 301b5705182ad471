/** Shared by the *.test.ts files in this folder only. Nothing in production imports it. */
import { createHash } from 'node:crypto';
import type { EntropySource } from './entropy.js';

export function bytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.startsWith('0x') ? hex.slice(2) : hex, 'hex'));
}

export function hex(b: Uint8Array): `0x${string}` {
  return `0x${Buffer.from(b).toString('hex')}`;
}

/** Well-known throwaway keys (never funded on any real network). */
export const KEY_A = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318' as const;
export const KEY_B = '0x8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f' as const;

/** Deterministic "entropy" for tests: sha256(label ‖ counter) stream. Counts its calls. */
export function testEntropy(label = 'test'): EntropySource & { calls: number; last: Uint8Array | undefined } {
  let counter = 0;
  const f = ((n: number) => {
    f.calls++;
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const block = createHash('sha256').update(`${label}:${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, n - off)), off);
      off += 32;
    }
    f.last = out;
    return out;
  }) as EntropySource & { calls: number; last: Uint8Array | undefined };
  f.calls = 0;
  f.last = undefined;
  return f;
}
