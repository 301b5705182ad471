/**
 * Durable limits (issue 9 §6): window counters and approvals, sealed under a key derived from
 * the keyring (enclave/auth/sealed-state.ts: AES-256-GCM, monotonic sequence) and persisted
 * through the parent, which only stores the ciphertext.
 *
 *   boot     the parent hands back its latest record (`state.restore`); the enclave unseals it
 *            (tampered / wrong keyring / older than seen → refused, SEALED_STATE_*, and the
 *            enclave refuses to sign until an operator resolves it), restores windows and
 *            approvals, and seals a "running" record the parent stores;
 *   serving  every signature that changed the state, and every approval decision, comes back
 *            with the new sealed record; the parent stores it before it releases the answer;
 *   restart  a record not marked clean, or no record for a keyring that existed, is an unclean
 *            restart (onBoot); with `restartGuard` the first high-value request afterwards needs
 *            approval.
 *
 * The sealed plaintext is EnclaveState (enclave-state.ts) with `windows` holding
 * {windows, intents}: the window state and the decoded intents shown to approvers.
 *
 * Fleet scope (policy `stateScope: "fleet"`, docs/scale-out.md): every enclave of the keyring
 * shares one record. The parent hands the store's record in with a request (`handIn`) whenever
 * it is not the one this enclave last sealed; the enclave takes it over (./fleet-lineage.ts) and
 * every seal names its lineage and base so the parent can store it by compare-and-swap. A take-
 * over bumps `epoch`: a request that reserved its window slot or approval before it must not
 * count it into the state it took over (it was decided on other counters) — it is refused.
 * A take-over never forgets what this enclave life signed (./own-windows.ts): the record's totals
 * plus this life's signatures they do not count (the sealed `lives` say how many they do), and
 * the record's approvals folded into this enclave's (a used approval stays used).
 */
import { randomBytes } from 'node:crypto';
import { wipe } from '../../common/bytes.js';
import { SignerError } from '../../common/errors.js';
import { checkApprovalsState, type ApprovalsState } from '../auth/approvals.js';
import { checkEnclaveState, clearRestartGuard, onBoot, type EnclaveState, type RestartGuard } from '../auth/enclave-state.js';
import { SealedStateError } from '../auth/errors.js';
import { SealedStateStore, type SealedRecord } from '../auth/sealed-state.js';
import { RESTART_GUARD_RULE, type ApprovalsGate } from './approvals-gate.js';
import { decideHandIn, refOf, type RecordRef } from './fleet-lineage.js';
import { checkLifeCounts, livesToSeal, type LifeCounts } from './own-windows.js';
import type { PolicyGate } from './gate.js';
import { emptyWindowState } from './windows.js';

/** What the parent needs to store a fleet record by compare-and-swap (docs/scale-out.md). */
export interface FleetLineage {
  /** Random per take-over: the run of seals this enclave made since. */
  id: string;
  /** The stored record this lineage continues from (null: the store had none). */
  base: RecordRef | null;
}

export interface DurableState {
  /** The keyring is in: derive the sealing key (the caller wipes its copy of the keyring key). */
  attach(keyringKey: Uint8Array, keyringId: string, newKeyring: boolean): void;
  /** Restores the parent's record (or none) once per enclave life; returns the record to store. */
  restore(record: unknown): { record: SealedRecord; unclean: boolean; restored: boolean; restartBarrier: number | undefined };
  /** The new record after a state change, or undefined while no state was restored. */
  seal(): SealedRecord | undefined;
  /**
   * The same, shared by every caller in one turn of the event loop: one seal (one serialisation,
   * one AES-GCM pass) covers every change committed before it. Each caller has committed its
   * change before it asks, and the seal runs after the last caller of the turn asked.
   */
  sealSoon(): Promise<SealedRecord | undefined>;
  /** A refused state (tampered, rolled back…): nothing signs until an operator resolves it. */
  check(): void;
  readonly restored: boolean;
  /** The restart guard is armed: the next request of a guarded rule needs the guard's approvals. */
  guardPending(): boolean;
  /** An approved request of a guarded rule was signed: the guard is satisfied (sealed with the next record). */
  clearGuard(): void;
  readonly scope: 'instance' | 'fleet';
  /** Fleet scope: takes over the store's record when it is newer than what this enclave holds. */
  handIn(record: unknown): void;
  /** Bumped by every take-over: reservations made before it are not counted (fleet scope). */
  readonly epoch: number;
  /** Fleet scope: the lineage the last seal belongs to (sent with it); undefined per instance. */
  readonly lineage: FleetLineage | undefined;
}

export interface DurableStateOptions {
  restartGuard?: RestartGuard;
  maxExpirySeconds?: number;
  scope?: 'instance' | 'fleet';
}

const newLineage = (): string => randomBytes(16).toString('hex');

/** The sealed `lives` of a record's window member (none in a record sealed before they were). */
function livesOf(w: { lives?: unknown } | null): LifeCounts {
  try {
    return checkLifeCounts(w?.lives);
  } catch (e) {
    throw new SealedStateError('SEALED_STATE_MALFORMED', `state: ${(e as Error).message}`, { cause: e });
  }
}

