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
 */
import { wipe } from '../../common/bytes.js';
import { SignerError } from '../../common/errors.js';
import type { ApprovalsState } from '../auth/approvals.js';
import { checkEnclaveState, clearRestartGuard, onBoot, type EnclaveState, type RestartGuard } from '../auth/enclave-state.js';
import { SealedStateError } from '../auth/errors.js';
import { SealedStateStore, type SealedRecord } from '../auth/sealed-state.js';
import type { ApprovalsGate } from './approvals-gate.js';
import type { PolicyGate } from './gate.js';

export interface DurableState {
  /** The keyring is in: derive the sealing key (the caller wipes its copy of the keyring key). */
  attach(keyringKey: Uint8Array, keyringId: string, newKeyring: boolean): void;
  /** Restores the parent's record (or none) once per enclave life; returns the record to store. */
  restore(record: unknown): { record: SealedRecord; unclean: boolean; restored: boolean; restartBarrier: number | undefined };
  /** The new record after a state change, or undefined while no state was restored. */
  seal(): SealedRecord | undefined;
  /** A refused state (tampered, rolled back…): nothing signs until an operator resolves it. */
  check(): void;
  readonly restored: boolean;
  /** The restart guard is armed: the next request of a guarded rule needs the guard's approvals. */
  guardPending(): boolean;
  /** An approved request of a guarded rule was signed: the guard is satisfied (sealed with the next record). */
  clearGuard(): void;
}

export interface DurableStateOptions {
  restartGuard?: RestartGuard;
  maxExpirySeconds?: number;
}

export function createDurableState(gate: PolicyGate, approvals: ApprovalsGate, opts: DurableStateOptions = {}): DurableState {
  let store: SealedStateStore | undefined;
  let newKeyring = false;
  let state: EnclaveState | undefined;
  let refused: SealedStateError | undefined;
  const guard = opts.restartGuard ?? 'off';

  // What is sealed. Only ever serialised (sealJson), so the live window state is not copied first.
  // The replay cache is not sealed: it would matter only after a clean restart, which is never
  // trusted (docs/principals.md, restart barrier), and at its size it would dominate every seal.
  const current = (): EnclaveState => {
    const a = approvals.export();
    return {
      ...state!,
      windows: { windows: gate.windows(), intents: a.intents } as unknown as EnclaveState['windows'],
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
      if (state) return { record: store.sealJson(current()), unclean: false, restored: false, restartBarrier: undefined };
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
      const w = boot.state.windows as { windows?: unknown; intents?: Record<string, unknown> } | null;
      if (w && w.windows !== undefined) gate.restoreWindows(w.windows);
      approvals.restore(boot.state.approvals as ApprovalsState, w?.intents ?? {});
      state = boot.state;
      return { record: store.sealJson(current()), unclean: boot.unclean, restored: restored !== undefined, restartBarrier: boot.restartBarrier };
    },
    seal() {
      if (!store || !state) return undefined;
      return store.sealJson(current());
    },
    check() {
      if (refused) throw refused;
    },
    guardPending() {
      return state?.lifecycle.restartGuardPending === true;
    },
    clearGuard() {
      if (state) state = clearRestartGuard(state);
    },
  };
}
