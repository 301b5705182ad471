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
 * given nothing more until it is done (#takes). The
 * worker keeps every prepared job by id and signs only the one a `go` names,
 * so what is signed is unchanged; at most `depth` prepared keys wait per worker.
 *
 * Inline (option `inline`, on in the enclave; inline-lane.ts): a cheap job
 * (job-cost.ts) that arrives while the whole pool is idle runs on the calling
 * (main) thread, through the same two steps, without the four thread
 * hand-offs of a worker job; it backs off when other jobs arrive meanwhile.
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
 *
 * A terminated worker cannot wipe what it held, so each worker keeps its
 * keyring key, its key cache's secrets and its prepared jobs' keys (at most
 * `depth`) only in a SharedArrayBuffer the pool allocates for it (its secret
 * arena, secret-arena.ts, passed as workerData), and the pool zeroes that
 * arena once the worker has exited: after terminate() resolves (a worker
 * replaced or closed) and on its `exit` event, whatever ended it.
 *
 * A job's record, how it ends and the errors it can end with are pool-job.ts.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { wipe } from '../common/bytes.js';
import { SignerError } from '../common/errors.js';
import type { SignerFacts } from '../common/protocol/enclave-api.js';
import { inlineable } from './job-cost.js';
import { InlineLane } from './inline-lane.js';
import { keyringKeyFits, signerArenaBytes } from './job-signer.js';
import { DEFAULT_KEY_CACHE, keySlot } from './key-cache.js';
import { createKnownKeys, type KnownKeys } from './known-keys.js';
import { secpIntent } from './operations.js';
import type { Intent } from './policy/intent.js';
import { zeroArena } from './secret-arena.js';
import {
  asWorkerError,
  cancelled,
  crashed,
  expired,
  type Job,
  poolClosed,
  type RunOptions,
  type SignOutcome,
  type Slot,
  type Step,
  settle,
  WorkerError,
} from './pool-job.js';
import type { SignJob, WorkerConfig, WorkerIn, WorkerOut } from './worker.js';

export { WorkerError, type RunOptions, type SignOutcome } from './pool-job.js';
export { INLINE_BACKOFF_MS } from './inline-lane.js';
export { inlineable } from './job-cost.js';
/** A signing job as the service hands it over (defined beside the worker's message types). */
export type { SignJob } from './worker.js';

/** Longest a job may take in the enclave, whatever deadline the (untrusted) parent sent. */
export const MAX_JOB_MS = 30_000;

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

export function createWorkerPool(options: number | WorkerPoolOptions = {}): WorkerPool {
  return new Pool(typeof options === 'number' ? { size: options } : options);
}

/**
 * Tests only: the secret arena of each of the pool's current workers (by worker index), to check
 * that a worker's arena is zeroed once the pool has terminated it. Not part of WorkerPool.
 */
export function workerArenasForTest(pool: WorkerPool): readonly SharedArrayBuffer[] {
  if (!(pool instanceof Pool)) throw new TypeError('not a pool made by createWorkerPool');
  return pool.arenas;
}

class Pool implements WorkerPool {
  readonly size: number;
  readonly #depth: number;
  readonly #maxJobMs: number;
  readonly #path = workerPath();
  /** The key cache's bounds, for the workers and the inline lane (each worker also gets its arena). */
  readonly #config: WorkerConfig;
  /** Bytes of each worker's secret arena (job-signer.ts signerArenaBytes): room for `depth` prepared jobs' keys too. */
  readonly #arenaBytes: number;
  #nextId = 1;
  #closed = false;
  #spawned = 0;
  /** The pool's own copy of the keyring key, for replacement workers. */
  #keyring: { id: string; key: Uint8Array } | undefined;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  /** Jobs decided ahead, waiting for a worker: they go before `#queue` (their decision is recorded). */
  readonly #ready: Job[] = [];
  /** The facts of blobs a worker authenticated (see "Decided ahead"); undefined when off. */
  readonly #known: KnownKeys | undefined;
  /**
   * Counts keyring changes (setKeyring, lock). A worker may still answer for a job it prepared
   * under the keyring before: what it learnt then is not put back into `#known`, which the change
   * cleared.
   */
  #keyringEpoch = 0;
  /** The calling thread's lane for inline jobs (see "Inline"); undefined when off. */
  readonly #inline: InlineLane | undefined;

  constructor(o: WorkerPoolOptions) {
    this.size = Math.max(1, o.size ?? availableParallelism());
    this.#depth = Math.max(1, o.depth ?? 32);
    this.#maxJobMs = o.maxJobMs ?? MAX_JOB_MS;
    this.#config = o.keyCache ? { keyCache: o.keyCache } : {};
    this.#arenaBytes = signerArenaBytes({ ...this.#config, prepared: this.#depth });
    this.#known = o.decideAhead ? createKnownKeys({ ...DEFAULT_KEY_CACHE, ...(o.keyCache ?? {}) }) : undefined;
    this.#inline = o.inline
      ? new InlineLane(this.#config, {
          decide: (j, facts, intent, step) => this.#decide(j, facts, intent, step),
          learn: (slot, facts) => this.#known?.put(slot, facts),
          pump: () => this.#pump(),
        })
      : undefined;
    for (let i = 0; i < this.size; i++) this.#slots.push(this.#spawn(i));
  }

  get spawned(): number {
    return this.#spawned;
  }

  /** workerArenasForTest. */
  get arenas(): readonly SharedArrayBuffer[] {
    return this.#slots.map((s) => s.arena);
  }

  setKeyring(keyringId: string, key: Uint8Array): void {
    // A worker could not keep it in its arena (and would die on it, and its replacement too).
    if (!keyringKeyFits(key)) throw new SignerError('WRAPPED_KEY_BAD_KEYRING', `a keyring key cannot be ${key.length} bytes`);
    this.#keyringEpoch++;
    this.#known?.clear();
    if (this.#keyring) wipe(this.#keyring.key);
    this.#keyring = { id: keyringId, key: new Uint8Array(key) };
    const msg = this.#keyringMsg();
    for (const s of this.#slots) s.worker.postMessage(msg);
    this.#inline?.setKeyring(keyringId, new Uint8Array(key));
  }

  lock(): void {
    this.#keyringEpoch++;
    this.#known?.clear();
    if (this.#keyring) wipe(this.#keyring.key);
    this.#keyring = undefined;
    for (const s of this.#slots) s.worker.postMessage({ t: 'lock' } satisfies WorkerIn);
    this.#inline?.lock();
  }

  run(job: SignJob, opts: RunOptions = {}): Promise<SignOutcome> {
    if (this.#closed) return Promise.reject(poolClosed());
    if (opts.cancellation?.aborted) return Promise.reject(cancelled());
    const now = Date.now();
    const deadline = Math.min(opts.deadline ?? Infinity, now + this.#maxJobMs);
    if (now >= deadline) return Promise.reject(expired());
    const id = this.#nextId++;
    this.#inline?.arrived();
    return new Promise<SignOutcome>((resolve, reject) => {
      const j: Job = { id, msg: { t: 'job', id, ...job, deadline, cheap: inlineable(job) }, opts, phase: 'queued', settled: false, resolve, reject };
      j.timer = setTimeout(() => this.#stop(j, expired()), deadline - now);
      j.timer.unref();
      if (opts.cancellation) j.offAbort = opts.cancellation.onAbort(() => this.#stop(j, cancelled()));
      if (this.#inline?.admits(j, this.#idle)) {
        // run() settles the job on every path; this only keeps a bug from becoming an unhandled rejection.
        this.#inline.run(j).catch((e: unknown) => settle(j, asWorkerError(e)));
        return;
      }
      if (this.#known !== undefined && j.msg.cheap) {
        j.keySlot = keySlot(job.keyringId, job.keyId, job.kind, job.blob);
        j.epoch = this.#keyringEpoch;
        const facts = this.#known.get(j.keySlot);
        if (facts !== undefined) {
          // #decideAhead settles the job on every path, or hands it to a worker; as for the inline run.
          this.#decideAhead(j, facts).catch((e: unknown) => settle(j, asWorkerError(e)));
          return;
        }
      }
      this.#queue.push(j);
      this.#pump();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#known?.clear();
    for (const j of [...this.#queue.splice(0), ...this.#ready.splice(0)]) settle(j, poolClosed());
    this.#inline?.close(poolClosed());
    if (this.#keyring) wipe(this.#keyring.key);
    this.#keyring = undefined;
    // Each worker wipes its keyring key and key cache, then exits; terminate() after a grace period in case it is stuck.
    await Promise.all(
      this.#slots.map(async (s) => {
        if (s.dead) return;
        const exited = new Promise<void>((r) => s.worker.once('exit', () => r()));
        s.worker.postMessage({ t: 'close' } satisfies WorkerIn);
        const grace = new Promise<void>((r) => setTimeout(r, 1_000).unref());
        await Promise.race([exited, grace]);
        await this.#retire(s);
      }),
    );
  }

  #keyringMsg(): WorkerIn | undefined {
    return this.#keyring ? { t: 'keyring', keyringId: this.#keyring.id, key: this.#keyring.key } : undefined;
  }

  /** No job queued, decided and waiting, or on a worker (the inline lane checks its own). */
  readonly #idle = (): boolean => this.#queue.length === 0 && this.#ready.length === 0 && this.#slots.every((s) => s.jobs.length === 0);

  #spawn(index: number): Slot {
    // The worker's keyring key and cached secrets live here (secret-arena.ts); zeroed once it has exited.
    const arena = new SharedArrayBuffer(this.#arenaBytes);
    const worker = new Worker(this.#path, { workerData: { ...this.#config, arena } satisfies WorkerConfig });
    this.#spawned++;
    const slot: Slot = { index, worker, arena, jobs: [], dead: false };
    // However it ends (closed, terminated, crashed): once the thread is gone, nothing it held is left.
    worker.once('exit', () => zeroArena(arena));
    worker.on('message', (answers: WorkerOut[]) => {
      // A batch (worker.ts): an answer may replace this worker (#reap), after which the rest
      // find no job on the dead slot and are dropped, as a late answer is.
      for (const m of answers) this.#onMessage(slot, m);
    });
    const onDeath = () => {
      if (slot.dead) return;
      slot.dead = true;
      for (const j of slot.jobs.splice(0)) settle(j, crashed());
      if (!this.#closed) {
        this.#slots[index] = this.#spawn(index);
        this.#pump();
      }
    };
    worker.once('error', onDeath);
    worker.once('exit', onDeath);
    worker.unref();
    // A replacement worker needs the keyring too (structured clone: the worker gets its own copy).
    const k = this.#keyringMsg();
    if (k) worker.postMessage(k);
    return slot;
  }

  /** Takes the job off its worker, which may then take the next job. */
  #release(j: Job): void {
    const s = j.slot;
    if (s) {
      const at = s.jobs.indexOf(j);
      if (at >= 0) s.jobs.splice(at, 1);
      if (this.#reap(s)) return;
    }
    this.#pump();
  }

  /**
   * Terminates the worker and zeroes its secret arena once it is gone: a worker busy with a job
   * cannot be asked to wipe its keyring key and key cache, so the pool, which owns their memory,
   * does (the `exit` listener of #spawn does too).
   */
  async #retire(s: Slot): Promise<void> {
    await s.worker.terminate();
    zeroArena(s.arena); // the thread is gone: nothing reads or writes the arena any more
  }

  /** Terminates the worker and starts its replacement; jobs still live on it fail. */
  #replace(s: Slot): void {
    for (const o of s.jobs.splice(0)) settle(o, crashed());
    s.dead = true; // its exit is expected: the replacement starts now
    void this.#retire(s);
    if (!this.#closed) {
      this.#slots[s.index] = this.#spawn(s.index);
      this.#pump();
    }
  }

  /**
   * A worker busy only with jobs that were stopped (nobody waits for what it is doing) is
   * replaced rather than left to finish: returns true when it was.
   */
  #reap(s: Slot): boolean {
    if (s.dead || s.jobs.length === 0 || !s.jobs.every((x) => x.settled)) return false;
    if (!s.jobs.some((x) => x.phase === 'preparing' || x.phase === 'signing')) return false;
    this.#replace(s);
    return true;
  }

  /** The job must not sign: end it with `err`, and stop whatever its worker is doing for it. */
  #stop(j: Job, err: Error): void {
    if (j.settled) return;
    if (this.#inline?.runs(j)) {
      this.#inline.stop(j, err);
      this.#pump();
      return;
    }
    switch (j.phase) {
      case 'queued': {
        const at = this.#queue.indexOf(j);
        if (at >= 0) this.#queue.splice(at, 1);
        settle(j, err);
        return;
      }
      case 'deciding':
        // Decided ahead: no worker has it yet.
        if (!j.slot) return settle(j, err);
        // The worker is idle, holding the unwrapped key: tell it to wipe it.
        j.slot.worker.postMessage({ t: 'abort', id: j.id } satisfies WorkerIn);
        settle(j, err);
        this.#release(j);
        return;
      case 'ready': {
        const at = this.#ready.indexOf(j);
        if (at >= 0) this.#ready.splice(at, 1);
        settle(j, err);
        return;
      }
      case 'preparing':
      case 'signing': {
        // The worker is busy with this job: it cannot hear us. Alone on it, it is replaced;
        // beside a live job it finishes and its answer is discarded (#onMessage).
        settle(j, err);
        this.#reap(j.slot!);
        return;
      }
    }
  }

  /**
   * Whether worker `s` takes another job: it is alive, holds fewer than `depth`, and is not busy
   * with an expensive one (a PSBT, a seed key, a long message: milliseconds to seconds), behind
   * which a queued signature would wait while another worker may be free.
   */
  #takes(s: Slot): boolean {
    if (s.dead || s.jobs.length >= this.#depth) return false;
    for (const x of s.jobs) if (!x.msg.cheap && (x.phase === 'preparing' || x.phase === 'signing')) return false;
    return true;
  }

  #pump(): void {
    if (this.#closed) return;
    // Decided jobs first, each to the live worker holding the fewest jobs.
    while (this.#ready.length > 0) {
      let s: Slot | undefined;
      for (const x of this.#slots) if (this.#takes(x) && (!s || x.jobs.length < s.jobs.length)) s = x;
      if (!s) return;
      const j = this.#ready.shift()!;
      j.phase = 'signing';
      j.slot = s;
      s.jobs.push(j);
      s.worker.postMessage({ ...j.msg, t: 'sign', decided: j.decided! } satisfies WorkerIn);
    }
    for (const s of this.#slots) {
      if (this.#queue.length === 0) return;
      if (!this.#takes(s) || s.jobs.some((x) => x.phase === 'preparing')) continue;
      const j = this.#queue.shift()!;
      j.phase = 'preparing';
      j.slot = s;
      s.jobs.push(j);
      s.worker.postMessage(j.msg);
    }
  }

  /** The decision on a prepared job, for every path: authorize, the stop checks, record, then the step. */
  async #decide(j: Job, facts: SignerFacts, intent: Intent, step: Step): Promise<void> {
    j.phase = 'deciding';
    j.facts = facts;
    try {
      await j.opts.authorize?.(facts, intent);
    } catch (e) {
      if (j.settled) return;
      step.drop();
      settle(j, e as Error);
      this.#release(j);
      return;
    }
    if (j.settled) return; // cancelled or expired while the policy decided: already wiped
    if (j.opts.cancellation?.aborted) return this.#stop(j, cancelled());
    if (Date.now() >= j.msg.deadline) return this.#stop(j, expired());
    // Same tick as the step below: nothing can cancel between the record and the signing step.
    try {
      j.opts.record?.(facts, intent);
    } catch (e) {
      step.drop();
      settle(j, e as Error);
      this.#release(j);
      return;
    }
    j.phase = 'signing';
    step.go();
  }

  /** Decides `j` on the facts a worker learnt for its blob, then queues it for a worker (see "Decided ahead"). */
  async #decideAhead(j: Job, facts: SignerFacts): Promise<void> {
    let intent: Intent;
    try {
      intent = secpIntent(j.msg.op, j.msg.keyId, j.msg.request);
    } catch (e) {
      return settle(j, asWorkerError(e)); // the words a worker's prepare would have answered
    }
    await this.#decide(j, facts, intent, {
      go: () => {
        // Closed while the policy decided: close() could not see this job (on no queue, no worker).
        if (this.#closed) return settle(j, poolClosed());
        j.phase = 'ready';
        j.decided = { facts, intent };
        this.#ready.push(j);
        this.#pump();
      },
      drop: () => {}, // nothing was prepared
    });
  }

  #onMessage(slot: Slot, m: WorkerOut): void {
    const j = slot.jobs.find((x) => x.id === m.id);
    if (!j) return;
    if (j.settled) {
      // Stopped while the worker was busy with it: nothing of it is used; prepared keys are wiped.
      if (m.t === 'facts') slot.worker.postMessage({ t: 'abort', id: j.id } satisfies WorkerIn);
      this.#release(j);
      return;
    }
    if (m.t === 'facts') {
      if (j.keySlot !== undefined && j.epoch === this.#keyringEpoch) this.#known!.put(j.keySlot, m.facts);
      void this.#decide(j, m.facts, m.intent, {
        go: () => j.slot!.worker.postMessage({ t: 'go', id: j.id, cheap: j.msg.cheap } satisfies WorkerIn),
        drop: () => j.slot!.worker.postMessage({ t: 'abort', id: j.id } satisfies WorkerIn),
      });
      this.#pump(); // the worker may prepare the next job while this one is decided
      return;
    }
    if (m.t === 'done') settle(j, { result: m.result, facts: j.facts! });
    else settle(j, new WorkerError(m.error.code, m.error.message, m.error.field));
    this.#release(j);
  }
}
