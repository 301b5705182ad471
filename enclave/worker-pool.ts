/**
 * A fixed pool of signing workers (one per vCPU by default) so every vCPU of
 * the enclave signs. Jobs wait in one queue (jobs decided ahead, below, in
 * a second one served first) and each job runs in two steps
 * on one worker (worker.ts): unwrap + derive the key's facts, then — if the
 * caller's `authorize` and `record` accept those facts — sign.
 *
 * Pipelining: a worker holds up to `depth` jobs (default 32), of which at most
 * one is being prepared. Once a job's facts are back and the main thread is
 * deciding on them, the worker already prepares the next job, so the `go`
 * finds it busy instead of asleep: no idle gap between the two steps, and no
 * wake-up of a sleeping thread paid by the main thread on every `go` (that
 * was a third of the main thread's time at 64 clients). Measured on two
 * vCPUs at 64 clients (docs/performance.md): depth 2 +14 % signatures/s over
 * 1, depth 3 +9 % over 2, depth 4 +2 % over 3 (noise) — 3 was the knee while
 * every job took the two steps. Jobs decided ahead (below) never wait in a
 * worker for a decision, and there a deeper queue batches: the main thread
 * posts several jobs in a turn and the worker answers several in one wake-up
 * (Session 16, alternated: depth 6 +6.7 % over 3, 16 +4.1 % over 6, 32
 * +2.9 % over 16, 64 no better than 32; the two-step path +1.9 % at 16 over
 * 3). 32 is the bound — at 64 clients on two workers every request in flight
 * can wait on a worker — and a bound is needed: a job handed to a worker
 * cannot be taken back (a cancelled one is signed and discarded), so a
 * worker holds at most ~8 ms of queued signatures, and a
 * worker busy with an expensive job (one that could not run inline) is
 * given nothing more until it is done (takes()). The
 * worker keeps every prepared job by id and signs only the one a `go` names,
 * so what is signed is unchanged; at most `depth` prepared keys wait per worker.
 *
 * Inline (option `inline`, on in the enclave): a cheap job (a secp256k1 key,
 * a small request: inlineable()) that arrives while the whole pool is idle —
 * no job queued, on a worker or inline — runs on the calling (main) thread
 * instead, through the same two steps (job-signer.ts). Only cheap ones: the
 * thread is blocked while it signs, so a PSBT, a seed key's derivation or a
 * large message would hold every other request (and the job's own deadline,
 * which is checked again after the signature) for milliseconds.
 * At low load that saves the four thread hand-offs of a worker job (job,
 * facts, go, done), each of which wakes a sleeping thread: at one client
 * the p50 falls by 0.12–0.27 ms (docs/performance.md, "Session 9"). While it waits
 * for its decision, other jobs go to the workers as usual; under load the
 * pool is never idle and every job runs on a worker. In between (a few
 * clients) the pool is often idle for a moment, but a job signed inline
 * blocks the main thread for the whole signature while other requests
 * arrive (8 clients: 7 % fewer signatures/s), so inline backs off: a job
 * arriving while an inline job runs, or in the I/O processed right after it,
 * goes to a worker, and then no job runs inline for the next
 * INLINE_BACKOFF_MS. The main thread then
 * holds a key cache of its own (the same bounds and wiping as a worker's)
 * beside the keyring copy the pool keeps for replacement workers.
 *
 * Decided ahead (option `decideAhead`, on in the enclave): the policy needs
 * the key's facts, which only a worker that authenticated the blob can
 * derive, so a job costs four thread messages (job, facts, go, done). But the
 * facts of a blob a worker has already authenticated are known: the pool
 * keeps them (known-keys.ts, public data only, keyed like the key cache by
 * keyring, key id, kind and the exact blob bytes, bounded and cleared like
 * it). A cheap job (the same test as inline: a secp256k1 key, a small
 * request) whose blob is known is decided on the main thread — the request
 * parsed here (operations.ts secpIntent), authorize, the stop checks, record
 * — before any worker sees it, and then goes to a worker as one `sign`
 * message carrying the facts and intent it was decided on; the worker
 * unwraps or finds the key, parses the request itself, and signs only if its
 * facts and intent are exactly those (KEY_FACTS_MISMATCH, INTENT_MISMATCH):
 * two messages instead of four, and the worker never waits for a decision.
 * What is signed is decided before signing as on the other paths; a job
 * stopped after its record but before a worker took it is not signed. The
 * facts are learnt from a worker's step-1 answer, or from an inline job's.
 * Measured at 64 IPC clients on two vCPUs (docs/performance.md, "Session
 * 16"). A blob the pool does not know goes the two-step way, and its facts
 * are learnt from the worker's answer.
 *
 * Every job has a deadline (the caller's, capped by the pool's own maximum)
 * and may be cancelled. A job that is cancelled or expires before `record`
 * never reaches `record` and never signs. A job stopped while its worker is
 * busy with it (preparing or signing) cannot be interrupted: alone on its
 * worker, the worker is terminated and replaced; sharing the worker with a
 * live job, it is settled at once and its worker's late answer discarded
 * (facts are answered with `abort`, which wipes) — one request's cancellation
 * never fails another's. A worker left with only such stopped jobs is
 * replaced. A replacement worker gets the keyring key from the pool's own
 * copy, which the pool wipes on lock, on a new keyring and on close.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { wipe } from '../common/bytes.js';
import type { Cancellation } from '../common/cancellation.js';
import { SignerError } from '../common/errors.js';
import type { SignerFacts, } from '../common/protocol/enclave-api.js';
import type { Intent } from './policy/intent.js';
import { createJobSigner, type Decision, failureOf, jobExpired, type JobSigner } from './job-signer.js';
import { DEFAULT_KEY_CACHE, keySlot } from './key-cache.js';
import { createKnownKeys, type KnownKeys } from './known-keys.js';
import { secpIntent } from './operations.js';
import type { SignJob, WorkerConfig, WorkerIn, WorkerOut } from './worker.js';

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

/** After an inline job met another job's arrival, how long every job goes to a worker (see "Inline"). */
export const INLINE_BACKOFF_MS = 100;

