/**
 * What the enclave persists through the parent (issue 9 §6), sealed by
 * ./sealed-state.ts, and what it concludes at boot from what it got back.
 *
 *   { "v": 1,
 *     "windows":   <the policy engine's window counters (enclave/policy/windows.ts), opaque here>,
 *     "approvals": <ApprovalBook export>,
 *     "replay":    <ReplayCache export>,
 *     "auditHead": { "sequence": n, "hash": "<hex>" } | null   (the audit chain head, issue 10),
 *     "lifecycle": { "shutdown": "clean" | "running",
 *                    "restartGuard": "off" | "unclean" | "always",
 *                    "restartGuardPending": boolean,
 *                    "sealedAt": <Unix seconds> } }
 *
 * `shutdown` is "running" in every record sealed while the enclave serves,
 * and "clean" only in the last one it seals on an orderly shutdown. A boot
 * that restores a "running" record, or finds no record for a keyring that
 * existed before, is an UNCLEAN restart: the state may be older than the
 * last one the enclave had (a crash lost the newest, or the host handed back
 * an old one, or withheld it). The restart guard then marks the first
 * high-value request as needing approval, and the verifier's restart barrier
 * refuses requests that may have been signed before the restart.
 */
import type { JsonValue } from '../../attestation/manifest-json.js';
import { checkApprovalsState, type ApprovalsState } from './approvals.js';
import { SealedStateError } from './errors.js';
import type { ReplayCacheState } from './replay-cache.js';

export type RestartGuard = 'off' | 'unclean' | 'always';

export interface EnclaveState {
  v: 1;
  windows: JsonValue;
  approvals: ApprovalsState;
  replay: ReplayCacheState;
  auditHead: { sequence: number; hash: string } | null;
  lifecycle: { shutdown: 'clean' | 'running'; restartGuard: RestartGuard; restartGuardPending: boolean; sealedAt: number };
}

export function emptyEnclaveState(restartGuard: RestartGuard, now: number): EnclaveState {
  return {
    v: 1,
    windows: null,
    approvals: { v: 1, records: [] },
    replay: [],
    auditHead: null,
    lifecycle: { shutdown: 'running', restartGuard, restartGuardPending: false, sealedAt: now },
  };
}

function invalid(why: string): SealedStateError {
  return new SealedStateError('SEALED_STATE_MALFORMED', `sealed enclave state is invalid: ${why}`);
}

/** Validates a decrypted state member by member (it was sealed by us, but a bug must not become an allow). */
export function checkEnclaveState(v: unknown): EnclaveState {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid('expected an object');
  const s = v as Record<string, unknown>;
  for (const k of Object.keys(s)) if (!['v', 'windows', 'approvals', 'replay', 'auditHead', 'lifecycle'].includes(k)) throw invalid(`unknown member ${k.slice(0, 32)}`);
  if (s.v !== 1) throw invalid('"v" must be 1');
  if (!('windows' in s)) throw invalid('"windows" is missing');
  let approvals: ApprovalsState;
  try {
    approvals = checkApprovalsState(s.approvals);
  } catch (e) {
    throw invalid(`approvals: ${(e as Error).message}`);
  }
  if (!Array.isArray(s.replay) || !s.replay.every((e) => Array.isArray(e) && e.length === 3 && typeof e[0] === 'string' && typeof e[1] === 'string' && Number.isSafeInteger(e[2]))) throw invalid('"replay"');
  const ah = s.auditHead as { sequence?: unknown; hash?: unknown } | null;
  if (ah !== null && (typeof ah !== 'object' || !Number.isSafeInteger(ah.sequence) || typeof ah.hash !== 'string' || !/^[0-9a-f]{64}$/.test(ah.hash))) throw invalid('"auditHead"');
  const l = s.lifecycle as Record<string, unknown> | undefined;
  if (typeof l !== 'object' || l === null) throw invalid('"lifecycle"');
  if (l.shutdown !== 'clean' && l.shutdown !== 'running') throw invalid('"lifecycle.shutdown"');
  if (l.restartGuard !== 'off' && l.restartGuard !== 'unclean' && l.restartGuard !== 'always') throw invalid('"lifecycle.restartGuard"');
  if (typeof l.restartGuardPending !== 'boolean' || !Number.isSafeInteger(l.sealedAt)) throw invalid('"lifecycle"');
  return {
    v: 1,
    windows: s.windows as JsonValue,
    approvals,
    replay: s.replay as ReplayCacheState,
    auditHead: ah === null ? null : { sequence: ah.sequence as number, hash: ah.hash as string },
    lifecycle: { shutdown: l.shutdown, restartGuard: l.restartGuard, restartGuardPending: l.restartGuardPending, sealedAt: l.sealedAt as number },
  };
}

export interface BootOutcome {
  state: EnclaveState;
  /** The state may be older than the enclave's last (crash, or a host replaying/withholding a record). */
  unclean: boolean;
  /** For RequestVerifier.restartBarrier: requests expiring at or before it may predate this boot. */
  restartBarrier: number | undefined;
}

/**
 * What a booting enclave makes of the state the parent handed back.
 *   restored   the unsealed state, or undefined when the parent had none;
 *   newKeyring true when the keyring was just created (no state can exist yet);
 *   guard      the operator's configured restart guard (measured config / policy);
 *   maxExpirySeconds  the verifier's expiry bound (for the barrier).
 */
export function onBoot(restored: EnclaveState | undefined, o: { newKeyring: boolean; guard: RestartGuard; now: number; maxExpirySeconds: number }): BootOutcome {
  if (restored === undefined) {
    const state = emptyEnclaveState(o.guard, o.now);
    // No state for a keyring that existed before: the host may have withheld it to reset counters.
    const unclean = !o.newKeyring;
    state.lifecycle.restartGuardPending = o.guard === 'always' ? !o.newKeyring : o.guard === 'unclean' && unclean;
    return { state, unclean, restartBarrier: unclean ? o.now + o.maxExpirySeconds : undefined };
  }
  const unclean = restored.lifecycle.shutdown !== 'clean';
  const state: EnclaveState = {
    ...restored,
    lifecycle: {
      shutdown: 'running',
      restartGuard: o.guard,
      restartGuardPending: restored.lifecycle.restartGuardPending || o.guard === 'always' || (o.guard === 'unclean' && unclean),
      sealedAt: restored.lifecycle.sealedAt,
    },
  };
  return { state, unclean, restartBarrier: unclean ? o.now + o.maxExpirySeconds : undefined };
}

/** The record to seal on an orderly shutdown (the only one marked clean). */
export function forCleanShutdown(state: EnclaveState, now: number): EnclaveState {
  return { ...state, lifecycle: { ...state.lifecycle, shutdown: 'clean', sealedAt: now } };
}

/** Once a high-value request has been approved after an unclean restart, the guard is satisfied. */
export function clearRestartGuard(state: EnclaveState): EnclaveState {
  return { ...state, lifecycle: { ...state.lifecycle, restartGuardPending: false } };
}

/**
 * True when the restored state is provably stale against the audit chain:
 * the chain (issue 10) has records beyond the head this state remembers.
 * The audit chain is how a rollback by the host becomes visible.
 */
export function staleAgainstAudit(state: EnclaveState, chainHead: { sequence: number } | null): boolean {
  if (chainHead === null) return false;
  return state.auditHead === null ? chainHead.sequence > 0 : chainHead.sequence > state.auditHead.sequence;
}
