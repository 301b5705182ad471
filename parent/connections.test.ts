import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createConnectionTracker } from './connections.js';

/** Enough of a socket for the tracker: close events and destroy(). */
function fakeSocket(): Socket & { destroyedByTracker: boolean } {
  const e = new EventEmitter() as EventEmitter & { destroyedByTracker: boolean; destroy(): void };
  e.destroyedByTracker = false;
  e.destroy = () => {
    e.destroyedByTracker = true;
    e.emit('close');
  };
  return e as unknown as Socket & { destroyedByTracker: boolean };
}

describe('connection cap', () => {
  it('under the cap every connection is admitted', () => {
    const t = createConnectionTracker(2);
    expect(t.admit(fakeSocket())).toBeDefined();
    expect(t.admit(fakeSocket())).toBeDefined();
    expect(t.size).toBe(2);
  });

  it('at the cap the oldest never-answered connection goes first, then the least recently active idle one', () => {
    let clock = 0;
    const t = createConnectionTracker(3, () => clock++);
    const answered = fakeSocket();
    const a = t.admit(answered)!;
    t.begin(a);
    t.end(a);
    const silent1 = fakeSocket();
    t.admit(silent1);
    const silent2 = fakeSocket();
    t.admit(silent2);
    t.admit(fakeSocket());
    expect(silent1.destroyedByTracker).toBe(true);
    expect(answered.destroyedByTracker).toBe(false);
    expect(t.evicted).toBe(1);
    expect(t.size).toBe(3);
  });

  it('a connection with a request in flight is never evicted; when all are busy the new one is closed', () => {
    const t = createConnectionTracker(2);
    const s1 = fakeSocket();
    const s2 = fakeSocket();
    t.begin(t.admit(s1));
    t.begin(t.admit(s2));
    const s3 = fakeSocket();
    expect(t.admit(s3)).toBeUndefined();
    expect(s3.destroyedByTracker).toBe(true);
    expect(s1.destroyedByTracker || s2.destroyedByTracker).toBe(false);
  });

  it('among answered idle connections the least recently active is evicted', () => {
    let clock = 0;
    const t = createConnectionTracker(2, () => clock++);
    const old = fakeSocket();
    const recent = fakeSocket();
    const o = t.admit(old)!;
    const r = t.admit(recent)!;
    t.begin(r);
    t.end(r);
    t.begin(o);
    t.end(o); // `old` is now the most recently active
    t.admit(fakeSocket());
    expect(recent.destroyedByTracker).toBe(true);
    expect(old.destroyedByTracker).toBe(false);
  });
});
