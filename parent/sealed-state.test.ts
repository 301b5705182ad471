/**
 * The parent's group commit of instance-scope sealed state (sealed-state.ts groupCommit): one
 * durable write releases every answer whose record it covers, never one it does not.
 */
import { describe, expect, it } from 'vitest';
import { groupCommit } from './sealed-state.js';

/** A store whose writes finish when the test says so, recording what was written. */
function slowStore() {
  const written: number[] = [];
  const inFlight: { sequence: number; done: (e?: Error) => void }[] = [];
  const put = (_k: string, sequence: number) =>
    new Promise<void>((resolve, reject) => {
      inFlight.push({ sequence, done: (e) => (e ? reject(e) : (written.push(sequence), resolve())) });
    });
  const finish = async (e?: Error) => {
    const w = inFlight.shift();
    if (!w) throw new Error('no write in flight');
    w.done(e);
    await new Promise((r) => setImmediate(r));
  };
  return { put, written, inFlight, finish };
}

const state = (p: Promise<void>) => {
  const s = { v: 'pending' as 'pending' | 'ok' | 'failed' };
  p.then(
    () => (s.v = 'ok'),
    () => (s.v = 'failed'),
  );
  return s;
};

describe('instance-scope sealed state: group commit', () => {
  it('answers that arrive during a write are released by the next single write, never before it is durable', async () => {
    const db = slowStore();
    const g = groupCommit(db.put);
    const first = state(g.store('kr', 1, {}));
    const rest = [2, 3, 4, 5, 6].map((n) => state(g.store('kr', n, {})));
    await new Promise((r) => setImmediate(r));
    expect(db.inFlight.map((w) => w.sequence)).toEqual([1]);
    expect(first.v).toBe('pending');
    await db.finish();
    expect(first.v).toBe('ok');
    expect(rest.every((s) => s.v === 'pending')).toBe(true);
    // One write, of the newest record, for the five that waited.
    expect(db.inFlight.map((w) => w.sequence)).toEqual([6]);
    await db.finish();
    expect(rest.every((s) => s.v === 'ok')).toBe(true);
    expect(db.written).toEqual([1, 6]);
    // Already covered: released at once, nothing written.
    await g.store('kr', 4, {});
    expect(db.inFlight).toHaveLength(0);
  });

  it('a failed write withholds exactly the answers it would have covered', async () => {
    const db = slowStore();
    const g = groupCommit(db.put);
    const a = state(g.store('kr', 1, {}));
    await new Promise((r) => setImmediate(r));
    const b = state(g.store('kr', 2, {}));
    await db.finish(new Error('SQLITE_FULL'));
    expect(a.v).toBe('failed');
    expect(b.v).toBe('pending');
    await db.finish();
    expect(b.v).toBe('ok');
    expect(db.written).toEqual([2]);
  });

  it('a new enclave life: answers of the old one still waiting are withheld, and its late write releases nothing of the new one', async () => {
    const db = slowStore();
    const g = groupCommit(db.put);
    const old = state(g.store('kr', 105, {}));
    await new Promise((r) => setImmediate(r));
    const oldQueued = state(g.store('kr', 106, {}));
    g.reset(); // the enclave restarted; its successor continues from the stored record 100
    await new Promise((r) => setImmediate(r));
    expect(oldQueued.v).toBe('failed');
    expect(old.v).toBe('failed');
    const fresh = state(g.store('kr', 101, {}));
    await db.finish(); // the old life's write of 105 lands late
    expect(fresh.v).toBe('pending');
    expect(db.inFlight.map((w) => w.sequence)).toEqual([101]);
    await db.finish();
    expect(fresh.v).toBe('ok');
    // The row ends with the new life's record.
    expect(db.written).toEqual([105, 101]);
  });
});
