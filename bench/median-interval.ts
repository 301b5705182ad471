/**
 * How sure a benchmark's median over alternated rounds is. On the shared 2-core box one round's
 * ratio between two configurations moves by ±20 % with the neighbours' load, so a median alone
 * cannot say whether a cost is under a target; its interval can.
 */

/**
 * A distribution-free interval for the median of `xs` (the sign-test interval): with n values
 * sorted, [x(k), x(n−k+1)] holds the true median with probability 1 − 2·P(Bin(n, ½) ≤ k−1),
 * whatever the distribution, as long as rounds are independent. The largest k whose coverage is
 * at least `confidence` is taken; with too few rounds for that (n ≤ 4 at 90 %), the interval is
 * [min, max] and `confidence` reports the lower coverage it actually has.
 */
export function medianInterval(xs: readonly number[], confidence = 0.9): { lo: number; hi: number; confidence: number } | null {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return null;
  // cdf[j] = P(Bin(n, ½) ≤ j)
  const cdf: number[] = [];
  let c = 1;
  let acc = 0;
  for (let j = 0; j <= n; j++) {
    acc += c / 2 ** n;
    cdf.push(acc);
    c = (c * (n - j)) / (j + 1);
  }
  let k = 1;
  while (k + 1 <= Math.ceil(n / 2) && 1 - 2 * cdf[k]! >= confidence) k++;
  return { lo: s[k - 1]!, hi: s[n - k]!, confidence: +Math.max(0, 1 - 2 * cdf[k - 1]!).toFixed(4) };
}

