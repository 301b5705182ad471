/**
 * Nothing released before it is recorded (docs/audit.md). Every enclave answer
 * that carries audit records goes through here; its result is handed to the
 * client only once its records **and every earlier seq** are durable in the
 * keystore, written in seq order without gaps:
 *
 * - concurrent requests' records arrive out of order: they wait in `pending`
 *   and are written as soon as the run from the next expected seq is complete
 *   (one transaction per contiguous run: batched, never early);
 * - group commit: while other decisions are still on their way from the enclave,
 *   a write waits up to `commitDelayMs` for their records, so one transaction (one
 *   fsync) serves more of them; with nothing else on its way it starts at once.
 *   Only when the write starts changes: a result still waits until it is durable;
 * - a record whose answer never arrived (a cancelled request, a dropped
 *   connection, a parent killed between sign and persist) is fetched again from
 *   the enclave (`audit.records`); one the enclave no longer holds is logged as
 *   a gap, which `audit verify` reports;
 * - a write that fails (read-only keystore, full disk) fails every request
 *   whose record it held, with PARENT_AUDIT_UNAVAILABLE (-32002): the client
 *   never gets that result. The records stay pending and are retried.
 * - a key change (key.create) is written in the same transaction as its record.
 */
import { parseRecord, parseRecordOnce, type ParsedRecord } from '../common/audit/record.js';
import { isSignerError } from '../common/errors.js';
import { ChurnMap } from '../common/churn-map.js';
import { ParentError } from './errors.js';
import type { Keystore } from './keystore.js';

export type FetchRecords = (fromSeq: number) => Promise<Uint8Array[]>;

export interface AuditPersister {
  /**
   * Persists `records` (with `change` in the same transaction, if given) and
   * resolves once they and every earlier seq are durable; rejects with
   * PARENT_AUDIT_UNAVAILABLE when they cannot be stored.
   */
  persist<T = undefined>(records: readonly Uint8Array[], change?: (records: readonly Uint8Array[]) => T | Promise<T>): Promise<T | undefined>;
  /** Where fetches of missing records go (the attested session); undefined while there is none. */
  setFetch(fetch: FetchRecords | undefined): void;
  /**
   * Re-reads the stored head (after boot stored a hand-over directly). With
   * `newAuditKey` (a new enclave life): records of other audit keys still
   * waiting for an earlier seq can never be written without forking the chain;
   * they are dropped and their requests refused (none was released).
   */
  resync(newAuditKey?: Uint8Array): Promise<void>;
  /** The next seq the keystore expects. */
  readonly nextSeq: number;
  /** Remembers which record released a result (bounded; for signer_getReceipt). */
  noteResult(resultDigestHex: string, seq: number): void;
  seqOfResult(resultDigestHex: string): number | undefined;
  close(): void;
}

interface Entry {
  remaining: number;
  change: ((records: readonly Uint8Array[]) => unknown) | undefined;
  /** A key change rides with this entry's record (key.create). */
  keyChange: boolean;
  result?: unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
}

interface Pending {
  bytes: Uint8Array;
  entry: Entry | undefined;
  auditKey: string;
}

export interface AuditPersisterOptions {
  keystore: Keystore;
  log: (line: string) => void;
  /** How long a result may wait for its record to become durable. */
  waitMs?: number;
  /** How long a missing seq may stay missing before it is fetched from the enclave. */
  gapFetchMs?: number;
  /** How many result digests signer_getReceipt can look up (oldest forgotten first). */
  maxResults?: number;
  /**
   * How many enclave calls are still to answer (the gate's count): their records will arrive
   * soon. While it is above 0, a write waits up to `commitDelayMs` for them. Default: none.
   */
  awaiting?: () => number;
  /** The longest a write waits for records still on their way (group commit). Default DEFAULT_COMMIT_DELAY_MS. */
  commitDelayMs?: number;
}

