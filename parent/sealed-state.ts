/**
 * The parent's part in the enclave's durable limits (docs/principals.md "Sealed state",
 * docs/scale-out.md "Limits across instances"): it stores the sealed record the enclave hands
 * out — ciphertext it cannot read or forge — and hands it back. A record that comes with a
 * signature is stored BEFORE the signature is released: if the write fails, the client gets an
 * error and no signature.
 *
 * Two scopes, chosen by the enclave's policy (`stateScope`, read from its status at boot):
 *
 *   instance  each enclave has its own record (table sealed_state, per instance id), handed back
 *             once, at boot (`state.restore`);
 *   fleet     every instance of the keyring shares one record (table fleet_state). Before each
 *             call that may decide on it, the parent reads the store's head and hands the record
 *             in (`state`) unless its enclave already holds it; it stores each new record by
 *             compare-and-swap on the lineage the enclave names (keystore.putFleetState). A lost
 *             swap means another instance counted first: the answer is withheld
 *             (PARENT_STATE_CONFLICT) and the request may be decided again on the new head.
 *
 * This is coordination among honest hosts: a hostile host can always skip the store and fork the
 * state (docs/scale-out.md, "What fleet scope does not stop").
 */
import type { JsonLike } from '../common/cbor-json.js';
import { asRecord } from '../common/protocol/enclave-api.js';
import { ParentError } from './errors.js';
import type { FleetLineage, Keystore } from './keystore.js';

type Call = (method: 'state.restore' | 'status', params: Record<string, unknown>) => Promise<JsonLike>;

export type StateScope = 'instance' | 'fleet';

/** How many of its enclave's recent record nonces a parent remembers (to skip handing them back). */
const SEEN = 1024;

function sequenceOf(record: unknown): number {
  const n = (record as { sequence?: unknown } | null)?.sequence;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'the enclave handed out a sealed state record without a sequence');
  return n;
}

function nonceOf(record: unknown): string {
  const n = (record as { nonce?: unknown } | null)?.nonce;
  if (typeof n !== 'string' || n.length === 0 || n.length > 64) throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'the enclave handed out a sealed state record without a nonce');
  return n;
}

function lineageOf(v: unknown): FleetLineage {
  const l = v as { id?: unknown; base?: unknown } | null | undefined;
  const base = l?.base as { sequence?: unknown; nonce?: unknown } | null | undefined;
  if (typeof l?.id !== 'string' || !/^[0-9a-f]{32}$/.test(l.id)) throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'a fleet-scope sealed record came without its lineage');
  if (base === null || base === undefined) return { id: l.id, base: null };
  if (typeof base.sequence !== 'number' || !Number.isSafeInteger(base.sequence) || typeof base.nonce !== 'string') throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'a fleet-scope lineage has a malformed base');
  return { id: l.id, base: { sequence: base.sequence, nonce: base.nonce } };
}

function unwritable(e: unknown): ParentError {
  return new ParentError('PARENT_STATE_UNWRITABLE', 'the enclave\'s sealed state could not be stored, so the answer is withheld', { cause: e, hint: 'check the keystore (disk, permissions, database) and retry' });
}

export interface SealedStateSync {
  readonly scope: StateScope;
  /** After the keyring is unlocked: hand back the stored record, store the one the enclave answers. */
  restore(call: Call, keyringId: string): Promise<void>;
  /** Fleet scope: `{ state }` with the store's record when the enclave may not hold it; else `{}`. */
  stateParam(keyringId: string): Promise<{ state?: JsonLike }>;
  /** Stores the `sealed` member of an enclave answer (if any) before the answer is released. */
  store(keyringId: string, answer: Record<string, unknown>): Promise<void>;
  /** The enclave refused the state it was handed as stale: hand the head in again next time. */
  forget(): void;
  /**
   * Runs `attempt` up to `attempts` times while it loses a fleet-scope race (isStateConflict),
   * handing the new head in each time, after a short jittered pause. Other errors go through.
   */
  retry<T>(attempts: number, attempt: () => Promise<T>): Promise<T>;
}