/** Characters of strings (and values) a request may hold to be signed inline: a digest, a short message or transaction. */
const INLINE_MAX_REQUEST = 4096;

/**
 * Whether a job is cheap enough to sign on the main thread: a secp256k1 key (no BIP32
 * derivation, no PSBT) and a request whose strings add up to at most INLINE_MAX_REQUEST
 * characters (hashing a long message, calldata or typed data stays on a worker). The same test
 * decides which jobs may be decided ahead, and tells a worker which answers it may hold in a
 * batch (worker.ts: a job's `cheap`).
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

/** Longest a job may take in the enclave, whatever deadline the (untrusted) parent sent. */
export const MAX_JOB_MS = 30_000;

/** A signing job as the service hands it over (defined beside the worker's message types). */
export type { SignJob } from './worker.js';

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

export interface WorkerPool {
  readonly size: number;
  /** Workers started so far, replacements included (status and tests). */
  readonly spawned: number;
  /** The pool copies `key`; the caller may (and should) wipe its own array afterwards. */
  setKeyring(keyringId: string, key: Uint8Array): void;
  lock(): void;
  run(job: SignJob, opts?: RunOptions): Promise<SignOutcome>;
  close(): Promise<void>;
}

export interface WorkerPoolOptions {
  size?: number;
  /** Jobs one worker holds at once (see the header); 1 turns pipelining off. Default 32. */
  depth?: number;
  maxJobMs?: number;
  /** Each worker's cache of unwrapped keys (key-cache.ts); { maxEntries: 0 } disables it. */
  keyCache?: WorkerConfig['keyCache'];
  /** Run a job on the calling thread when the whole pool is idle (see "Inline"). Default false. */
  inline?: boolean;
  /** Decide a cheap job whose key a worker has authenticated before sending it (see "Decided ahead"). Default false. */
  decideAhead?: boolean;
}

/**
 * The worker beside this module: worker.js in dist/, worker.mjs beside the
 * image bundle (/app/enclave.mjs); under vitest (TypeScript sources) the build
 * in dist/ is used.
 */
function workerPath(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.mjs')) return join(dirname(here), 'worker.mjs');
  if (here.endsWith('.js')) return join(dirname(here), 'worker.js');
  const built = resolve(dirname(here), '..', 'dist', 'enclave', 'worker.js');
  if (!existsSync(built)) throw new SignerError('WORKER_MISSING', `signing worker not built: ${built}`, { hint: 'run npm run build' });
  return built;
}

