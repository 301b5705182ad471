/**
 * The appliance for fault-injection tests (docs/faults.md): the dev stack's
 * real parts — KMS emulator (with its dev-only fault knobs), the KMS byte
 * pipe, the enclave as a supervised child process (dist/, `npm run build`),
 * and the real parent with a real SQLite keystore — with the parent in this
 * process so a test can put its keystore where it likes (a tmpfs it fills or
 * remounts read-only) and give it short deadlines.
 *
 * Why not `enclave-signer dev` as a child: the faults need the emulator's
 * knobs and the keystore path, which the CLI does not expose (and must not:
 * they are test hooks). Tests that must kill the parent process itself use
 * `startParentCli` from test/e2e/dev-stack.ts on top of `startInfra`.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signApproval, loadPrincipalKey } from '../../common/auth/client-signer.js';
import { requestDigest } from '../../common/auth/request.js';
import { verifyAuditChain, type AuditVerifyReport } from '../../attestation/audit/verify.js';
import type { TrustRoot } from '../../attestation/types.js';
import { parseRecord } from '../../common/audit/record.js';
import { parseHex, toHex } from '../../common/bytes.js';
import { openKeystore } from '../../parent/keystore.js';
import { DEV_CREDENTIALS, startDevInfra, type DevInfra } from '../../dev/stack.js';
import { startParent, type ParentConfig, type RunningParent } from '../../parent/main.js';
import { waitFor } from '../../parent/test-helpers.js';
import { assertBuilt, rpc } from '../e2e/dev-stack.js';

export { rpc };

export interface FaultStack {
  infra: DevInfra;
  parent: RunningParent;
  socket: string;
  keystore: string;
  logs: string[];
  /** Closes the parent and starts a new one on the same keystore and enclave. */
  restartParent(extra?: Partial<ParentConfig>): Promise<void>;
  close(): Promise<void>;
}

export interface FaultStackOptions {
  /** The dev data directory (CA, emulator state, CMK, run/). */
  dataDir: string;
  /** The keystore file; default <dataDir>/keystore.sqlite. */
  keystore?: string;
  /** Enclave policy file (absolute); default the permissive dev policy. */
  policy?: string;
  /** Parent config overrides (deadlines, …). */
  parent?: Partial<ParentConfig>;
  /** Environment for the enclave child process only (e.g. libfaketime). */
  enclaveEnv?: Record<string, string>;
  /** Runs after the infrastructure is up and before the parent starts (e.g. break the KMS first). */
  beforeParent?: (infra: DevInfra) => void | Promise<void>;
  /** Wait for /readyz (default true). */
  waitReady?: boolean;
}