/** How often a request the client did not sign is decided again after losing the fleet swap. */
export const FLEET_ATTEMPTS = 6;

/**
 * Before attempt `n` (2, 3, …): a short random pause, growing with n, so instances that keep
 * losing to each other stop colliding in lockstep.
 */
export function fleetBackoff(n: number): Promise<void> {
  const ms = Math.random() * 4 * (n - 1);
  return new Promise((r) => setTimeout(r, ms));
}

/** A fleet-scope race lost by this instance (retryable: nothing was released). */
export function isStateConflict(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'PARENT_STATE_CONFLICT' || code === 'SEALED_STATE_STALE';
}

/**
 * Instance scope, group commit: the row holds only the newest record, and a record of one enclave
 * includes every state change sealed before it (its sequence only grows). So an answer whose record
 * has sequence s may be released once ANY record with sequence ≥ s is durable: under load one
 * write (one fsync) releases every answer that arrived while the previous write was running,
 * instead of one write per answer. A failed write fails exactly the answers it would have covered.
 */
export function groupCommit(put: (keyringId: string, sequence: number, record: unknown) => Promise<void>) {
  /** An enclave life: records of an earlier one never release or overtake a later one's. */
  let life = 0;
  let durable = 0;
  let pending: { keyringId: string; sequence: number; record: unknown } | undefined;
  let writing = false;
  let waiters: { sequence: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  const settle = (upTo: number, err?: unknown) => {
    const keep: typeof waiters = [];
    for (const w of waiters) {
      if (w.sequence > upTo) keep.push(w);
      else if (err === undefined) w.resolve();
      else w.reject(err);
    }
    waiters = keep;
  };
  const kick = () => {
    if (writing || !pending) return;
    const job = pending;
    const mine = life;
    pending = undefined;
    writing = true;
    put(job.keyringId, job.sequence, job.record)
      .then(
        () => {
          if (mine !== life) return;
          durable = Math.max(durable, job.sequence);
          settle(durable);
        },
        (e: unknown) => {
          if (mine === life) settle(job.sequence, unwritable(e));
        },
      )
      .finally(() => {
        writing = false;
        kick();
      });
  };
  return {
    store(keyringId: string, sequence: number, record: unknown): Promise<void> {
      if (sequence <= durable) return Promise.resolve();
      if (!pending || sequence > pending.sequence) pending = { keyringId, sequence, record };
      return new Promise<void>((resolve, reject) => {
        waiters.push({ sequence, resolve, reject });
        kick();
      });
    },
    /**
     * A new enclave life: its sequence continues from the restored record, which may be older
     * than what the last life sealed. Answers of the last life still waiting are withheld.
     */
    reset() {
      life++;
      durable = 0;
      pending = undefined;
      settle(Number.MAX_SAFE_INTEGER, new ParentError('PARENT_STATE_UNWRITABLE', 'the enclave restarted before its sealed state was stored, so the answer is withheld'));
    },
  };
}

/** One per parent: remembers the scope and which fleet records its enclave already holds. */
export function createSealedStateSync(keystore: Keystore, log: (l: string) => void): SealedStateSync {
  let scope: StateScope = 'instance';
  /** Nonces of fleet records this parent's enclave sealed or was handed (insertion-ordered, bounded). */
  const seen = new Set<string>();
  const remember = (nonce: string) => {
    seen.delete(nonce);
    seen.add(nonce);
    if (seen.size > SEEN) seen.delete(seen.values().next().value as string);
  };

  const instanceWriter = groupCommit((keyringId, sequence, record) => keystore.putSealedState!(keyringId, sequence, record));

  async function putFleet(keyringId: string, record: unknown, lineageValue: unknown): Promise<void> {
    if (!keystore.putFleetState) throw new ParentError('PARENT_STATE_UNWRITABLE', 'this keystore cannot store shared (fleet) sealed state; nothing was released');
    const lineage = lineageOf(lineageValue);
    const nonce = nonceOf(record);
    let outcome;
    try {
      outcome = await keystore.putFleetState(keyringId, { sequence: sequenceOf(record), nonce, record }, lineage);
    } catch (e) {
      throw unwritable(e);
    }
    remember(nonce);
    if (outcome === 'conflict') {
      // The enclave must take the head over before its next decision: hand it in next time.
      seen.clear();
      throw new ParentError('PARENT_STATE_CONFLICT', 'another instance changed the shared limits first: this answer was withheld (nothing was released); retry the request', {
        hint: 'the next attempt is decided on the fleet\'s current counters (docs/scale-out.md)',
      });
    }
  }

  return {
    get scope() {
      return scope;
    },
    async restore(call, keyringId) {
      const status = asRecord(await call('status', {}), 'status result');
      scope = (status.policy as { stateScope?: unknown } | null | undefined)?.stateScope === 'fleet' ? 'fleet' : 'instance';
      let record: unknown = null;
      if (scope === 'fleet') record = (await keystore.getFleetState?.(keyringId))?.record ?? null;
      else record = (await keystore.getSealedState?.(keyringId)) ?? null;
      const res = (await call('state.restore', { record: record as JsonLike })) as { record?: unknown; unclean?: unknown; restored?: unknown; sealedLineage?: unknown } | null;
      if (res === null || typeof res !== 'object' || res.record === undefined) throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'state.restore answered no record');
      seen.clear();
      // Only a first restore takes the record (an enclave that already holds state ignores it):
      // otherwise the next request hands the head in.
      if (record !== null && res.restored === true) remember(nonceOf(record));
      if (scope === 'fleet') {
        // The boot record marks this enclave running; losing its swap only means another instance
        // moved on, and the next request hands the head in.
        try {
          await putFleet(keyringId, res.record, res.sealedLineage);
        } catch (e) {
          if (!(e instanceof ParentError && e.code === 'PARENT_STATE_CONFLICT')) throw e;
        }
        log(`sealed state: fleet scope (one shared record for keyring ${keyringId}, stored by compare-and-swap)`);
      } else if (keystore.putSealedState) {
        instanceWriter.reset();
        await this.store(keyringId, { sealed: res.record });
      } else {
        log('read-only keystore: the enclave\'s sealed state is not stored; answers that change window counters or approvals are withheld');
      }
      if (res.unclean === true) log('the enclave reports an unclean restart: window counters and approvals are as of its last sealed record');
    },
    async stateParam(keyringId) {
      if (scope !== 'fleet' || !keystore.getFleetHead) return {};
      let head;
      try {
        head = await keystore.getFleetHead(keyringId);
        if (head === undefined || seen.has(head.nonce)) return {};
        const full = await keystore.getFleetState!(keyringId);
        if (full === undefined) return {};
        remember(full.nonce);
        return { state: full.record as JsonLike };
      } catch (e) {
        if (e instanceof ParentError) throw e;
        throw new ParentError('PARENT_STATE_UNWRITABLE', 'the shared (fleet) sealed state could not be read, so nothing is decided', { cause: e, hint: 'check the keystore database' });
      }
    },
    forget() {
      seen.clear();
    },
    async retry(attempts, attempt) {
      for (let i = 1; ; i++) {
        try {
          return await attempt();
        } catch (e) {
          if (!isStateConflict(e)) throw e;
          seen.clear();
          if (i >= attempts) throw e;
          await fleetBackoff(i + 1);
        }
      }
    },
    async store(keyringId, answer) {
      const record = answer.sealed;
      if (record === undefined) return;
      if (scope === 'fleet') return putFleet(keyringId, record, answer.sealedLineage);
      if (!keystore.putSealedState) throw new ParentError('PARENT_STATE_UNWRITABLE', 'this keystore cannot store the enclave\'s sealed state; nothing was released');
      return instanceWriter.store(keyringId, sequenceOf(record), record);
    },
  };
}