/**
 * Group commit. A commit's fsync costs the parent ~0.2 ms of CPU (bench:e2e audit-cost, in
 * process) whatever the group's size, so a write waits for records still on their way — but
 * only while other enclave calls are still to answer, and never longer than it has to:
 *
 * - it starts at once when nothing else is on its way (one client: no added latency; a small
 *   closed-loop load closes its group when every client is waiting for it);
 * - it starts when the group reaches GROUP_TARGET records (a fast enclave fills it in a few
 *   ms);
 * - otherwise after DEFAULT_COMMIT_DELAY_MS from its first record. At 64 IPC clients on the
 *   2-vCPU box (~1,500 signatures/s, p50 ~40 ms of queueing) 2 ms gave ~7 records per
 *   transaction, 6 ms ~14, 10 ms ~22: the commit's CPU per signature went ~27 → ~13 → ~9 µs.
 *
 * Why 16 and not 32 (session 18, docs/performance.md): every result in a group waits for the
 * group's last record, so a group of 32 at 64 closed-loop clients can hold half of them away
 * from the enclave (the likely reason; not measured directly). At ~3,000 signatures/s a group of 16 fills
 * in ~5 ms. Six alternated runs on fresh stacks (bench/ab.ts, 8–20 rounds each) put it at
 * +3.7 / +3.1 / +2.6 / −1.5 / +3.6 / +2.4 % signatures/s over 32, for a parent CPU per request
 * of −1.2 / −3.6 / +3.7 / +7.8 / +5.7 / +2.4 % (more commits): a small gain for a little parent
 * CPU, on a box whose A/A pairs differ by up to 4 %. 8 and 12 commit too often (parent CPU
 * +5–8 %, throughput no better).
 */
export const GROUP_TARGET = 16;
export const DEFAULT_COMMIT_DELAY_MS = 10;

function unavailable(message: string, cause?: unknown): ParentError {
  const why = isSignerError(cause) && cause.hint ? `${cause.hint}; ` : '';
  return new ParentError('PARENT_AUDIT_UNAVAILABLE', message, {
    ...(cause === undefined ? {} : { cause }),
    hint: `${why}the result is withheld because its audit record is not durable; fix the keystore (read-only? disk full? locked?) and retry`,
  });
}

/** A key change that failed with its record keeps the keystore's own error (its contract predates the audit chain). */
function refusal(entry: Entry, message: string, e: unknown): unknown {
  return entry.keyChange && isSignerError(e) ? e : unavailable(message, e);
}

/**
 * One parse per record on the release path (the persister, the keystore, the receipt index and
 * the inline receipt all need its seq, hash and digests): common/audit/record.ts parseRecordOnce,
 * keyed by the bytes object the enclave's answer decoded into. A named function of its own so
 * CPU profiles tell the persister's parse from the keystore's (bench/e2e-audit-cost.ts).
 */
export function parsedRecord(bytes: Uint8Array): ParsedRecord {
  return parseRecordOnce(bytes);
}

const keyOf = (bytes: Uint8Array): string => Buffer.from(parsedRecord(bytes).body.auditKey).toString('hex');

export function createAuditPersister(o: AuditPersisterOptions): AuditPersister {
  return new Persister(o);
}

const settle = (e: Entry, err?: unknown) => {
  clearTimeout(e.timer);
  if (err === undefined) e.resolve(e.result);
  else e.reject(err);
};

class Persister implements AuditPersister {
  readonly #keystore: Keystore;
  readonly #log: (line: string) => void;
  readonly #waitMs: number;
  readonly #gapFetchMs: number;
  readonly #awaiting: () => number;
  readonly #commitDelayMs: number;
  // Records come and go with every answer: not a plain Map (common/churn-map.ts says why).
  readonly #pending = new ChurnMap<number, Pending>();
  #fetch: FetchRecords | undefined;
  #gapTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #flushQueued = false;
  #queuedAt = 0;
  #delayTimer: NodeJS.Timeout | undefined;
  readonly #results = new Map<string, number>();
  readonly #maxResults: number;
  #next = 0;
  /** Boot resyncs before anything is persisted; this covers a persister used without a boot (tests). */
  #initial: Promise<void> | undefined;
  #flushing = false;
  #flushAgain = false;

