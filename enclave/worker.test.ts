/**
 * The signing worker's answers (worker.ts): they go back in batches, so the main thread pays one
 * message dispatch for several answers — but an answer is never held behind an expensive job
 * (a PSBT on a seed key: milliseconds to prepare, more to sign). Each case drives a real worker
 * thread with the messages the pool sends and looks at how the answers arrive.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { recoverAddress } from 'viem';
import { afterEach, describe, expect, it } from 'vitest';
import { createJobSigner } from './job-signer.js';
import { secpIntent } from './operations.js';
import { addressFromPrivateKey } from './signers/index.js';
import type { WorkerIn, WorkerOut } from './worker.js';
import { inlineable } from './job-cost.js';
import { largePsbtJob, secpJob } from './worker-test-helpers.js';

const RING = randomUUID();
const secret = new Uint8Array(32).fill(21);
const seed = new Uint8Array(32).fill(22);

let workers: Worker[] = [];
afterEach(async () => {
  for (const w of workers) await w.terminate();
  workers = [];
});

function setup() {
  const ringKey = new Uint8Array(randomBytes(32));
  const keyJob = secpJob(ringKey, RING, secret, 'signer_signDigest', { digest: `0x${'cd'.repeat(32)}` });
  const seedJob = largePsbtJob(ringKey, RING, seed);
  const worker = new Worker(new URL('../dist/enclave/worker.js', import.meta.url));
  workers.push(worker);
  /** Every message the worker posts, in order (each one a batch of answers). */
  const batches: WorkerOut[][] = [];
  worker.on('message', (m: WorkerOut[]) => batches.push(m));
  worker.postMessage({ t: 'keyring', keyringId: RING, key: ringKey } satisfies WorkerIn);
  /** Resolves once `n` answers have come back. */
  const answers = (n: number) =>
    new Promise<WorkerOut[]>((resolve) => {
      const check = () => {
        const all = batches.flat();
        if (all.length < n) return;
        worker.off('message', check);
        resolve(all);
      };
      worker.on('message', check);
      check();
    });
  return { worker, keyJob, seedJob, batches, answers, ringKey };
}

const deadline = () => Date.now() + 60_000;

describe('signing worker answers', () => {
  it('answers to jobs queued together come back together, at most eight to a message, each signed right', async () => {
    const { worker, keyJob, batches, answers, ringKey } = setup();
    // What the pool sends for jobs decided ahead: the facts a worker learnt and the main thread's parse.
    const probe = createJobSigner();
    probe.setKeyring(RING, ringKey.slice());
    const { facts } = probe.prepare(0, keyJob, deadline());
    probe.close();
    const jobs = Array.from({ length: 20 }, (_, i) => ({ ...keyJob, request: { digest: `0x${i.toString(16).padStart(64, '0')}` } }));
    jobs.forEach((job, i) => {
      worker.postMessage({ ...job, t: 'sign', id: i + 1, deadline: deadline(), cheap: true, decided: { facts, intent: secpIntent(job.op, job.keyId, job.request) } } satisfies WorkerIn);
    });
    const all = await answers(20);
    expect(all.map((a) => a.id).sort((a, b) => a - b)).toEqual(jobs.map((_, i) => i + 1));
    for (const a of all) {
      expect(a.t).toBe('done');
      const { signature } = (a as Extract<WorkerOut, { t: 'done' }>).result as { signature: `0x${string}` };
      const digest = jobs[a.id - 1]!.request.digest as `0x${string}`;
      expect(await recoverAddress({ hash: digest, signature })).toBe(addressFromPrivateKey(secret));
    }
    // Twenty signatures posted at once (each ~0.2 ms) queue behind the first: batched, within the bound.
    expect(batches.length).toBeLessThan(20);
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(8);
  });

  it('a cheap job’s answer is not held while an expensive job is prepared or signed', async () => {
    const { worker, keyJob, seedJob, batches, answers } = setup();
    // What the pool sends: each job with its inlineable() as `cheap`.
    const [seedCheap, keyCheap] = [inlineable(seedJob), inlineable(keyJob)];
    expect([seedCheap, keyCheap]).toEqual([false, true]);
    // The PSBT is prepared first (milliseconds), so the key job and the PSBT's `go` are queued
    // behind it and handled in the same turn.
    worker.postMessage({ ...seedJob, t: 'job', id: 1, deadline: deadline(), cheap: seedCheap } satisfies WorkerIn);
    worker.postMessage({ ...keyJob, t: 'job', id: 2, deadline: deadline(), cheap: keyCheap } satisfies WorkerIn);
    worker.postMessage({ t: 'go', id: 1, cheap: seedCheap } satisfies WorkerIn);
    await answers(3);
    // The key job's facts went back before the PSBT was signed, not with its signature.
    const withKeyFacts = batches.find((b) => b.some((a) => a.id === 2))!;
    expect(withKeyFacts.map((a) => a.t)).not.toContain('done');
    const done = batches.findIndex((b) => b.some((a) => a.id === 1 && a.t === 'done'));
    expect(batches.indexOf(withKeyFacts)).toBeLessThan(done);
    expect(batches.flat().find((a) => a.id === 1 && a.t === 'done')).toBeDefined();
  });
});
