/**
 * The enclave's request handler without KMS: validation of every request,
 * the policy point (deny, fail closed), the audit gate, attestation with the
 * caller's nonce. Uses the real worker pool and the simulated NSM.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuditError } from '../common/audit/errors.js';
import { AuditTrail } from './audit/trail.js';
import { cborToJson, jsonToCbor } from '../common/cbor-json.js';
import { parseRecord } from '../common/audit/record.js';
import { verifyMessage } from 'viem';
import { verifyAttestation } from '../attestation/verify.js';
import { createDevCa, type DevCa } from '../dev/ca/index.js';
import { createSimulatedNsm } from './nsm/simulated.js';
import { devPolicy } from './policy/dev-policy.js';
import { compilePolicy } from './policy/document.js';
import { createPolicyGate, type PolicyGate } from './policy/gate.js';

const devGate = (denyOps: PolicyOp[] = []) => createPolicyGate(devPolicy(), { source: 'dev-default', denyOps });
/** The dev gate, with a hook that sees every intent the engine is asked about. */
const spyGate = (hook: (intent: Intent) => void): PolicyGate => {
  const g = devGate();
  return { ...g, authorize: (intent, principal, approvals) => (hook(intent), g.authorize(intent, principal, approvals)) };
};
import type { Intent, PolicyOp } from './policy/intent.js';
import { wrapKey } from './kms/wrapped-key.js';
import { createEnclaveService, type EnclaveService } from './service.js';
import { addressFromPrivateKey } from './signers/index.js';
import { createWorkerPool, type WorkerPool } from './worker-pool.js';
import { requestContext as ctxOf } from '../common/bridge/test-helpers.js';
import type { BridgeRequestContext } from '../common/bridge/index.js';
import { CancellationSource } from '../common/cancellation.js';

const PINNED = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000001';
let ca: DevCa;
const services: EnclaveService[] = [];

/** A service whose worker holds a keyring (as after keyring.unlock) and one wrapped key. */
function service(policy: PolicyGate, pool: WorkerPool = createWorkerPool(1)): EnclaveService {
  pool.setKeyring(KEYRING_ID, ringKey);
  const s = createEnclaveService({
    nsm: createSimulatedNsm({ ca }),
    pool,
    policy,
    kms: { region: 'us-east-1', dial: () => Promise.reject(new Error('no KMS in this test')), allowedKeyArns: [PINNED] },
  });
  services.push(s);
  // As the parent's boot does: the audit log opens before any decision (docs/audit.md).
  opened.set(s, s.handler('audit.open', jsonToCbor({}), ctxOf(0)));
  return s;
}

const opened = new WeakMap<EnclaveService, Promise<unknown>>();

async function call(s: EnclaveService, method: string, params: unknown) {
  await opened.get(s);
  return cborToJson(await s.handler(method, jsonToCbor(params), ctxOf(1))) as Record<string, unknown>;
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a failure');
}

const KEYRING_ID = randomUUID();
const ringKey = new Uint8Array(randomBytes(32));
const secret = new Uint8Array(32).fill(7);
const keyId = randomUUID();
const key = {
  keyId,
  kind: 'secp256k1',
  keyringId: KEYRING_ID,
  publicKey: '02' + '11'.repeat(32),
  blob: wrapKey(ringKey, { keyringId: KEYRING_ID, keyId, kind: 'secp256k1' }, secret),
};

beforeAll(() => {
  ca = createDevCa();
});
afterAll(async () => {
  for (const s of services) await s.close();
});