/** `ready`: decided ahead, waiting for a worker. */
type Phase = 'queued' | 'preparing' | 'deciding' | 'ready' | 'signing';

interface Job {
  id: number;
  msg: Extract<WorkerIn, { t: 'job' }>;
  opts: RunOptions;
  phase: Phase;
  slot?: Slot;
  /** For a job that may be decided ahead: its key's slot in `known` (key-cache.ts keySlot). */
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

interface Slot {
  index: number;
  worker: Worker;
  /** In the order they were handed to the worker; settled ones stay until the worker is done with them. */
  jobs: Job[];
  dead: boolean;
}

const crashed = () => new WorkerError('WORKER_CRASHED', 'the signing worker stopped; request not completed');
const cancelled = () => new WorkerError('JOB_CANCELLED', 'the request was cancelled before it was signed; nothing was signed');
/** What a worker's `fail` answer becomes, for the same failure on the inline path. */
const asWorkerError = (e: unknown): WorkerError => {
  const f = failureOf(e);
  return new WorkerError(f.code, f.message, f.field);
};
/** The same words as a worker's own deadline refusal (job-signer.ts). */
const expired = () => asWorkerError(jobExpired());
const poolClosed = () => new WorkerError('WORKER_CLOSED', 'the signing pool is shut down');

export function createWorkerPool(options: number | WorkerPoolOptions = {}): WorkerPool {
  const o: WorkerPoolOptions = typeof options === 'number' ? { size: options } : options;
  const size = Math.max(1, o.size ?? availableParallelism());
  const depth = Math.max(1, o.depth ?? 32);
  const maxJobMs = o.maxJobMs ?? MAX_JOB_MS;
  const path = workerPath();
  const config: WorkerConfig = o.keyCache ? { keyCache: o.keyCache } : {};
  let nextId = 1;
  let closed = false;
  let spawned = 0;
  /** The pool's own copy of the keyring key, for replacement workers. */
  let keyring: { id: string; key: Uint8Array } | undefined;
  const slots: Slot[] = [];
  const queue: Job[] = [];
  /** Jobs decided ahead, waiting for a worker: they go before `queue` (their decision is recorded). */
  const ready: Job[] = [];
  /** The facts of blobs a worker authenticated (see "Decided ahead"); undefined when off. */
  const known: KnownKeys | undefined = o.decideAhead ? createKnownKeys({ ...DEFAULT_KEY_CACHE, ...(o.keyCache ?? {}) }) : undefined;
  /**
   * Counts keyring changes (setKeyring, lock). A worker may still answer for a job it prepared
   * under the keyring before: what it learnt then is not put back into `known`, which the change
   * cleared.
   */
  let keyringEpoch = 0;
  /** The calling thread's signer for inline jobs, and the inline job running (at most one). */
  const inlineSigner: JobSigner | undefined = o.inline ? createJobSigner(config) : undefined;
  let inlineJob: Job | undefined;
  /** The time (Date.now()) before which no job runs inline. */
  let inlineOffUntil = 0;
  /** From the end of an inline job until its back-off check has run (see endInline). */
  let inlineSettling = false;
  /** Another job arrived since the inline job started, or while its back-off check waited. */
  let inlineContended = false;

  const keyringMsg = (): WorkerIn | undefined => (keyring ? { t: 'keyring', keyringId: keyring.id, key: keyring.key } : undefined);

  function spawn(index: number): Slot {
    const worker = new Worker(path, { workerData: config });
    spawned++;
    const slot: Slot = { index, worker, jobs: [], dead: false };
    worker.on('message', (answers: WorkerOut[]) => {
      // A batch (worker.ts): an answer may replace this worker (reap), after which the rest
      // find no job on the dead slot and are dropped, as a late answer is.
      for (const m of answers) onMessage(slot, m);
    });
    const onDeath = () => {
      if (slot.dead) return;
      slot.dead = true;
      for (const j of slot.jobs.splice(0)) settle(j, crashed());
      if (!closed) {
        slots[index] = spawn(index);
        pump();
      }
    };
    worker.once('error', onDeath);
    worker.once('exit', onDeath);
    worker.unref();
    // A replacement worker needs the keyring too (structured clone: the worker gets its own copy).
    const k = keyringMsg();
    if (k) worker.postMessage(k);
    return slot;
  }

  /** Ends a job once: resolves or rejects, clears its timer and abort listener. */
  function settle(j: Job, outcome: Error | SignOutcome): void {
    if (j.settled) return;
    j.settled = true;
    if (j.timer) clearTimeout(j.timer);
    j.offAbort?.();
    if (outcome instanceof Error) j.reject(outcome);
    else j.resolve(outcome);
  }

  /** Takes the job off its worker, which may then take the next job. */
  function release(j: Job): void {
    const s = j.slot;
    if (s) {
      const at = s.jobs.indexOf(j);
      if (at >= 0) s.jobs.splice(at, 1);
      if (reap(s)) return;
    }
    pump();
  }

  /** Terminates the worker and starts its replacement; jobs still live on it fail. */
  function replace(s: Slot): void {
    for (const o of s.jobs.splice(0)) settle(o, crashed());
    s.dead = true; // its exit is expected: the replacement starts now
    void s.worker.terminate();
    if (!closed) {
      slots[s.index] = spawn(s.index);
      pump();
    }
  }

  /**
   * A worker busy only with jobs that were stopped (nobody waits for what it is doing) is
   * replaced rather than left to finish: returns true when it was.
   */
  function reap(s: Slot): boolean {
    if (s.dead || s.jobs.length === 0 || !s.jobs.every((x) => x.settled)) return false;
    if (!s.jobs.some((x) => x.phase === 'preparing' || x.phase === 'signing')) return false;
    replace(s);
    return true;
  }

  /** The job must not sign: end it with `err`, and stop whatever its worker is doing for it. */
  function stop(j: Job, err: Error): void {
    if (j.settled) return;
    if (j === inlineJob) {
      // Only ever stopped while its decision is pending (its other steps are synchronous): the
      // prepared key is wiped now, and the pool does not wait for a decision that may never come.
      settle(j, err);
      inlineSigner!.abort(j.id);
      endInline(j);
      pump();
      return;
    }
    switch (j.phase) {
      case 'queued': {
        const at = queue.indexOf(j);
        if (at >= 0) queue.splice(at, 1);
        settle(j, err);
        return;
      }
      case 'deciding':
        // Decided ahead: no worker has it yet.
        if (!j.slot) return settle(j, err);
        // The worker is idle, holding the unwrapped key: tell it to wipe it.
        j.slot.worker.postMessage({ t: 'abort', id: j.id } satisfies WorkerIn);
        settle(j, err);
        release(j);
        return;
      case 'ready': {
        const at = ready.indexOf(j);
        if (at >= 0) ready.splice(at, 1);
        settle(j, err);
        return;
      }
      case 'preparing':
      case 'signing': {
        // The worker is busy with this job: it cannot hear us. Alone on it, it is replaced;
        // beside a live job it finishes and its answer is discarded (onMessage).
        settle(j, err);
        reap(j.slot!);
        return;
      }
    }
  }

  /**
   * Whether worker `s` takes another job: it is alive, holds fewer than `depth`, and is not busy
   * with an expensive one (a PSBT, a seed key, a long message: milliseconds to seconds), behind
   * which a queued signature would wait while another worker may be free.
   */
  function takes(s: Slot): boolean {
    if (s.dead || s.jobs.length >= depth) return false;
    for (const x of s.jobs) if (!x.msg.cheap && (x.phase === 'preparing' || x.phase === 'signing')) return false;
    return true;
  }

  function pump(): void {
    if (closed) return;
    // Decided jobs first, each to the live worker holding the fewest jobs.
    while (ready.length > 0) {
      let s: Slot | undefined;
      for (const x of slots) if (takes(x) && (!s || x.jobs.length < s.jobs.length)) s = x;
      if (!s) return;
      const j = ready.shift()!;
      j.phase = 'signing';
      j.slot = s;
      s.jobs.push(j);
      s.worker.postMessage({ ...j.msg, t: 'sign', decided: j.decided! } satisfies WorkerIn);
    }
    for (const s of slots) {
      if (queue.length === 0) return;
      if (!takes(s) || s.jobs.some((x) => x.phase === 'preparing')) continue;
      const j = queue.shift()!;
      j.phase = 'preparing';
      j.slot = s;
      s.jobs.push(j);
      s.worker.postMessage(j.msg);
    }
  }

  /** A prepared job's signing step, on a worker or inline: `go` signs, `drop` wipes what was prepared. */
  interface Step {
    go(): void;
    drop(): void;
  }

  /** A worker job's step: the worker is told to sign, or to wipe. */
  const onWorker = (j: Job): Step => ({
    go: () => j.slot!.worker.postMessage({ t: 'go', id: j.id, cheap: j.msg.cheap } satisfies WorkerIn),
    drop: () => j.slot!.worker.postMessage({ t: 'abort', id: j.id } satisfies WorkerIn),
  });

  /** The decision on a prepared job, for both paths: authorize, the stop checks, record, then the step. */
  async function decide(j: Job, facts: SignerFacts, intent: Intent, step: Step): Promise<void> {
    j.phase = 'deciding';
    j.facts = facts;
    try {
      await j.opts.authorize?.(facts, intent);
    } catch (e) {
      if (j.settled) return;
      step.drop();
      settle(j, e as Error);
      release(j);
      return;
    }
    if (j.settled) return; // cancelled or expired while the policy decided: already wiped
    if (j.opts.cancellation?.aborted) return stop(j, cancelled());
    if (Date.now() >= j.msg.deadline) return stop(j, expired());
    // Same tick as the step below: nothing can cancel between the record and the signing step.
    try {
      j.opts.record?.(facts, intent);
    } catch (e) {
      step.drop();
      settle(j, e as Error);
      release(j);
      return;
    }
    j.phase = 'signing';
    step.go();
  }

  /** Whether `job` runs inline: the option is on, the job is cheap and nothing else is in flight. */
  function runsInline(j: Job): boolean {
    if (inlineSigner === undefined || inlineJob !== undefined || inlineSettling) return false;
    if (queue.length > 0 || ready.length > 0 || !slots.every((s) => s.jobs.length === 0)) return false;
    return Date.now() >= inlineOffUntil && j.msg.cheap;
  }

  /**
   * The inline job `j` is over (settled, or stopped while decided). Jobs that arrive in the I/O
   * that waited while this thread signed go to workers; once that I/O has run, any arrival since
   * `j` started means the pool is wanted: back off.
   */
  function endInline(j: Job): void {
    if (inlineJob !== j) return;
    inlineJob = undefined;
    inlineSettling = true;
    setImmediate(() => {
      inlineSettling = false;
      if (inlineContended) inlineOffUntil = Date.now() + INLINE_BACKOFF_MS;
      inlineContended = false;
    });
  }

  /** Decides `j` on the facts a worker learnt for its blob, then queues it for a worker (see "Decided ahead"). */
  async function decideAhead(j: Job, facts: SignerFacts): Promise<void> {
    let intent: Intent;
    try {
      intent = secpIntent(j.msg.op, j.msg.keyId, j.msg.request);
    } catch (e) {
      return settle(j, asWorkerError(e)); // the words a worker's prepare would have answered
    }
    await decide(j, facts, intent, {
      go: () => {
        // Closed while the policy decided: close() could not see this job (on no queue, no worker).
        if (closed) return settle(j, poolClosed());
        j.phase = 'ready';
        j.decided = { facts, intent };
        ready.push(j);
        pump();
      },
      drop: () => {}, // nothing was prepared
    });
  }

  /** Runs `j` on this thread: the two steps of a worker job, with no hand-off between them. */
  async function runInline(j: Job): Promise<void> {
    const signer = inlineSigner!;
    inlineJob = j;
    inlineContended = false;
    j.phase = 'preparing';
    try {
      let prepared: ReturnType<JobSigner['prepare']>;
      try {
        prepared = signer.prepare(j.id, j.msg, j.msg.deadline);
      } catch (e) {
        return settle(j, asWorkerError(e));
      }
      // This thread authenticated the blob: the next job on it may be decided ahead.
      if (known !== undefined) known.put(prepared.slot, prepared.facts);
      await decide(j, prepared.facts, prepared.intent, {
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
      endInline(j);
      pump();
    }
  }

  function onMessage(slot: Slot, m: WorkerOut): void {
    const j = slot.jobs.find((x) => x.id === m.id);
    if (!j) return;
    if (j.settled) {
      // Stopped while the worker was busy with it: nothing of it is used; prepared keys are wiped.
      if (m.t === 'facts') slot.worker.postMessage({ t: 'abort', id: j.id } satisfies WorkerIn);
      release(j);
      return;
    }
    if (m.t === 'facts') {
      if (j.keySlot !== undefined && j.epoch === keyringEpoch) known!.put(j.keySlot, m.facts);
      void decide(j, m.facts, m.intent, onWorker(j));
      pump(); // the worker may prepare the next job while this one is decided
      return;
    }
    if (m.t === 'done') settle(j, { result: m.result, facts: j.facts! });
    else settle(j, new WorkerError(m.error.code, m.error.message, m.error.field));
    release(j);
  }

  for (let i = 0; i < size; i++) slots.push(spawn(i));

  return {
    size,
    get spawned() {
      return spawned;
    },
    setKeyring(keyringId, key) {
      keyringEpoch++;
      known?.clear();
      if (keyring) wipe(keyring.key);
      keyring = { id: keyringId, key: new Uint8Array(key) };
      for (const s of slots) s.worker.postMessage(keyringMsg());
      inlineSigner?.setKeyring(keyringId, new Uint8Array(key));
    },
    lock() {
      keyringEpoch++;
      known?.clear();
      if (keyring) wipe(keyring.key);
      keyring = undefined;
      for (const s of slots) s.worker.postMessage({ t: 'lock' } satisfies WorkerIn);
      inlineSigner?.lock();
    },
    run(job, opts = {}) {
      if (closed) return Promise.reject(poolClosed());
      if (opts.cancellation?.aborted) return Promise.reject(cancelled());
      const now = Date.now();
      const deadline = Math.min(opts.deadline ?? Infinity, now + maxJobMs);
      if (now >= deadline) return Promise.reject(expired());
      const id = nextId++;
      if (inlineJob !== undefined || inlineSettling) inlineContended = true;
      return new Promise<SignOutcome>((resolve, reject) => {
        const j: Job = { id, msg: { t: 'job', id, ...job, deadline, cheap: inlineable(job) }, opts, phase: 'queued', settled: false, resolve, reject };
        j.timer = setTimeout(() => stop(j, expired()), deadline - now);
        j.timer.unref();
        if (opts.cancellation) j.offAbort = opts.cancellation.onAbort(() => stop(j, cancelled()));
        if (runsInline(j)) {
          // runInline settles the job on every path; this only keeps a bug from becoming an unhandled rejection.
          runInline(j).catch((e: unknown) => settle(j, asWorkerError(e)));
          return;
        }
        if (known !== undefined && j.msg.cheap) {
          j.keySlot = keySlot(job.keyringId, job.keyId, job.kind, job.blob);
          j.epoch = keyringEpoch;
          const facts = known.get(j.keySlot);
          if (facts !== undefined) {
            // decideAhead settles the job on every path, or hands it to a worker; as for runInline.
            decideAhead(j, facts).catch((e: unknown) => settle(j, asWorkerError(e)));
            return;
          }
        }
        queue.push(j);
        pump();
      });
    },
    async close() {
      closed = true;
      known?.clear();
      for (const j of [...queue.splice(0), ...ready.splice(0)]) settle(j, poolClosed());
      if (inlineJob) stop(inlineJob, poolClosed());
      inlineSigner?.close();
      if (keyring) wipe(keyring.key);
      keyring = undefined;
      // Each worker wipes its keyring key and key cache, then exits; terminate() after a grace period in case it is stuck.
      await Promise.all(
        slots.map(async (s) => {
          if (s.dead) return;
          const exited = new Promise<void>((r) => s.worker.once('exit', () => r()));
          s.worker.postMessage({ t: 'close' } satisfies WorkerIn);
          const grace = new Promise<void>((r) => setTimeout(r, 1_000).unref());
          await Promise.race([exited, grace]);
          await s.worker.terminate();
        }),
      );
    },
  };
}
