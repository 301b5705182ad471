import { describe, expect, it } from 'vitest';
import { medianInterval } from './median-interval.js';

/** P(Bin(n, ½) ≤ j), by summing the binomial terms directly (the reference for the helper's loop). */
function binomCdf(n: number, j: number): number {
  let total = 0;
  for (let i = 0; i <= j; i++) {
    let c = 1;
    for (let t = 0; t < i; t++) c = (c * (n - t)) / (t + 1);
    total += c;
  }
  return total / 2 ** n;
}

describe('medianInterval (sign-test interval of the median)', () => {
  it('16 rounds at 90 %: the 5th and 12th smallest values, coverage 1 − 2·P(Bin(16, ½) ≤ 4) = 92.3 %', () => {
    const xs = [16, 3, 9, 1, 12, 5, 14, 7, 2, 10, 15, 4, 8, 13, 6, 11];
    const i = medianInterval(xs, 0.9)!;
    expect([i.lo, i.hi]).toEqual([5, 12]);
    expect(i.confidence).toBeCloseTo(1 - 2 * binomCdf(16, 4), 4);
    expect(i.confidence).toBeGreaterThanOrEqual(0.9);
  });

  it('takes the narrowest interval that still has the coverage asked for', () => {
    for (const n of [5, 6, 8, 10, 12, 16, 20, 31, 40]) {
      const xs = Array.from({ length: n }, (_, k) => k + 1);
      const i = medianInterval(xs, 0.9)!;
      const k = i.lo; // values are 1..n, so x(k) = k
      expect(i.hi).toBe(n - k + 1);
      expect(i.confidence).toBeGreaterThanOrEqual(0.9);
      // One step narrower would fall below 90 % (or cross the middle).
      if (k + 1 <= Math.ceil(n / 2)) expect(1 - 2 * binomCdf(n, k)).toBeLessThan(0.9);
    }
  });

  it('with too few rounds for the coverage, says so: [min, max] and the coverage it has (4 rounds: 87.5 %)', () => {
    const i = medianInterval([0.9, 1.1, 1.0, 0.8], 0.9)!;
    expect([i.lo, i.hi]).toEqual([0.8, 1.1]);
    expect(i.confidence).toBe(0.875);
  });

  it('ignores non-finite values and has no interval for none', () => {
    expect(medianInterval([Number.NaN, Number.POSITIVE_INFINITY])).toBeNull();
    expect(medianInterval([])).toBeNull();
    expect(medianInterval([1, Number.NaN, 2, 3, 4, 5])).toEqual(medianInterval([1, 2, 3, 4, 5]));
  });

  it('one round: the value itself, with no coverage to speak of', () => {
    expect(medianInterval([7])).toEqual({ lo: 7, hi: 7, confidence: 0 });
  });
});