describe('enclave service', () => {
  it('attests with the caller nonce', async () => {
    const s = service(devGate());
    const nonce = new Uint8Array(32).fill(5);
    const { document } = await call(s, 'attest', { nonce });
    const r = verifyAttestation(document as Uint8Array, { root: ca.trustRoot, expectedNonce: nonce });
    expect(r.checks).toContain('nonce');
  });

  it('refuses unknown methods and malformed params, naming the field', async () => {
    const s = service(devGate());
    expect((await failure(call(s, 'exportKey', {}))).code).toBe('METHOD_NOT_FOUND');
    expect((await failure(call(s, '__proto__', {}))).code).toBe('METHOD_NOT_FOUND');
    expect((await failure(call(s, 'attest', { nonce: new Uint8Array(4) }))).message).toMatch(/nonce/);
    expect((await failure(call(s, 'attest', { nonce: new Uint8Array(32), extra: 1 }))).message).toMatch(/extra/);
    expect((await failure(call(s, 'key.create', { kind: 'rsa' }))).message).toMatch(/kind/);
    expect((await failure(call(s, 'sign', { op: 'eth_exportKey', key, request: {} }))).message).toMatch(/op/);
    expect((await failure(call(s, 'sign', { op: 'personal_sign', key: { ...key, blob: 'x' }, request: {} }))).message).toMatch(/key\.blob/);
    expect((await failure(call(s, 'credentials.set', { accessKeyId: 'a' }))).message).toMatch(/secretAccessKey/);
  });

  it('a policy denial stops the request before anything is signed', async () => {
    const s = service(devGate(['personal_sign']));
    const e = await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }));
    expect(e.code).toBe('POLICY_DENIED');
    expect(e.message).toMatch(/^denied/);
  });

  it('deny by default: a policy with no matching rule refuses, naming no rule', async () => {
    const s = service(createPolicyGate(compilePolicy({ policyVersion: 1, name: 'nothing', rules: [] }), { source: 'file' }));
    const e = await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }));
    expect(e.code).toBe('POLICY_DENIED');
    expect(e.message).toMatch(/^denied: no rule allows/);
  });

  it('the engine decides on the intent the worker parsed: a deny rule refuses with data.rule, an allowed request signs and counts in its window', async () => {
    const policy = compilePolicy({
      policyVersion: 1,
      name: 'messages',
      rules: [
        { id: 'no-secrets', effect: 'deny', ops: ['personal_sign'], keys: [keyId.replace(/./, (c) => (c === '0' ? '1' : '0'))] },
        { id: 'hi-only', effect: 'allow', ops: ['personal_sign'], window: { seconds: 3600, maxCount: 1 } },
      ],
    });
    const gate = createPolicyGate(policy, { source: 'file' });
    const s = service(gate);
    const out = await call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } });
    expect(out.signer).toMatchObject({ keyId });
    // The window allowed one signature: the second is refused by that rule, and nothing counted the refusal.
    const e = (await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }))) as { code: string; message: string; wireData?: { rule: string | null } };
    expect(e.code).toBe('POLICY_DENIED');
    expect(e.wireData).toEqual({ rule: 'hi-only' });
    expect(gate.windows().rules['hi-only']?.[keyId]).toHaveLength(1);
    // A request the signer would refuse never reaches a decision.
    expect((await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 7 } }))).code).toBe('SIGN_INVALID_PARAMS');
    expect((await call(s, 'status', {})).policy).toEqual({ hash: gate.hash, name: 'messages', source: 'file', stateScope: 'instance' });
  });

  it('a deny rule names itself in data.rule', async () => {
    const gate = createPolicyGate(compilePolicy({ policyVersion: 1, name: 'x', rules: [{ id: 'no-messages', effect: 'deny', ops: ['personal_sign'] }, { id: 'all', effect: 'allow' }] }), { source: 'file' });
    const e = (await failure(call(service(gate), 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }))) as { code: string; message: string; wireData?: unknown };
    expect(e).toMatchObject({ code: 'POLICY_DENIED', wireData: { rule: 'no-messages' } });
    expect(e.message).toMatch(/^denied by rule no-messages/);
  });

  it('without an unlocked keyring nothing signs and no key can be created', async () => {
    const pool = createWorkerPool(1);
    const s = createEnclaveService({ nsm: createSimulatedNsm({ ca }), pool, policy: devGate(), kms: { region: 'us-east-1', dial: () => Promise.reject(new Error('no KMS')), allowedKeyArns: [PINNED] } });
    services.push(s);
    expect((await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }))).code).toBe('AUDIT_NOT_OPEN');
    await call(s, 'audit.open', {});
    expect((await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }))).code).toBe('KEYRING_LOCKED');
    expect((await failure(call(s, 'key.create', { kind: 'secp256k1' }))).code).toBe('KEYRING_LOCKED');
    expect((await failure(call(s, 'keyring.create', { kmsKeyId: 'k' }))).code).toBe('KMS_NO_CREDENTIALS');
  });

  it('reports its status', async () => {
    const s = service(devGate());
    expect(await call(s, 'status', {})).toMatchObject({ nsm: 'simulated', keyringId: null, workers: 1 });
  });

  it('finding 4: the policy sees the key id bound by the blob and the intent parsed in the worker, never the host\'s publicKey/address; the answer names the real signer', async () => {
    const seen: Intent[] = [];
    const s = service(spyGate((i) => seen.push(i)));
    const lying = { ...key, publicKey: '03' + '22'.repeat(32), address: '0x000000000000000000000000000000000000dEaD' };
    const out = await call(s, 'sign', { op: 'personal_sign', key: lying, request: { message: 'hi' } });
    const real = addressFromPrivateKey(secret);
    expect(seen).toEqual([{ keyId, op: 'personal_sign', message: { length: 2, hex: '0x6869', text: 'hi' } }]);
    expect(out.signer).toMatchObject({ keyId, address: real });
    expect(await verifyMessage({ address: real, message: 'hi', signature: (out.result as { signature: `0x${string}` }).signature })).toBe(true);
  });

  it('finding 7: key ids that are not lowercase UUIDs are refused, naming the field', async () => {
    const s = service(devGate());
    for (const bad of ['k1', `${keyId} decision=allow`, keyId.toUpperCase(), `${keyId}\naudit op=x`, '']) {
      const e = await failure(call(s, 'sign', { op: 'personal_sign', key: { ...key, keyId: bad }, request: { message: 'hi' } }));
      expect(e.code).toBe('INVALID_PARAMS');
      expect(e.message).toMatch(/^key\.keyId: must be a key id/);
    }
    expect((await failure(call(s, 'sign', { op: 'personal_sign', key: { ...key, keyringId: 'kr"x' }, request: { message: 'hi' } }))).message).toMatch(/^key\.keyringId/);
  });

  it('finding 7: "allowed" is recorded only after the blob authenticated; a blob that does not open is recorded denied', async () => {
    const s = service(devGate());
    const other = randomUUID(); // the blob is bound to keyId, not to this id
    const e = await failure(call(s, 'sign', { op: 'personal_sign', key: { ...key, keyId: other }, request: { message: 'hi' } }));
    expect(e.code).toBe('WRAPPED_KEY_INVALID');
    expect(await signRecords(s)).toEqual([{ decision: 'denied', keyId: other, rule: 'error:WRAPPED_KEY_INVALID' }]);
    await call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } });
    expect((await signRecords(s))[1]).toMatchObject({ decision: 'allowed', keyId });
  });

  it('finding 5: a cancelled or expired request never signs and is never recorded "allowed"', async () => {
    const s = service(devGate());
    const params = jsonToCbor({ op: 'personal_sign', key, request: { message: 'hi' } });
    await opened.get(s);
    const aborted = await failure(s.handler('sign', params, ctxOf(1, AbortSignal.abort())));
    expect(aborted.code).toBe('JOB_CANCELLED');
    const expired = await failure(s.handler('sign', params, ctxOf(2, new AbortController().signal, Date.now() - 1)));
    expect(expired.code).toBe('JOB_DEADLINE_EXCEEDED');
    expect((await signRecords(s)).map((r) => r.decision)).not.toContain('allowed');
    // Cancelled while the policy decides: the unwrapped key is dropped, nothing is signed.
    const ac = new AbortController();
    const s2 = service(spyGate(() => ac.abort()));
    await opened.get(s2);
    const mid = await failure(s2.handler('sign', params, ctxOf(3, ac.signal)));
    expect(mid.code).toBe('JOB_CANCELLED');
    expect((await signRecords(s2)).map((r) => r.decision)).not.toContain('allowed');
  });

  it('signing never makes the AbortSignal the bridge creates on demand; a cancellation still stops a request', async () => {
    const s = service(devGate());
    await opened.get(s);
    const params = jsonToCbor({ op: 'personal_sign', key, request: { message: 'hi' } });
    let made = 0;
    // The source as the bridge hands it over, counting every read of its on-demand AbortSignal.
    const ctx = (id: number, source: CancellationSource): BridgeRequestContext => ({
      cancellation: {
        get aborted() {
          return source.aborted;
        },
        get reason() {
          return source.reason;
        },
        onAbort: (fn) => source.onAbort(fn),
        get signal() {
          made++;
          return source.signal;
        },
      },
      id,
    });
    const signed = cborToJson(await s.handler('sign', params, ctx(1, new CancellationSource()))) as { result: { signature: `0x${string}` } };
    expect(await verifyMessage({ address: addressFromPrivateKey(secret), message: 'hi', signature: signed.result.signature })).toBe(true);
    const cancelled = new CancellationSource();
    cancelled.abort(new Error('the parent cancelled'));
    expect((await failure(s.handler('sign', params, ctx(2, cancelled)))).code).toBe('JOB_CANCELLED');
    expect(made).toBe(0);
  });

  it('a signature whose audit record cannot be written is not released (AUDIT_UNAVAILABLE)', async () => {
    const s = service(devGate());
    await call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } });
    // The one fault injected in this file: the chain refuses the next record (a closed audit key,
    // a record that does not validate). The worker has signed by then; nothing may leave.
    const refuse = vi.spyOn(AuditTrail.prototype, 'signed').mockImplementationOnce(() => {
      throw new AuditError('AUDIT_KEY_CLOSED', 'the audit log is closed: no decision can be recorded');
    });
    const e = await failure(call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }));
    refuse.mockRestore();
    expect(e.code).toBe('AUDIT_UNAVAILABLE');
    expect(e.message).toMatch(/audit record could not be written, so the signature is not released/);
    expect(JSON.stringify(e)).not.toMatch(/0x[0-9a-f]{130}/);
    // Nothing stays held: the next request signs.
    expect((await call(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } })).result).toMatchObject({ signature: expect.stringMatching(/^0x[0-9a-f]{130}$/) });
  });
});

/** The sign records of a service's chain so far: decision, key id and rule. */
async function signRecords(s: EnclaveService): Promise<Array<{ decision: string; keyId: string | null; rule: string | null }>> {
  const out = (await s.handler('audit.records', jsonToCbor({ fromSeq: 0 }), ctxOf(9))) as Map<string, unknown>;
  return (out.get('records') as Uint8Array[])
    .map((bytes) => parseRecord(bytes).body)
    .filter((b) => b.kind === 'sign')
    .map((b) => ({ decision: b.decision, keyId: b.keyId, rule: b.rule }));
}
