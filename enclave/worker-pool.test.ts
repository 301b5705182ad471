/**
 * The signing pool with real worker threads: the two-step job (facts, then
 * signing only if allowed), deadlines and cancellation, replacement workers
 * that still hold the keyring key, and pipelining (a worker prepares the next
 * job while the last one is decided; one job's cancellation fails no other).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { verifyMessage } from 'viem';
import { afterAll, describe, expect, it } from 'vitest';
import { wrapKey } from './kms/wrapped-key.js';
import { addressFromPrivateKey } from './signers/index.js';
import { largePsbtJob, secpJob, watching, watchWorkers } from './worker-test-helpers.js';
import { createWorkerPool, INLINE_BACKOFF_MS, inlineable, type SignJob, type WorkerPool } from './worker-pool.js';
import { CancellationSource, cancellationOf } from '../common/cancellation.js';

const pools: WorkerPool[] = [];
afterAll(async () => {
  for (const p of pools) await p.close();
});

const KEYRING = randomUUID();
const secret = new Uint8Array(32).fill(9);
const address = addressFromPrivateKey(secret);

function setup(o: { inline?: boolean; decideAhead?: boolean; depth?: number; size?: number } = {}): { pool: WorkerPool; job: SignJob; workers: Set<Worker> } {
  const watch = watchWorkers();
  const pool = createWorkerPool({ size: o.size ?? 1, inline: o.inline === true, decideAhead: o.decideAhead === true, ...(o.depth ? { depth: o.depth } : {}) });
  pools.push(pool);
  const ringKey = new Uint8Array(randomBytes(32));
  const job = secpJob(ringKey, KEYRING, secret, 'personal_sign', { message: 'hi' });
  pool.setKeyring(KEYRING, ringKey);
  ringKey.fill(0); // what the service does with its copy right after setKeyring
  watch.stop();
  return { pool, job, workers: watch.workers };
}

async function signs(pool: WorkerPool, job: SignJob): Promise<void> {
  const { result, facts } = await pool.run(job);
  expect(facts.address).toBe(address);
  expect(await verifyMessage({ address, message: 'hi', signature: (result as { signature: `0x${string}` }).signature })).toBe(true);
}

async function replaced(pool: WorkerPool, before: number): Promise<void> {
  for (let i = 0; i < 500 && pool.spawned === before; i++) await new Promise((r) => setTimeout(r, 10));
}

describe('worker pool', () => {
  it('finding 3: a worker that dies is replaced, and the replacement signs with the right keyring key', async () => {
    const { pool, job, workers } = setup();
    await signs(pool, job);
    expect(workers.size).toBe(1);
    const before = pool.spawned;
    await [...workers][0]!.terminate(); // the worker dies (as after a crash)
    await replaced(pool, before);
    expect(pool.spawned).toBe(before + 1);
    await signs(pool, job);
  });

  it('finding 5: the facts come before any signature, and a refusal means no signature', async () => {
    const { pool, job } = setup();
    const steps: string[] = [];
    const e = await pool
      .run(job, {
        authorize: (f) => {
          steps.push(`authorize ${f.address}`);
          throw Object.assign(new Error('denied: no'), { code: 'POLICY_DENIED' });
        },
        record: () => steps.push('record'),
      })
      .catch((x: Error) => x);
    expect((e as Error).message).toBe('denied: no');
    expect(steps).toEqual([`authorize ${address}`]);
    await signs(pool, job); // the worker is free again
  });

  it('finding 5: an already-cancelled or expired job is refused before it reaches a worker', async () => {
    const { pool, job } = setup();
    await expect(pool.run(job, { cancellation: cancellationOf(AbortSignal.abort()) })).rejects.toMatchObject({ code: 'JOB_CANCELLED' });
    await expect(pool.run(job, { deadline: Date.now() })).rejects.toMatchObject({ code: 'JOB_DEADLINE_EXCEEDED' });
    const spawned = pool.spawned;
    await signs(pool, job);
    expect(pool.spawned).toBe(spawned);
  });

  it('finding 5: a job cancelled while its worker signs is stopped by replacing the worker; the replacement signs with the right key', async () => {
    const { pool, job } = setup();
    const { seedJob, keyJob } = heavy(pool, job);
    const ac = new CancellationSource();
    const spawned = pool.spawned;
    const steps: string[] = [];
    const e = await pool
      .run(seedJob, {
        cancellation: ac,
        record: () => {
          steps.push('record');
          setImmediate(() => ac.abort()); // the worker has just been told to sign
        },
      })
      .catch((x: Error) => x);
    expect(e).toMatchObject({ code: 'JOB_CANCELLED' });
    expect(steps).toEqual(['record']);
    expect(pool.spawned).toBe(spawned + 1);
    await signs(pool, keyJob);
  });

  it('pipelining: the worker prepares the next job while the first one is being decided', async () => {
    const { pool, job } = setup();
    const steps: string[] = [];
    let allowFirst!: () => void;
    const first = pool.run(job, {
      authorize: () => {
        steps.push('authorize 1');
        return new Promise<void>((r) => (allowFirst = r));
      },
    });
    const second = pool.run(job, {
      authorize: () => {
        steps.push('authorize 2');
        allowFirst(); // the second job's facts came while the first still waited for its decision
      },
    });
    const [a, b] = await Promise.all([first, second]);
    expect(steps).toEqual(['authorize 1', 'authorize 2']);
    for (const { result } of [a, b]) expect(await verifyMessage({ address, message: 'hi', signature: (result as { signature: `0x${string}` }).signature })).toBe(true);
  });

  it('pipelining: cancelling a job whose worker also holds another job fails the cancelled job only', async () => {
    const { pool, job } = setup();
    const { seedJob, keyJob } = heavy(pool, job);
    const ac = new CancellationSource();
    const spawned = pool.spawned;
    // The seed job is signing (seconds) when it is cancelled; the key job shares its worker.
    const cancelled = pool.run(seedJob, { cancellation: ac, record: () => setImmediate(() => ac.abort()) }).catch((x: Error) => x);
    const other = pool.run(keyJob);
    expect(await cancelled).toMatchObject({ code: 'JOB_CANCELLED' });
    const { result, facts } = await other;
    expect(facts.address).toBe(address);
    expect(await verifyMessage({ address, message: 'hi', signature: (result as { signature: `0x${string}` }).signature })).toBe(true);
    expect(pool.spawned).toBe(spawned); // nobody's worker was terminated
  });

  it('pipelining: a worker left busy only with cancelled jobs is replaced, and the replacement signs with the right key', async () => {
    const { pool, job } = setup();
    const { seedJob, keyJob } = heavy(pool, job);
    const ac = new CancellationSource();
    const spawned = pool.spawned;
    const cancelled = pool.run(seedJob, { cancellation: ac, record: () => setImmediate(() => ac.abort()) }).catch((x: Error) => x);
    // The key job's facts arrive while the seed job signs; it is refused once the seed job is cancelled.
    const refused = pool
      .run(keyJob, {
        authorize: async () => {
          await cancelled;
          throw Object.assign(new Error('denied: no'), { code: 'POLICY_DENIED' });
        },
      })
      .catch((x: Error) => x);
    expect(await cancelled).toMatchObject({ code: 'JOB_CANCELLED' });
    expect(await refused).toMatchObject({ code: 'POLICY_DENIED' });
    await replaced(pool, spawned);
    expect(pool.spawned).toBe(spawned + 1);
    await signs(pool, keyJob);
  });

  describe('decided ahead (a cheap job on a key a worker authenticated is decided before a worker sees it)', () => {
    const denied = () => Object.assign(new Error('denied: no'), { code: 'POLICY_DENIED' });

    it('the second job on a key is decided ahead: one message to the worker, the same facts, intent and signature checks', async () => {
      const { pool, job } = setup({ decideAhead: true });
      const seen: unknown[] = [];
      await watching(async (w) => {
        for (let i = 0; i < 3; i++) {
          const { result, facts } = await pool.run(job, { authorize: (f, intent) => void seen.push({ f, intent }) });
          expect(facts.address).toBe(address);
          expect(await verifyMessage({ address, message: 'hi', signature: (result as { signature: `0x${string}` }).signature })).toBe(true);
        }
        expect(w.jobs).toBe(3);
        expect(w.decidedAhead).toBe(2); // the first job taught the pool its facts
      });
      // the policy saw the same facts and intent on both paths
      expect(seen[1]).toEqual(seen[0]);
      expect(seen[2]).toEqual(seen[0]);
      // Without the option, every job takes the two steps (the control for the count above).
      const plain = setup();
      await watching(async (w2) => {
        await signs(plain.pool, plain.job);
        await signs(plain.pool, plain.job);
        expect(w2.decidedAhead).toBe(0);
      });
    });

    it('a refusal decided ahead never reaches a worker; a request that does not parse fails with the words of the two-step path', async () => {
      const { pool, job } = setup({ decideAhead: true });
      await signs(pool, job);
      await watching(async (w) => {
        await expect(pool.run(job, { authorize: () => Promise.reject(denied()) })).rejects.toMatchObject({ code: 'POLICY_DENIED' });
        expect(w.jobs).toBe(0);
        const bad = { ...job, op: 'signer_signDigest' as const, request: { digest: '0x12' } };
        const ahead = await pool.run(bad).catch((x: Error) => x);
        expect(w.jobs).toBe(0);
        const plain = setup();
        const twoStep = (await plain.pool.run({ ...bad, blob: plain.job.blob, keyId: plain.job.keyId }).catch((x: Error) => x)) as Error & { code: string };
        expect(ahead).toMatchObject({ code: twoStep.code, message: twoStep.message });
        expect(ahead).toMatchObject({ code: 'SIGN_INVALID_PARAMS' });
      });
      await signs(pool, job);
    });

    it('a job decided ahead and cancelled or expired before a worker took it is never signed', async () => {
      const { pool, job } = setup({ decideAhead: true, depth: 1 });
      const { seedJob, keyJob } = heavy(pool, job);
      await signs(pool, keyJob); // the pool learns keyJob's facts
      await watching(async (w) => {
        const busy = pool.run(seedJob); // holds the only worker slot for seconds
        const ac = new CancellationSource();
        const steps: string[] = [];
        const cancelled = pool.run(keyJob, { cancellation: ac, record: () => (steps.push('record'), setImmediate(() => ac.abort())) }).catch((x: Error) => x);
        const expired = pool.run(keyJob, { deadline: Date.now() + 150 }).catch((x: Error) => x);
        expect(await cancelled).toMatchObject({ code: 'JOB_CANCELLED' });
        expect(await expired).toMatchObject({ code: 'JOB_DEADLINE_EXCEEDED' });
        expect(steps).toEqual(['record']); // decided and recorded, then stopped while waiting for the worker
        await busy;
        expect(w.jobs).toBe(1); // the seed job; neither decided job reached a worker
        expect(w.decidedAhead).toBe(0);
      });
      await signs(pool, keyJob);
    });

    it('signatures do not queue behind an expensive job while another worker takes them', async () => {
      const { pool, job } = setup({ decideAhead: true, size: 2 });
      const { seedJob, keyJob } = heavy(pool, job);
      await signs(pool, keyJob);
      const order: string[] = [];
      let signing!: () => void;
      const seedSigns = new Promise<void>((r) => (signing = r));
      // record runs in the tick that tells the worker to sign the seed job (seconds of work)
      const seed = pool.run(seedJob, { record: () => signing() }).then(() => order.push('seed'));
      await seedSigns;
      const keys = Array.from({ length: 6 }, (_, i) => pool.run(keyJob).then(() => order.push(`key ${i}`)));
      await Promise.all([seed, ...keys]);
      // Handed out by job count alone, every second signature would have waited seconds for the seed job.
      expect(order.at(-1)).toBe('seed');
    });

    it('closing the pool fails a job decided ahead that waits for a worker; it is never signed', async () => {
      const { pool, job } = setup({ decideAhead: true, depth: 1 });
      const { seedJob, keyJob } = heavy(pool, job);
      await signs(pool, keyJob);
      await watching(async (w) => {
        const busy = pool.run(seedJob).catch((x: Error) => x);
        const waiting = pool.run(keyJob).catch((x: Error) => x);
        await new Promise((r) => setTimeout(r, 50)); // decided by now, waiting for the busy worker
        await pool.close();
        expect(await waiting).toMatchObject({ code: 'WORKER_CLOSED' });
        await busy;
        expect(w.decidedAhead).toBe(0);
      });
    });

    it('facts a worker learnt under a keyring replaced since are not kept', async () => {
      const { pool, job } = setup({ decideAhead: true });
      await watching(async (w) => {
        // The job reaches the worker before the new keyring does: it is prepared (and signs) under the
        // old keyring key, and its facts come back after the pool forgot everything it knew.
        const first = pool.run(job);
        pool.setKeyring(KEYRING, new Uint8Array(randomBytes(32)));
        await first;
        // Had those facts been kept, this job would be decided ahead; it takes the two steps and
        // fails in the unwrap under the new keyring key.
        await expect(pool.run(job)).rejects.toMatchObject({ code: 'WRAPPED_KEY_INVALID' });
        expect(w.jobs).toBe(2);
        expect(w.decidedAhead).toBe(0);
      });
    });

    it('close or lock while a job is decided ahead: nothing is signed', async () => {
      for (const when of ['close', 'lock'] as const) {
        const { pool, job } = setup({ decideAhead: true });
        await signs(pool, job);
        await watching(async (w) => {
          const e = await pool
            .run(job, {
              authorize: async () => {
                if (when === 'close') await pool.close();
                else pool.lock();
              },
            })
            .catch((x: Error) => x);
          expect(e, when).toMatchObject({ code: when === 'close' ? 'WORKER_CLOSED' : 'KEYRING_LOCKED' });
          // closed: it never reached a worker; locked: it reached one, which holds no key any more
          expect(w.decidedAhead, when).toBe(when === 'close' ? 0 : 1);
        });
      }
    });

    it('a new keyring or lock forgets what the pool knew: the next job takes the two steps again', async () => {
      const { pool, job } = setup({ decideAhead: true });
      await signs(pool, job);
      await watching(async (w) => {
        await signs(pool, job);
        expect(w.decidedAhead).toBe(1);
        const { keyJob } = heavy(pool, job); // a new keyring key under the same keyring id
        // the old blob under the new keyring key: not decided ahead, and refused by the unwrap
        await expect(pool.run(job)).rejects.toMatchObject({ code: 'WRAPPED_KEY_INVALID' });
        expect(w.decidedAhead).toBe(1);
        await signs(pool, keyJob);
        await signs(pool, keyJob);
        expect(w.decidedAhead).toBe(2);
        pool.lock();
        await expect(pool.run(keyJob)).rejects.toMatchObject({ code: 'KEYRING_LOCKED' });
        expect(w.decidedAhead).toBe(2);
      });
    });
  });

  describe('inline (a job that finds the whole pool idle runs on the calling thread)', () => {
    /** Lets the pool's back-off check after an inline job run (it waits for the I/O after the job). */
    const tick = () => new Promise((r) => setImmediate(r));

    it('signs on the calling thread, with the same facts, refusals and signatures as a worker', async () => {
      const { pool, job } = setup({ inline: true });
      const jobs = watchWorkers();
      try {
        await signs(pool, job);
        await tick(); // a job that comes before the inline job's back-off check goes to a worker
        const e = await pool.run(job, { authorize: () => Promise.reject(Object.assign(new Error('denied: no'), { code: 'POLICY_DENIED' })) }).catch((x: Error) => x);
        expect(e).toMatchObject({ code: 'POLICY_DENIED' });
        await tick();
        await signs(pool, job);
        expect(jobs.jobs).toBe(0);
      } finally {
        jobs.stop();
      }
      // Without the option every job goes to a worker (the control for the count above).
      const plain = setup();
      const viaWorkers = watchWorkers();
      try {
        await signs(plain.pool, plain.job);
        expect(viaWorkers.jobs).toBe(1);
      } finally {
        viaWorkers.stop();
      }
    });

    it('a blob changed after a key was cached never signs inline (the cache binds the exact blob bytes)', async () => {
      const { pool, job } = setup({ inline: true });
      await signs(pool, job); // cached now, on the calling thread
      const tampered = { ...job, blob: Uint8Array.from(job.blob, (b, i) => (i === job.blob.length - 1 ? b ^ 1 : b)) };
      await expect(pool.run(tampered)).rejects.toMatchObject({ code: 'WRAPPED_KEY_INVALID' });
      await expect(pool.run({ ...job, keyId: randomUUID() })).rejects.toMatchObject({ code: 'WRAPPED_KEY_INVALID' });
      await expect(pool.run({ ...job, keyringId: randomUUID() })).rejects.toMatchObject({ code: 'KEYRING_MISMATCH' });
      pool.lock();
      await expect(pool.run(job)).rejects.toMatchObject({ code: 'KEYRING_LOCKED' });
    });

    it('while an inline job waits for its decision, the next job goes to a worker, and inline backs off; cancelling the inline job signs nothing', async () => {
      const { pool, job } = setup({ inline: true });
      await signs(pool, job);
      await tick();
      const jobs = watchWorkers();
      try {
        const ac = new CancellationSource();
        let decided = false;
        const first = pool
          .run(job, {
            cancellation: ac,
            authorize: async () => {
              const { result } = await pool.run(job); // a worker job, while this one decides
              expect(await verifyMessage({ address, message: 'hi', signature: (result as { signature: `0x${string}` }).signature })).toBe(true);
              ac.abort();
              decided = true;
            },
            record: () => {
              throw new Error('a cancelled job must not reach its record');
            },
          })
          .catch((x: Error) => x);
        expect(await first).toMatchObject({ code: 'JOB_CANCELLED' });
        expect(decided).toBe(true);
        expect(jobs.jobs).toBe(1);
        // Another job arrived while one ran inline: once the pool has seen it (the check runs after
        // the I/O that follows an inline job), for INLINE_BACKOFF_MS every job goes to a worker ...
        await tick();
        await signs(pool, job);
        expect(jobs.jobs).toBe(2);
        // ... then an idle pool signs inline again.
        await new Promise((r) => setTimeout(r, INLINE_BACKOFF_MS + 20));
        await signs(pool, job);
        expect(jobs.jobs).toBe(2);
      } finally {
        jobs.stop();
      }
    });

    it('only cheap jobs run inline: a seed key, a PSBT or a long message goes to a worker', async () => {
      const { pool, job } = setup({ inline: true });
      const { seedJob, keyJob } = heavy(pool, job);
      expect(inlineable(keyJob)).toBe(true);
      expect(inlineable(seedJob)).toBe(false);
      expect(inlineable({ ...keyJob, request: { message: 'x'.repeat(5000) } })).toBe(false);
      expect(inlineable({ ...keyJob, request: { message: Array.from({ length: 5000 }, () => 1) as unknown as string } })).toBe(false);
      const jobs = watchWorkers();
      try {
        const long = await pool.run({ ...keyJob, request: { message: 'x'.repeat(5000) } });
        expect(await verifyMessage({ address, message: 'x'.repeat(5000), signature: (long.result as { signature: `0x${string}` }).signature })).toBe(true);
        expect(jobs.jobs).toBe(1);
        await tick();
        await signs(pool, keyJob);
        expect(jobs.jobs).toBe(1); // a short message on an idle pool: inline
      } finally {
        jobs.stop();
      }
    });

    it('close, lock or a failing record while an inline job is decided: nothing is signed', async () => {
      for (const when of ['close', 'lock', 'record'] as const) {
        const { pool, job } = setup({ inline: true });
        let recorded = false;
        const e = await pool
          .run(job, {
            authorize: async () => {
              if (when === 'close') await pool.close();
              if (when === 'lock') pool.lock();
            },
            record: () => {
              if (when === 'record') throw Object.assign(new Error('the audit log is closed'), { code: 'AUDIT_UNAVAILABLE' });
              recorded = true;
            },
          })
          .catch((x: Error) => x);
        expect(e, when).toMatchObject({ code: when === 'close' ? 'WORKER_CLOSED' : when === 'lock' ? 'INTERNAL' : 'AUDIT_UNAVAILABLE' });
        expect(recorded, when).toBe(when === 'lock');
      }
    });

    it('an inline job past its deadline while it is decided never signs', async () => {
      const { pool, job } = setup({ inline: true });
      const steps: string[] = [];
      const e = await pool
        .run(job, {
          deadline: Date.now() + 200,
          authorize: () => new Promise<void>((r) => setTimeout(r, 400)),
          record: () => steps.push('record'),
        })
        .catch((x: Error) => x);
      expect(e).toMatchObject({ code: 'JOB_DEADLINE_EXCEEDED' });
      expect(steps).toEqual([]);
      await signs(pool, job);
    });
  });
});

/**
 * A seed key and a PSBT at the input limit, every input ours: seconds of real work for one worker
 * (`seedJob`), and `job`'s key under the same new keyring (`keyJob`; the pool holds one keyring).
 */
function heavy(pool: WorkerPool, job: SignJob): { seedJob: SignJob; keyJob: SignJob } {
  const ring2 = new Uint8Array(randomBytes(32));
  pool.setKeyring(KEYRING, ring2);
  const seedJob = largePsbtJob(ring2, KEYRING, new Uint8Array(32).fill(5));
  const keyJob: SignJob = { ...job, blob: wrapKey(ring2, { keyringId: KEYRING, keyId: job.keyId, kind: 'secp256k1' }, secret) };
  ring2.fill(0);
  return { seedJob, keyJob };
}
