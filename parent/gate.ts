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
import { randomBytes } from 'node:crypto';
import { MAX_DOCUMENT_BYTES } from '../attestation/verify.js';
import { BridgeError, BridgeRemoteError, type BridgePeer } from '../common/bridge/index.js';
import { cborToJson, jsonToCbor, type JsonLike } from '../common/cbor-json.js';
import { isSignerError } from '../common/errors.js';
import { MAX_FRAME_BYTES } from '../common/limits.js';
import { asBytes, asRecord, type EnclaveMethod } from '../common/protocol/enclave-api.js';
import { createAuditPersister, type AuditPersister } from './audit-persist.js';
import { auditRecordsOf, handOverCredentials, openAudit, unlockOrCreateKeyring, type EnclaveCall } from './boot.js';
import { createSealedStateSync, type SealedStateSync } from './sealed-state.js';
import { joinFleet } from './keystore-fleet.js';
import { refreshDelayMs } from './credentials.js';
import type { ResolvedParentConfig } from './config.js';
import { startEnclaveLink, type EnclaveLink } from './enclave-link.js';
import { ParentError, invalidParam } from './errors.js';
import type { Keystore } from './keystore.js';
import type { EnclaveAttestation, EnclaveVerifier } from './verify-enclave.js';
import type { Cancellation } from '../common/cancellation.js';

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

const ATTEST_TIMEOUT_MS = 10_000;

interface Session {
  peer: BridgePeer;
  id: number;
  attestation: EnclaveAttestation;
  attestedAt: number;
  timers: Set<NodeJS.Timeout>;
}

/** `CODE: message`, the one-line reason /readyz and the log show. */
export function reasonOf(e: unknown): { code: string; reason: string } {
  if (isSignerError(e)) {
    const check = (e as { check?: unknown }).check;
    return { code: e.code, reason: `${e.code}${typeof check === 'string' ? ` (${check})` : ''}: ${e.message}` };
  }
  return { code: 'INTERNAL', reason: `INTERNAL: ${(e as Error)?.message ?? String(e)}` };
}

/** Bridge failures as the parent reports them to clients. The enclave's own errors pass through. */
export function mapBridgeError(e: unknown, method: string): unknown {
  if (e instanceof BridgeRemoteError) {
    // The enclave could not read our frame: the request is at fault (the parent's own checks should have caught it).
    if (e.code === 'BRIDGE_BAD_FRAME' || e.code === 'BRIDGE_FRAME_TOO_LARGE') return invalidParam('params', `the enclave refused the request: ${e.message}`);
    return e;
  }
  if (e instanceof BridgeError) {
    switch (e.code) {
      case 'BRIDGE_DISCONNECTED':
        return new ParentError('PARENT_ENCLAVE_UNAVAILABLE', `enclave unavailable: the connection was lost before "${method}" was answered`, {
          cause: e,
          hint: 'the parent reconnects and re-attests; retry the request',
        });
      case 'BRIDGE_TIMEOUT':
        return new ParentError('PARENT_ENCLAVE_UNAVAILABLE', `enclave unavailable: ${e.message}`, { cause: e });
      case 'BRIDGE_FRAME_TOO_LARGE':
      case 'BRIDGE_ENCODE':
        return invalidParam('params', `cannot be sent to the enclave: ${e.message}`);
      case 'BRIDGE_BAD_FRAME':
        // Our request went out; the enclave's answer could not be read (only that request fails).
        return new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `the enclave's answer to "${method}" could not be read: ${e.message}`, { cause: e });
      default:
        return e;
    }
  }
  return e;
}

