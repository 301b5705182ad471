/**
 * Inline signing (the pool's option `inline`, on in the enclave): a cheap job
 * (a secp256k1 key, a small request: job-cost.ts inlineable) that arrives
 * while the whole pool is idle — no job queued, on a worker or inline — runs
 * on the calling (main) thread instead, through the same two steps
 * (job-signer.ts). Only cheap ones: the thread is blocked while it signs, so
 * a PSBT, a seed key's derivation or a large message would hold every other
 * request (and the job's own deadline, which is checked again after the
 * signature) for milliseconds.
 *
 * At low load that saves the four thread hand-offs of a worker job (job,
 * facts, go, done), each of which wakes a sleeping thread: at one client the
 * p50 falls by 0.12–0.27 ms (docs/performance.md, "Session 9"). While it
 * waits for its decision, other jobs go to the workers as usual; under load
 * the pool is never idle and every job runs on a worker. In between (a few
 * clients) the pool is often idle for a moment, but a job signed inline
 * blocks the main thread for the whole signature while other requests
 * arrive (8 clients: 7 % fewer signatures/s), so inline backs off: a job
 * arriving while an inline job runs, or in the I/O processed right after it,
 * goes to a worker, and then no job runs inline for the next
 * INLINE_BACKOFF_MS.
 *
 * The lane holds a key cache of its own (the same bounds and wiping as a
 * worker's) beside the keyring copy the pool keeps for replacement workers.
 * Its signer keeps them in a secret arena (secret-arena.ts) over a plain
 * ArrayBuffer of its own, not one the pool zeroes: the main thread is never
 * terminated, and the lane wipes on lock and close.
 * At most one job runs inline at a time.
 */
import type { SignerFacts } from '../common/protocol/enclave-api.js';
import { createJobSigner, type JobSigner, type JobSignerConfig } from './job-signer.js';
import type { Intent } from './policy/intent.js';
import { asWorkerError, expired, type Job, settle, type Step } from './pool-job.js';

/** After an inline job met another job's arrival, how long every job goes to a worker. */
export const INLINE_BACKOFF_MS = 100;

/** What the lane needs from its pool. */
export interface InlineHost {
  /** The pool's decision on a prepared job (authorize, the stop checks, record), then `step`. */
  decide(j: Job, facts: SignerFacts, intent: Intent, step: Step): Promise<void>;
  /** This thread authenticated the blob under `slot`: the pool may decide its next job ahead. */
  learn(slot: string, facts: SignerFacts): void;
  /** The lane is free again: hand queued jobs on. */
  pump(): void;
}

export class InlineLane {
  readonly #signer: JobSigner;
  readonly #host: InlineHost;
  /** The inline job running (at most one). */
  #job: Job | undefined;
  /** The time (Date.now()) before which no job runs inline. */
  #offUntil = 0;
  /** From the end of an inline job until its back-off check has run (see #end). */
  #settling = false;
  /** Another job arrived since the inline job started, or while its back-off check waited. */
  #contended = false;

  constructor(config: JobSignerConfig, host: InlineHost) {
    this.#signer = createJobSigner(config);
    this.#host = host;
  }

  /** A job arrived at the pool (before it is placed anywhere). */
  arrived(): void {
    if (this.#job !== undefined || this.#settling) this.#contended = true;
  }

  /** Whether `j` runs here: no job runs or settles here, the pool is idle, no back-off, and `j` is cheap. */
  admits(j: Job, poolIdle: () => boolean): boolean {
    if (this.#job !== undefined || this.#settling) return false;
    if (!poolIdle()) return false;
    return Date.now() >= this.#offUntil && j.msg.cheap;
  }

  /** Whether `j` is the job running here. */
  runs(j: Job): boolean {
    return j === this.#job;
  }

  /** Runs `j` on this thread: the two steps of a worker job, with no hand-off between them. Settles `j` on every path. */
  async run(j: Job): Promise<void> {
    const signer = this.#signer;
    this.#job = j;
    this.#contended = false;
    j.phase = 'preparing';
    try {
      let prepared: ReturnType<JobSigner['prepare']>;
      try {
        prepared = signer.prepare(j.id, j.msg, j.msg.deadline);
      } catch (e) {
        return settle(j, asWorkerError(e));
      }
      this.#host.learn(prepared.slot, prepared.facts);
      await this.#host.decide(j, prepared.facts, prepared.intent, {
        go: () => {
          let result: unknown;
          try {
            result = signer.sign(j.id);
          } catch (e) {
            return settle(j, asWorkerError(e));
          }
          // A worker's job whose deadline passes while it signs is stopped by its timer; this
          // thread's timer could not run, so the deadline is checked here: the signature is dropped.
          if (Date.now() >= j.msg.deadline) return settle(j, expired());
          settle(j, { result, facts: prepared.facts });
        },
        drop: () => signer.abort(j.id),
      });
    } finally {
      signer.abort(j.id); // whatever was prepared and not signed is wiped (sign wipes its own)
      this.#end(j);
      this.#host.pump();
    }
  }

  /**
   * Ends the running job `j` with `err`. It is only ever stopped while its decision is pending
   * (its other steps are synchronous): the prepared key is wiped now, and the lane does not wait
   * for a decision that may never come. The caller pumps.
   */
  stop(j: Job, err: Error): void {
    settle(j, err);
    this.#signer.abort(j.id);
    this.#end(j);
  }

  setKeyring(keyringId: string, key: Uint8Array): void {
    this.#signer.setKeyring(keyringId, key);
  }

  lock(): void {
    this.#signer.lock();
  }

  /** Stops the running job with `err`, if any, and wipes the lane's keys. */
  close(err: Error): void {
    if (this.#job !== undefined) this.stop(this.#job, err);
    this.#signer.close();
  }

  /**
   * The inline job `j` is over (settled, or stopped while decided). Jobs that arrive in the I/O
   * that waited while this thread signed go to workers; once that I/O has run, any arrival since
   * `j` started means the pool is wanted: back off.
   */
  #end(j: Job): void {
    if (this.#job !== j) return;
    this.#job = undefined;
    this.#settling = true;
    setImmediate(() => {
      this.#settling = false;
      if (this.#contended) this.#offUntil = Date.now() + INLINE_BACKOFF_MS;
      this.#contended = false;
    });
  }
}
