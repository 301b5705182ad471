/**
 * The host in the middle of enclave-signer/client's principal signing and
 * approval helpers (issue 12 §3). It carries every signed request and every
 * approval view, answers signer_status, and can forge any refusal. What it
 * must not get: a signed request it can hold and submit later, an approver's
 * signature over a request the approver was not shown, or a request the
 * enclave accepts under a policy hash it lied about.
 *
 * The "enclave" is the stand-in of client/signer-test-helpers.ts, which runs
 * the enclave's own verifier and approval book.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PrincipalKey } from '../../common/auth/client-signer.js';
import { testPrincipals } from '../../enclave/auth/test-helpers.js';
import { PrincipalRegistry } from '../../enclave/auth/principals.js';
import { createSignerClient, type SignerClient } from '../../client/client.js';
import { ApprovalRequiredError, EnclaveSignerRpcError } from '../../client/errors.js';
import { MAX_REQUEST_TTL_SECONDS } from '../../client/principal.js';
import { POLICY_HASH, standInSigner, type StandIn, type StandInHooks } from '../../client/signer-test-helpers.js';

let keys: Record<'backend' | 'alice' | 'bob' | 'carol' | 'outsider', PrincipalKey>;
let registry: PrincipalRegistry;
beforeAll(() => {
  const t = testPrincipals();
  keys = t.keys;
  // backend may open sessions (client/session.ts); the others sign every request.
  registry = new PrincipalRegistry({ ...t.document, backend: { ...t.document.backend!, sessions: { maxSeconds: 600 } } });
});

let stand: StandIn | undefined;
const clients: SignerClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await stand?.close();
  stand = undefined;
});
async function setup(hooks: StandInHooks): Promise<StandIn> {
  stand = await standInSigner(registry, hooks);
  return stand;
}
function client(o: Partial<Parameters<typeof createSignerClient>[0]> = {}): SignerClient {
  const c = createSignerClient({ socket: stand!.socket, ...o } as Parameters<typeof createSignerClient>[0]);
  clients.push(c);
  return c;
}
const backend = () => ({ name: 'backend', key: keys.backend.privateKey });
const TX = { from: `0x${'11'.repeat(20)}`, to: `0x${'22'.repeat(20)}`, value: '0x1', nonce: '0x0', gas: '0x5208', chainId: '0x1' };

describe('hostile host vs the client’s principal signing and approval helpers', () => {
  it('finding 1: a forged AUTH_BEFORE_RESTART naming a far-future barrier does not make the client sign a long-lived request the host could hold and submit later', async () => {
    const far = Math.floor(Date.now() / 1000) + 30 * 86400;
    const s = await setup({ forge: { method: 'personal_sign', error: { code: 4100, message: 'restarted', data: { code: 'AUTH_BEFORE_RESTART', expiresAfter: far } } } });
    const e = await client({ principal: backend(), policyHash: POLICY_HASH })
      .personalSign(`0x${'11'.repeat(20)}`, '0x6869')
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 4100, data: { code: 'AUTH_BEFORE_RESTART' } });
    const sent = s.seen.filter((b) => b.method === 'personal_sign');
    expect(sent).toHaveLength(1);
    const latest = Math.floor(Date.now() / 1000) + MAX_REQUEST_TTL_SECONDS;
    for (const b of sent) expect(b.signer_auth!.expiresAt).toBeLessThanOrEqual(latest);
  });

  it('finding 2: an approval view showing another request than its digest names: approve() refuses (CLIENT_APPROVAL_MISMATCH) and sends nothing to sign', async () => {
    const s = await setup({ lieOnGetApproval: true });
    const pending = (await client({ principal: backend() }).signTransaction(TX).catch((x: unknown) => x)) as ApprovalRequiredError;
    expect(pending).toBeInstanceOf(ApprovalRequiredError);
    const e = await client()
      .approve(pending.approvalId, { name: 'alice', key: keys.alice.privateKey })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EnclaveSignerRpcError);
    expect(e).toMatchObject({ data: { code: 'CLIENT_APPROVAL_MISMATCH' } });
    expect(s.seen.some((b) => b.method === 'signer_approve')).toBe(false);
    expect(s.book.get(pending.approvalId).approvedBy).toEqual([]);
  });

  it('finding 3: a host that lies about the policy hash in signer_status only makes the enclave refuse (4100 AUTH_BAD_SIGNATURE), never accept', async () => {
    await setup({ statusHash: 'd'.repeat(64) });
    const e = await client({ principal: backend() })
      .personalSign(`0x${'11'.repeat(20)}`, '0x6869')
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 4100, data: { code: 'AUTH_BAD_SIGNATURE' } });
  });

  it('finding 4: signer_status lies about the policy hash to an approver: the helper refuses to sign (its recomputed digest differs), the approval gets no vote', async () => {
    const s = await setup({ statusHash: 'd'.repeat(64) });
    const pending = (await client({ principal: backend(), policyHash: POLICY_HASH }).signTransaction(TX).catch((x: unknown) => x)) as ApprovalRequiredError;
    // The view's digest (real audience) does not match a recomputation under the lie: the helper refuses first.
    // (Without that check the enclave would still refuse: the approval would cover another digest.)
    const e = await client()
      .approve(pending.approvalId, { name: 'alice', key: keys.alice.privateKey })
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ data: { code: 'CLIENT_APPROVAL_MISMATCH' } });
    expect(s.book.get(pending.approvalId).approvedBy).toEqual([]);
  });

  it('finding 5: a -32010 answer without the documented data is not an ApprovalRequiredError (nothing to act on)', async () => {
    await setup({ forge: { method: 'eth_signTransaction', error: { code: -32010, message: 'approval required', data: { code: 'APPROVAL_REQUIRED', approvalId: 7 } } } });
    const e = await client().signTransaction(TX).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EnclaveSignerRpcError);
    expect(e).not.toBeInstanceOf(ApprovalRequiredError);
  });

  it('finding 6: a host that forges AUTH_SESSION_UNKNOWN on every request gets one new session per request, then the refusal — no loop of signatures', async () => {
    const s = await setup({ forge: { method: 'personal_sign', error: { code: 4100, message: 'unauthorized', data: { code: 'AUTH_SESSION_UNKNOWN' } }, times: 100 } });
    const c = client({ principal: backend(), policyHash: POLICY_HASH, session: true });
    for (let i = 0; i < 3; i++) {
      await expect(c.personalSign(`0x${'11'.repeat(20)}`, '0x6869')).rejects.toMatchObject({ code: 4100, data: { code: 'AUTH_SESSION_UNKNOWN' } });
    }
    expect(s.seen.filter((b) => b.method === 'personal_sign')).toHaveLength(6);
    // One opening at first, then one per request the host claimed the session was gone for (at most one each).
    expect(s.seen.filter((b) => b.method === 'signer_openSession').length).toBeLessThanOrEqual(4);
  });

  it('finding 7: an opening answer that names another principal is refused by the client (it would MAC as someone else)', async () => {
    await setup({ editOpenAnswer: (a) => (a.principal = 'alice') });
    const e = await client({ principal: backend(), policyHash: POLICY_HASH, session: true })
      .personalSign(`0x${'11'.repeat(20)}`, '0x6869')
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'AUTH_MALFORMED' });
  });

  it('sessions through the stand-in: one signed opening, then MACs the enclave’s verifier accepts; a forged AUTH_SESSION_UNKNOWN makes the client reopen once and succeed', async () => {
    const s = await setup({ forge: { method: 'personal_sign', error: { code: 4100, message: 'unauthorized', data: { code: 'AUTH_SESSION_UNKNOWN' } }, times: 1 } });
    const c = client({ principal: backend(), policyHash: POLICY_HASH, session: true });
    expect(await c.personalSign(`0x${'11'.repeat(20)}`, '0x6869')).toEqual({ principal: 'backend' });
    expect(await c.personalSign(`0x${'11'.repeat(20)}`, '0x6869')).toEqual({ principal: 'backend' });
    expect(s.seen.filter((b) => b.method === 'signer_openSession')).toHaveLength(2);
    for (const b of s.seen.filter((x) => x.method === 'personal_sign')) expect(b.signer_auth).toHaveProperty('mac');
  });
});