export function createDurableState(gate: PolicyGate, approvals: ApprovalsGate, opts: DurableStateOptions = {}): DurableState {
  let store: SealedStateStore | undefined;
  let newKeyring = false;
  let state: EnclaveState | undefined;
  let refused: SealedStateError | undefined;
  const guard = opts.restartGuard ?? 'off';
  const scope = opts.scope ?? 'instance';
  // Fleet scope: the last record handed in (or restored), and the lineage of this enclave's seals.
  let floor: RecordRef | undefined;
  let lineage: FleetLineage | undefined;
  let epoch = 0;
  // Fleet scope: this enclave life's id in the sealed `lives`, and the other lives' counts carried
  // from the last record restored or taken over (./own-windows.ts).
  const lifeId = randomBytes(16).toString('hex');
  let carriedLives: LifeCounts = {};

  /**
   * Fleet scope: the seals of the current lineage (nonce → sequence), newest last, bounded (the
   * oldest go first); cleared by a take-over, whose record is then the floor.
   */
  const ownSeals = new Map<string, number>();
  const OWN_SEALS = 4096;
  const sealNow = (): SealedRecord => {
    const rec = store!.sealJson(current());
    if (scope === 'fleet') {
      ownSeals.set(rec.nonce, rec.sequence);
      if (ownSeals.size > OWN_SEALS) ownSeals.delete(ownSeals.keys().next().value as string);
    }
    return rec;
  };
  const isOwn = (r: RecordRef) => ownSeals.get(r.nonce) === r.sequence;
  /**
   * Review finding (enclave/policy/sealed-rollback-review.test.ts): approvals this enclave life did
   * not see given must not satisfy an armed restart guard. After a restart the host chooses the
   * record: one sealed after the guard's approver approved (or with the vote still pending, plus
   * the approver's signature it saw pass — an approval signature names no life or time) but before
   * the request signed. The approved request then signed again AND cleared the guard, and the
   * rolled-back window was open with no fresh approver, on every rollback within the approval's
   * lifetime. So while the guard is armed, every approval of the guard or of a guarded rule that
   * arrives from a record and is neither used nor vetoed is marked used: at boot every one; at a
   * fleet take-over those created no later than this life learned of the armed guard (guardSince)
   * and not held here. An approval another instance opened after that is the fresh approval the
   * guard asks for: spending it too made the guard unclearable whenever the approvers' answers
   * reached another instance than the one that opened it. A spent request asks for a new approval
   * (new id). Costs an honest crash between an approval and its signature one re-approval, which
   * the guard asks for anyway; instances' clocks that disagree cost at most the same.
   */
  const spendGuardApprovals = (a: ApprovalsState, keep: (r: ApprovalsState['records'][number]) => boolean): ApprovalsState => {
    const guarded = gate.policy.restartGuard?.rules;
    const now = gate.now();
    return {
      ...a,
      records: a.records.map((r) =>
        (r.rule === RESTART_GUARD_RULE || guarded?.has(r.rule) === true) && r.consumedAt === null && r.rejectedBy === null && !keep(r) ? { ...r, consumedAt: now } : r,
      ),
    };
  };
  /** When this life learned its restart guard is armed (its boot, or a record taken over); undefined while it is not. */
  let guardSince: number | undefined;
  /** The seal the callers of this event-loop turn share (sealSoon). */
  let batch: Promise<SealedRecord> | undefined;

  // What is sealed. Only ever serialised (sealJson), so the live window state is not copied first.
  // The replay cache is not sealed: it would matter only after a clean restart, which is never
  // trusted (docs/principals.md, restart barrier), and at its size it would dominate every seal.
  const current = (): EnclaveState => {
    const a = approvals.export(scope === 'fleet');
    return {
      ...state!,
      windows: (scope === 'fleet'
        ? { windows: gate.windows(), intents: a.intents, lives: livesToSeal(carriedLives, lifeId, gate.ownCount) }
        : { windows: gate.windows(), intents: a.intents }) as unknown as EnclaveState['windows'],
      approvals: a.approvals,
      replay: [],
      lifecycle: { ...state!.lifecycle, sealedAt: gate.now() },
    };
  };

  return {
    get restored() {
      return state !== undefined;
    },
    attach(keyringKey, keyringId, created) {
      store = new SealedStateStore(keyringKey, keyringId);
      newKeyring = created;
      wipe(keyringKey);
    },
    restore(record) {
      if (!store) throw new SignerError('KEYRING_LOCKED', 'no keyring is unlocked in this enclave');
      if (state) return { record: sealNow(), unclean: false, restored: false, restartBarrier: undefined };
      let restored: EnclaveState | undefined;
      if (record !== null && record !== undefined) {
        try {
          restored = checkEnclaveState(store.unsealJson(record).value);
        } catch (e) {
          if (e instanceof SealedStateError) refused = e;
          throw e;
        }
      }
      const boot = onBoot(restored, { newKeyring, guard, now: gate.now(), maxExpirySeconds: opts.maxExpirySeconds ?? 300 });
      const w = boot.state.windows as { windows?: unknown; intents?: Record<string, unknown>; lives?: unknown } | null;
      const lives = scope === 'fleet' ? livesOf(w) : {};
      if (w && w.windows !== undefined) {
        try {
          gate.restoreWindows(w.windows);
        } catch (e) {
          // Refused like any malformed record: without this the error was not a SealedStateError,
          // nothing was marked refused, and the host could restore again with no record (fresh
          // counters) instead of the enclave stopping for an operator (review finding).
          refused = new SealedStateError('SEALED_STATE_MALFORMED', `sealed enclave state is invalid: ${(e as Error).message}`, { cause: e });
          throw refused;
        }
      }
      const restoredApprovals = boot.state.approvals as ApprovalsState;
      const armed = boot.state.lifecycle.restartGuardPending;
      guardSince = armed ? gate.now() : undefined;
      approvals.restore(armed ? spendGuardApprovals(restoredApprovals, () => false) : restoredApprovals, w?.intents ?? {});
      state = boot.state;
      if (scope === 'fleet') {
        carriedLives = lives;
        floor = restored === undefined ? undefined : refOf(record);
        lineage = { id: newLineage(), base: floor ?? null };
        ownSeals.clear();
      }
      return { record: sealNow(), unclean: boot.unclean, restored: restored !== undefined, restartBarrier: boot.restartBarrier };
    },
    seal() {
      if (!store || !state) return undefined;
      return sealNow();
    },
    sealSoon() {
      if (!store || !state) return Promise.resolve(undefined);
      batch ??= new Promise<SealedRecord>((resolve, reject) => {
        setImmediate(() => {
          batch = undefined;
          try {
            resolve(sealNow());
          } catch (e) {
            reject(e);
          }
        });
      });
      return batch;
    },
    scope,
    get epoch() {
      return epoch;
    },
    get lineage() {
      return lineage;
    },
    handIn(record) {
      if (scope !== 'fleet') {
        throw new SealedStateError('SEALED_STATE_SCOPE', 'state: this enclave\'s policy keeps its sealed state per instance (stateScope "instance"); it takes no state with a request', {
          hint: 'only a policy with "stateScope": "fleet" shares state between instances',
        });
      }
      if (!store || !state) throw new SealedStateError('SEALED_STATE_NOT_RESTORED', 'the sealed state of the keyring has not been handed back (state.restore)');
      const ref = refOf(record);
      if (ref === undefined) throw new SealedStateError('SEALED_STATE_MALFORMED', 'state: not a sealed state record (it needs a positive "sequence" and a "nonce")');
      const d = decideHandIn(ref, floor, isOwn);
      if (d.kind === 'stale') {
        throw new SealedStateError('SEALED_STATE_STALE', `state: ${d.why}; nothing was decided`, { hint: 'the parent reads the store again and retries' });
      }
      if (d.kind === 'same') {
        if (!floor || ref.sequence > floor.sequence) floor = ref;
        return;
      }
      // Authenticated and checked first: a record that fails changes nothing here.
      const taken = checkEnclaveState(store.adoptJson(record).value);
      const w = taken.windows as { windows?: unknown; intents?: Record<string, unknown>; lives?: unknown } | null;
      const lives = livesOf(w);
      let takenApprovals = checkApprovalsState(taken.approvals);
      // An armed guard (ours, or the record's): approvals from before we learned of it, not held here, are spent.
      if (taken.lifecycle.restartGuardPending || state.lifecycle.restartGuardPending) {
        guardSince ??= gate.now();
        const since = guardSince;
        takenApprovals = spendGuardApprovals(takenApprovals, (r) => approvals.book.has(r.approvalId) || r.createdAt > since);
      }
      // Never the record's counters in place of ours: its totals plus what this life signed that
      // they do not count, and its approvals folded into ours (./own-windows.ts says why).
      gate.adoptWindows(w && w.windows !== undefined && w.windows !== null ? w.windows : emptyWindowState(), lives[lifeId] ?? 0);
      approvals.merge(takenApprovals, w?.intents ?? {});
      carriedLives = lives;
      // Our own lifecycle (shutdown marker) stays: it is about this enclave's life. The restart
      // guard is armed if it is armed in either: a record from an enclave that booted unclean —
      // e.g. one a hostile host started on the side, with fresh counters and a sequence pushed
      // past ours — must not reset the windows here without the guard's approvals
      // (docs/scale-out.md, "What fleet scope does not stop").
      if (taken.lifecycle.restartGuardPending && !state.lifecycle.restartGuardPending) {
        state = { ...state, lifecycle: { ...state.lifecycle, restartGuardPending: true } };
      }
      epoch += 1;
      floor = ref;
      lineage = { id: newLineage(), base: ref };
      ownSeals.clear();
    },
    check() {
      if (refused) throw refused;
    },
    guardPending() {
      return state?.lifecycle.restartGuardPending === true;
    },
    clearGuard() {
      if (state) state = clearRestartGuard(state);
      guardSince = undefined;
    },
  };
}
