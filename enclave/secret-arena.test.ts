import { describe, expect, it } from 'vitest';
import { arenaBytes, SecretArena, SLOT_BYTES, zeroArena } from './secret-arena.js';

const zero = (u: Uint8Array) => u.every((x) => x === 0);

describe('secret arena', () => {
  it('hands out views of the asked length, each in its own slot of the buffer', () => {
    const buf = new SharedArrayBuffer(arenaBytes(3));
    const a = new SecretArena(buf);
    expect([a.capacity, a.available]).toEqual([3, 3]);
    const x = a.alloc(32)!;
    const y = a.alloc(64)!;
    const z = a.alloc(16)!;
    expect([x.length, y.length, z.length]).toEqual([32, 64, 16]);
    for (const v of [x, y, z]) {
      expect(v.buffer).toBe(buf);
      expect(v.byteOffset % SLOT_BYTES).toBe(0);
      expect(zero(v)).toBe(true);
    }
    expect(new Set([x.byteOffset, y.byteOffset, z.byteOffset]).size).toBe(3);
    x.fill(1);
    y.fill(2);
    z.fill(3);
    // No overlap: each view still holds what was written to it.
    expect([x.every((b) => b === 1), y.every((b) => b === 2), z.every((b) => b === 3)]).toEqual([true, true, true]);
    expect(a.available).toBe(0);
  });

  it('full: alloc answers undefined; a secret larger than a slot never fits', () => {
    const a = new SecretArena(new ArrayBuffer(arenaBytes(1)));
    expect(a.alloc(SLOT_BYTES + 1)).toBeUndefined();
    expect(a.alloc(32)).toBeDefined();
    expect(a.alloc(32)).toBeUndefined();
    expect(new SecretArena(new ArrayBuffer(0)).alloc(1)).toBeUndefined();
  });

  it('free zeroes the whole slot and puts it back on the free list (reused next)', () => {
    const buf = new ArrayBuffer(arenaBytes(2));
    const all = new Uint8Array(buf);
    const a = new SecretArena(buf);
    const x = a.alloc(32)!;
    const y = a.alloc(32)!;
    x.fill(7);
    y.fill(8);
    // Bytes of the slot beyond the view (a longer secret once lived there) are zeroed too.
    all.fill(9, x.byteOffset + 32, x.byteOffset + SLOT_BYTES);
    a.free(x);
    expect(zero(all.subarray(x.byteOffset, x.byteOffset + SLOT_BYTES))).toBe(true);
    expect(y.every((b) => b === 8)).toBe(true);
    expect(a.available).toBe(1);
    const again = a.alloc(64)!;
    expect(again.byteOffset).toBe(x.byteOffset);
    expect(zero(again)).toBe(true);
    expect(a.alloc(1)).toBeUndefined();
  });

  it('a second free of the same view, or a view of other memory, frees nothing more (it is only wiped)', () => {
    const a = new SecretArena(new ArrayBuffer(arenaBytes(2)));
    const x = a.alloc(32)!;
    a.free(x);
    a.free(x);
    expect(a.available).toBe(2); // not pushed twice: two allocs get two distinct slots
    const p = a.alloc(32)!;
    const q = a.alloc(32)!;
    expect(p.byteOffset).not.toBe(q.byteOffset);
    expect(a.alloc(32)).toBeUndefined();
    const foreign = new Uint8Array(32).fill(5);
    a.free(foreign);
    expect(zero(foreign)).toBe(true);
    expect(a.available).toBe(0);
    // A view of the arena's buffer that alloc did not hand out (not at a slot's start) is not a slot.
    const odd = new Uint8Array(p.buffer, p.byteOffset + 1, 8);
    a.free(odd);
    expect(a.available).toBe(0);
  });

  it('zeroArena zeroes every slot, handed out or not', () => {
    const buf = new SharedArrayBuffer(arenaBytes(4));
    const a = new SecretArena(buf);
    a.alloc(32)!.fill(1);
    a.alloc(64)!.fill(2);
    zeroArena(buf);
    expect(zero(new Uint8Array(buf))).toBe(true);
  });
});
