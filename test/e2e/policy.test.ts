/**
 * The policy engine in the running appliance (issue 9): `enclave-signer dev --policy FILE`
 * runs a real policy; ethers and viem see 4001 with the deciding rule in data.rule; the
 * policy's hash is in signer_status and in the attestation document's user_data; an invalid
 * policy stops dev before anything starts; without --policy the banner names the permissive
 * dev policy.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonRpcProvider } from 'ethers';
import { createClient, http, parseTransaction, recoverTransactionAddress, walletActions, type Hex } from 'viem';
import { mainnet } from 'viem/chains';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storedRecords } from '../audit-chain.js';
import { decodeCbor } from '../../common/cbor.js';
import { parseAttestation } from '../../attestation/index.js';
import { BIN, REPO, call, rpc, startDevStack, type DevStack } from './dev-stack.js';

const ALLOWED = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
const BLOCKED = '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc';
const TREASURY = '0x90f79bf6eb2c4f870365e785982e1f101e93b906';
const dir = mkdtempSync(join(tmpdir(), 'es-e2e-policy-'));

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile(process.execPath, [BIN, ...args], { cwd: REPO }, (_e, stdout, stderr) => resolve({ code: c.exitCode, stdout, stderr }));
  });
}

/** Three approvers' keys, made with the CLI; the entries go into the policy. */
const principals: Record<string, unknown> = {};
for (const name of ['alice', 'bob', 'carol']) {
  const r = execFileSync(process.execPath, [BIN, 'principal', 'keygen', '--alg', name === 'bob' ? 'ecdsa-p256' : 'ed25519', '--out', join(dir, `${name}.pem`)], { cwd: REPO, encoding: 'utf8' });
  principals[name] = JSON.parse(r.trim());
}

const POLICY = {
  policyVersion: 1,
  name: 'e2e-hot-wallet',
  principals,
  rules: [
    { id: 'treasury', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [TREASURY], approvals: { threshold: 2, from: ['alice', 'bob', 'carol'], ttlSeconds: 3600 } },
    { id: 'blocklist', effect: 'deny', to: [BLOCKED] },
    { id: 'create', effect: 'allow', ops: ['signer_createKey'] },
    { id: 'eth-small', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [ALLOWED], maxValueWei: '1000000000000000000', window: { seconds: 86400, maxCount: 3 } },
  ],
};

const policyFile = join(dir, 'policy.json');
writeFileSync(policyFile, JSON.stringify(POLICY));
let stack: DevStack;
let address: Hex;

beforeAll(async () => {
  stack = await startDevStack({ dataDir: join(dir, 'data'), http: true, args: ['--policy', policyFile] });
  address = (await call(stack.socket, 'signer_createKey', {})).address;
});
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const tx = (to: string, value: bigint) => ({ chainId: 1, type: 2, to, value, nonce: 0, gasLimit: 21000n, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 1n });

