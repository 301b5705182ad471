/**
 * Hostile host vs the enclave's policy engine (issue 9, the wired part). The host owns the
 * bridge: these tests call the enclave API handler exactly as a host process would, with
 * whatever params it likes. What they show: the enclave, not the host, decides what is signed,
 * under a policy the host cannot change, with windows the host cannot overshoot.
 *
 * Not covered yet (not wired): signed principals, sealed counters across restarts —
 * see docs/policy.md "Wiring status".
 *
 * Twice: with every job taking the pool's two steps, and with the pool as the enclave runs it
 * (inline when idle, jobs on a known key decided ahead: enclave/worker-pool.ts), where from the
 * second request on a key the decision is taken before a worker sees the job.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cborToJson, jsonToCbor } from '../../common/cbor-json.js';
import { toWireError } from '../../common/bridge/peer.js';
import { parseRecord } from '../../common/audit/record.js';
import { createDevCa, type DevCa } from '../../dev/ca/index.js';
import { wrapKey } from '../../enclave/kms/wrapped-key.js';
import { createSimulatedNsm } from '../../enclave/nsm/simulated.js';
import { compilePolicy } from '../../enclave/policy/document.js';
import { createPolicyGate, type PolicyGate } from '../../enclave/policy/gate.js';
import { createEnclaveService, type EnclaveService } from '../../enclave/service.js';
import { createWorkerPool, type WorkerPoolOptions } from '../../enclave/worker-pool.js';
import { watching } from '../../enclave/worker-test-helpers.js';
import { signApproval, signMessage } from '../../common/auth/client-signer.js';
import { approvalMessageV1, requestDigest, toBase64Url } from '../../common/auth/request.js';
import { testPrincipals } from '../../enclave/auth/test-helpers.js';
import { createApprovalsGate } from '../../enclave/policy/approvals-gate.js';
import { createDurableState } from '../../enclave/policy/durable.js';
import { requestContext } from '../../common/bridge/test-helpers.js';

const PINNED = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000001';
const KEYRING_ID = randomUUID();
const ringKey = new Uint8Array(randomBytes(32));
const keyId = randomUUID();
const key = { keyId, kind: 'secp256k1', keyringId: KEYRING_ID, publicKey: '02' + '11'.repeat(32), blob: wrapKey(ringKey, { keyringId: KEYRING_ID, keyId, kind: 'secp256k1' }, new Uint8Array(32).fill(9)) };
const ALLOWED = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
const BLOCKED = '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc';
const USDC = '0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48';

const POLICY = {
  policyVersion: 1,
  name: 'hostile-host',
  rules: [
    { id: 'blocklist', effect: 'deny', to: [BLOCKED] },
    { id: 'pay-alice', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [ALLOWED], maxValueWei: '1000', window: { seconds: 86400, maxCount: 2 } },
  ],
};

let ca: DevCa;
const services: EnclaveService[] = [];
beforeAll(() => {
  ca = createDevCa();
});
afterAll(async () => {
  for (const s of services) await s.close();
});

function enclave(gate: PolicyGate = createPolicyGate(compilePolicy(POLICY), { source: 'image' })): { s: EnclaveService; gate: PolicyGate } {
  const pool = createWorkerPool(poolOptions);
  pool.setKeyring(KEYRING_ID, ringKey);
  const s = createEnclaveService({ nsm: createSimulatedNsm({ ca }), pool, policy: gate, kms: { region: 'us-east-1', dial: () => Promise.reject(new Error('no KMS')), allowedKeyArns: [PINNED] } });
  services.push(s);
  // As the parent's boot does: the audit log opens first (no decision without it, docs/audit.md).
  opened.set(s, s.handler('audit.open', jsonToCbor({}), requestContext(0)));
  return { s, gate };
}
const opened = new WeakMap<EnclaveService, Promise<unknown>>();
let poolOptions: WorkerPoolOptions = { size: 2 };

const host = async (s: EnclaveService, method: string, params: unknown, signal = new AbortController().signal) => (await opened.get(s), cborToJson(await s.handler(method, jsonToCbor(params), requestContext(1, signal))) as Record<string, unknown>);
const refusal = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a refusal'); }, (e: unknown) => e as { code: string; message: string });
const tx = (to: string, value: number, data?: string) => ({ tx: { type: '0x2', chainId: '0x1', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x1', maxPriorityFeePerGas: '0x1', to, value: `0x${value.toString(16)}`, ...(data ? { data } : {}) } });

describe.each([
  ['every job in two steps', { size: 2 }],
  ['the pool as the enclave runs it (inline, decided ahead)', { size: 2, inline: true, decideAhead: true }],
] as const)('hostile host vs the policy engine, %s', (_how, options: WorkerPoolOptions) => {
  beforeAll(() => {
    poolOptions = options;
  });

  it('finding P1: a host calling the enclave API directly cannot sign to a blocklisted address; the refusal names the rule on the wire', async () => {
    const { s } = enclave();
    const e = await refusal(host(s, 'sign', { op: 'eth_signTransaction', key, request: tx(BLOCKED, 1) }));
    expect(e.code).toBe('POLICY_DENIED');
    // What crosses the bridge to the parent (and becomes JSON-RPC 4001 data.rule).
    // It also carries the refusal's signed audit record, which names the same deciding rule.
    const wire = toWireError(e).data as Map<string, unknown>;
    expect(wire.get('rule')).toBe('blocklist');
    expect([...wire.keys()].sort()).toEqual(['audit', 'rule']);
    expect(parseRecord(wire.get('audit') as Uint8Array).body).toMatchObject({ decision: 'denied', rule: 'blocklist', op: 'eth_signTransaction' });
    // Nor by hiding the recipient in ERC-20 calldata to a token the policy does not name.
    const transfer = '0xa9059cbb' + BLOCKED.slice(2).padStart(64, '0') + '1'.padStart(64, '0');
    expect((await refusal(host(s, 'sign', { op: 'eth_signTransaction', key, request: tx(USDC, 0, transfer) }))).code).toBe('POLICY_DENIED');
    // Nor by another op the policy does not name (deny by default).
    expect((await refusal(host(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' } }))).code).toBe('POLICY_DENIED');
    expect((await refusal(host(s, 'sign', { op: 'signer_signDigest', key, request: { digest: '0x' + '11'.repeat(32) } }))).code).toBe('POLICY_DENIED');
    // The allowed payment still signs.
    expect((await host(s, 'sign', { op: 'eth_signTransaction', key, request: tx(ALLOWED, 5) })).result).toMatchObject({ raw: expect.stringMatching(/^0x02/) });
  });

  it('finding P2: the host cannot change or replace the policy: no enclave method takes one, and the hash it reports is the loaded one', async () => {
    const { s, gate } = enclave();
    expect((await refusal(host(s, 'policy.set', { policy: { policyVersion: 1, name: 'open', rules: [{ id: 'all', effect: 'allow' }] } }))).code).toBe('METHOD_NOT_FOUND');
    expect((await refusal(host(s, 'status', { policy: 'x' }))).code).toBe('INVALID_PARAMS');
    expect((await refusal(host(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' }, policy: {} }))).code).toBe('INVALID_PARAMS');
    expect((await host(s, 'status', {})).policy).toEqual({ hash: gate.hash, name: 'hostile-host', source: 'image', stateScope: 'instance' });
    // Nor where its counters live: shared (fleet) state is for a policy that says so; handed to this one, it is refused.
    const fake = { v: 1, keyringId: 'x', sequence: 99, nonce: 'AAAAAAAAAAAAAAAA', ciphertext: 'AAAAAAAAAAAAAAAAAAAAAA' };
    expect((await refusal(host(s, 'sign', { op: 'personal_sign', key, request: { message: 'hi' }, state: fake }))).code).toBe('SEALED_STATE_SCOPE');
  });

  it('finding P3: concurrent requests cannot overshoot a window, and refused or cancelled ones do not use it up', async () => {
    const { s, gate } = enclave();
    // A cancelled request: nothing signed, nothing counted.
    expect((await refusal(host(s, 'sign', { op: 'eth_signTransaction', key, request: tx(ALLOWED, 1) }, AbortSignal.abort()))).code).toBe('JOB_CANCELLED');
    // Over the value cap: refused, nothing counted.
    expect((await refusal(host(s, 'sign', { op: 'eth_signTransaction', key, request: tx(ALLOWED, 5000) }))).code).toBe('POLICY_DENIED');
    // Five at once against maxCount 2: exactly two sign (decided ahead, in the enclave's pool: the key is known by now).
    const { w, out } = await watching(async (w) => ({ w, out: await Promise.allSettled(Array.from({ length: 5 }, () => host(s, 'sign', { op: 'eth_signTransaction', key, request: tx(ALLOWED, 1) }))) }));
    if (options.decideAhead) {
      // None took the two steps: the allowed ones were decided ahead (or one ran inline), the
      // refused ones never reached a worker.
      expect(w.jobs - w.decidedAhead).toBe(0);
      expect(w.decidedAhead).toBeGreaterThanOrEqual(1);
    } else expect(w.decidedAhead).toBe(0);
    expect(out.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
    const refused = out.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as { code: string; message: string });
    expect(refused.map((e) => e.code)).toEqual(['POLICY_DENIED', 'POLICY_DENIED', 'POLICY_DENIED']);
    expect(refused[0]!.message).toMatch(/pay-alice .*window/);
    // Exactly the two signatures are counted (signatures of the same second share one entry: `n`).
    const entries = gate.windows().rules['pay-alice']?.[keyId] ?? [];
    expect(entries.reduce((n, e) => n + (e.n ?? 1), 0)).toBe(2);
  });

  it('finding P4: key creation passes the policy too', async () => {
    const { s } = enclave();
    const e = await refusal(host(s, 'key.create', { kind: 'secp256k1' }));
    expect(e.code).toBe('POLICY_DENIED');
    expect(e.message).toMatch(/no rule allows/);
  });

  describe('approvals', () => {
    const TREASURY = '0x90f79bf6eb2c4f870365e785982e1f101e93b906';
    const P = testPrincipals();
    const treasury = () =>
      enclave(createPolicyGate(compilePolicy({ policyVersion: 1, name: 'treasury', principals: P.document, rules: [{ id: 'treasury', effect: 'allow', ops: ['eth_signTransaction'], to: [TREASURY], approvals: { threshold: 2, from: ['alice', 'bob', 'carol'] } }] }), { source: 'image' }));
    const pending = async (s: EnclaveService, value = 1) => {
      const e = (await refusal(host(s, 'sign', { op: 'eth_signTransaction', key, request: tx(TREASURY, value) }))) as unknown as { code: string; wireData: { approvalId: string; requestDigest: string } };
      expect(e.code).toBe('APPROVAL_REQUIRED');
      return e.wireData;
    };
    const approve = (s: EnclaveService, approvalId: string, approver: 'alice' | 'bob' | 'carol' | 'outsider', digest: string, as: string = approver, requester = 'host', rule = 'treasury') =>
      host(s, 'approval.approve', { approvalId, approver: as, ...signApproval({ key: P.keys[approver], approver: as, approvalId, requestDigest: digest, requester, rule, decision: 'approve' }) });

    it("the host shows its own request as another principal's (or under another rule): an approval signed as shown is refused; signed for what is waiting, it counts", async () => {
      const { s } = treasury();
      const a = await pending(s, 1);
      // The approval view comes from the host; this one says the treasury bot asked. The enclave
      // knows "host" did: alice's signature names the requester she was shown, so it does not count.
      expect((await refusal(approve(s, a.approvalId, 'alice', a.requestDigest, 'alice', 'treasury-bot'))).code).toBe('APPROVAL_BAD_SIGNATURE');
      expect((await refusal(approve(s, a.approvalId, 'alice', a.requestDigest, 'alice', 'host', 'small-payments'))).code).toBe('APPROVAL_BAD_SIGNATURE');
      expect((await host(s, 'approval.get', { approvalId: a.approvalId })).approvedBy).toEqual([]);
      expect((await approve(s, a.approvalId, 'alice', a.requestDigest)).approvedBy).toEqual(['alice']);
      // An approver whose tool predates v2 signs the v1 message (no requester, no rule): still accepted.
      const v1 = toBase64Url(signMessage(P.keys.bob, approvalMessageV1({ approvalId: a.approvalId, approver: 'bob', decision: 'approve', requestDigest: a.requestDigest })));
      expect((await host(s, 'approval.approve', { approvalId: a.approvalId, approver: 'bob', signature: v1 })).approvedBy).toEqual(['alice', 'bob']);
    });

    it('finding P5: the host cannot approve: not as "host", not with a key it holds, not by replaying an approval for another id or digest', async () => {
      const { s } = treasury();
      const a = await pending(s, 1);
      const b = await pending(s, 2);
      expect((await refusal(host(s, 'approval.approve', { approvalId: a.approvalId, approver: 'host', signature: 'AAAA' }))).code).toBe('APPROVAL_SELF');
      expect((await refusal(approve(s, a.approvalId, 'outsider', a.requestDigest, 'alice'))).code).toBe('APPROVAL_BAD_SIGNATURE');
      // alice's genuine approval of b, replayed for a: refused.
      const forB = signApproval({ key: P.keys.alice, approver: 'alice', approvalId: b.approvalId, requestDigest: b.requestDigest, requester: 'host', rule: 'treasury', decision: 'approve' });
      expect((await refusal(host(s, 'approval.approve', { approvalId: a.approvalId, approver: 'alice', ...forB }))).code).toBe('APPROVAL_BAD_SIGNATURE');
      expect((await host(s, 'approval.get', { approvalId: a.approvalId })).approvedBy).toEqual([]);
    });

    it('finding P6: an approved request cannot be swapped: the host changing the request gets a new approval, and the approved one signs once', async () => {
      const { s, gate } = treasury();
      const a = await pending(s, 1);
      // The digest is over the request as the enclave signs it, with the policy as audience.
      expect(a.requestDigest).toBe(requestDigest(gate.hash, 'eth_signTransaction', { keyId, request: tx(TREASURY, 1) }));
      await approve(s, a.approvalId, 'alice', a.requestDigest);
      await approve(s, a.approvalId, 'bob', a.requestDigest);
      const swapped = await pending(s, 999);
      expect(swapped.approvalId).not.toBe(a.approvalId);
      // Two identical resubmissions at once: one signature.
      const both = await Promise.allSettled([1, 2].map(() => host(s, 'sign', { op: 'eth_signTransaction', key, request: tx(TREASURY, 1) })));
      expect(both.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      expect((await host(s, 'approval.get', { approvalId: a.approvalId })).status).toBe('consumed');
      expect((await refusal(host(s, 'sign', { op: 'eth_signTransaction', key, request: tx(TREASURY, 1) }))).code).toBe('APPROVAL_REQUIRED');
    });
  });

  describe('sealed state', () => {
    const boot = () => {
      const gate = createPolicyGate(compilePolicy(POLICY), { source: 'image' });
      const d = createDurableState(gate, createApprovalsGate(gate));
      d.attach(new Uint8Array(ringKey), KEYRING_ID, false);
      return { gate, d };
    };
    const intent = { keyId, op: 'eth_signTransaction' as const, tx: { type: 'eip1559' as const, chainId: 1, to: ALLOWED as `0x${string}`, contractCreation: false, value: 1n, nonce: 0, data: '0x' as const, call: { kind: 'none' as const }, fees: { gas: 21000n, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n, maxFeePerBlobGas: null, blobCount: 0, maxFeeWei: 21000n }, delegates: [] } };

    it('finding P7: counters come back from the sealed record after a restart; a host that edits the record or hands back an older one within a life is refused, and nothing signs until resolved', async () => {
      const first = boot();
      first.d.restore(null);
      const t = first.gate.authorize(intent, 'host');
      first.gate.commit(t);
      const older = first.d.seal()!;
      first.gate.commit(first.gate.authorize(intent, 'host'));
      const latest = first.d.seal()!;
      // Restart: a new enclave life restores the latest record — the window is full (maxCount 2).
      const second = boot();
      second.d.restore(latest);
      expect(() => second.gate.authorize(intent, 'host')).toThrow(/window/);
      // Within one life, an older record is a rollback.
      expect(() => second.d.restore(older)).not.toThrow(); // already restored: ignored, answers the current state
      // A record the host edited: refused, and the enclave refuses to sign from then on.
      const third = boot();
      const tampered = { ...latest, ciphertext: latest.ciphertext.slice(0, -2) + (latest.ciphertext.endsWith('A') ? 'BA' : 'AA') };
      expect(() => third.d.restore(tampered)).toThrow(expect.objectContaining({ code: 'SEALED_STATE_TAMPERED' }));
      expect(() => third.d.check()).toThrow(expect.objectContaining({ code: 'SEALED_STATE_TAMPERED' }));
      // A relabelled sequence is refused too (the AAD binds it).
      const fourth = boot();
      expect(() => fourth.d.restore({ ...latest, sequence: latest.sequence + 5 })).toThrow(expect.objectContaining({ code: 'SEALED_STATE_TAMPERED' }));
    });
  });
});
