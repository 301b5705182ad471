/**
 * Principal request signing and the approval helpers of enclave-signer/client,
 * checked by the enclave's own verifier and approval book (enclave/auth/,
 * run by the stand-in signer in ./signer-test-helpers.ts): every envelope the
 * client sends verifies as the principal, an edited request does not, retries
 * re-sign with a fresh request id, and AUTH_BEFORE_RESTART is re-signed once.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { testPrincipals } from '../enclave/auth/test-helpers.js';
import type { PrincipalRegistry } from '../enclave/auth/principals.js';
import type { PrincipalKey } from '../common/auth/client-signer.js';
import { createSignerClient, type SignerClient } from './client.js';
import { EnclaveSigner } from './ethers.js';
import { enclaveAccount } from './viem.js';
import { ApprovalRequiredError, ApprovalTimeoutError, EnclaveSignerRpcError } from './errors.js';
import { POLICY_HASH, standInSigner, type StandIn, type StandInHooks } from './signer-test-helpers.js';

let keys: Record<'backend' | 'alice' | 'bob' | 'carol' | 'outsider', PrincipalKey>;
let registry: PrincipalRegistry;
beforeAll(() => {
  ({ keys, registry } = testPrincipals());
});

const pem = (k: PrincipalKey) => k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const TX = { from: `0x${'11'.repeat(20)}`, to: `0x${'22'.repeat(20)}`, value: '0xde0b6b3a7640000', nonce: '0x0', gas: '0x5208', chainId: '0x1' };

let stand: StandIn | undefined;
const clients: SignerClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await stand?.close();
  stand = undefined;
});
async function setup(hooks: StandInHooks = {}): Promise<StandIn> {
  stand = await standInSigner(registry, hooks);
  return stand;
}
function client(o: Partial<Parameters<typeof createSignerClient>[0]> = {}): SignerClient {
  const c = createSignerClient({ socket: stand!.socket, ...o } as Parameters<typeof createSignerClient>[0]);
  clients.push(c);
  return c;
}

describe('principal request signing', () => {
  it('an Ed25519 PEM key: every request carries a fresh signer_auth that the enclave verifier accepts as the principal; the audience is read from signer_status once', async () => {
    const s = await setup();
    const c = client({ principal: { name: 'backend', key: pem(keys.backend) } });
    expect(await c.personalSign(`0x${'11'.repeat(20)}`, '0x6869')).toEqual({ principal: 'backend' });
    expect(await c.request('signer_listKeys', {})).toEqual({ principal: 'backend' });
    expect(await c.policyHash()).toBe(POLICY_HASH);
    const status = s.seen.filter((b) => b.method === 'signer_status');
    expect(status).toHaveLength(1);
    expect(status[0]!.signer_auth).toBeUndefined();
    const signed = s.seen.filter((b) => b.method !== 'signer_status');
    expect(signed.every((b) => b.signer_auth?.principal === 'backend')).toBe(true);
    expect(new Set(signed.map((b) => b.signer_auth!.requestId)).size).toBe(signed.length);
  });

  it('an ECDSA P-256 KeyObject with a pinned policyHash (0x, upper case): no signer_status lookup', async () => {
    const s = await setup();
    const c = client({ principal: { name: 'alice', key: keys.alice.privateKey }, policyHash: `0x${POLICY_HASH.toUpperCase()}` });
    // alice authenticates; the stand-in's rule then denies her messages (4001, not 4100).
    const e = await c.personalSign(`0x${'11'.repeat(20)}`, '0x6869').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EnclaveSignerRpcError);
    expect(e).toMatchObject({ code: 4001, rule: 'backend-messages' });
    expect(s.seen.map((b) => b.method)).toEqual(['personal_sign']);
  });

  it('unsigned (no principal), the same request is the host: denied 4001 with data.rule', async () => {
    await setup();
    const e = await client().personalSign(`0x${'11'.repeat(20)}`, '0x6869').catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 4001, data: { code: 'POLICY_DENIED', rule: 'backend-messages' } });
  });

  it('a host that edits the params after the client signed them: 4100 AUTH_BAD_SIGNATURE, as EnclaveSignerRpcError with data.code', async () => {
    await setup({ mutate: (b) => void ((b.params as string[])[0] = '0xff') });
    const e = await client({ principal: { name: 'backend', key: pem(keys.backend) } })
      .personalSign(`0x${'11'.repeat(20)}`, '0x6869')
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EnclaveSignerRpcError);
    expect(e).toMatchObject({ code: 4100, data: { code: 'AUTH_BAD_SIGNATURE' }, method: 'personal_sign' });
  });

  it('a retried read is re-signed with a new request id (a resent signer_auth would be AUTH_REPLAYED)', async () => {
    const s = await setup({ drop: { method: 'signer_listKeys', n: 1 } });
    const c = client({ principal: { name: 'backend', key: pem(keys.backend) }, policyHash: POLICY_HASH });
    expect(await c.listKeys()).toEqual({ principal: 'backend' });
    const tries = s.seen.filter((b) => b.method === 'signer_listKeys');
    expect(tries).toHaveLength(2);
    expect(tries[0]!.id).toBe(tries[1]!.id);
    expect(tries[0]!.signer_auth!.requestId).not.toBe(tries[1]!.signer_auth!.requestId);
  });

  it('AUTH_BEFORE_RESTART: re-signed once with expiresAt = expiresAfter + 1 and a new request id, then accepted', async () => {
    const barrier = Math.floor(Date.now() / 1000) + 200;
    const s = await setup({ restartBarrier: barrier });
    const c = client({ principal: { name: 'backend', key: pem(keys.backend) }, policyHash: POLICY_HASH });
    expect(await c.personalSign(`0x${'11'.repeat(20)}`, '0x6869')).toEqual({ principal: 'backend' });
    const tries = s.seen.filter((b) => b.method === 'personal_sign');
    expect(tries).toHaveLength(2);
    expect(tries[0]!.signer_auth!.expiresAt).toBeLessThanOrEqual(barrier);
    expect(tries[1]!.signer_auth!.expiresAt).toBe(barrier + 1);
    expect(tries[1]!.signer_auth!.requestId).not.toBe(tries[0]!.signer_auth!.requestId);
  });

  it('AUTH_BEFORE_RESTART twice: gives up after the one re-sign, with the refusal', async () => {
    const s = await setup({ forge: { method: 'personal_sign', error: { code: 4100, message: 'restart', data: { code: 'AUTH_BEFORE_RESTART', expiresAfter: Math.floor(Date.now() / 1000) + 100 } } }, restartBarrier: Math.floor(Date.now() / 1000) + 250 });
    const e = await client({ principal: { name: 'backend', key: pem(keys.backend) }, policyHash: POLICY_HASH })
      .personalSign(`0x${'11'.repeat(20)}`, '0x6869')
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 4100, data: { code: 'AUTH_BEFORE_RESTART' } });
    expect(s.seen.filter((b) => b.method === 'personal_sign')).toHaveLength(2);
  });

  it('the viem and ethers adapters take principal and policyHash and sign every call as the principal', async () => {
    const s = await setup();
    const address = `0x${'11'.repeat(20)}` as const;
    const principal = { name: 'backend', key: pem(keys.backend) };
    // The stand-in answers { principal } instead of a signature: the adapters then refuse the answer; what matters is what was sent.
    await enclaveAccount({ socket: s.socket, address, principal, policyHash: POLICY_HASH }).signMessage({ message: 'hi' }).catch(() => undefined);
    await new EnclaveSigner({ socket: s.socket, address, principal, policyHash: POLICY_HASH }).signMessage('hi').catch(() => undefined);
    const sent = s.seen.filter((b) => b.method === 'personal_sign');
    expect(sent).toHaveLength(2);
    expect(sent.map((b) => b.signer_auth?.principal)).toEqual(['backend', 'backend']);
  });

  it('misconfigured principals are refused when the client is built, without key material in the message', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const bad = [
      { name: 'host', key: pem(keys.backend) },
      { name: 'a b', key: pem(keys.backend) },
      { name: 'backend', key: rsa },
      { name: 'backend', key: generateKeyPairSync('ed25519').publicKey },
      { name: 'backend', key: 'not a key' },
    ];
    for (const principal of bad) {
      let msg = '';
      try {
        createSignerClient({ socket: '/nonexistent', principal });
      } catch (e) {
        expect(e).toBeInstanceOf(TypeError);
        msg = (e as Error).message;
      }
      expect(msg).toMatch(/principal/);
      expect(msg).not.toMatch(/BEGIN|PRIVATE/);
    }
    expect(() => createSignerClient({ socket: '/x', principal: { name: 'backend', key: pem(keys.backend) }, policyHash: 'abc' })).toThrow(/policyHash/);
  });
});

describe('approval helpers (2 of alice, bob, carol)', () => {
  async function pending(c: SignerClient): Promise<ApprovalRequiredError> {
    const e = await c.signTransaction(TX).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApprovalRequiredError);
    return e as ApprovalRequiredError;
  }

  it('-32010 is an ApprovalRequiredError; approve as alice and bob; waitForApproval sees approved; the identical request then signs', async () => {
    await setup();
    const backend = client({ principal: { name: 'backend', key: pem(keys.backend) } });
    const e = await pending(backend);
    expect(e).toMatchObject({ code: -32010, rule: 'treasury', threshold: 2, approvers: ['alice', 'bob', 'carol'], requestDigest: expect.stringMatching(/^[0-9a-f]{64}$/), expiresAt: expect.any(Number) });
    const approvers = client();
    expect(await approvers.getApproval(e.approvalId)).toMatchObject({ status: 'pending', requester: 'backend', request: { method: 'eth_signTransaction' }, intent: { kind: 'test' } });
    expect(await approvers.approve(e.approvalId, { name: 'alice', key: keys.alice.privateKey })).toMatchObject({ status: 'pending', approvedBy: ['alice'] });
    await expect(approvers.waitForApproval(e.approvalId, { pollMs: 10, timeoutMs: 50 })).rejects.toBeInstanceOf(ApprovalTimeoutError);
    const waiting = approvers.waitForApproval(e.approvalId, { pollMs: 10 });
    expect(await approvers.approve(e.approvalId, { name: 'bob', key: pem(keys.bob) })).toMatchObject({ status: 'approved', approvedBy: ['alice', 'bob'] });
    expect((await waiting).status).toBe('approved');
    expect(await backend.signTransaction(TX)).toEqual({ principal: 'backend', approvalId: e.approvalId });
    expect((await approvers.listApprovals()).map((v) => [v.approvalId, v.status])).toEqual([[e.approvalId, 'consumed']]);
  });

  it('reject vetoes; the requester cannot approve its own request (APPROVAL_SELF, -32011)', async () => {
    await setup();
    const backend = client({ principal: { name: 'backend', key: pem(keys.backend) } });
    const e = await pending(backend);
    const self = await backend.approve(e.approvalId, { name: 'backend', key: pem(keys.backend) }).catch((x: unknown) => x);
    expect(self).toMatchObject({ code: -32011, data: { code: 'APPROVAL_SELF', approvalId: e.approvalId } });
    expect(await backend.reject(e.approvalId, { name: 'carol', key: keys.carol.privateKey })).toMatchObject({ status: 'rejected', rejectedBy: 'carol' });
    expect((await backend.waitForApproval(e.approvalId, { pollMs: 10 })).status).toBe('rejected');
    const late = await backend.approve(e.approvalId, { name: 'alice', key: keys.alice.privateKey }).catch((x: unknown) => x);
    expect(late).toMatchObject({ data: { code: 'APPROVAL_REJECTED' } });
  });

  it('waitForApproval stops on abort', async () => {
    await setup();
    const e = await pending(client());
    const ac = new AbortController();
    const w = client().waitForApproval(e.approvalId, { pollMs: 20, signal: ac.signal });
    ac.abort(new Error('stop'));
    await expect(w).rejects.toThrow('stop');
  });
});
