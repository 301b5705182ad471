import { describe, expect, it } from 'vitest';
import type { LoadResult } from './e2e-harness.js';
import { median, mergeRounds } from './rounds.js';

const round = (n: number, seconds: number, p50Ms: number, cpu: Record<string, number>, extra: Partial<LoadResult> = {}): LoadResult => ({
  transport: 'ipc',
  method: 'signer_signDigest',
  concurrency: 64,
  errors: 0,
  n,
  seconds,
  opsPerSec: n / seconds,
  meanMs: p50Ms,
  p50Ms,
  p90Ms: p50Ms * 2,
  p99Ms: p50Ms * 3,
  maxMs: p50Ms * 4,
  cpuMsPerOp: cpu,
  ...extra,
});

describe('a point as alternated rounds', () => {
  it('median: the middle value, or the mean of the middle two', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([0.7, 0.72])).toBe(0.71);
    expect(() => median([])).toThrow(/no values/);
  });

  it('throughput is over all rounds (not the mean of the rates), CPU per request weighted by requests', () => {
    // 1,000 in 2 s and 3,000 in 1 s: 4,000 / 3 s = 1,333.3/s (the mean of the rates, 1,750, would not be).
    const m = mergeRounds([round(1000, 2, 10, { parentMain: 0.2 }), round(3000, 1, 20, { parentMain: 0.1 })]);
    expect(m.n).toBe(4000);
    expect(m.seconds).toBe(3);
    expect(m.opsPerSec).toBe(1333.3);
    // (1,000 · 0.2 + 3,000 · 0.1) / 4,000 = 0.125 ms per request
    expect(m.cpuMsPerOp.parentMain).toBe(0.125);
    expect(m.meanMs).toBe(17.5);
  });

  it("latency percentiles are the median of the rounds', the maximum is the largest, errors add up", () => {
    const m = mergeRounds([round(100, 1, 5, {}, { errors: 1 }), round(100, 1, 9, {}), round(100, 1, 7, {}, { errors: 2 })]);
    expect(m.p50Ms).toBe(7);
    expect(m.p90Ms).toBe(14);
    expect(m.p99Ms).toBe(21);
    expect(m.maxMs).toBe(36);
    expect(m.errors).toBe(3);
  });

  it('no rounds is an error, not an empty result', () => {
    expect(() => mergeRounds([])).toThrow(/no rounds/);
  });
});
