/**
 * What the attestation gate (gate.ts) reports about itself: its state and the
 * keyring's, each since when and why, the last failure (kept across
 * reconnects), and the attestation counters. /readyz, /metrics, signer_status
 * and the log read it; every change of state is one log line, without
 * secrets, and a repeated state with the same reason logs nothing (a boot
 * retried at the backoff's pace stays one "failed" line).
 */
import { isSignerError } from '../common/errors.js';
import { ParentError } from './errors.js';
import type { EnclaveAttestation } from './verify-enclave.js';

export type GateStateName = 'connecting' | 'attesting' | 'ready' | 'failed';
export type KeyringStateName = 'locked' | 'unlocking' | 'unlocked' | 'absent' | 'failed';

export interface Failure {
  code: string;
  reason: string;
  at: string;
}

export interface GateSnapshot {
  /** True when requests are served: gate ready and keyring unlocked. */
  ready: boolean;
  gate: { state: GateStateName; since: string; reason?: string; code?: string };
  keyring: { state: KeyringStateName; since: string; keyringId?: string; reason?: string; code?: string };
  /** The last verified document's facts (while ready). */
  attestation?: EnclaveAttestation;
  /** Seconds since the last successful attestation of the current connection. */
  attestationAgeSeconds?: number;
  /** The most recent attestation or connection failure, kept across reconnects. */
  lastFailure?: Failure;
  connection?: number;
  reconnects: number;
  counters: { attestationsOk: number; attestationsFailed: number };
}

/** A failure's code and the one-line reason /readyz and the log show. */
export interface Reason {
  code: string;
  reason: string;
}

/** `CODE: message`, the one-line reason /readyz and the log show. */
export function reasonOf(e: unknown): Reason {
  if (isSignerError(e)) {
    const check = (e as { check?: unknown }).check;
    return { code: e.code, reason: `${e.code}${typeof check === 'string' ? ` (${check})` : ''}: ${e.message}` };
  }
  return { code: 'INTERNAL', reason: `INTERNAL: ${(e as Error)?.message ?? String(e)}` };
}

const now = () => new Date().toISOString();

/** The attested connection a snapshot describes, if any. */
export interface AttestedConnection {
  id: number;
  attestation: EnclaveAttestation;
  attestedAt: number;
}

export class GateStatus {
  readonly #log: (line: string) => void;
  #gate: GateSnapshot['gate'] = { state: 'connecting', since: now() };
  #keyring: GateSnapshot['keyring'] = { state: 'locked', since: now() };
  #lastFailure: Failure | undefined;
  readonly counters = { attestationsOk: 0, attestationsFailed: 0 };

  constructor(log: (line: string) => void) {
    this.#log = log;
  }

  get gateState(): GateStateName {
    return this.#gate.state;
  }

  get keyringState(): KeyringStateName {
    return this.#keyring.state;
  }

  /** The unlocked keyring's id, if any. */
  unlockedKeyringId(): string | undefined {
    return this.#keyring.state === 'unlocked' ? this.#keyring.keyringId : undefined;
  }

  setGate(state: GateStateName, detail?: Reason, note?: string): void {
    if (this.#gate.state === state && this.#gate.reason === detail?.reason) return;
    this.#gate = { state, since: now(), ...(detail ? { reason: detail.reason, code: detail.code } : {}) };
    this.#log(`enclave gate: ${state}${detail ? `: ${detail.reason}` : ''}${note ? ` (${note})` : ''}`);
  }

  setKeyring(state: KeyringStateName, extra: { keyringId?: string; code?: string; reason?: string } = {}, note?: string): void {
    const k = this.#keyring;
    if (k.state === state && k.reason === extra.reason && k.keyringId === extra.keyringId) return;
    this.#keyring = { state, since: now(), ...extra };
    this.#log(`keyring: ${state}${extra.keyringId ? ` ${extra.keyringId}` : ''}${extra.reason ? `: ${extra.reason}` : ''}${note ? ` (${note})` : ''}`);
  }

  /** Remembers `detail` as the most recent failure (shown until a later one replaces it). */
  noteFailure(detail: Reason): void {
    this.#lastFailure = { ...detail, at: now() };
  }

  /** An attestation failed: the gate is `failed` with its reason. */
  fail(detail: Reason): void {
    this.noteFailure(detail);
    this.setGate('failed', detail);
  }

  snapshot(connection: AttestedConnection | undefined, reconnects: number): GateSnapshot {
    const out: GateSnapshot = {
      ready: this.#gate.state === 'ready' && connection !== undefined && this.#keyring.state === 'unlocked',
      gate: { ...this.#gate },
      keyring: { ...this.#keyring },
      reconnects,
      counters: { ...this.counters },
    };
    if (connection) {
      out.attestation = connection.attestation;
      out.attestationAgeSeconds = (Date.now() - connection.attestedAt) / 1000;
      out.connection = connection.id;
    }
    if (this.#lastFailure) out.lastFailure = { ...this.#lastFailure };
    return out;
  }

  /** Why nothing is forwarded: the gate is not ready on an open, attested connection. */
  notAttested(): ParentError {
    const g = this.#gate;
    const why = g.reason ?? (this.#lastFailure ? `${g.state} (last failure: ${this.#lastFailure.reason})` : g.state);
    return new ParentError('PARENT_NOT_ATTESTED', `enclave not attested: ${g.reason ? `${g.state}: ${why}` : why}`, {
      hint: 'GET /readyz says why; nothing is forwarded to an enclave that has not proven its image',
    });
  }

  /** Why a key operation is refused: no keyring is unlocked. */
  keyringLocked(): ParentError {
    const k = this.#keyring;
    return new ParentError('PARENT_KEYRING_LOCKED', `keyring not unlocked: ${k.state}${k.reason ? `: ${k.reason}` : ''}`);
  }
}
