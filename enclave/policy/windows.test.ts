/** Window state bounds (windows.ts): compaction keeps the sums exact and never lets a signature expire early. */
import { describe, expect, it } from 'vitest';
import { compact, emptyWindowState, MAX_WINDOW_ENTRIES, recordWindow, WINDOW_BUCKETS, windowUsage, type WindowState } from './windows.js';

const DAY = 86_400;
const T0 = 1_800_000_000;

function fill(n: number, every: number): WindowState {
  let s = emptyWindowState();
  for (let i = 0; i < n; i++) s = recordWindow(s, 'r', 'k', { t: T0 + i * every, value: String(i + 1), amount: '2' }, DAY);
  return s;
}

describe('window compaction', () => {
  it('a busy window stays bounded, with count, value and amount exact', () => {
    const n = 5_000;
    const s = fill(n, 10); // 5,000 signatures over ~14 hours of a 1-day window
    const list = s.rules.r!.k!;
    expect(list.length).toBeLessThanOrEqual(MAX_WINDOW_ENTRIES + 1);
    const u = windowUsage(s, 'r', 'k', DAY, T0 + n * 10);
    expect(u.count).toBe(n);
    expect(u.value).toBe(BigInt((n * (n + 1)) / 2));
    expect(u.amount).toBe(BigInt(2 * n));
  });

  it('never forgets a signature before its window ends; at most one bucket span late', () => {
    const s = fill(1_000, 60);
    const last = T0 + 999 * 60;
    // Just before the newest signature leaves the window, it still counts.
    expect(windowUsage(s, 'r', 'k', DAY, last + DAY - 1).count).toBeGreaterThanOrEqual(1);
    // Every signature still inside the window counts (exact below the compaction span).
    for (const at of [T0 + 1, T0 + DAY / 2, last]) {
      const inside = Array.from({ length: 1_000 }, (_, i) => T0 + i * 60).filter((t) => t > at - DAY).length;
      expect(windowUsage(s, 'r', 'k', DAY, at).count).toBeGreaterThanOrEqual(inside);
    }
    // Long after, nothing.
    expect(windowUsage(s, 'r', 'k', DAY, last + DAY + Math.ceil(DAY / WINDOW_BUCKETS)).count).toBe(0);
  });

  it('compact() is a fixed point on compacted lists and keeps the newest time of each bucket', () => {
    const list = Array.from({ length: 300 }, (_, i) => ({ t: T0 + i, value: '1', amount: '0' }));
    const once = compact(list, DAY);
    expect(compact(once, DAY)).toEqual(once);
    expect(Math.max(...once.map((e) => e.t))).toBe(T0 + 299);
    expect(once.reduce((a, e) => a + (e.n ?? 1), 0)).toBe(300);
  });

  it('signatures in the same second share one entry, with the same usage as one entry each', () => {
    let merged = emptyWindowState();
    const apart: WindowState = { version: 1, rules: { r: { k: [] } } };
    for (let i = 0; i < 200; i++) {
      const e = { t: T0 + Math.floor(i / 50), value: String(i), amount: String(2 * i) };
      merged = recordWindow(merged, 'r', 'k', e, 10);
      apart.rules.r!.k!.push(e);
    }
    expect(merged.rules.r!.k!.map((e) => [e.t, e.n])).toEqual([[T0, 50], [T0 + 1, 50], [T0 + 2, 50], [T0 + 3, 50]]);
    for (const now of [T0, T0 + 3, T0 + 9, T0 + 10, T0 + 11, T0 + 13, T0 + 14]) expect(windowUsage(merged, 'r', 'k', 10, now)).toEqual(windowUsage(apart, 'r', 'k', 10, now));
    // A clock that stepped back: not merged into a newer entry, and still counted.
    const back = recordWindow(merged, 'r', 'k', { t: T0 + 1, value: '1', amount: '0' }, 10);
    expect(back.rules.r!.k!.length).toBe(5);
    expect(windowUsage(back, 'r', 'k', 10, T0 + 5).count).toBe(201);
  });
});
