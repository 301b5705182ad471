/**
 * The enclave's request handler: the `enclave-api` methods over the bridge.
 * Every request is validated here (the parent is untrusted); every `sign`
 * and `key.create` passes the policy engine (docs/policy.md): the worker
 * parses the request once into its typed intent, the engine decides on that
 * intent, and the worker signs that same parsed value.
 */
import { randomBytes, randomUUID, createHash } from 'node:crypto';
import type { KMSClient } from '@aws-sdk/client-kms';
import { concatBytes, toHex, wipe } from '../common/bytes.js';
import { encodeCbor, type CborKey, type CborValue } from '../common/cbor.js';
import { cborToJson, jsonToCbor, type JsonLike } from '../common/cbor-json.js';
import { SignerError } from '../common/errors.js';
import type { Cancellation } from '../common/cancellation.js';
import {
  asBytes,
  asKeyRecord,
  asKeyringRecord,
  asKind,
  asRecord,
  asSignOp,
  asString,
  onlyKeys,
  type KeyKind,
  type KeyringRecordWire,
  type SignOp,
} from '../common/protocol/enclave-api.js';
import type { BridgeHandler } from '../common/bridge/index.js';
import { pinnedKeys, type PinnedKeys } from './config.js';
import type { AttestedKms } from './kms/attested.js';
import type { AwsCredentials } from './kms/client.js';
import type { Dial } from './kms/connection.js';
import type { Keyring } from './kms/keyring.js';
import { createRecipientAsync, type KmsRecipient } from './kms/recipient.js';
import type { Nsm } from './nsm/nsm.js';
import { requestDigest } from '../common/audit/digest.js';
import { parseRecord } from '../common/audit/record.js';
import { AuditTrail, withAuditRecord } from './audit/trail.js';
import { createApprovalsGate } from './policy/approvals-gate.js';
import { createDurableState } from './policy/durable.js';
import { ruleById } from './policy/evaluate.js';
import type { ApprovalRecord } from './auth/approvals.js';
import { SealedStateError } from './auth/errors.js';
import { PrincipalRegistry } from './auth/principals.js';
import { RequestVerifier, type AuthenticatedRequest } from './auth/verify-request.js';
import { OPEN_SESSION_METHOD } from '../common/auth/session.js';
import { checkKind, isSignMethod, readSignCall, type KeyRef } from '../common/rpc/sign-call.js';
import { named, readKeyKind } from '../common/rpc/params.js';
import type { PolicyGate, Ticket } from './policy/gate.js';
import type { WorkerPool } from './worker-pool.js';

export const ENCLAVE_VERSION = '0.1.0';

export interface EnclaveServiceOptions {
  nsm: Nsm;
  pool: WorkerPool;
  /** The policy engine with the policy loaded at boot (enclave/policy/gate.ts); the host cannot change it. */
  policy: PolicyGate;
  kms: {
    region: string;
    dial: Dial;
    endpoint?: string;
    ca?: string | string[];
    /** The CMK ARNs pinned in the measured configuration (config.ts): the only keys a keyring may live under. */
    allowedKeyArns: readonly string[];
  };
  /**
   * Hash of the policy in force, bound into attestation user_data and every
   * audit record (docs/audit.md). Default: the hash of the loaded policy.
   */
  policyHash?: Uint8Array | null;
  log?: (line: string) => void;
}

/** What the bridge tells a handler about its request. */
interface RequestContext {
  cancellation?: Cancellation;
  deadline?: number;
  /** The params exactly as decoded from the bridge frame (the audit record's requestDigest). */
  raw?: CborValue;
}

export interface EnclaveService {
  handler: BridgeHandler;
  close(): Promise<void>;
}

const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** 32 bytes from the NSM mixed with the OS CSPRNG: neither source alone decides the key. */
async function freshSecret(nsm: Nsm): Promise<Uint8Array> {
  const a = await nsm.getRandom(32);
  const b = new Uint8Array(randomBytes(32));
  const h = createHash('sha256').update(concatBytes(Uint8Array.of(0x01), a, b)).digest();
  wipe(a, b);
  return new Uint8Array(h.buffer, h.byteOffset, 32);
}

async function newSecp256k1Secret(nsm: Nsm): Promise<Uint8Array> {
  for (;;) {
    const s = await freshSecret(nsm);
    const v = BigInt('0x' + toHex(s));
    if (v > 0n && v < SECP256K1_N) return s;
    wipe(s);
  }
}

