/**
 * Which signing jobs are cheap: the one test behind three choices of the
 * pool (worker-pool.ts) — which jobs may run inline on the main thread
 * (inline-lane.ts), which may be decided ahead, and which answers a worker
 * may hold back to send in a batch (worker.ts: a job's `cheap`). A cheap job
 * signs in well under a millisecond; the others (a PSBT, a seed key's
 * derivation, hashing a long message) take milliseconds to seconds.
 */
import type { SignJob } from './job-signer.js';

/** Characters of strings (and values) a request may hold to be signed inline: a digest, a short message or transaction. */
const INLINE_MAX_REQUEST = 4096;

/**
 * Whether a job is cheap: a secp256k1 key (no BIP32 derivation, no PSBT) and a request whose
 * strings add up to at most INLINE_MAX_REQUEST characters (hashing a long message, calldata or
 * typed data stays on a worker).
 */
export function inlineable(job: SignJob): boolean {
  if (job.kind !== 'secp256k1') return false;
  let budget = INLINE_MAX_REQUEST;
  const stack: unknown[] = [job.request];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') budget -= v.length;
    else if (typeof v === 'object' && v !== null) {
      const items = Array.isArray(v) ? v : Object.values(v);
      budget -= items.length;
      for (const x of items) stack.push(x);
    } else budget -= 1;
    if (budget < 0) return false;
  }
  return true;
}
