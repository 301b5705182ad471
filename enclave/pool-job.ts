/**
 * One signing job as the worker pool (worker-pool.ts) tracks it, the worker
 * it is on, how it ends, and the errors it can end with.
 *
 * A job ends once (settle): its promise resolves or rejects, its timer and
 * its cancellation callback are removed. Ending a job does not take it off
 * its worker: the worker may still be busy with it, and the pool keeps it on
 * the worker's list until the worker answers (worker-pool.ts release, reap).
 */
import type { Worker } from 'node:worker_threads';
import { SignerError } from '../common/errors.js';
import type { SignerFacts } from '../common/protocol/enclave-api.js';
import { type Decision, failureOf, jobExpired } from './job-signer.js';
import type { Intent } from './policy/intent.js';
import type { Cancellation } from '../common/cancellation.js';
import type { WorkerIn } from './worker.js';

export class WorkerError extends SignerError {
  readonly field: string | undefined;
  constructor(code: string, message: string, field?: string) {
    super(code, message);
    this.field = field;
  }
  override toJSON() {
    const b = super.toJSON();
    return this.field === undefined ? b : { ...b, field: this.field };
  }
}

export interface RunOptions {
  /**
   * Cancelled when the parent cancels the request (or the bridge's deadline passes). Not an
   * AbortSignal: common/cancellation.ts says why; cancellationOf() wraps one.
   */
  cancellation?: Cancellation;
  /** Absolute deadline, Date.now() ms; capped at now + the pool's maxJobMs. */
  deadline?: number;
  /** The policy decision on facts and the intent derived inside the worker; throws to refuse. */
  authorize?: (facts: SignerFacts, intent: Intent) => void | Promise<void>;
  /** Records the allow decision (synchronously, right before the job is handed on to be signed); throws to refuse. */
  record?: (facts: SignerFacts, intent: Intent) => void;
}

export interface SignOutcome {
  result: unknown;
  facts: SignerFacts;
}

/**
 * Where a job is: `queued` for a worker to prepare it, `preparing` on a worker, `deciding` (its
 * facts are known, the policy decides), `ready` (decided ahead, waiting for a worker), `signing`.
 */
export type Phase = 'queued' | 'preparing' | 'deciding' | 'ready' | 'signing';

export interface Job {
  id: number;
  msg: Extract<WorkerIn, { t: 'job' }>;
  opts: RunOptions;
  phase: Phase;
  slot?: Slot;
  /** For a job that may be decided ahead: its key's slot in the pool's known keys (key-cache.ts keySlot). */
  keySlot?: string;
  /** The pool's keyring epoch when the job came: its facts are learnt only if the keyring has not changed since. */
  epoch?: number;
  facts?: SignerFacts;
  /** A job decided ahead: what it was decided on, sent with it to the worker. */
  decided?: Decision;
  settled: boolean;
  timer?: NodeJS.Timeout;
  /** Unregisters the job's cancellation callback. */
  offAbort?: () => void;
  resolve: (v: SignOutcome) => void;
  reject: (e: Error) => void;
}

/** One worker of the pool. */
export interface Slot {
  index: number;
  worker: Worker;
  /** The worker's secret arena (secret-arena.ts): zeroed by the pool once the worker has exited. */
  arena: SharedArrayBuffer;
  /** In the order they were handed to the worker; settled ones stay until the worker is done with them. */
  jobs: Job[];
  dead: boolean;
}

/** A prepared job's signing step, on a worker or inline: `go` signs, `drop` wipes what was prepared. */
export interface Step {
  go(): void;
  drop(): void;
}

/** Ends a job once: resolves or rejects, clears its timer and its cancellation callback. */
export function settle(j: Job, outcome: Error | SignOutcome): void {
  if (j.settled) return;
  j.settled = true;
  if (j.timer) clearTimeout(j.timer);
  j.offAbort?.();
  if (outcome instanceof Error) j.reject(outcome);
  else j.resolve(outcome);
}

export const crashed = () => new WorkerError('WORKER_CRASHED', 'the signing worker stopped; request not completed');
export const cancelled = () => new WorkerError('JOB_CANCELLED', 'the request was cancelled before it was signed; nothing was signed');
/** What a worker's `fail` answer becomes, for the same failure on the inline path. */
export const asWorkerError = (e: unknown): WorkerError => {
  const f = failureOf(e);
  return new WorkerError(f.code, f.message, f.field);
};
/** The same words as a worker's own deadline refusal (job-signer.ts). */
export const expired = () => asWorkerError(jobExpired());
export const poolClosed = () => new WorkerError('WORKER_CLOSED', 'the signing pool is shut down');
