/**
 * Hostile host against the signing workers' key cache (issue 11 §2): the host
 * sends the enclave any key record it likes, in any order. After a key signed
 * (and so sits unwrapped in a worker's cache), a changed blob, the blob under
 * another key id, kind or keyring must fail exactly as it fails with no cache
 * at all. Real worker threads (dist/enclave/worker.js), one per pool, so the
 * second request meets the first one's cache entry; and the same again with
 * inline signing on (enclave/worker-pool.ts "Inline"), where a cheap job on an
 * idle pool is unwrapped, cached and signed by the main thread's own cache;
 * and with jobs decided ahead (worker-pool.ts "Decided ahead"), where the
 * main thread decides a job on the facts it learnt for that exact blob before
 * a worker signs it: the cached success is decided ahead, the attack never is.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { verifyMessage } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wrapKey } from '../../enclave/kms/wrapped-key.js';
import { addressFromPrivateKey } from '../../enclave/signers/index.js';
import { createWorkerPool, type SignJob, type WorkerPool } from '../../enclave/worker-pool.js';
import { watchWorkers, type WorkerWatch } from '../../enclave/worker-test-helpers.js';

const pools: WorkerPool[] = [];
/** Counts the jobs handed to a worker (a job run inline posts nothing). */
let watch: WorkerWatch;
beforeAll(() => {
  watch = watchWorkers();
});
afterAll(async () => {
  watch.stop();
  for (const p of pools) await p.close();
});

const RING = randomUUID();
const ringKey = new Uint8Array(randomBytes(32));
const secret = new Uint8Array(32).fill(7);
const address = addressFromPrivateKey(secret);

let inline = false;
let ahead = false;
/** Before each request in inline mode: lets the pool's back-off check after the last inline job run, so the next one is inline too. */
const turn = () => (inline ? new Promise((r) => setImmediate(r)) : Promise.resolve());

function pool(cached: boolean): WorkerPool {
  const p = createWorkerPool({ size: 1, inline, decideAhead: ahead, ...(cached ? {} : { keyCache: { maxEntries: 0, ttlMs: 0 } }) });
  p.setKeyring(RING, ringKey);
  pools.push(p);
  return p;
}

function job(keyId: string, blob: Uint8Array, over: Partial<SignJob> = {}): SignJob {
  return { op: 'personal_sign', keyId, kind: 'secp256k1', keyringId: RING, blob, request: { message: 'hi' }, ...over };
}

async function signs(p: WorkerPool, j: SignJob): Promise<void> {
  await turn();
  const before = watch.jobs;
  const { result, facts } = await p.run(j);
  // Inline mode: the job ran on this thread (its cache), not on a worker.
  expect(watch.jobs - before).toBe(inline ? 0 : 1);
  expect(facts.address).toBe(address);
  expect(await verifyMessage({ address, message: 'hi', signature: (result as { signature: `0x${string}` }).signature })).toBe(true);
}

/** The error of a job as the caller sees it (code and message), or 'signed'. */
async function outcome(p: WorkerPool, j: SignJob): Promise<string> {
  await turn();
  try {
    await p.run(j);
    return 'signed';
  } catch (e) {
    const x = e as { code: string; message: string };
    return `${x.code}: ${x.message}`;
  }
}

/** Runs `attack` after a cached success on a caching pool, and alone on a pool without a cache: same answer, never a signature. */
async function sameAsUncached(first: SignJob, attack: SignJob): Promise<string> {
  const cachedPool = pool(true);
  await signs(cachedPool, first);
  const known = watch.decidedAhead;
  await signs(cachedPool, first); // the second one is served from the cache
  expect(watch.decidedAhead - known).toBe(ahead ? 1 : 0);
  const withCache = await outcome(cachedPool, attack);
  expect(watch.decidedAhead - known).toBe(ahead ? 1 : 0); // the attack's blob is not one the pool knows
  const withoutCache = await outcome(pool(false), attack);
  expect(withCache).toBe(withoutCache);
  expect(withCache).not.toBe('signed');
  // and the genuine record still signs afterwards
  await signs(cachedPool, first);
  return withCache;
}

describe.each([
  ['on signing workers', false, false],
  ['inline on the main thread', true, false],
  ['on signing workers, decided ahead', false, true],
] as const)('hostile host: the key cache, %s', (_where, inlineMode, aheadMode) => {
  beforeAll(() => {
    inline = inlineMode;
    ahead = aheadMode;
  });

  it('a blob tampered after a cached success fails exactly as without the cache', async () => {
    const keyId = randomUUID();
    const blob = wrapKey(ringKey, { keyringId: RING, keyId, kind: 'secp256k1' }, secret);
    for (const at of [5, 20, blob.length - 1]) {
      const tampered = blob.slice();
      tampered[at]! ^= 0x01; // nonce, ciphertext, tag
      expect(await sameAsUncached(job(keyId, blob), job(keyId, tampered))).toMatch(/^WRAPPED_KEY_INVALID: /);
    }
    // a truncated blob, and one with a byte appended
    expect(await sameAsUncached(job(keyId, blob), job(keyId, blob.subarray(0, blob.length - 1)))).toMatch(/^WRAPPED_KEY_INVALID: /);
    expect(await sameAsUncached(job(keyId, blob), job(keyId, Uint8Array.of(...blob, 0)))).toMatch(/^WRAPPED_KEY_INVALID: /);
  });

  it('the cached blob sent under another key id, or as another kind, fails as without the cache', async () => {
    const keyId = randomUUID();
    const blob = wrapKey(ringKey, { keyringId: RING, keyId, kind: 'secp256k1' }, secret);
    expect(await sameAsUncached(job(keyId, blob), job(randomUUID(), blob))).toMatch(/^WRAPPED_KEY_INVALID: /);
    expect(await sameAsUncached(job(keyId, blob), job(keyId, blob, { kind: 'bip32-seed', op: 'personal_sign', request: { message: 'hi', path: "m/0'" } }))).toMatch(/^WRAPPED_KEY_INVALID: /);
  });

  it('the cached key sent under another keyring id fails as without the cache', async () => {
    const keyId = randomUUID();
    const blob = wrapKey(ringKey, { keyringId: RING, keyId, kind: 'secp256k1' }, secret);
    expect(await sameAsUncached(job(keyId, blob), job(keyId, blob, { keyringId: randomUUID() }))).toMatch(/^KEYRING_MISMATCH: /);
  });

  it('a new blob for the same key id (re-wrapped by the enclave) signs; the old one still does while it authenticates', async () => {
    const keyId = randomUUID();
    const blob1 = wrapKey(ringKey, { keyringId: RING, keyId, kind: 'secp256k1' }, secret);
    const blob2 = wrapKey(ringKey, { keyringId: RING, keyId, kind: 'secp256k1' }, secret);
    const p = pool(true);
    await signs(p, job(keyId, blob1));
    await signs(p, job(keyId, blob2));
    await signs(p, job(keyId, blob1));
  });

  it('after a new keyring is set, a key cached under the old one does not sign', async () => {
    const keyId = randomUUID();
    const blob = wrapKey(ringKey, { keyringId: RING, keyId, kind: 'secp256k1' }, secret);
    const p = pool(true);
    await signs(p, job(keyId, blob));
    // same keyring id, another key: the worker's cache must not answer from the old key
    p.setKeyring(RING, new Uint8Array(randomBytes(32)));
    expect(await outcome(p, job(keyId, blob))).toMatch(/^WRAPPED_KEY_INVALID: /);
    p.lock();
    expect(await outcome(p, job(keyId, blob))).toMatch(/^KEYRING_LOCKED: /);
  });
});
