import { describe, expect, it, vi } from 'vitest';
import { CancellationSource, cancellationOf } from './cancellation.js';

describe('CancellationSource', () => {
  it('runs each registered callback once, on the first abort, with the reason readable', () => {
    const c = new CancellationSource();
    const seen: unknown[] = [];
    c.onAbort(() => seen.push(['a', c.reason]));
    c.onAbort(() => seen.push(['b', c.aborted]));
    expect([c.aborted, c.reason]).toEqual([false, undefined]);
    c.abort('first');
    c.abort('second');
    expect(seen).toEqual([['a', 'first'], ['b', true]]);
    expect(c.reason).toBe('first');
  });

  it('an unregistered callback does not run; the others still do', () => {
    const c = new CancellationSource();
    const seen: string[] = [];
    const off = c.onAbort(() => seen.push('gone'));
    c.onAbort(() => seen.push('kept'));
    off();
    off(); // twice is harmless
    c.abort(new Error('x'));
    expect(seen).toEqual(['kept']);
  });

  it('callbacks that unregister themselves when they run (as the signing pool\'s do) all run: none is skipped', () => {
    // Found in session 25: the unregister spliced the array abort() was looping over, so with four
    // jobs of the pool on one source only the 1st and 3rd were cancelled.
    const s = new CancellationSource();
    const ran: number[] = [];
    for (let i = 0; i < 4; i++) {
      const off = s.onAbort(() => {
        off();
        ran.push(i);
      });
    }
    s.abort();
    expect(ran).toEqual([0, 1, 2, 3]);
  });

  it('a callback registered after the abort never runs, as with an AbortSignal (callers check `aborted`)', () => {
    const c = new CancellationSource();
    c.abort();
    const fn = vi.fn();
    c.onAbort(fn)();
    expect(fn).not.toHaveBeenCalled();
    expect(c.aborted).toBe(true);
  });

  it('a callback that throws does not stop the others; its error is rethrown afterwards, asynchronously', () => {
    const later = vi.spyOn(globalThis, 'queueMicrotask').mockImplementation(() => {});
    try {
      const c = new CancellationSource();
      const seen: string[] = [];
      c.onAbort(() => {
        throw new Error('boom');
      });
      c.onAbort(() => seen.push('after'));
      expect(() => c.abort()).not.toThrow();
      expect(seen).toEqual(['after']);
      expect(later).toHaveBeenCalledTimes(1);
      expect(() => (later.mock.calls[0]![0] as () => void)()).toThrow('boom');
    } finally {
      later.mockRestore();
    }
  });

  it('`signal` is a real AbortSignal made on first use: it follows a later abort, or starts aborted', () => {
    const before = new CancellationSource();
    const s = before.signal;
    expect(before.signal).toBe(s);
    const heard = vi.fn();
    s.addEventListener('abort', heard);
    before.abort('why');
    expect([s.aborted, s.reason, heard.mock.calls.length]).toEqual([true, 'why', 1]);

    const after = new CancellationSource();
    after.abort('late');
    expect([after.signal.aborted, after.signal.reason]).toEqual([true, 'late']);
  });
});

describe('cancellationOf(AbortSignal)', () => {
  it('reads the signal and registers one listener per callback, removed by the returned function', () => {
    const ac = new AbortController();
    const c = cancellationOf(ac.signal);
    const seen: string[] = [];
    const off = c.onAbort(() => seen.push('gone'));
    c.onAbort(() => seen.push('kept'));
    off();
    expect(c.aborted).toBe(false);
    ac.abort('r');
    expect([c.aborted, c.reason, seen]).toEqual([true, 'r', ['kept']]);
    const fn = vi.fn();
    c.onAbort(fn);
    expect(fn).not.toHaveBeenCalled();
  });
});