  constructor(o: AuditPersisterOptions) {
    this.#keystore = o.keystore;
    this.#log = o.log;
    this.#waitMs = o.waitMs ?? 30_000;
    this.#gapFetchMs = o.gapFetchMs ?? 250;
    this.#awaiting = o.awaiting ?? (() => 0);
    this.#commitDelayMs = o.commitDelayMs ?? DEFAULT_COMMIT_DELAY_MS;
    this.#maxResults = o.maxResults ?? 100_000;
    this.#initial = this.#storedNext().then(
      (n) => {
        this.#next = Math.max(this.#next, n);
      },
      (e) => this.#log(`audit: could not read the stored head: ${(e as Error).message}; boot will read it again`),
    );
  }

  get nextSeq(): number {
    return this.#next;
  }

  noteResult(d: string, seq: number): void {
    this.#results.delete(d);
    this.#results.set(d, seq);
    if (this.#results.size > this.#maxResults) this.#results.delete(this.#results.keys().next().value!);
  }

  seqOfResult(d: string): number | undefined {
    return this.#results.get(d);
  }

  setFetch(f: FetchRecords | undefined): void {
    this.#fetch = f;
    if (f) this.#scheduleGapFetch();
  }

  async resync(newAuditKey?: Uint8Array): Promise<void> {
    if (newAuditKey) {
      const key = Buffer.from(newAuditKey).toString('hex');
      const dropped: number[] = [];
      for (const [seq, p] of this.#pending) {
        if (p.auditKey === key) continue;
        this.#pending.delete(seq);
        dropped.push(seq);
        if (p.entry) {
          const entry = p.entry;
          p.entry = undefined;
          settle(entry, unavailable('the enclave restarted before an earlier audit record of this one was stored, so the result is withheld'));
        }
      }
      if (dropped.length > 0) this.#log(`audit: GAP: ${dropped.length} record(s) of the previous enclave (seq ${Math.min(...dropped)}..${Math.max(...dropped)}) waited for an earlier seq that is lost; dropped (their results were never released)`);
    }
    this.#initial = undefined;
    this.#next = Math.max(this.#next, await this.#storedNext());
    this.#flush();
  }

  persist<T>(records: readonly Uint8Array[], change?: (records: readonly Uint8Array[]) => T | Promise<T>): Promise<T | undefined> {
    if (records.length === 0) {
      return Promise.reject(new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'the enclave answered a decision without its audit record (nothing is released unrecorded)'));
    }
    let parsed: Array<{ seq: number; bytes: Uint8Array }>;
    try {
      parsed = records.map((bytes) => ({ seq: parsedRecord(bytes).body.seq, bytes }));
    } catch (e) {
      return Promise.reject(new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `the enclave's audit record does not parse: ${(e as Error).message}`, { cause: e }));
    }
    if (change && parsed.length !== 1) return Promise.reject(new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'a key change comes with exactly one audit record'));
    const pending = this.#pending;
    return new Promise<T | undefined>((resolve, reject) => {
      const entry: Entry = {
        remaining: 0,
        change,
        keyChange: change !== undefined,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: setTimeout(() => {
          for (const [, p] of pending) if (p.entry === entry) p.entry = undefined;
          reject(unavailable(`the audit record was not durable within ${this.#waitMs} ms (an earlier seq is missing), so the result is withheld`));
        }, this.#waitMs),
      };
      entry.timer.unref();
      const late: Uint8Array[] = [];
      for (const r of parsed) {
        if (r.seq < this.#next) late.push(r.bytes);
        else if (pending.has(r.seq)) {
          const p = pending.get(r.seq)!;
          if (Buffer.compare(Buffer.from(p.bytes), Buffer.from(r.bytes)) !== 0) {
            settle(entry, new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `two different audit records for seq ${r.seq}`));
            return;
          }
          if (!p.entry) {
            p.entry = entry;
            entry.remaining++;
          } else late.push(r.bytes);
        } else {
          pending.set(r.seq, { bytes: r.bytes, entry, auditKey: keyOf(r.bytes) });
          entry.remaining++;
        }
      }
      // Seqs below `next` were stored already (a retried persist) or skipped as a gap: written directly (idempotent).
      const release = () => {
        if (entry.remaining === 0) settle(entry);
        else this.#queueFlush();
      };
      if (late.length === 0) return release();
      void (async () => {
        try {
          if (change && entry.remaining === 0) entry.result = await change(late);
          else await this.#keystore.appendAuditRecords(late);
        } catch (e) {
          for (const [, p] of pending) if (p.entry === entry) p.entry = undefined;
          settle(entry, refusal(entry, `the audit record could not be stored, so the result is withheld: ${(e as Error).message}`, e));
          return;
        }
        release();
      })();
    });
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#delayTimer);
    clearTimeout(this.#gapTimer);
    clearTimeout(this.#retryTimer);
  }

  async #storedNext(): Promise<number> {
    const head = await this.#keystore.auditHead();
    return head === undefined ? 0 : parseRecord(head).body.seq + 1;
  }

  /**
   * Group commit: records that arrive in the same turn of the event loop go in one transaction,
   * and while other enclave calls are still to answer, the write waits (at most commitDelayMs
   * from the first queued record) for their records too. Each fsync costs the parent's main
   * thread CPU (bench:e2e audit-cost: ~0.2 ms per transaction); at 64 clients the answers come
   * about one per 0.7 ms, so per-turn groups alone held ~3 records (DEFAULT_COMMIT_DELAY_MS).
   */
  #queueFlush(): void {
    if (this.#flushQueued) {
      // Waiting for more: the last one on its way arrived (or the group is full), write now.
      if (this.#delayTimer && (this.#awaiting() === 0 || this.#pending.size >= GROUP_TARGET)) {
        clearTimeout(this.#delayTimer);
        this.#delayTimer = undefined;
        setImmediate(() => this.#startFlush());
      }
      return;
    }
    this.#flushQueued = true;
    this.#queuedAt = performance.now();
    setImmediate(() => this.#startFlush());
  }

  #startFlush(): void {
    if (!this.#flushQueued) return;
    const left = this.#commitDelayMs - (performance.now() - this.#queuedAt);
    if (left > 0 && !this.#closed && this.#awaiting() > 0 && this.#pending.size < GROUP_TARGET) {
      this.#delayTimer ??= setTimeout(() => {
        this.#delayTimer = undefined;
        this.#startFlush();
      }, Math.ceil(left));
      return;
    }
    clearTimeout(this.#delayTimer);
    this.#delayTimer = undefined;
    this.#flushQueued = false;
    this.#flush();
  }

  /**
   * One writer at a time (the keystore is async): a flush asked for while one
   * runs is run again after it, so no record waits for a timer.
   */
  #flush(): void {
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    this.#flushing = true;
    void (async () => {
      try {
        if (this.#initial) await this.#initial;
        this.#initial = undefined;
        do {
          this.#flushAgain = false;
          // After a failed write the retry timer takes over (no tight loop against a broken store).
          if (!(await this.#flushRun())) break;
        } while (this.#flushAgain && !this.#closed);
      } catch (e) {
        this.#log(`audit: flush failed: ${(e as Error).message}`);
      } finally {
        this.#flushing = false;
      }
    })();
  }

  /** Writes the contiguous run from `next`; stops at the first failure (nothing after it is written). */
  async #flushRun(): Promise<boolean> {
    const pending = this.#pending;
    while (pending.has(this.#next)) {
      const batch: Array<[number, Pending]> = [];
      let changed: [number, Pending] | undefined;
      for (let s = this.#next; pending.has(s); s++) {
        const p = pending.get(s)!;
        if (p.entry?.change && p.entry.remaining === 1) {
          changed = [s, p];
          break;
        }
        batch.push([s, p]);
      }
      try {
        if (batch.length > 0) await this.#keystore.appendAuditRecords(batch.map(([, p]) => p.bytes));
      } catch (e) {
        this.#failed(batch, e);
        return false;
      }
      // A key change can join a record while its batch is being written: its answer arrived after
      // the record was fetched back from the enclave (the answer waited on something else, such as
      // the fleet's sealed-state store). The record is durable now; the change still has to run.
      const joined: Array<{ entry: Entry; bytes: Uint8Array }> = [];
      for (const [, p] of batch) {
        if (p.entry?.change === undefined) continue;
        joined.push({ entry: p.entry, bytes: p.bytes });
        p.entry = undefined;
      }
      this.#done(batch);
      for (const j of joined) await runLateChange(j.entry, j.bytes);
      if (changed) {
        const [, p] = changed;
        const entry = p.entry;
        // Its request gave up (timed out) while the run before it was written: now a plain record.
        if (!entry?.change) continue;
        try {
          entry.result = await entry.change!([p.bytes]);
        } catch (e) {
          // The change (and its record) did not happen: this request fails; the record alone is retried.
          entry.change = undefined;
          this.#failed([changed], e);
          return false;
        }
        this.#done([changed]);
      }
    }
    this.#scheduleGapFetch();
    return true;
  }

  #done(items: Array<[number, Pending]>): void {
    for (const [s, p] of items) {
      this.#pending.delete(s);
      this.#next = Math.max(this.#next, s + 1);
      if (p.entry && --p.entry.remaining === 0) settle(p.entry);
    }
  }

  #failed(items: Array<[number, Pending]>, e: unknown): void {
    const why = (e as Error)?.message ?? String(e);
    this.#log(`audit: could not store record(s) seq ${items[0]?.[0]}..${items.at(-1)?.[0]}: ${why}; their results are withheld`);
    for (const [, p] of items) {
      if (p.entry) {
        const entry = p.entry;
        p.entry = undefined;
        settle(entry, refusal(entry, `the audit record could not be stored, so the result is withheld: ${why}`, e));
      }
    }
    // Retried later (the keystore may come back); every waiting request is failed now, none released early.
    for (const [, p] of this.#pending) {
      if (p.entry) {
        const entry = p.entry;
        p.entry = undefined;
        settle(entry, refusal(entry, `an earlier audit record could not be stored, so this result is withheld: ${why}`, e));
      }
    }
    if (!this.#retryTimer && !this.#closed) {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#flush();
      }, 1_000);
      this.#retryTimer.unref();
    }
  }

  #scheduleGapFetch(): void {
    if (this.#closed || this.#gapTimer || this.#pending.size === 0 || this.#pending.has(this.#next)) return;
    this.#gapTimer = setTimeout(() => {
      this.#gapTimer = undefined;
      void this.#fillGap();
    }, this.#gapFetchMs);
    this.#gapTimer.unref();
  }

  async #fillGap(): Promise<void> {
    const pending = this.#pending;
    if (this.#closed || pending.size === 0 || pending.has(this.#next)) return;
    if (!this.#fetch) {
      this.#scheduleGapFetch();
      return;
    }
    const want = this.#next;
    let got: Uint8Array[] = [];
    try {
      got = await this.#fetch(want);
    } catch (e) {
      this.#log(`audit: could not fetch missing record seq ${want} from the enclave: ${(e as Error).message}; retrying`);
      this.#scheduleGapFetch();
      return;
    }
    for (const bytes of got) {
      let seq: number;
      try {
        seq = parsedRecord(bytes).body.seq;
      } catch {
        continue;
      }
      if (seq >= this.#next && !pending.has(seq)) pending.set(seq, { bytes, entry: undefined, auditKey: keyOf(bytes) });
    }
    // Decided on what holds now, not on what held before the fetch: its answer was only late (a
    // busy enclave, over gapFetchMs) and arrived while the fetch was out, so `next` moved past it.
    // Judged on the state before the fetch, that was logged as a GAP and `next` was set back to the
    // lowest seq then pending, below what had been stored since, which was then fetched and
    // written again (the CI soak's parent log; parent/audit-persist.test.ts).
    if (this.#next !== want) {
      this.#flush();
      return;
    }
    if (pending.has(want)) {
      this.#log(`audit: record seq ${want} was fetched from the enclave (its answer had not reached this parent within ${this.#gapFetchMs} ms; its result is released only if that answer still arrives)`);
      this.#flush();
      return;
    }
    if (pending.size === 0) return;
    // The enclave no longer holds it (a restart, or beyond its buffer): a gap the verifier will report.
    const lowest = Math.min(...pending.keys());
    this.#log(`audit: GAP: records seq ${want}..${lowest - 1} were never received and the enclave no longer holds them; audit verify will report this gap`);
    this.#next = lowest;
    this.#flush();
  }
}

/**
 * Runs a key change whose record is durable already (the change's own append of it is
 * idempotent). If it fails, only its request fails: the record stays, as a decision that did
 * not take effect (as when the change fails in the late path of `persist`).
 */
async function runLateChange(entry: Entry, bytes: Uint8Array): Promise<void> {
  try {
    entry.result = await entry.change!([bytes]);
  } catch (e) {
    settle(entry, refusal(entry, `the key change could not be stored with its audit record, so the result is withheld: ${(e as Error)?.message ?? String(e)}`, e));
    return;
  }
  settle(entry);
}