describe('dev --policy FILE: the engine decides in the enclave', () => {
  it('signer_status reports the policy hash, and the banner names the file', async () => {
    const s = await call(stack.socket, 'signer_status');
    expect(s.policy).toMatchObject({ name: 'e2e-hot-wallet', source: 'file', hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(stack.output().stderr).toContain(`policy         : ${policyFile}`);
    const hash = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [BIN, 'policy', 'hash', policyFile], { cwd: REPO }, (e, out) => (e ? reject(e) : resolve(out.trim()))),
    );
    expect(hash).toContain(s.policy.hash);
  });

  it('every attestation document the enclave produces binds the policy hash in user_data', async () => {
    const s = await call(stack.socket, 'signer_status');
    const a = await call(stack.socket, 'signer_attest', { nonce: '0x' + '11'.repeat(16) });
    const doc = parseAttestation(Buffer.from(a.document, 'base64')).doc;
    const ud = decodeCbor(doc.userData!) as Map<string, unknown>;
    expect(ud.get('v')).toBe(1);
    expect(Buffer.from(ud.get('policyHash') as Uint8Array).toString('hex')).toBe(s.policy.hash);
  });

  it('ethers: an allowed transfer signs; a blocked recipient is 4001 with data.rule "blocklist"; over the cap is refused by default (data.rule null)', async () => {
    const provider = new JsonRpcProvider(stack.http!, 1, { staticNetwork: true });
    try {
      const signer = await provider.getSigner(address);
      const raw = await signer.signTransaction({ ...tx(ALLOWED, 10n ** 17n), from: address });
      expect(raw).toMatch(/^0x02/);
      const denied = await signer.signTransaction({ ...tx(BLOCKED, 1n), from: address }).catch((e: unknown) => e);
      const err = (denied as { error?: { code: number; message: string; data: { rule: string; code: string } } }).error;
      expect(err).toMatchObject({ code: 4001, data: { code: 'POLICY_DENIED', rule: 'blocklist' } });
      const over = await signer.signTransaction({ ...tx(ALLOWED, 2n * 10n ** 18n), from: address }).catch((e: unknown) => e);
      expect((over as { error?: { code: number; data: { rule: string } } }).error).toMatchObject({ code: 4001, data: { rule: null } });
    } finally {
      provider.destroy();
    }
  });

  it('viem: the same decisions through a wallet client with a JSON-RPC account', async () => {
    // A signer serves no eth_chainId: the chain comes from the caller's config (as in clients.test.ts).
    const client = createClient({ account: address, chain: mainnet, transport: http(stack.http!) })
      .extend(() => ({ getChainId: async () => mainnet.id }))
      .extend(walletActions);
    const base = { account: address, chain: mainnet, gas: 21000n, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 1n, nonce: 0, type: 'eip1559' as const };
    const raw = await client.signTransaction({ ...base, to: ALLOWED, value: 1n });
    expect(await recoverTransactionAddress({ serializedTransaction: raw as never })).toBe(address);
    expect(parseTransaction(raw).to).toBe(ALLOWED);
    const e = (await client.signTransaction({ ...base, to: BLOCKED, value: 1n }).catch((x: unknown) => x)) as { code?: number; cause?: { code?: number; data?: { rule?: string } } };
    const rpcError = e.cause ?? e;
    expect(rpcError).toMatchObject({ code: 4001, data: { rule: 'blocklist', code: 'POLICY_DENIED' } });
  });

  it('what the policy does not name is refused by default (personal_sign: 4001, no rule)', async () => {
    const r = await rpc(stack.socket, 'personal_sign', ['0x6869', address]);
    expect(r.error).toMatchObject({ code: 4001, data: { code: 'POLICY_DENIED', rule: null } });
    expect(r.error!.message).toMatch(/^denied: no rule allows/);
  });
});

