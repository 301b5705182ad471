/**
 * The enclave's request handler: the `enclave-api` methods over the bridge.
 * Every request is validated here (the parent is untrusted); every `sign`
 * and `key.create` passes the policy engine (docs/policy.md): the worker
 * parses the request once into its typed intent, the engine decides on that
 * intent, and the worker signs that same parsed value.
 *
 * This file is the composition: it builds the parts one enclave life shares
 * and maps the method names to them. The methods live by concern:
 *   keyring-slot.ts       the one keyring per life, and KMS access
 *   decisions.ts          what deciding methods share (durable state, refusals on the chain)
 *   sign-method.ts        `sign`
 *   key-create-method.ts  `key.create`
 *   principal-methods.ts  approvals and sessions
 *   audit/methods.ts      `audit.open`, `audit.records`, `audit.checkpoint`
 */
import { cborToJson, jsonToCbor, type JsonLike } from '../common/cbor-json.js';
import { encodeCbor, type CborKey, type CborValue } from '../common/cbor.js';
import { SignerError } from '../common/errors.js';
import { asBytes, asKeyringRecord, asRecord, asString, onlyKeys, type KeyringRecordWire } from '../common/protocol/enclave-api.js';
import type { BridgeHandler } from '../common/bridge/index.js';
import { auditMethods } from './audit/methods.js';
import { AuditTrail, withAuditRecord } from './audit/trail.js';
import { RequestVerifier } from './auth/verify-request.js';
import { pinnedKeys } from './config.js';
import { Decisions, errorRule } from './decisions.js';
import { createKeyDecided, type Recorded } from './key-create-method.js';
import { KeyringSlot, type KmsOptions } from './keyring-slot.js';
import type { AwsCredentials } from './kms/client.js';
import type { Keyring } from './kms/keyring.js';
import type { EnclaveMethod } from './method.js';
import type { Nsm } from './nsm/nsm.js';
import { createApprovalsGate } from './policy/approvals-gate.js';
import { createDurableState } from './policy/durable.js';
import type { PolicyGate } from './policy/gate.js';
import { principalMethods } from './principal-methods.js';
import { signDecided } from './sign-method.js';
import type { WorkerPool } from './worker-pool.js';

export const ENCLAVE_VERSION = '0.1.0';

export interface EnclaveServiceOptions {
  nsm: Nsm;
  pool: WorkerPool;
  /** The policy engine with the policy loaded at boot (enclave/policy/gate.ts); the host cannot change it. */
  policy: PolicyGate;
  kms: KmsOptions & {
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

export interface EnclaveService {
  handler: BridgeHandler;
  close(): Promise<void>;
}

function parseParams(params: CborValue): Record<string, unknown> {
  return asRecord(cborToJson(params), 'params');
}

export function createEnclaveService(opts: EnclaveServiceOptions): EnclaveService {
  const { nsm, pool, policy } = opts;
  const log = opts.log ?? (() => {});
  const approvals = createApprovalsGate(policy);
  // Who is asking (docs/principals.md): a request that carries signer_auth is verified against the
  // policy's principals, on the enclave's clock, for this policy's hash.
  // One registry for requests and approvals (its key checks run once per boot).
  const verifier = new RequestVerifier({ principals: approvals.principals, audience: policy.hash, now: policy.now });
  const durable = createDurableState(policy, approvals, { restartGuard: policy.policy.restartGuard?.when ?? 'off', scope: policy.policy.stateScope });
  approvals.restartGuard = { pending: () => durable.guardPending(), clear: () => durable.clearGuard() };
  // The audit chain (docs/audit.md): opened when the parent shows its head; every decision is a record.
  const trail = new AuditTrail({ nsm, policyHash: opts.policyHash ?? new Uint8Array(Buffer.from(policy.hash, 'hex')) });
  const recorded: Recorded = (kind, keyId, principal = 'host', resultDigest) => [trail.append({ kind, decision: 'done', principal, op: kind, keyId, resultDigest: resultDigest ?? null }).bytes];

  /** A keyring adopted (created or unlocked): the workers, the sealed state and the verifier learn of it. */
  const adopted = (k: Keyring, created: boolean) => {
    const shared = k.shareKey();
    pool.setKeyring(k.id, shared);
    durable.attach(shared, k.id, created); // derives the sealing key, wipes `shared`
    // Until the sealed state comes back the enclave cannot know whether it restarted cleanly: behind
    // the restart barrier, no request that may have been signed before this boot is accepted.
    verifier.setRestartBarrier(policy.now() + verifier.maxExpirySeconds);
    log(`keyring ${k.id} unlocked (CMK ${k.record.kmsKeyId})`);
  };
  // Refuses to construct without a pinned CMK: an enclave that would take any CMK could adopt a host-made keyring.
  const slot = new KeyringSlot(nsm, opts.kms, pinnedKeys(opts.kms.allowedKeyArns), adopted);
  const d = new Decisions(policy, approvals, durable, trail, verifier, slot);
  const wireRecord = (k: Keyring): KeyringRecordWire => ({ ...k.record });

  /**
   * The attestation user_data naming the policy in force: the audit binding map of
   * docs/audit.md ({v: 1, auditKey, policyHash}) with auditKey null: used only before the audit
   * log is open (after audit.open, the log's own binding carries the audit key too).
   */
  const policyBinding = (): Uint8Array =>
    encodeCbor(new Map<CborKey, CborValue>([['v', 1], ['auditKey', null], ['policyHash', new Uint8Array(Buffer.from(policy.hash, 'hex'))]]));

  const methods: Record<string, EnclaveMethod> = {
    ...auditMethods(trail),
    ...principalMethods(d),
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
        keyringId: slot.keyring?.id ?? null,
        workers: pool.size,
        credentialsExpire: slot.credentialsExpire,
        policy: { hash: policy.hash, name: policy.policy.name, source: policy.source, stateScope: policy.policy.stateScope },
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
      slot.setCredentials(c);
      return { ok: true };
    },
    // One keyring per enclave life: once one is adopted (created or unlocked), no request
    // of the host's can make the enclave switch to another (docs/kms-policy.md).
    async 'keyring.create'(p) {
      onlyKeys(p, ['kmsKeyId'], 'params');
      const kmsKeyId = asString(p.kmsKeyId, 'kmsKeyId', 2048);
      const k = await slot.create(kmsKeyId, () => trail.log());
      return { record: wireRecord(k), audit: recorded('keyring.create', k.id) };
    },
    async 'keyring.unlock'(p) {
      onlyKeys(p, ['record'], 'params');
      const record = asKeyringRecord(p.record);
      const refused = (e: unknown) => {
        let rec;
        try {
          rec = trail.append({ kind: 'keyring.unlock', decision: 'denied', principal: 'host', op: 'keyring.unlock', keyId: record.keyringId, rule: errorRule(e) });
        } catch {
          // the refusal stands
        }
        return withAuditRecord(e as Error, rec);
      };
      const k = await slot.unlock(record, () => trail.log(), refused);
      // undefined: the adopted keyring's id again (the parent reconnects), no new record.
      if (!k) return { keyringId: record.keyringId, audit: [] };
      return { keyringId: k.id, audit: recorded('keyring.unlock', k.id) };
    },
    async 'keyring.current'(p) {
      onlyKeys(p, [], 'params');
      return { record: slot.keyring ? wireRecord(slot.keyring) : null };
    },
    async 'key.create'(p, ctx) {
      return createKeyDecided(d, nsm, recorded, p, ctx);
    },
    async sign(p, ctx) {
      return signDecided(d, pool, p, ctx);
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
  };

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
      slot.close();
      await pool.close();
    },
  };
}