export function startGate(deps: GateDeps): Gate {
  const { cfg, keystore, verifier, log } = deps;
  const now = () => new Date().toISOString();
  let closed = false;
  let session: Session | undefined;
  /** The connection the gate is working on (attesting or attested). */
  let activeId = 0;
  let gate: GateSnapshot['gate'] = { state: 'connecting', since: now() };
  let keyring: GateSnapshot['keyring'] = { state: 'locked', since: now() };
  let lastFailure: Failure | undefined;
  const counters = { attestationsOk: 0, attestationsFailed: 0 };
  /** Enclave calls sent and not answered yet: the audit persister's group commit waits for their records. */
  let enclaveCalls = 0;
  const audit = createAuditPersister({ keystore, log, awaiting: () => enclaveCalls });
  const sealed = createSealedStateSync(keystore, log);

  function setGate(state: GateStateName, detail?: { code: string; reason: string }, note?: string): void {
    if (gate.state === state && gate.reason === detail?.reason) return;
    gate = { state, since: now(), ...(detail ? { reason: detail.reason, code: detail.code } : {}) };
    log(`enclave gate: ${state}${detail ? `: ${detail.reason}` : ''}${note ? ` (${note})` : ''}`);
  }

  function setKeyring(state: KeyringStateName, extra: { keyringId?: string; code?: string; reason?: string } = {}, note?: string): void {
    if (keyring.state === state && keyring.reason === extra.reason && keyring.keyringId === extra.keyringId) return;
    keyring = { state, since: now(), ...extra };
    log(`keyring: ${state}${extra.keyringId ? ` ${extra.keyringId}` : ''}${extra.reason ? `: ${extra.reason}` : ''}${note ? ` (${note})` : ''}`);
  }

  function fail(detail: { code: string; reason: string }): void {
    lastFailure = { ...detail, at: now() };
    setGate('failed', detail);
  }

  function endSession(s: Session): void {
    for (const t of s.timers) clearTimeout(t);
    s.timers.clear();
    if (session === s) {
      session = undefined;
      audit.setFetch(undefined);
      setKeyring('locked');
    }
  }

  function later(s: Session, ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      s.timers.delete(t);
      if (session === s && !closed) fn();
    }, ms);
    t.unref();
    s.timers.add(t);
  }

  async function send(peer: BridgePeer, method: EnclaveMethod, params: Record<string, unknown>, opts: { cancellation?: Cancellation; deadlineMs?: number } = {}): Promise<JsonLike> {
    let body;
    try {
      body = jsonToCbor(params);
    } catch (e) {
      throw invalidParam('params', (e as Error).message);
    }
    let res;
    try {
      res = await peer.request(method, body, {
        deadlineMs: opts.deadlineMs ?? cfg.requestTimeoutMs,
        ...(opts.cancellation ? { cancellation: opts.cancellation } : {}),
      });
    } catch (e) {
      throw mapBridgeError(e, method);
    }
    try {
      return cborToJson(res);
    } catch (e) {
      throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `the enclave's answer to "${method}" is not JSON-shaped: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Challenges the enclave on `peer` and verifies its document. Throws on any failure. */
  async function attest(peer: BridgePeer): Promise<EnclaveAttestation> {
    const nonce = new Uint8Array(randomBytes(32));
    const res = await send(peer, 'attest', { nonce }, { deadlineMs: ATTEST_TIMEOUT_MS });
    let document: Uint8Array;
    try {
      document = asBytes(asRecord(res, 'attest result').document, 'attest result.document', 1, MAX_DOCUMENT_BYTES);
    } catch (e) {
      throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', (e as Error).message, { cause: e });
    }
    return verifier(document, nonce);
  }

  const callOn =
    (s: Session): EnclaveCall =>
    (method, params) =>
      send(s.peer, method, params);

  async function boot(s: Session, attempt: number): Promise<void> {
    // Retries stay "failed" (with the reason) until one succeeds: no log line per retry.
    if (attempt === 0) setKeyring('unlocking');
    try {
      const creds = await handOverCredentials(callOn(s), cfg.credentials);
      scheduleCredentialRefresh(s, creds);
      // A mixed fleet (another live instance on this keystore with another policy or manifest) is refused first.
      // (A SQLite file serves one host: only a PostgreSQL keystore is shared by a fleet.)
      if (keystore.backend === 'postgres') await joinFleet({ call: callOn(s), keystore, cfg, log });
      // The audit chain first: no keyring or key decision is made before the enclave's log is open.
      await openAudit({ call: callOn(s), keystore, log, audit });
      if (session === s) audit.setFetch(async (fromSeq) => auditRecordsOf(asRecord(await send(s.peer, 'audit.records', { fromSeq }), 'audit.records result'), 'audit.records', 'records'));
      const out = await unlockOrCreateKeyring({ call: callOn(s), keystore, kmsKeyId: cfg.kmsKeyId, log, audit });
      // Durable limits: the enclave's counters and approvals come back before anything is served.
      if (out.kind === 'unlocked') await sealed.restore(callOn(s), out.keyringId);
      if (session !== s) return;
      if (out.kind === 'unlocked') setKeyring('unlocked', { keyringId: out.keyringId }, out.created ? 'created' : undefined);
      else setKeyring('absent', { code: 'PARENT_KEYRING_LOCKED', reason: out.reason });
    } catch (e) {
      if (session !== s) return;
      const r = reasonOf(e);
      lastFailure = { ...r, at: now() };
      setKeyring('failed', r);
      // Transient KMS trouble heals by itself; a policy refusal keeps failing (fail closed) at the backoff's pace.
      const wait = Math.min(cfg.reconnect.maxMs, cfg.reconnect.minMs * 2 ** Math.min(attempt, 16));
      later(s, wait, () => void boot(s, attempt + 1));
    }
  }

  function scheduleCredentialRefresh(s: Session, creds: Awaited<ReturnType<typeof handOverCredentials>>): void {
    const wait = refreshDelayMs(creds);
    if (wait === undefined) return;
    later(s, wait, () => {
      handOverCredentials(callOn(s), cfg.credentials).then(
        (c) => scheduleCredentialRefresh(s, c),
        (e) => {
          log(`credentials: refresh failed: ${reasonOf(e).reason}; retrying in 60 s`);
          later(s, 60_000, () => scheduleCredentialRefresh(s, creds));
        },
      );
    });
  }

  function scheduleReattest(s: Session): void {
    later(s, cfg.reattestIntervalMs, () => {
      attest(s.peer).then(
        (a) => {
          if (session !== s) return;
          counters.attestationsOk++;
          s.attestation = a;
          s.attestedAt = Date.now();
          scheduleReattest(s);
        },
        (e) => {
          if (session !== s) return;
          counters.attestationsFailed++;
          endSession(s);
          fail(reasonOf(e));
          link.drop(s.peer);
        },
      );
    });
  }

  async function onConnect(peer: BridgePeer, id: number): Promise<void> {
    activeId = id;
    setGate('attesting', undefined, `connection ${id}`);
    let attestation: EnclaveAttestation;
    try {
      attestation = await attest(peer);
    } catch (e) {
      if (closed || activeId !== id) return;
      counters.attestationsFailed++;
      fail(reasonOf(e));
      link.drop(peer);
      return;
    }
    if (closed || activeId !== id || !peer.isOpen) return;
    counters.attestationsOk++;
    const s: Session = { peer, id, attestation, attestedAt: Date.now(), timers: new Set() };
    session = s;
    link.markHealthy();
    const pcr0 = attestation.pcrs['0'];
    const image = attestation.manifest ? `, image ${attestation.manifest.image.name}@${attestation.manifest.image.version}` : ', any PCRs (no manifest)';
    setGate('ready', undefined, `module ${attestation.moduleId}, PCR0 ${pcr0 ? `${pcr0.slice(0, 16)}…` : 'zero'}${image}, root ${attestation.root.name}`);
    scheduleReattest(s);
    await boot(s, 0);
  }

  const link: EnclaveLink = startEnclaveLink({
    uri: cfg.enclave,
    reconnect: cfg.reconnect,
    // Exactly the enclave's cap (common/limits.ts): a request whose frame would be
    // larger is refused here, per request, instead of making the enclave drop
    // the connection for every client (finding 2). maxBodyBytes may be larger
    // (batches); each request of it must still fit one frame.
    maxFrameBytes: MAX_FRAME_BYTES,
    onConnect: (peer, id) => void onConnect(peer, id),
    onDisconnect: (reason, id) => {
      if (closed) return;
      if (session?.id === id) endSession(session);
      if (activeId !== id) return;
      // A failed attestation keeps saying why until the next attempt starts.
      if (gate.state !== 'failed') {
        const r = { code: reason.code, reason: `connection lost: ${reason.message}` };
        lastFailure = { ...r, at: now() };
        setGate('connecting', r);
      }
    },
    onConnectFailed: (e) => {
      if (closed || gate.state === 'failed') return;
      const r = reasonOf(e);
      setGate('connecting', { code: r.code, reason: `cannot connect: ${r.reason}` });
    },
  });

  return {
    verifier,
    sealed,
    snapshot() {
      const s = session;
      const out: GateSnapshot = {
        ready: gate.state === 'ready' && s !== undefined && keyring.state === 'unlocked',
        gate: { ...gate },
        keyring: { ...keyring },
        reconnects: link.reconnects,
        counters: { ...counters },
      };
      if (s) {
        out.attestation = s.attestation;
        out.attestationAgeSeconds = (Date.now() - s.attestedAt) / 1000;
        out.connection = s.id;
      }
      if (lastFailure) out.lastFailure = { ...lastFailure };
      return out;
    },
    keyringId() {
      return keyring.state === 'unlocked' ? keyring.keyringId : undefined;
    },
    async call(method, params, opts) {
      const s = session;
      if (!s || gate.state !== 'ready' || !s.peer.isOpen) {
        const why = gate.reason ?? (lastFailure ? `${gate.state} (last failure: ${lastFailure.reason})` : gate.state);
        throw new ParentError('PARENT_NOT_ATTESTED', `enclave not attested: ${gate.reason ? `${gate.state}: ${why}` : why}`, {
          hint: 'GET /readyz says why; nothing is forwarded to an enclave that has not proven its image',
        });
      }
      if (opts.needKeyring && keyring.state !== 'unlocked') {
        throw new ParentError('PARENT_KEYRING_LOCKED', `keyring not unlocked: ${keyring.state}${keyring.reason ? `: ${keyring.reason}` : ''}`);
      }
      enclaveCalls++;
      try {
        return await send(s.peer, method, params, opts);
      } finally {
        enclaveCalls--;
      }
    },
    audit,
    async close() {
      closed = true;
      audit.close();
      if (session) endSession(session);
      await link.close();
    },
  };
}
