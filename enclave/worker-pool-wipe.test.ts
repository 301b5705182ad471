/**
 * A worker the pool terminates cannot wipe what it held: a job stopped mid-prepare or mid-signature
 * (past its deadline, cancelled — the host can cause either at will with a heavy PSBT and a short
 * deadline) is stopped by terminating its worker, which is never sent `lock` or `close`. So each
 * worker keeps its keyring key, its key cache and its prepared jobs' keys only in its secret arena
 * (secret-arena.ts), which the pool allocates and zeroes once the worker is gone. These cases look
 * at that arena from the main thread: it held the keyring key and a cached key (or the keys of the
 * jobs waiting for their decisions), and it is all zeros once the worker was replaced (or the pool
 * closed, or the worker died). Without the pool's zeroing each one fails; the last one also fails
 * when a prepared job keeps its key on the heap, or the arena has no room for `depth` of them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { HDKey } from '@scure/bip32';
import { verifyMessage } from 'viem';
import { afterAll, describe, expect, it } from 'vitest';
import { CancellationSource } from '../common/cancellation.js';
import { signerArenaBytes } from './job-signer.js';
import { wrapKey } from './kms/wrapped-key.js';
import { addressFromPrivateKey } from './signers/index.js';
import { largePsbtJob, secpJob, watchWorkers } from './worker-test-helpers.js';
import { createWorkerPool, type SignJob, type WorkerPool, workerArenasForTest } from './worker-pool.js';

const pools: WorkerPool[] = [];
afterAll(async () => {
  for (const p of pools) await p.close();
});

const KEYRING = randomUUID();
const secret = new Uint8Array(32).fill(41);
const address = addressFromPrivateKey(secret);

/** Whether `needle` occurs in `hay`. */
function holds(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

const allZero = (u: Uint8Array) => u.every((b) => b === 0);

/** Waits (at most ~5 s) until `ok()`; the zeroing follows terminate(), which resolves asynchronously. */
async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
}

/** A pool of one worker that has signed once: its arena holds the keyring key and the cached key. */
async function warmPool(): Promise<{ pool: WorkerPool; ringKey: Uint8Array; keyJob: SignJob; arena: Uint8Array; workers: Set<Worker> }> {
  const watch = watchWorkers();
  const pool = createWorkerPool({ size: 1 });
  pools.push(pool);
  const ringKey = new Uint8Array(randomBytes(32));
  pool.setKeyring(KEYRING, ringKey.slice());
  watch.stop();
  const keyJob = secpJob(ringKey, KEYRING, secret, 'personal_sign', { message: 'hi' });
  await signs(pool, keyJob);
  const arena = new Uint8Array(workerArenasForTest(pool)[0]!);
  // The worker's long-lived secrets are in the arena the pool handed it.
  expect(holds(arena, ringKey)).toBe(true);
  expect(holds(arena, secret)).toBe(true);
  return { pool, ringKey, keyJob, arena, workers: watch.workers };
}

async function signs(pool: WorkerPool, job: SignJob): Promise<void> {
  const { result, facts } = await pool.run(job);
  expect(facts.address).toBe(address);
  expect(await verifyMessage({ address, message: 'hi', signature: (result as { signature: `0x${string}` }).signature })).toBe(true);
}

