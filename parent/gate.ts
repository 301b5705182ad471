/**
 * The attestation gate. Every connection the link opens starts untrusted:
 *
 *   connecting ──hello──▶ attesting ──document verifies──▶ ready
 *        ▲                    │                              │
 *        │                    └──── failed: <reason> ◀───────┘ (re-attestation fails)
 *        └──── connection lost ◀──────────────────────────────┘
 *
 * In `attesting` the only request sent is `attest` with a fresh 32-byte
 * nonce; the document must chain to the configured root, carry that nonce and
 * match the signed PCR manifest. Only then is anything forwarded, and only on
 * that very connection: a reconnect starts over. The connected enclave is
 * re-attested every `reattestIntervalMs`; a failure closes the connection.
 *
 * After `ready`, the boot sequence (boot.ts) unlocks or creates the keyring;
 * signing needs both (gate ready, keyring unlocked). Every state change is
 * logged as one line, without secrets.
 */
import type { BridgePeer } from '../common/bridge/index.js';
import type { Cancellation } from '../common/cancellation.js';
import type { JsonLike } from '../common/cbor-json.js';
import { MAX_FRAME_BYTES } from '../common/limits.js';
import { asRecord, type EnclaveMethod } from '../common/protocol/enclave-api.js';
import { createAuditPersister, type AuditPersister } from './audit-persist.js';
import { auditRecordsOf, handOverCredentials, openAudit, unlockOrCreateKeyring, type EnclaveCall } from './boot.js';
import type { ResolvedParentConfig } from './config.js';
import { refreshDelayMs } from './credentials.js';
import { attestEnclave, callEnclave } from './enclave-call.js';
import { startEnclaveLink, type EnclaveLink } from './enclave-link.js';
import { GateStatus, reasonOf, type GateSnapshot } from './gate-status.js';
import { joinFleet } from './keystore-fleet.js';
import type { Keystore } from './keystore.js';
import { createSealedStateSync, type SealedStateSync } from './sealed-state.js';
import type { EnclaveAttestation, EnclaveVerifier } from './verify-enclave.js';

export { reasonOf, type Failure, type GateSnapshot, type GateStateName, type KeyringStateName } from './gate-status.js';

export interface CallOptions {
  /** Cancelled when the client goes away: the request is cancelled in the enclave too. */
  cancellation?: Cancellation;
  /** Refuse unless a keyring is unlocked (every key operation). */
  needKeyring: boolean;
  deadlineMs?: number;
}

export interface Gate {
  snapshot(): GateSnapshot;
  /** One enclave call on the attested connection, or PARENT_NOT_ATTESTED / PARENT_KEYRING_LOCKED. */
  call(method: EnclaveMethod, params: Record<string, unknown>, opts: CallOptions): Promise<JsonLike>;
  /** Verifies a document against the gate's configuration (for signer_attest). */
  readonly verifier: EnclaveVerifier;
  /** The unlocked keyring's id, if any. */
  keyringId(): string | undefined;
  /** Persists audit records in seq order before a result is released (docs/audit.md). */
  readonly audit: AuditPersister;
  /** The enclave's sealed state: where it is stored and, in fleet scope, handed in (sealed-state.ts). */
  readonly sealed: SealedStateSync;
  close(): Promise<void>;
}

export interface GateDeps {
  cfg: ResolvedParentConfig;
  keystore: Keystore;
  verifier: EnclaveVerifier;
  log: (line: string) => void;
}

/** An attested connection: everything after `ready` happens on it, and ends with it. */
interface Session {
  peer: BridgePeer;
  id: number;
  attestation: EnclaveAttestation;
  attestedAt: number;
  timers: Set<NodeJS.Timeout>;
}

export function startGate(deps: GateDeps): Gate {
  return new EnclaveGate(deps);
}

class EnclaveGate implements Gate {
  readonly verifier: EnclaveVerifier;
  readonly audit: AuditPersister;
  readonly sealed: SealedStateSync;
  readonly #cfg: ResolvedParentConfig;
  readonly #keystore: Keystore;
  readonly #log: (line: string) => void;
  readonly #status: GateStatus;
  readonly #link: EnclaveLink;
  #closed = false;
  #session: Session | undefined;
  /** The connection the gate is working on (attesting or attested). */
  #activeId = 0;
  /** Enclave calls sent and not answered yet: the audit persister's group commit waits for their records. */
  #enclaveCalls = 0;

