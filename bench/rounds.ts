/**
 * A benchmark point as alternated rounds (bench/e2e.ts): one side's rounds merged into one
 * result, and the median the point reports. Pure functions, so the arithmetic is tested
 * (rounds.test.ts) apart from any load.
 */
import type { LoadResult } from './e2e-harness.js';

/**
 * One side of a point from its rounds: counts and time summed, CPU per request weighted by
 * requests, latency percentiles the median of the rounds' (the rounds' samples are not kept).
 */
export function mergeRounds(rs: LoadResult[]): LoadResult {
  if (rs.length === 0) throw new Error('mergeRounds: no rounds');
  const n = rs.reduce((x, r) => x + r.n, 0);
  const seconds = rs.reduce((x, r) => x + r.seconds, 0);
  const cpuMsPerOp: Record<string, number> = {};
  for (const k of Object.keys(rs[0]!.cpuMsPerOp)) cpuMsPerOp[k] = +(rs.reduce((x, r) => x + (r.cpuMsPerOp[k] ?? 0) * r.n, 0) / Math.max(1, n)).toFixed(4);
  return {
    ...rs[0]!,
    n,
    seconds: +seconds.toFixed(3),
    opsPerSec: +(n / seconds).toFixed(1),
    meanMs: +(rs.reduce((x, r) => x + r.meanMs * r.n, 0) / Math.max(1, n)).toFixed(3),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p90Ms: median(rs.map((r) => r.p90Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    maxMs: Math.max(...rs.map((r) => r.maxMs)),
    errors: rs.reduce((x, r) => x + r.errors, 0),
    cpuMsPerOp,
  };
}

/** The median (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  if (xs.length === 0) throw new Error('median: no values');
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : +((s[m - 1]! + s[m]!) / 2).toFixed(3);
}