describe('quorum approvals through the CLI (2 of alice, bob, carol)', () => {
  it('call → -32010; two approvals with `enclave-signer approve`; the identical request then signs once; a changed request needs its own approval', async () => {
    const req = [{ from: address, to: TREASURY, value: '0x64', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' }];
    const first = await rpc(stack.socket, 'eth_signTransaction', req);
    expect(first.error).toMatchObject({ code: -32010, data: { code: 'APPROVAL_REQUIRED', rule: 'treasury', threshold: 2, approvers: ['alice', 'bob', 'carol'], requestDigest: expect.stringMatching(/^[0-9a-f]{64}$/), expiresAt: expect.any(Number) } });
    const id = first.error!.data!.approvalId as string;
    expect(id).toMatch(/^apr_/);
    // Pending: resubmitting gives the same approval.
    expect((await rpc(stack.socket, 'eth_signTransaction', req)).error?.data?.approvalId).toBe(id);

    // The approver sees the intent decoded inside the enclave.
    const view = await call(stack.socket, 'signer_getApproval', { approvalId: id });
    expect(view).toMatchObject({ status: 'pending', rule: 'treasury', requester: 'host', intent: { op: 'eth_signTransaction', tx: { to: TREASURY, value: '100', chainId: 1 } } });

    // A key that is not alice's cannot approve as alice.
    const forged = await cli(['approve', id, '--socket', stack.socket, '--principal', 'alice', '--key', join(dir, 'carol.pem'), '--json']);
    expect(forged.code).toBe(1);
    expect(forged.stdout + forged.stderr).toMatch(/APPROVAL_BAD_SIGNATURE/);

    const a = await cli(['approve', id, '--socket', stack.socket, '--principal', 'alice', '--key', join(dir, 'alice.pem'), '--json']);
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout).approval).toMatchObject({ status: 'pending', approvedBy: ['alice'] });
    // Repeated approval counts once.
    expect((await cli(['approve', id, '--socket', stack.socket, '--principal', 'alice', '--key', join(dir, 'alice.pem'), '--json'])).code).toBe(0);
    expect((await rpc(stack.socket, 'eth_signTransaction', req)).error?.code).toBe(-32010);
    const b = await cli(['approve', id, '--socket', stack.socket, '--principal', 'bob', '--key', join(dir, 'bob.pem'), '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout).approval).toMatchObject({ status: 'approved', approvedBy: ['alice', 'bob'] });

    // A changed request (other value) is another digest: a new approval.
    const changed = await rpc(stack.socket, 'eth_signTransaction', [{ ...req[0], value: '0x65' }]);
    expect(changed.error).toMatchObject({ code: -32010 });
    expect(changed.error!.data!.approvalId).not.toBe(id);

    // The identical request signs, once.
    const signed = await rpc(stack.socket, 'eth_signTransaction', req);
    expect(signed.error).toBeUndefined();
    expect(parseTransaction(signed.result as Hex).to).toBe(TREASURY);
    expect((await call(stack.socket, 'signer_getApproval', { approvalId: id })).status).toBe('consumed');
    const again = await rpc(stack.socket, 'eth_signTransaction', req);
    expect(again.error).toMatchObject({ code: -32010 });
    expect(again.error!.data!.approvalId).not.toBe(id);
    // One rejection vetoes.
    const veto = await cli(['approve', again.error!.data!.approvalId as string, '--reject', '--socket', stack.socket, '--principal', 'carol', '--key', join(dir, 'carol.pem'), '--json']);
    expect(veto.code, veto.stderr).toBe(0);
    expect((await rpc(stack.socket, 'eth_signTransaction', req)).error).toMatchObject({ code: -32011, data: { code: 'APPROVAL_REJECTED' } });
    expect((await call(stack.socket, 'signer_listApprovals', {})).length).toBeGreaterThanOrEqual(3);

    // Every decision of the flow is on the audit chain the parent stored (docs/audit.md): the policy
    // load, the pending request, alice's and bob's approvals, carol's veto and the signature, with the rule.
    const bodies = storedRecords(join(dir, 'data', 'keystore.sqlite'));
    const kinds = bodies.map((b) => `${b.kind}/${b.decision}${b.principal && b.principal !== 'host' ? `/${b.principal}` : ''}${b.rule ? `/${b.rule}` : ''}`);
    expect(kinds).toContain('policy.load/done');
    expect(kinds).toContain('sign/pending/treasury');
    expect(kinds).toContain('approval/approved/alice/treasury');
    expect(kinds).toContain('approval/approved/bob/treasury');
    expect(kinds).toContain('approval/rejected/carol/treasury');
    expect(kinds).toContain('sign/allowed/treasury');
    const load = bodies.find((b) => b.kind === 'policy.load')!;
    expect(Buffer.from(load.policyHash!).toString('hex')).toBe((await call(stack.socket, 'signer_status', [])).policy.hash);
  });
});

describe('durable limits', () => {
  it('window counters and approvals survive a restart of parent and enclave (sealed, stored by the parent)', async () => {
    const req = [{ from: address, to: ALLOWED, value: '0x1', nonce: '0x5', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' }];
    // ethers and viem signed one each above: this is the third and last of the window.
    expect((await rpc(stack.socket, 'eth_signTransaction', req)).error).toBeUndefined();
    const full = await rpc(stack.socket, 'eth_signTransaction', req);
    expect(full.error).toMatchObject({ code: 4001, data: { rule: 'eth-small' } });
    expect(full.error!.message).toMatch(/window/);
    const approvalsBefore = (await call(stack.socket, 'signer_listApprovals', {})) as { approvalId: string; status: string }[];

    await stack.stop();
    stack = await startDevStack({ dataDir: join(dir, 'data'), http: true, args: ['--policy', policyFile] });

    const after = await rpc(stack.socket, 'eth_signTransaction', req);
    expect(after.error).toMatchObject({ code: 4001, data: { rule: 'eth-small' } });
    const approvalsAfter = (await call(stack.socket, 'signer_listApprovals', {})) as { approvalId: string; status: string }[];
    expect(approvalsAfter.map((a) => [a.approvalId, a.status]).sort()).toEqual(approvalsBefore.map((a) => [a.approvalId, a.status]).sort());
  });
});

describe('dev policy choice', () => {
  it('an invalid --policy stops dev before anything starts, naming the field', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...POLICY, rules: [{ id: 'x', effect: 'allow', to: ['0x1234'] }] }));
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = execFile(process.execPath, [BIN, 'dev', '--data-dir', join(dir, 'bad-data'), '--policy', bad], { cwd: REPO }, (_e, _o, stderr) => resolve({ code: c.exitCode, stderr }));
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/policy .*bad\.json is invalid: rules\[0\]\.to\[0\]/);
  });
});
