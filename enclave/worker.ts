/**
 * Signing worker thread: a message adaptor around job-signer.ts, which holds
 * a copy of the keyring key (sent by the main thread, again to every
 * replacement worker) and runs each job in two steps:
 *
 *   1. `job`: unwrap the blob (AES-GCM authenticates key id, kind and
 *      keyring), derive the key's public facts from the secret, parse the
 *      request once into its typed intent, and send both back (`facts`).
 *      Nothing is signed yet; the secret and the parsed value stay here.
 *   2. `go` (the enclave's policy allowed it and the decision was recorded):
 *      sign and answer `done`; or `abort`: wipe and forget.
 *
 * A job the main thread could decide ahead (worker-pool.ts, "Decided ahead")
 * comes as one `sign` message carrying the facts and intent it was decided
 * on: both steps at once, signed only if this worker's facts for the key and
 * its own parse of the request equal those (job-signer.ts), else refused.
 *
 * So the policy only ever sees facts derived inside the enclave, and a
 * decision is recorded only for a key that authenticated. A key that
 * authenticated stays in this worker's key cache (key-cache.ts) for a bounded
 * time, keyed by keyring, key id, kind and the exact blob bytes, so it signs
 * again without the unwrap and the derivation of its facts. That cache and the
 * keyring key live only in the secret arena the pool hands this worker
 * (workerData.arena, secret-arena.ts): a worker terminated mid-job cannot
 * wipe them itself, so the pool zeroes the arena once the worker has exited.
 * Errors go back as { code, message } only — never a stack, never bytes of
 * the request.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SignerFacts } from '../common/protocol/enclave-api.js';
import { createJobSigner, type Decision, failureOf, type JobFailure, type JobSignerConfig, type SignJob } from './job-signer.js';
import type { Intent } from './policy/intent.js';

export type { SignJob } from './job-signer.js';

export type WorkerIn =
  | { t: 'keyring'; keyringId: string; key: Uint8Array }
  | { t: 'lock' }
  /** The pool shuts down: wipe everything and exit. */
  | { t: 'close' }
  | (SignJob & {
      t: 'job';
      id: number;
      /** Absolute deadline (Date.now() ms): past it the job fails instead of signing. */
      deadline: number;
      /** job-cost.ts inlineable(job): its steps take microseconds, so its answer may wait in a batch (below). */
      cheap: boolean;
    })
  | (SignJob & {
      t: 'sign';
      id: number;
      deadline: number;
      cheap: boolean;
      /** A job decided ahead (worker-pool.ts): both steps at once, signed only if its key and request are what was decided. */
      decided: Decision;
    })
  | { t: 'go'; id: number; cheap: boolean }
  | { t: 'abort'; id: number };

/** One answer; the worker posts them as arrays (below). */
export type WorkerOut =
  /** The key's facts and the request's typed intent, parsed once here (the value `go` signs). */
  | { t: 'facts'; id: number; facts: SignerFacts; intent: Intent }
  | { t: 'done'; id: number; result: unknown }
  | { t: 'fail'; id: number; error: JobFailure };

/**
 * What the pool passes as workerData: the key cache's bounds and this worker's secret arena
 * (secret-arena.ts), which the pool zeroes once this worker has exited, however it ended.
 */
export type WorkerConfig = JobSignerConfig;

const signer = createJobSigner((workerData as WorkerConfig | null) ?? {});

function handle(msg: WorkerIn): WorkerOut | undefined {
  try {
    switch (msg.t) {
      case 'keyring':
        signer.setKeyring(msg.keyringId, msg.key);
        return undefined;
      case 'lock':
        signer.lock();
        return undefined;
      case 'abort':
        signer.abort(msg.id);
        return undefined;
      case 'close':
        signer.close();
        process.exit(0);
        return undefined;
      case 'go':
        return { t: 'done', id: msg.id, result: signer.sign(msg.id) };
      case 'sign':
        signer.prepare(msg.id, msg, msg.deadline, msg.decided);
        return { t: 'done', id: msg.id, result: signer.sign(msg.id) };
      case 'job': {
        const { facts, intent } = signer.prepare(msg.id, msg, msg.deadline);
        return { t: 'facts', id: msg.id, facts, intent };
      }
    }
  } catch (e) {
    // A job's failure goes back to the pool; anything else (keyring, lock, close) that throws
    // ends this worker, and the pool replaces it, as before.
    if (!('id' in msg)) throw e;
    return { t: 'fail', id: msg.id, error: failureOf(e) };
  }
}

/**
 * Answers go back in batches (one message holding WorkerOut[]). Each message the main thread
 * receives costs it a dispatch of its own, a few µs, on the thread every request passes: a job's
 * two hops took 15 µs of CPU one answer per message and 7.4 µs with answers eight to a message
 * (docs/performance.md, "Session 20"). The answers to messages that arrived together go back
 * together once this thread has handled them all — node delivers a port's queued messages
 * before the loop reaches setImmediate — or as soon as MAX_BATCH wait. So an answer waits only
 * for cheap jobs (job-cost.ts inlineable(), sent as `cheap`: a signature, ~0.2 ms) that were
 * already queued beside it: the batch goes back before any step of an expensive job (a PSBT, a
 * seed key's derivation, a long message) and before anything that is not a job (close,
 * keyring, lock, abort).
 */
const MAX_BATCH = 8;
let batch: WorkerOut[] = [];
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  if (batch.length === 0) return;
  const out = batch;
  batch = [];
  parentPort!.postMessage(out);
}

parentPort?.on('message', (msg: WorkerIn) => {
  // Whatever may take long, or end or change this worker, finds the batch sent.
  if (!('cheap' in msg) || !msg.cheap) flush();
  const out = handle(msg);
  if (out === undefined) return;
  batch.push(out);
  if (batch.length >= MAX_BATCH) flush();
  else if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
});