  constructor(deps: GateDeps) {
    const { cfg, keystore, verifier, log } = deps;
    this.#cfg = cfg;
    this.#keystore = keystore;
    this.verifier = verifier;
    this.#log = log;
    this.#status = new GateStatus(log);
    this.audit = createAuditPersister({ keystore, log, awaiting: () => this.#enclaveCalls });
    this.sealed = createSealedStateSync(keystore, log);
    this.#link = startEnclaveLink({
      uri: cfg.enclave,
      reconnect: cfg.reconnect,
      // Exactly the enclave's cap (common/limits.ts): a request whose frame would be
      // larger is refused here, per request, instead of making the enclave drop
      // the connection for every client (finding 2). maxBodyBytes may be larger
      // (batches); each request of it must still fit one frame.
      maxFrameBytes: MAX_FRAME_BYTES,
      onConnect: (peer, id) => void this.#onConnect(peer, id),
      onDisconnect: (reason, id) => this.#onDisconnect(reason, id),
      onConnectFailed: (e) => {
        if (this.#closed || this.#status.gateState === 'failed') return;
        const r = reasonOf(e);
        this.#status.setGate('connecting', { code: r.code, reason: `cannot connect: ${r.reason}` });
      },
    });
  }

  snapshot(): GateSnapshot {
    return this.#status.snapshot(this.#session, this.#link.reconnects);
  }

  keyringId(): string | undefined {
    return this.#status.unlockedKeyringId();
  }

  async call(method: EnclaveMethod, params: Record<string, unknown>, opts: CallOptions): Promise<JsonLike> {
    const s = this.#session;
    if (!s || this.#status.gateState !== 'ready' || !s.peer.isOpen) throw this.#status.notAttested();
    if (opts.needKeyring && this.#status.keyringState !== 'unlocked') throw this.#status.keyringLocked();
    this.#enclaveCalls++;
    try {
      return await this.#send(s.peer, method, params, opts);
    } finally {
      this.#enclaveCalls--;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.audit.close();
    if (this.#session) this.#endSession(this.#session);
    await this.#link.close();
  }

  #send(peer: BridgePeer, method: EnclaveMethod, params: Record<string, unknown>, opts: { cancellation?: Cancellation; deadlineMs?: number } = {}): Promise<JsonLike> {
    return callEnclave(peer, method, params, opts.deadlineMs ?? this.#cfg.requestTimeoutMs, opts.cancellation);
  }

  #callOn(s: Session): EnclaveCall {
    return (method, params) => this.#send(s.peer, method, params);
  }

  #endSession(s: Session): void {
    for (const t of s.timers) clearTimeout(t);
    s.timers.clear();
    if (this.#session === s) {
      this.#session = undefined;
      this.audit.setFetch(undefined);
      this.#status.setKeyring('locked');
    }
  }

  /** Runs `fn` after `ms`, unless `s` is no longer the gate's session or the gate closed. */
  #later(s: Session, ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      s.timers.delete(t);
      if (this.#session === s && !this.#closed) fn();
    }, ms);
    t.unref();
    s.timers.add(t);
  }

  async #onConnect(peer: BridgePeer, id: number): Promise<void> {
    const status = this.#status;
    this.#activeId = id;
    status.setGate('attesting', undefined, `connection ${id}`);
    let attestation: EnclaveAttestation;
    try {
      attestation = await attestEnclave(peer, this.verifier);
    } catch (e) {
      if (this.#closed || this.#activeId !== id) return;
      status.counters.attestationsFailed++;
      status.fail(reasonOf(e));
      this.#link.drop(peer);
      return;
    }
    if (this.#closed || this.#activeId !== id || !peer.isOpen) return;
    status.counters.attestationsOk++;
    const s: Session = { peer, id, attestation, attestedAt: Date.now(), timers: new Set() };
    this.#session = s;
    this.#link.markHealthy();
    const pcr0 = attestation.pcrs['0'];
    const image = attestation.manifest ? `, image ${attestation.manifest.image.name}@${attestation.manifest.image.version}` : ', any PCRs (no manifest)';
    status.setGate('ready', undefined, `module ${attestation.moduleId}, PCR0 ${pcr0 ? `${pcr0.slice(0, 16)}…` : 'zero'}${image}, root ${attestation.root.name}`);
    this.#scheduleReattest(s);
    await this.#boot(s, 0);
  }

  #onDisconnect(reason: { code: string; message: string }, id: number): void {
    if (this.#closed) return;
    if (this.#session?.id === id) this.#endSession(this.#session);
    if (this.#activeId !== id) return;
    // A failed attestation keeps saying why until the next attempt starts.
    if (this.#status.gateState !== 'failed') {
      const r = { code: reason.code, reason: `connection lost: ${reason.message}` };
      this.#status.noteFailure(r);
      this.#status.setGate('connecting', r);
    }
  }

  async #boot(s: Session, attempt: number): Promise<void> {
    const cfg = this.#cfg;
    const keystore = this.#keystore;
    const log = this.#log;
    const audit = this.audit;
    const call = this.#callOn(s);
    // Retries stay "failed" (with the reason) until one succeeds: no log line per retry.
    if (attempt === 0) this.#status.setKeyring('unlocking');
    try {
      const creds = await handOverCredentials(call, cfg.credentials);
      this.#scheduleCredentialRefresh(s, creds);
      // A mixed fleet (another live instance on this keystore with another policy or manifest) is refused first.
      // (A SQLite file serves one host: only a PostgreSQL keystore is shared by a fleet.)
      if (keystore.backend === 'postgres') await joinFleet({ call, keystore, cfg, log });
      // The audit chain first: no keyring or key decision is made before the enclave's log is open.
      await openAudit({ call, keystore, log, audit });
      if (this.#session === s) audit.setFetch(async (fromSeq) => auditRecordsOf(asRecord(await call('audit.records', { fromSeq }), 'audit.records result'), 'audit.records', 'records'));
      const out = await unlockOrCreateKeyring({ call, keystore, kmsKeyId: cfg.kmsKeyId, log, audit });
      // Durable limits: the enclave's counters and approvals come back before anything is served.
      if (out.kind === 'unlocked') await this.sealed.restore(call, out.keyringId);
      if (this.#session !== s) return;
      if (out.kind === 'unlocked') this.#status.setKeyring('unlocked', { keyringId: out.keyringId }, out.created ? 'created' : undefined);
      else this.#status.setKeyring('absent', { code: 'PARENT_KEYRING_LOCKED', reason: out.reason });
    } catch (e) {
      if (this.#session !== s) return;
      const r = reasonOf(e);
      this.#status.noteFailure(r);
      this.#status.setKeyring('failed', r);
      // Transient KMS trouble heals by itself; a policy refusal keeps failing (fail closed) at the backoff's pace.
      const wait = Math.min(cfg.reconnect.maxMs, cfg.reconnect.minMs * 2 ** Math.min(attempt, 16));
      this.#later(s, wait, () => void this.#boot(s, attempt + 1));
    }
  }

  #scheduleCredentialRefresh(s: Session, creds: Awaited<ReturnType<typeof handOverCredentials>>): void {
    const wait = refreshDelayMs(creds);
    if (wait === undefined) return;
    this.#later(s, wait, () => {
      handOverCredentials(this.#callOn(s), this.#cfg.credentials).then(
        (c) => this.#scheduleCredentialRefresh(s, c),
        (e) => {
          this.#log(`credentials: refresh failed: ${reasonOf(e).reason}; retrying in 60 s`);
          this.#later(s, 60_000, () => this.#scheduleCredentialRefresh(s, creds));
        },
      );
    });
  }

  #scheduleReattest(s: Session): void {
    this.#later(s, this.#cfg.reattestIntervalMs, () => {
      attestEnclave(s.peer, this.verifier).then(
        (a) => {
          if (this.#session !== s) return;
          this.#status.counters.attestationsOk++;
          s.attestation = a;
          s.attestedAt = Date.now();
          this.#scheduleReattest(s);
        },
        (e) => {
          if (this.#session !== s) return;
          this.#status.counters.attestationsFailed++;
          this.#endSession(s);
          this.#status.fail(reasonOf(e));
          this.#link.drop(s.peer);
        },
      );
    });
  }
}