function parseParams(params: CborValue): Record<string, unknown> {
  return asRecord(cborToJson(params), 'params');
}

/** The `rule` an audit record gives a refusal that no policy rule decided: `error:<CODE>`. */
function errorRule(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  return `error:${typeof code === 'string' ? code : 'INTERNAL'}`;
}

export function createEnclaveService(opts: EnclaveServiceOptions): EnclaveService {
  const { nsm, pool, policy } = opts;
  const approvals = createApprovalsGate(policy);
  // Who is asking (docs/principals.md): a request that carries signer_auth is verified against the
  // policy's principals, on the enclave's clock, for this policy's hash.
  const verifier = new RequestVerifier({ principals: new PrincipalRegistry(policy.policy.principals), audience: policy.hash, now: policy.now });
  const durable = createDurableState(policy, approvals, { restartGuard: policy.policy.restartGuard?.when ?? 'off', scope: policy.policy.stateScope });
  approvals.restartGuard = { pending: () => durable.guardPending(), clear: () => durable.clearGuard() };
  const log = opts.log ?? (() => {});
  // Refuses to construct without a pinned CMK: an enclave that would take any CMK could adopt a host-made keyring.
  const pinned: PinnedKeys = pinnedKeys(opts.kms.allowedKeyArns);
  // keyring.create / keyring.unlock run one at a time, so two concurrent requests cannot both adopt a keyring.
  let adoption: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = adoption.then(fn, fn);
    adoption = run.catch(() => {});
    return run;
  };
  // Cold start: the RSA recipient key is generated off the main thread and the KMS/AWS SDK and
  // key-derivation modules load on first use, so the bridge answers attest/status at once.
  const recipientReady = createRecipientAsync();
  recipientReady.catch(() => {}); // a failure surfaces on the first KMS call, not as an unhandled rejection
  let recipient: KmsRecipient | undefined;
  let closed = false;
  let credentials: AwsCredentials | undefined;
  let client: KMSClient | undefined;
  let keyring: Keyring | undefined;

  const kms = async (): Promise<AttestedKms> => {
    if (!credentials) throw new SignerError('KMS_NO_CREDENTIALS', 'the parent has not handed over AWS credentials yet');
    // A literal path: the image bundle includes it (loaded lazily, see cold start above).
    const { createKmsClient, attestedKms } = await import('./lazy-kms.js');
    recipient ??= await recipientReady;
    if (closed) throw new SignerError('ENCLAVE_CLOSED', 'the enclave is shutting down');
    client ??= createKmsClient({
      region: opts.kms.region,
      dial: opts.kms.dial,
      ...(opts.kms.endpoint ? { endpoint: opts.kms.endpoint } : {}),
      ...(opts.kms.ca ? { ca: opts.kms.ca } : {}),
      credentials: async () => {
        if (!credentials) throw new SignerError('KMS_NO_CREDENTIALS', 'no AWS credentials');
        return credentials;
      },
    });
    return attestedKms(client, nsm, recipient);
  };

  function install(k: Keyring, created = false): string {
    if (keyring) {
      k.destroy();
      throw new SignerError('KEYRING_ALREADY_UNLOCKED', `keyring ${keyring.id} is already unlocked in this enclave`);
    }
    keyring = k;
    const shared = k.shareKey();
    pool.setKeyring(k.id, shared);
    durable.attach(shared, k.id, created); // derives the sealing key, wipes `shared`
    // Until the sealed state comes back the enclave cannot know whether it restarted cleanly: behind
    // the restart barrier, no request that may have been signed before this boot is accepted.
    verifier.setRestartBarrier(policy.now() + verifier.maxExpirySeconds);
    log(`keyring ${k.id} unlocked (CMK ${k.record.kmsKeyId})`);
    return k.id;
  }

  const wireRecord = (k: Keyring): KeyringRecordWire => ({ ...k.record });

  // The audit chain (docs/audit.md): opened when the parent shows its head; every decision below is a record.
  const trail = new AuditTrail({ nsm, policyHash: opts.policyHash ?? new Uint8Array(Buffer.from(policy.hash, 'hex')) });
  const recorded = (kind: 'key.create' | 'keyring.create' | 'keyring.unlock', keyId: string, principal = 'host') => [
    trail.append({ kind, decision: 'done', principal, op: kind, keyId }).bytes,
  ];

  const methods: Record<string, (p: Record<string, unknown>, ctx?: RequestContext) => Promise<unknown>> = {
    ...auditMethods(trail),
    // user_data is the enclave's own: the audit binding once the log is open (docs/audit.md).
    // The caller chooses only the nonce.
    async attest(p) {
      onlyKeys(p, ['nonce', 'userData'], 'params');
      const nonce = asBytes(p.nonce, 'nonce', 16, 512);
      if (p.userData !== undefined) {
        throw new SignerError('INVALID_PARAMS', 'userData: the enclave owns user_data (it carries the audit key and policy binding); a caller chooses only the nonce');
      }
      // user_data binds the audit key and the policy in force (docs/audit.md); before the
      // audit log is open, the same map with auditKey null.
      const document = trail.isOpen ? await trail.log().attest(nonce) : await nsm.attest({ nonce, userData: policyBinding() });
      return { document };
    },
    async status(p) {
      onlyKeys(p, [], 'params');
      return {
        version: ENCLAVE_VERSION,
        nsm: nsm.kind,
        keyringId: keyring?.id ?? null,
        workers: pool.size,
        credentialsExpire: credentials?.expiration?.toISOString() ?? null,
        policy: policyStatus(),
        // The restart guard (docs/principals.md): armed after a restart until an approved request of a guarded rule signs.
        restartGuard: { when: policy.policy.restartGuard?.when ?? 'off', pending: durable.guardPending() },
        // Principal sessions open in this enclave life (docs/principals.md "Sessions"): a count, never an id or key.
        sessions: { open: verifier.sessions.size },
      };
    },
    async 'credentials.set'(p) {
      onlyKeys(p, ['accessKeyId', 'secretAccessKey', 'sessionToken', 'expiration'], 'params');
      const c: AwsCredentials = {
        accessKeyId: asString(p.accessKeyId, 'accessKeyId', 128),
        secretAccessKey: asString(p.secretAccessKey, 'secretAccessKey', 256),
      };
      if (p.sessionToken !== undefined) c.sessionToken = asString(p.sessionToken, 'sessionToken', 8192);
      if (p.expiration !== undefined) {
        const d = new Date(asString(p.expiration, 'expiration', 64));
        if (Number.isNaN(d.getTime())) throw new SignerError('INVALID_PARAMS', 'expiration: not a date');
        c.expiration = d;
      }
      credentials = c;
      return { ok: true };
    },
    // One keyring per enclave life: once one is adopted (created or unlocked), no request
    // of the host's can make the enclave switch to another (docs/kms-policy.md).
    async 'keyring.create'(p) {
      onlyKeys(p, ['kmsKeyId'], 'params');
      const kmsKeyId = asString(p.kmsKeyId, 'kmsKeyId', 2048);
      return oneAtATime(async () => {
        if (keyring) throw new SignerError('KEYRING_ALREADY_UNLOCKED', `keyring ${keyring.id} is already unlocked in this enclave; an enclave never switches keyrings`);
        trail.log();
        const { createKeyring } = await import('./lazy-kms.js');
        const k = await createKeyring(await kms(), kmsKeyId, pinned);
        install(k, true);
        return { record: wireRecord(k), audit: recorded('keyring.create', k.id) };
      });
    },
    async 'keyring.unlock'(p) {
      onlyKeys(p, ['record'], 'params');
      const record = asKeyringRecord(p.record);
      return oneAtATime(async () => {
        if (keyring) {
          // Re-sending the adopted keyring's id is harmless (the parent reconnects); anything else is a switch.
          if (keyring.id === record.keyringId) return { keyringId: keyring.id, audit: [] };
          throw new SignerError('KEYRING_ALREADY_UNLOCKED', `keyring ${keyring.id} is already unlocked in this enclave; it never switches to another keyring`, {
            hint: 'a different keyring needs a new enclave life (restart the enclave)',
          });
        }
        trail.log();
        const { unlockKeyring } = await import('./lazy-kms.js');
        let k: Keyring;
        try {
          k = await unlockKeyring(await kms(), record, pinned);
        } catch (e) {
          let rec;
          try {
            rec = trail.append({ kind: 'keyring.unlock', decision: 'denied', principal: 'host', op: 'keyring.unlock', keyId: record.keyringId, rule: errorRule(e) });
          } catch {
            // the refusal stands
          }
          throw withAuditRecord(e as Error, rec);
        }
        const id = install(k);
        return { keyringId: id, audit: recorded('keyring.unlock', id) };
      });
    },
    async 'keyring.current'(p) {
      onlyKeys(p, [], 'params');
      return { record: keyring ? wireRecord(keyring) : null };
    },
    async 'key.create'(p, ctx) {
      const signed = p.auth !== undefined;
      onlyKeys(p, signed ? ['auth', 'state'] : ['kind', 'state'], 'params');
      // A signed request is read from the params the principal signed; the host's `kind` is not asked.
      const who = signed ? authenticate(p.auth, 'signer_createKey') : undefined;
      const kind: KeyKind = who ? readKeyKind(named(who.params, ['kind', 'label', 'requestId']).kind) : asKind(p.kind);
      const principal = who?.request.principal ?? 'host';
      stateReady(p.state);
      trail.log(); // no audit log, no decision
      const decision = { principal, op: 'signer_createKey', keyId: null, requestDigest: requestDigest('key.create', ctx?.raw ?? null) };
      // The policy first: a refused creation says so whatever the keyring's state.
      let ticket: Ticket;
      let approval: ApprovalRecord | undefined;
      try {
        ({ ticket, approval } = approvals.authorize({ op: 'signer_createKey', keyId: null, request: { kind }, intent: { op: 'signer_createKey', kind }, principal }));
      } catch (e) {
        throw refusalRecorded(e, decision);
      }
      const release = () => {
        policy.release(ticket);
        if (approval) approvals.released(approval);
      };
      const epoch = durable.epoch;
      if (!keyring) {
        release();
        throw new SignerError('KEYRING_LOCKED', 'no keyring is unlocked in this enclave');
      }
      try {
        const out = await createKey(kind, keyring, principal);
        // A window or an approval changes the durable state (sealed with the answer). Reserved
        // against state since taken over (fleet scope): not counted.
        const changed = changesState(ticket, approval);
        if (changed && durable.epoch !== epoch) throw staleUnderRequest();
        policy.commit(ticket);
        if (approval) approvals.consumed(approval);
        return changed ? withSealed(out) : out;
      } finally {
        release();
      }
    },
    async sign(p, ctx) {
      return signDecided(p, ctx);
    },
    // Durable limits: the parent hands back its latest sealed record once per enclave life.
    async 'state.restore'(p) {
      onlyKeys(p, ['record'], 'params');
      const first = !durable.restored;
      const out = durable.restore(p.record === null ? null : asRecord(p.record, 'record'));
      if (first) verifier.setRestartBarrier(out.restartBarrier);
      if (out.unclean) log('sealed state: unclean restart (the previous enclave did not shut down cleanly, or its record was withheld)');
      // Fleet scope: the parent stores the boot record by compare-and-swap too (sealedLineage).
      return { record: out.record, unclean: out.unclean, restored: out.restored, scope: durable.scope, ...(durable.lineage ? { sealedLineage: durable.lineage } : {}) } as unknown as JsonLike;
    },
    // Quorum approvals (docs/principals.md): the view carries the request the digest covers and the intent decoded here.
    async 'approval.get'(p) {
      onlyKeys(p, ['approvalId', 'state'], 'params');
      if (p.state !== undefined) stateReady(p.state);
      return approvals.view(asString(p.approvalId, 'approvalId', 128)) as unknown as JsonLike;
    },
    async 'approval.list'(p) {
      onlyKeys(p, ['state'], 'params');
      if (p.state !== undefined) stateReady(p.state);
      return { approvals: approvals.list() } as unknown as JsonLike;
    },
    // Sessions (docs/principals.md "Sessions"): opened by a principal's signature, on the chain
    // like every decision. The answer holds the enclave's public half only; the key stays here.
    async 'session.open'(p, ctx) {
      onlyKeys(p, ['auth'], 'params');
      trail.log(); // no audit log, no decision
      const digest = requestDigest('session.open', ctx?.raw ?? null);
      let principal = 'host';
      let opened;
      try {
        const a = asRecord(p.auth, 'auth');
        onlyKeys(a, ['method', 'params', 'signerAuth'], 'auth');
        if (a.method !== OPEN_SESSION_METHOD) throw new SignerError('INVALID_PARAMS', `auth.method: session.open carries ${OPEN_SESSION_METHOD} only`);
        const out = verifier.openSession(a.params, a.signerAuth);
        principal = out.request.principal;
        opened = out.opened;
      } catch (e) {
        throw withAuditRecord(e as Error, trail.sessionRefused(principal, digest, errorRule(e)));
      }
      let rec;
      try {
        rec = trail.sessionOpened(principal, digest);
      } catch (e) {
        verifier.sessions.end(opened.session);
        throw new SignerError('AUDIT_UNAVAILABLE', 'denied: the session could not be recorded, so it is not opened', { cause: e });
      }
      return { ...opened, audit: [rec.bytes] } as unknown as JsonLike;
    },
    async 'approval.approve'(p) {
      return decideApproval(approvalParams(p), 'approve');
    },
    async 'approval.reject'(p) {
      return decideApproval(approvalParams(p), 'reject');
    },
  };

  /**
   * An approval or veto, counted and recorded: the answer carries its audit record (the parent
   * stores it before answering) and the sealed state it changed. The log must be open before the
   * approval book changes, so a counted approval always has its record.
   */
  function decideApproval(params: ReturnType<typeof approvalParams>, decision: 'approve' | 'reject'): JsonLike {
    durable.check();
    if (params.state !== undefined) stateReady(params.state);
    trail.log();
    const view = approvals.approve(params, decision) as unknown as { requestDigest?: unknown; rule?: unknown; request?: { method?: unknown }; intent?: { keyId?: unknown } };
    const digest = typeof view.requestDigest === 'string' && /^[0-9a-f]{64}$/.test(view.requestDigest) ? new Uint8Array(Buffer.from(view.requestDigest, 'hex')) : null;
    const rec = trail.approval(decision === 'approve' ? 'approved' : 'rejected', params.approver, {
      op: typeof view.request?.method === 'string' ? view.request.method : null,
      keyId: typeof view.intent?.keyId === 'string' ? view.intent.keyId : null,
      requestDigest: digest,
      rule: typeof view.rule === 'string' ? view.rule : null,
    });
    return { ...withSealed(view), audit: [rec.bytes] } as unknown as JsonLike;
  }

  /** A result with the sealed record of the state it changed (the parent stores it before answering). */
  function withSealed<T extends object>(result: T): T & { sealed?: unknown } {
    const sealed = durable.seal();
    return sealed ? { ...result, ...sealedMembers(sealed) } : result;
  }

  /** `sealed`, and in fleet scope `sealedLineage` (what the parent's compare-and-swap needs). */
  function sealedMembers(sealed: unknown): { sealed: JsonLike; sealedLineage?: JsonLike } {
    const lineage = durable.lineage;
    return { sealed: sealed as JsonLike, ...(lineage ? { sealedLineage: lineage as unknown as JsonLike } : {}) };
  }

  /**
   * A request that now waits for approvals opened (or re-attached) an entry in the approval book.
   * The refusal carries the sealed record (`sealedState`, not shown to clients); the parent stores
   * it before it relays the -32010, so the approval id the requester hands its approvers names an
   * entry every later life of this enclave knows (and, in fleet scope, every other instance).
   * Per instance it once waited for the next state change: an enclave killed before one lost the
   * entry its audit chain had recorded as pending, and approvers got APPROVAL_UNKNOWN
   * (test/faults/approval-restart.test.ts; the CI soak found it).
   */
  function withPendingState<E extends Error>(e: E): E {
    const sealed = durable.seal();
    if (sealed) Object.defineProperty(e, 'sealedState', { value: sealedMembers(sealed), enumerable: false });
    return e;
  }

  /** Whether a decision changes the durable state once counted: it used an approval, or its rule has a window. */
  function changesState(ticket: Ticket | undefined, approval: ApprovalRecord | undefined): boolean {
    const rule = ticket?.decision.rule;
    return approval !== undefined || (typeof rule === 'string' && ruleById(policy.policy, rule)?.window !== undefined);
  }

  /** Fleet scope: the state was taken over while this request held a reservation (docs/scale-out.md). */
  function staleUnderRequest(): SealedStateError {
    return new SealedStateError('SEALED_STATE_STALE', 'the fleet state changed while this request was decided: it was not counted and nothing is released', {
      hint: 'retry: the request is decided again on the fleet\'s current counters',
    });
  }

  function approvalParams(p: Record<string, unknown>) {
    onlyKeys(p, ['approvalId', 'approver', 'signature', 'webauthn', 'state'], 'params');
    const out: { approvalId: string; approver: string; signature: string; webauthn?: { authenticatorData: string; clientDataJSON: string }; state?: unknown } = {
      approvalId: asString(p.approvalId, 'approvalId', 128),
      approver: asString(p.approver, 'approver', 64),
      signature: asString(p.signature, 'signature', 512),
    };
    if (p.webauthn !== undefined) {
      const w = asRecord(p.webauthn, 'webauthn');
      onlyKeys(w, ['authenticatorData', 'clientDataJSON'], 'webauthn');
      out.webauthn = { authenticatorData: asString(w.authenticatorData, 'webauthn.authenticatorData', 4096), clientDataJSON: asString(w.clientDataJSON, 'webauthn.clientDataJSON', 4096) };
    }
    if (p.state !== undefined) out.state = p.state;
    return out;
  }

  /**
   * The attestation user_data naming the policy in force: the audit binding map of
   * docs/audit.md ({v: 1, auditKey, policyHash}) with auditKey null: used only before the audit
   * log is open (after audit.open, the log's own binding carries the audit key too).
   */
  function policyBinding(): Uint8Array {
    return encodeCbor(new Map<CborKey, CborValue>([['v', 1], ['auditKey', null], ['policyHash', new Uint8Array(Buffer.from(policy.hash, 'hex'))]]));
  }

  function policyStatus() {
    return { hash: policy.hash, name: policy.policy.name, source: policy.source, stateScope: policy.policy.stateScope };
  }

  async function createKey(kind: KeyKind, keyring: Keyring, principal: string) {
      const { addressFromPrivateKey, deriveBip32PublicKey, publicKeyOf } = await import('./lazy-kms.js');
      const keyId = randomUUID();
      const secret = kind === 'secp256k1' ? await newSecp256k1Secret(nsm) : await freshSecret(nsm);
      try {
        const blob = keyring.wrap(keyId, kind, secret);
        const keyringId = keyring.id;
        if (kind === 'secp256k1') {
          const pub = { keyId, kind, keyringId, publicKey: toHex(publicKeyOf(secret)), address: addressFromPrivateKey(secret), blob };
          return { ...pub, audit: recorded('key.create', keyId, principal) };
        }
        const master = deriveBip32PublicKey(secret, 'm');
        const pub = { keyId, kind, keyringId, publicKey: master.publicKey.replace(/^0x/, ''), xpub: master.xpub, fingerprint: master.masterFingerprint, blob };
        return { ...pub, audit: recorded('key.create', keyId, principal) };
      } finally {
        wipe(secret);
      }
  }

  /**
   * The signing decision path: the worker unwraps the key and parses the request into its
   * intent; the engine decides on that intent (reserving its window slot); the worker signs the
   * same parsed value; the window counts it only once the signature exists.
   */
  async function signDecided(p: Record<string, unknown>, ctx?: RequestContext) {
      const signed = p.auth !== undefined;
      onlyKeys(p, signed ? ['key', 'auth', 'state'] : ['op', 'key', 'request', 'state'], 'params');
      stateReady(p.state);
      const key = asKeyRecord(p.key);
      // Only the id, kind, keyring and blob of the host's record are used: the
      // blob's AAD binds the first three, the worker derives everything else.
      // The record's publicKey/address/xpub/fingerprint are advisory (for the parent).
      trail.log(); // no audit log, no decision
      const digest = requestDigest('sign', ctx?.raw ?? null);
      let op: SignOp;
      let request: Record<string, JsonLike>;
      let principal = 'host';
      /** For a signed request: the key its params name (checked against the key that signs). */
      let keyRef: KeyRef | undefined;
      if (signed) {
        let who;
        try {
          who = authenticate(p.auth, 'sign');
          const method = who.method as Parameters<typeof readSignCall>[0];
          // The call is read from the params the principal signed, never from the host's translation.
          // No configured chain id here: the host's --chain-id is not evidence, so the signed
          // transaction must name its chain.
          const call = readSignCall(method, who.params);
          checkKind(call, key.kind, method);
          if ('keyId' in call.key && call.key.keyId !== key.keyId) {
            throw new SignerError('SIGN_KEY_MISMATCH', `${call.key.field}: the signed request names key ${call.key.keyId}, the host handed over key ${key.keyId}`, {
              hint: 'the host substituted the key: nothing was signed',
            });
          }
          op = call.op;
          request = call.request(key.kind);
          keyRef = call.key;
          principal = who.request.principal;
        } catch (e) {
          throw withAuditRecord(e as Error, trail.denied({ principal: who?.request.principal ?? 'host', op: who?.method ?? 'sign', keyId: key.keyId, requestDigest: digest, rule: errorRule(e) }));
        }
      } else {
        op = asSignOp(p.op);
        request = asRecord(p.request, 'request') as Record<string, JsonLike>;
      }
      const job = { op, keyId: key.keyId, kind: key.kind, keyringId: key.keyringId, blob: key.blob, request };
      let signedBy = key.keyId;
      let ticket: Ticket | undefined;
      let approval: ApprovalRecord | undefined;
      let epoch = durable.epoch;
      // A request that ends without a released signature gives back its window slot and approval.
      const release = () => {
        if (ticket) policy.release(ticket);
        if (approval) approvals.released(approval);
      };
      let outcome;
      try {
        outcome = await pool.run(job, {
        ...(ctx?.cancellation ? { cancellation: ctx.cancellation } : {}),
        ...(ctx?.deadline !== undefined ? { deadline: ctx.deadline } : {}),
        authorize: (facts, intent) => {
          signedBy = facts.keyId;
          // The address a signed request names is checked against the key's own (derived from the unwrapped secret).
          if (keyRef && 'address' in keyRef && facts.address?.toLowerCase() !== keyRef.address.toLowerCase()) {
            throw new SignerError('SIGN_KEY_MISMATCH', `${keyRef.field}: the signed request names ${keyRef.address}, the host handed over the key of ${facts.address ?? 'no address'}`, {
              hint: 'the host substituted the key: nothing was signed',
            });
          }
          // The state this decision is taken on; read before it, as a refusal (-32010) throws.
          epoch = durable.epoch;
          ({ ticket, approval } = approvals.authorize({ op, keyId: facts.keyId, request, intent, principal }));
        },
      });
      } catch (e) {
        release();
        throw refusalRecorded(e, { principal, op, keyId: signedBy, requestDigest: digest }, epoch);
      }
      const { result, facts } = outcome;
      // The new counters/approvals change only for a window rule or an approval; those were decided
      // on state that a fleet take-over (durable.handIn) may have replaced since: then not counted.
      const changed = changesState(ticket, approval);
      if (changed && durable.epoch !== epoch) {
        release();
        throw refusalRecorded(staleUnderRequest(), { principal, op, keyId: facts.keyId, requestDigest: digest });
      }
      let rec;
      try {
        rec = trail.signed({ principal, op, keyId: facts.keyId, requestDigest: digest, rule: ticket?.decision.rule ?? null }, result);
      } catch (e) {
        release();
        throw new SignerError('AUDIT_UNAVAILABLE', 'denied: the audit record could not be written, so the signature is not released', { cause: e });
      }
      // Counted only now: the signature exists and its record is written.
      if (ticket) policy.commit(ticket);
      if (approval) approvals.consumed(approval);
      // The new counters/approvals, sealed — one seal for every signature committed in this turn of
      // the event loop — and stored by the parent before it releases the signature.
      if (!changed) return { result: result as JsonLike, signer: facts, audit: [rec.bytes] };
      const committedIn = durable.epoch;
      const sealed = await durable.sealSoon();
      // Fleet scope: a take-over between the commit and the seal replaced the state this signature
      // was counted in; the record would not include it, so it is not released.
      if (durable.epoch !== committedIn) throw withAuditRecord(staleUnderRequest(), rec);
      return { result: result as JsonLike, signer: facts, audit: [rec.bytes], ...(sealed ? sealedMembers(sealed) : {}) };
  }

  /**
   * Verifies a signed request (docs/principals.md): `auth` is { method, params, signerAuth } — the
   * JSON-RPC method and params exactly as the client sent them, and its signer_auth member.
   * `expect` is the enclave method it arrived on: `sign` takes the signing methods only.
   */
  function authenticate(auth: unknown, expect: 'sign' | 'signer_createKey'): { method: string; params: unknown; request: AuthenticatedRequest } {
    const a = asRecord(auth, 'auth');
    onlyKeys(a, ['method', 'params', 'signerAuth'], 'auth');
    const method = asString(a.method, 'auth.method', 64);
    if (expect === 'sign' ? !isSignMethod(method) : method !== expect) {
      throw new SignerError('INVALID_PARAMS', `auth.method: ${JSON.stringify(method)} is not a method this enclave call signs`);
    }
    return { method, params: a.params, request: verifier.verify(method, a.params, a.signerAuth) };
  }

  /**
   * Decisions need the durable state: a refused record stops everything until an operator resolves
   * it, and an enclave holding a keyring decides only once the parent has handed back the keyring's
   * sealed state — a host that skipped `state.restore` would otherwise get fresh window counters
   * and no restart guard.
   */
  function stateReady(handed?: unknown): void {
    durable.check();
    if (keyring && !durable.restored) {
      throw new SealedStateError('SEALED_STATE_NOT_RESTORED', 'the sealed state of the keyring has not been handed back (state.restore): nothing is signed until it is', {
        hint: 'the parent restores it right after unlocking the keyring; restart the parent',
      });
    }
    // Fleet scope: the store's record, when the parent saw that it is not this enclave's latest.
    if (handed !== undefined) durable.handIn(handed);
  }

  /**
   * Every refusal is a decision on the chain: pending (approval required) or denied, naming the
   * deciding rule or `error:<CODE>`. `decidedIn` is the durable epoch the decision was taken in,
   * when the refusal may reach here after other requests ran (the signing path awaits the pool).
   */
  function refusalRecorded(e: unknown, d: { principal: string; op: string; keyId: string | null; requestDigest: Uint8Array }, decidedIn = durable.epoch): Error {
    const code = (e as { code?: unknown }).code;
    const rule = (e as { wireData?: { rule?: unknown } }).wireData?.rule;
    if (code === 'APPROVAL_REQUIRED' && typeof rule === 'string') {
      // Fleet scope: the entry was opened in the approval book of a state taken over since
      // (durable.handIn replaces the book). The record sealed now would not hold it, and a -32010
      // relayed with that record would send every approver to an approval no instance knows.
      if (durable.epoch !== decidedIn) return refusalRecorded(staleUnderRequest(), d);
      return withPendingState(withAuditRecord(e as Error, trail.pending({ ...d, rule })));
    }
    return withAuditRecord(e as Error, trail.denied({ ...d, rule: typeof rule === 'string' ? rule : errorRule(e) }));
  }

  const handler: BridgeHandler = async (method, params, ctx) => {
    const fn = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!fn) throw new SignerError('METHOD_NOT_FOUND', `the enclave has no method ${JSON.stringify(method)}`);
    return jsonToCbor((await fn(parseParams(params), { ...ctx, raw: params })) as JsonLike);
  };

  return {
    handler,
    async close() {
      trail.close();
      verifier.sessions.close();
      keyring?.destroy();
      keyring = undefined;
      closed = true;
      recipient?.destroy();
      void recipientReady.then((r) => r.destroy(), () => {});
      client?.destroy();
      await pool.close();
    },
  };
}