/** Starts everything but the parent (dev/stack.ts), with `env` for the enclave child only. */
export async function startInfra(dataDir: string, opts: { policy?: string; enclaveEnv?: Record<string, string> } = {}): Promise<{ infra: DevInfra; logs: string[] }> {
  assertBuilt();
  mkdirSync(dataDir, { recursive: true });
  const logs: string[] = [];
  // The supervisor spawns the enclave with this process's environment, synchronously inside
  // startDevInfra; the extra variables are set for that spawn only (a restart gets them no more).
  const saved = new Map<string, string | undefined>();
  for (const [k, v] of Object.entries(opts.enclaveEnv ?? {})) {
    saved.set(k, process.env[k]);
    process.env[k] = v;
  }
  try {
    const infra = await startDevInfra(dataDir, (l) => logs.push(`[dev] ${l}`), opts.policy ? { policy: opts.policy } : {});
    return { infra, logs };
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

export function parentConfig(infra: DevInfra, socket: string, keystore: string, logs: string[], extra: Partial<ParentConfig> = {}): ParentConfig {
  return {
    enclave: infra.enclave.uri,
    socket,
    keystore,
    root: infra.ca.trustRoot,
    manifest: { signed: infra.manifest, trustedKeys: [infra.releasePublicPem] },
    kmsKeyId: infra.cmkArn,
    credentials: { kind: 'static', ...DEV_CREDENTIALS },
    reconnect: { minMs: 50, maxMs: 500 },
    requestTimeoutMs: 5_000,
    log: (l) => logs.push(`[parent] ${l}`),
    ...extra,
  };
}

export async function startFaultStack(o: FaultStackOptions): Promise<FaultStack> {
  const { infra, logs } = await startInfra(o.dataDir, { ...(o.policy ? { policy: o.policy } : {}), ...(o.enclaveEnv ? { enclaveEnv: o.enclaveEnv } : {}) });
  const socket = join(o.dataDir, 'signer.sock');
  const keystore = o.keystore ?? infra.paths.keystore;
  let parent: RunningParent;
  try {
    await o.beforeParent?.(infra);
    parent = await startParent(parentConfig(infra, socket, keystore, logs, o.parent));
    if (o.waitReady ?? true) await waitFor(() => parent.state().ready, 45_000, `parent ready (logs: ${logs.slice(-20).join(' | ')})`);
  } catch (e) {
    await infra.close();
    throw e;
  }
  const stack: FaultStack = {
    infra,
    get parent() {
      return parent;
    },
    socket,
    keystore,
    logs,
    async restartParent(extra) {
      await parent.close();
      parent = await startParent(parentConfig(infra, socket, keystore, logs, { ...o.parent, ...extra }));
    },
    async close() {
      await parent.close().catch(() => {});
      await infra.close();
    },
  };
  return stack;
}

/** Waits until the parent is ready again (after a fault heals). */
export function waitReadyAgain(stack: FaultStack, ms = 45_000): Promise<void> {
  return waitFor(() => stack.parent.state().ready, ms, `parent ready again (logs: ${stack.logs.slice(-20).join(' | ')})`);
}

// ------------------------------------------------------------ a policy with a window and a 2-of-3 approval rule

export const ALLOWED = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
export const BLOCKED = '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc';
export const TREASURY = '0x90f79bf6eb2c4f870365e785982e1f101e93b906';

export interface Approvers {
  policyFile: string;
  keys: Record<'alice' | 'bob' | 'carol', ReturnType<typeof loadPrincipalKey>>;
}

/**
 * Writes a policy (like examples/policy/hot-wallet.json and treasury.json):
 * small transfers to ALLOWED under a count window, TREASURY needs 2 of
 * alice/bob/carol, BLOCKED is denied, and the other signing methods are allowed.
 */
export function writeFaultPolicy(dir: string, o: { windowSeconds: number; maxCount: number; approvalTtlSeconds: number; stateScope?: 'instance' | 'fleet'; createMaxCount?: number }): Approvers {
  const principals: Record<string, { alg: string; publicKey: string }> = {};
  const keys = {} as Approvers['keys'];
  for (const name of ['alice', 'bob', 'carol'] as const) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    principals[name] = { alg: 'ed25519', publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
    keys[name] = loadPrincipalKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  }
  const policy = {
    policyVersion: 1,
    name: 'faults',
    ...(o.stateScope ? { stateScope: o.stateScope } : {}),
    principals,
    rules: [
      { id: 'treasury', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [TREASURY], approvals: { threshold: 2, from: ['alice', 'bob', 'carol'], ttlSeconds: o.approvalTtlSeconds } },
      { id: 'blocklist', effect: 'deny', to: [BLOCKED] },
      { id: 'create', effect: 'allow', ops: ['signer_createKey'], ...(o.createMaxCount ? { window: { seconds: 3600, maxCount: o.createMaxCount } } : {}) },
      { id: 'eth-small', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [ALLOWED], maxValueWei: '1000000000000000000', window: { seconds: o.windowSeconds, maxCount: o.maxCount } },
      { id: 'messages', effect: 'allow', ops: ['personal_sign', 'eth_sign', 'eth_signTypedData_v4', 'signer_signDigest', 'signer_signSchnorr', 'signer_signPsbt', 'signer_deriveKey'] },
      { id: 'delegation', effect: 'allow', ops: ['signer_signAuthorization'], chainIds: [1], delegates: [ALLOWED] },
    ],
  };
  const policyFile = join(dir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify(policy, null, 2));
  return { policyFile, keys };
}

/** Approves (or rejects) `approvalId` as `who`, like `enclave-signer approve` (cli/approve.ts) does. */
export async function approveAs(socket: string, approvers: Approvers, who: 'alice' | 'bob' | 'carol', approvalId: string, reject = false): Promise<{ result?: unknown; error?: { code: number; message: string; data?: Record<string, unknown> } }> {
  const status = await rpc(socket, 'signer_status');
  const audience = String(status.result.policy.hash);
  const shown = await rpc(socket, 'signer_getApproval', { approvalId });
  if (shown.error) return shown;
  const digest = requestDigest(audience, shown.result.request.method, shown.result.request.params);
  if (digest !== shown.result.requestDigest) throw new Error(`approval ${approvalId}: the shown request does not match its digest`);
  const s = signApproval({ key: approvers.keys[who], approver: who, approvalId, requestDigest: digest, requester: shown.result.requester, rule: shown.result.rule, decision: reject ? 'reject' : 'approve', webauthn: false });
  return rpc(socket, reject ? 'signer_reject' : 'signer_approve', { approvalId, approver: who, signature: s.signature });
}

// ------------------------------------------------------------ what the keystore proves afterwards

export interface StoredAudit {
  report: AuditVerifyReport;
  bodies: ReturnType<typeof parseRecord>['body'][];
  /** How many stored `sign` records carry each result digest (hex of SHA-256 of the result). */
  signedResults: Map<string, number>;
}

/** Reads the keystore's audit chain (read-only; one instance's, on a shared keystore) and verifies it against the dev root. */
export async function storedAudit(keystore: string, root: TrustRoot, instanceId?: string): Promise<StoredAudit> {
  const ks = await openKeystore(keystore, { readonly: true, ...(instanceId === undefined ? {} : { instanceId }) });
  const recs: { bytes: Uint8Array; storedSeq: number }[] = [];
  try {
    for await (const r of ks.iterateAuditRecords()) recs.push({ bytes: r.record, storedSeq: r.seq });
  } finally {
    await ks.close();
  }
  const bodies = recs.map((r) => parseRecord(r.bytes).body);
  const signedResults = new Map<string, number>();
  for (const b of bodies) {
    if (b.kind === 'sign' && b.resultDigest) {
      const h = toHex(b.resultDigest);
      signedResults.set(h, (signedResults.get(h) ?? 0) + 1);
    }
  }
  return { report: verifyAuditChain(recs, { root }), bodies, signedResults };
}

/** SHA-256 of a hex result (a signature), as the audit record's resultDigest holds it. */
export function resultDigestHex(result: string): string {
  return createHash('sha256').update(parseHex(result)!).digest('hex');
}

/** The keys the keystore holds (signer_listKeys shape is not needed: ids are enough). */
export async function storedKeyIds(keystore: string): Promise<string[]> {
  const ks = await openKeystore(keystore, { readonly: true });
  try {
    return (await ks.listKeys()).map((k) => k.keyId).sort();
  } finally {
    await ks.close();
  }
}