describe('a worker the pool terminates leaves no secret behind', () => {
  it('a job killed mid-prepare by its deadline: the replaced worker’s arena (keyring key, key cache) is zeroed; the replacement signs', async () => {
    const { pool, ringKey, keyJob, arena } = await warmPool();
    const spawned = pool.spawned;
    const seed = new Uint8Array(randomBytes(32));
    // What a hostile host does: a heavy PSBT with a deadline it cannot meet.
    const job = largePsbtJob(ringKey, KEYRING, seed);
    await expect(pool.run(job, { deadline: Date.now() + 20 })).rejects.toMatchObject({ code: 'JOB_DEADLINE_EXCEEDED' });
    expect(pool.spawned).toBe(spawned + 1); // the worker was busy with it: terminated and replaced
    await until(() => allZero(arena));
    expect(allZero(arena)).toBe(true);
    // The replacement has an arena of its own, holding a fresh copy of the keyring key once it signed.
    const next = new Uint8Array(workerArenasForTest(pool)[0]!);
    expect(next.buffer).not.toBe(arena.buffer);
    await signs(pool, keyJob);
    expect(holds(next, ringKey)).toBe(true);
    expect(allZero(arena)).toBe(true);
  });

  it('a job cancelled while its worker signs: the replaced worker’s arena is zeroed, seed included', async () => {
    const { pool, ringKey, keyJob, arena } = await warmPool();
    const seed = new Uint8Array(randomBytes(32));
    const job = largePsbtJob(ringKey, KEYRING, seed);
    const ac = new CancellationSource();
    const spawned = pool.spawned;
    let seen = false;
    const e = await pool
      .run(job, {
        record: () => {
          // The seed was unwrapped and cached: it sits in the arena until the pool zeroes it.
          seen = holds(arena, seed);
          setImmediate(() => ac.abort()); // the worker has just been told to sign
        },
        cancellation: ac,
      })
      .catch((x: Error) => x);
    expect(e).toMatchObject({ code: 'JOB_CANCELLED' });
    expect(seen).toBe(true);
    expect(pool.spawned).toBe(spawned + 1);
    await until(() => allZero(arena));
    expect(allZero(arena)).toBe(true);
    await signs(pool, keyJob);
  });

  it('a worker that dies (as after a crash) and every worker on close: arenas zeroed', async () => {
    const { pool, keyJob, arena, workers } = await warmPool();
    const spawned = pool.spawned;
    await [...workers][0]!.terminate();
    await until(() => pool.spawned > spawned && allZero(arena));
    expect(allZero(arena)).toBe(true);
    await signs(pool, keyJob);
    const last = new Uint8Array(workerArenasForTest(pool)[0]!);
    expect(allZero(last)).toBe(false);
    await pool.close();
    expect(allZero(last)).toBe(true);
  });
  it('jobs prepared and waiting for their decisions when the worker is terminated: their keys were in its arena, zeroed with it', async () => {
    // No key cache: the only copies of a key the arena can hold are the prepared jobs'.
    const keyCache = { maxEntries: 0, ttlMs: 60_000 };
    const pool = createWorkerPool({ size: 1, keyCache });
    pools.push(pool);
    const ringKey = new Uint8Array(randomBytes(32));
    pool.setKeyring(KEYRING, ringKey.slice());
    const arena = new Uint8Array(workerArenasForTest(pool)[0]!);
    // Room for every job a worker holds (the pool's depth, 32).
    expect(arena.byteLength).toBe(signerArenaBytes({ keyCache, prepared: 32 }));
    const keys = Array.from({ length: 4 }, () => new Uint8Array(randomBytes(32)));
    const seed = new Uint8Array(randomBytes(32));
    const child = HDKey.fromMasterSeed(seed).derive('m/0/3').privateKey!;
    const keyId = randomUUID();
    const seedJob: SignJob = {
      op: 'personal_sign',
      keyId,
      kind: 'bip32-seed',
      keyringId: KEYRING,
      blob: wrapKey(ringKey, { keyringId: KEYRING, keyId, kind: 'bip32-seed' }, seed),
      request: { message: 'hi', path: 'm/0/3' },
    };
    // One source per job, as each request has its own.
    const sources: CancellationSource[] = [];
    const cancellation = () => {
      const ac = new CancellationSource();
      sources.push(ac);
      return ac;
    };
    let deciding = 0;
    let decide!: () => void;
    const decision = new Promise<void>((r) => {
      decide = r;
    });
    const authorize = () => {
      deciding++;
      return decision; // the policy takes its time: each job waits prepared on the worker
    };
    const jobs = [...keys.map((k) => secpJob(ringKey, KEYRING, k, 'personal_sign', { message: 'hi' })), seedJob];
    const runs = jobs.map((job) => pool.run(job, { authorize, cancellation: cancellation() }).catch((x: Error) => x));
    await until(() => deciding === jobs.length);
    expect(deciding).toBe(jobs.length);
    // Each prepared job's key (a secp256k1 key, the seed's derived child) is in the arena, not on the worker's heap.
    expect([...keys, child].map((k) => holds(arena, k))).toEqual([true, true, true, true, true]);
    expect(holds(arena, seed)).toBe(false);
    // The host stops them all while the worker is busy with a heavy PSBT: the worker cannot hear the
    // aborts, and holds only stopped jobs, so the pool terminates it with the keys still prepared.
    const spawned = pool.spawned;
    const heavy = pool.run(largePsbtJob(ringKey, KEYRING, new Uint8Array(randomBytes(32))), { cancellation: cancellation() }).catch((x: Error) => x);
    for (const ac of sources) ac.abort();
    for (const e of await Promise.all([...runs, heavy])) expect(e).toMatchObject({ code: 'JOB_CANCELLED' });
    expect(pool.spawned).toBe(spawned + 1);
    await until(() => allZero(arena));
    expect(allZero(arena)).toBe(true);
    decide();
    await signs(pool, secpJob(ringKey, KEYRING, secret, 'personal_sign', { message: 'hi' }));
  });
});