/** The audit chain's own methods (docs/audit.md, docs/enclave.md). */
function auditMethods(trail: AuditTrail): Record<string, (p: Record<string, unknown>) => Promise<unknown>> {
  return {
    /** The parent shows its stored head (absent: a new chain); the answer holds the records it must store. */
    async 'audit.open'(p) {
      onlyKeys(p, ['head'], 'params');
      const head = p.head === undefined || p.head === null ? undefined : asBytes(p.head, 'head', 1, 64 * 1024);
      let shownSeq: number | undefined;
      if (head) {
        try {
          shownSeq = parseRecord(head).body.seq;
        } catch (e) {
          throw new SignerError('INVALID_PARAMS', `head: not an audit record: ${(e as Error).message}`);
        }
      }
      const r = await trail.open(head, shownSeq);
      return { records: r.records.map((x) => x.bytes), auditKey: r.auditKey, opened: r.opened, headSeq: r.headSeq };
    },
    /** Records the enclave still holds from `fromSeq` on: lets a parent that lost an answer store its record late. */
    async 'audit.records'(p) {
      onlyKeys(p, ['fromSeq', 'limit'], 'params');
      const from = p.fromSeq;
      if (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 0) throw new SignerError('INVALID_PARAMS', 'fromSeq: a non-negative integer');
      const limit = p.limit === undefined ? 1024 : p.limit;
      if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > 4096) throw new SignerError('INVALID_PARAMS', 'limit: 1..4096');
      const log = trail.log();
      return { records: trail.since(from, limit).map((x) => x.bytes), headSeq: log.head().seq };
    },
    /** An enclave-signed statement of the head, and a document binding the audit key (for the caller's nonce). */
    async 'audit.checkpoint'(p) {
      onlyKeys(p, ['nonce'], 'params');
      const nonce = p.nonce === undefined ? undefined : asBytes(p.nonce, 'nonce', 1, 64);
      const log = trail.log();
      const checkpoint = log.checkpoint(nonce);
      const attestation = await log.attest(nonce && nonce.length >= 16 ? nonce : undefined);
      return { checkpoint, attestation };
    },
  };
}
