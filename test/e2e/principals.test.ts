/**
 * Signed principals end to end (issue 9 §4): the real parent and enclave of `enclave-signer dev
 * --policy FILE`, principal keys made with `enclave-signer principal keygen`, requests signed by
 * `enclave-signer call` and by the library signer (common/auth/client-signer.ts).
 *
 * What it shows: a request signed as a principal gets what the policy grants that principal,
 * where the same request unsigned (the `host` principal) is refused; a signed request whose
 * params were changed on the way, replayed, expired, or signed with another key is refused with
 * its own AUTH_* code (JSON-RPC 4100); the requester of an approval cannot approve it; records
 * name the principal; after a restart, requests that may predate it are refused and the CLI
 * signs again past the barrier; key creation that needs approvals is routed through them.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storedRecords } from '../audit-chain.js';
import { parseTransaction, recoverMessageAddress, type Hex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPrincipalKey, signRequest } from '../../common/auth/client-signer.js';
import { socketRpc } from '../../cli/socket-rpc.js';
import { BIN, REPO, call, rpc, startDevStack, type DevStack } from './dev-stack.js';

const ALLOWED = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
const TREASURY = '0x90f79bf6eb2c4f870365e785982e1f101e93b906';
const dir = mkdtempSync(join(tmpdir(), 'es-e2e-principals-'));
const pem = (name: string) => join(dir, `${name}.pem`);

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile(process.execPath, [BIN, ...args], { cwd: REPO }, (_e, stdout, stderr) => resolve({ code: c.exitCode, stdout, stderr }));
  });
}

const principals: Record<string, unknown> = {};
for (const [name, alg] of [['backend', 'ed25519'], ['alice', 'ecdsa-p256'], ['bob', 'ed25519'], ['carol', 'ecdsa-p256']] as const) {
  principals[name] = JSON.parse(execFileSync(process.execPath, [BIN, 'principal', 'keygen', '--alg', alg, '--out', pem(name)], { cwd: REPO, encoding: 'utf8' }).trim());
}

const POLICY = {
  policyVersion: 1,
  name: 'e2e-principals',
  principals,
  rules: [
    { id: 'backend-messages', effect: 'allow', ops: ['personal_sign'], principals: ['backend'] },
    { id: 'backend-pay', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [ALLOWED], principals: ['backend'] },
    { id: 'backend-creates', effect: 'allow', ops: ['signer_createKey'], principals: ['backend'] },
    { id: 'host-creates-with-approval', effect: 'allow', ops: ['signer_createKey'], principals: ['host'], approvals: { threshold: 1, from: ['alice', 'bob'] } },
    { id: 'treasury', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [TREASURY], principals: ['alice'], approvals: { threshold: 2, from: ['alice', 'bob', 'carol'] } },
  ],
  // After an unclean restart the first backend payment needs bob's approval (docs/principals.md).
  restartGuard: { when: 'unclean', rules: ['backend-pay'], approvals: { threshold: 1, from: ['bob'] } },
};
const policyFile = join(dir, 'policy.json');
writeFileSync(policyFile, JSON.stringify(POLICY));

let stack: DevStack;
let address: Hex;
let policyHash: string;

const signedCall = (name: string, method: string, params: unknown) => cli(['call', method, JSON.stringify(params), '--socket', stack.socket, '--principal', name, '--key', pem(name), '--json']);
const ok = (r: { code: number | null; stdout: string; stderr: string }) => {
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return JSON.parse(r.stdout).result;
};
const failed = (r: { code: number | null; stdout: string; stderr: string }) => {
  expect(r.code, r.stdout + r.stderr).toBe(1);
  return JSON.parse(r.stdout).error as { code: number; message: string; data?: Record<string, unknown> };
};
/** A raw JSON-RPC request signed by the library signer; `tamper` edits it after signing (the host's move). */
function signedBody(name: string, method: string, params: unknown, o: { ttlSeconds?: number; expiresAt?: number; keyOf?: string } = {}) {
  const key = loadPrincipalKey(readFileSync(pem(o.keyOf ?? name), 'utf8'));
  const { auth } = signRequest({ key, principal: name, audience: policyHash, method, params, ...(o.ttlSeconds !== undefined ? { ttlSeconds: o.ttlSeconds } : {}), ...(o.expiresAt !== undefined ? { expiresAt: o.expiresAt } : {}) });
  return { jsonrpc: '2.0', id: 7, method, params, signer_auth: auth };
}
const send = (body: Record<string, unknown>) => socketRpc(stack.socket, body);
const records = () => storedRecords(join(dir, 'data', 'keystore.sqlite'));

beforeAll(async () => {
  stack = await startDevStack({ dataDir: join(dir, 'data'), args: ['--policy', policyFile] });
  policyHash = (await call(stack.socket, 'signer_status')).policy.hash;
  address = ok(await signedCall('backend', 'signer_createKey', {})).address;
});
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a signed principal gets what the policy grants it; the unauthenticated host does not', () => {
  it('personal_sign signed by backend (enclave-signer call) signs; the same request unsigned is 4001', async () => {
    const params = ['0x68656c6c6f', address];
    const sig = ok(await signedCall('backend', 'personal_sign', params)) as Hex;
    expect((await recoverMessageAddress({ message: 'hello', signature: sig })).toLowerCase()).toBe(address.toLowerCase());
    const unsigned = await rpc(stack.socket, 'personal_sign', params);
    expect(unsigned.error).toMatchObject({ code: 4001, data: { code: 'POLICY_DENIED', rule: null } });
  });

  it('a signed payment is recorded with its principal and deciding rule', async () => {
    const tx = { from: address, to: ALLOWED, value: '0x1', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' };
    const raw = ok(await signedCall('backend', 'eth_signTransaction', [tx])) as Hex;
    expect(parseTransaction(raw).to).toBe(ALLOWED);
    expect((await rpc(stack.socket, 'eth_signTransaction', [tx])).error).toMatchObject({ code: 4001 });
    const bodies = records();
    expect(bodies.some((b) => b.kind === 'sign' && b.decision === 'allowed' && b.principal === 'backend' && b.rule === 'backend-pay')).toBe(true);
    expect(bodies.some((b) => b.kind === 'key.create' && b.principal === 'backend')).toBe(true);
  });

  it('a signed signer_createKey with a requestId creates one key; the identical retry answers the same key', async () => {
    const params = { kind: 'secp256k1', requestId: 'principals-e2e-key-1' };
    const first = ok(await signedCall('backend', 'signer_createKey', params)) as { keyId: string };
    const again = ok(await signedCall('backend', 'signer_createKey', params)) as { keyId: string };
    expect(again.keyId).toBe(first.keyId);
  });

  it('a signed transaction must name its chain: the host cannot fill it in', async () => {
    const tx = { from: address, to: ALLOWED, value: '0x1', nonce: '0x1', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', type: '0x2' };
    const e = failed(await signedCall('backend', 'eth_signTransaction', [tx]));
    expect(e).toMatchObject({ code: -32602, data: { field: 'chainId' } });
  });
});

describe('the host cannot alter, replay or forge a signed request', () => {
  it('params changed after signing: 4100 AUTH_BAD_SIGNATURE, nothing signed', async () => {
    const body = signedBody('backend', 'personal_sign', ['0x01', address]);
    const altered = { ...body, params: ['0x02', address] };
    const r = await send(altered);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatchObject({ code: 4100, data: { code: 'AUTH_BAD_SIGNATURE' } });
    const denied = records().filter((b) => b.decision === 'denied' && b.rule === 'error:AUTH_BAD_SIGNATURE');
    expect(denied.length).toBeGreaterThan(0);
  });

  it('the same signed request twice: the second is AUTH_REPLAYED', async () => {
    const body = signedBody('backend', 'personal_sign', ['0x03', address]);
    expect((await send(body)).ok).toBe(true);
    const again = await send(body);
    expect(!again.ok && again.error).toMatchObject({ code: 4100, data: { code: 'AUTH_REPLAYED' } });
  });

  it('expired, too far ahead, unknown principal, or another key: each its own code', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await send(signedBody('backend', 'personal_sign', ['0x04', address], { expiresAt: now - 5 }));
    expect(!expired.ok && expired.error.data).toMatchObject({ code: 'AUTH_EXPIRED' });
    const far = await send(signedBody('backend', 'personal_sign', ['0x04', address], { expiresAt: now + 3600 }));
    expect(!far.ok && far.error.data).toMatchObject({ code: 'AUTH_EXPIRY_TOO_FAR' });
    const forged = await send(signedBody('backend', 'personal_sign', ['0x04', address], { keyOf: 'carol' }));
    expect(!forged.ok && forged.error.data).toMatchObject({ code: 'AUTH_BAD_SIGNATURE' });
    const unknown = await send({ ...signedBody('backend', 'personal_sign', ['0x04', address]), signer_auth: { ...signedBody('backend', 'personal_sign', ['0x04', address]).signer_auth, principal: 'mallory' } });
    expect(!unknown.ok && unknown.error.data).toMatchObject({ code: 'AUTH_UNKNOWN_PRINCIPAL' });
  });
});

describe('approvals with principals', () => {
  it('alice requests a treasury payment; alice cannot approve it; bob and carol do; alice resubmits (freshly signed) and it signs once', async () => {
    const tx = { from: address, to: TREASURY, value: '0x64', nonce: '0x7', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' };
    const pending = failed(await signedCall('alice', 'eth_signTransaction', [tx]));
    expect(pending).toMatchObject({ code: -32010, data: { code: 'APPROVAL_REQUIRED', rule: 'treasury', approvers: ['bob', 'carol'] } });
    const id = pending.data!.approvalId as string;
    expect((await call(stack.socket, 'signer_getApproval', { approvalId: id })).requester).toBe('alice');
    // The host cannot ask for it: unsigned, the treasury rule does not apply to it at all.
    expect((await rpc(stack.socket, 'eth_signTransaction', [tx])).error).toMatchObject({ code: 4001 });

    const self = await cli(['approve', id, '--socket', stack.socket, '--principal', 'alice', '--key', pem('alice'), '--json']);
    expect(self.code).toBe(1);
    expect(self.stdout + self.stderr).toMatch(/APPROVAL_SELF/);
    for (const name of ['bob', 'carol']) {
      const a = await cli(['approve', id, '--socket', stack.socket, '--principal', name, '--key', pem(name), '--json']);
      expect(a.code, a.stderr).toBe(0);
    }
    // Another principal resubmitting the identical params is not alice's approved request.
    expect(failed(await signedCall('backend', 'eth_signTransaction', [tx])).code).toBe(4001);
    const raw = ok(await signedCall('alice', 'eth_signTransaction', [tx])) as Hex;
    expect(parseTransaction(raw).to).toBe(TREASURY);
    expect((await call(stack.socket, 'signer_getApproval', { approvalId: id })).status).toBe('consumed');
    expect(records().some((b) => b.kind === 'sign' && b.decision === 'allowed' && b.principal === 'alice' && b.rule === 'treasury')).toBe(true);
  });

  it('signer_createKey by the host needs one approval: -32010, alice approves, the identical request creates the key', async () => {
    const first = await rpc(stack.socket, 'signer_createKey', { kind: 'secp256k1' });
    expect(first.error).toMatchObject({ code: -32010, data: { code: 'APPROVAL_REQUIRED', rule: 'host-creates-with-approval' } });
    const id = first.error!.data!.approvalId as string;
    expect((await call(stack.socket, 'signer_getApproval', { approvalId: id })).intent).toMatchObject({ op: 'signer_createKey', kind: 'secp256k1' });
    const a = await cli(['approve', id, '--socket', stack.socket, '--principal', 'alice', '--key', pem('alice'), '--json']);
    expect(a.code, a.stderr).toBe(0);
    const created = await rpc(stack.socket, 'signer_createKey', { kind: 'secp256k1' });
    expect(created.error).toBeUndefined();
    expect((created.result as { address: string }).address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect((await call(stack.socket, 'signer_getApproval', { approvalId: id })).status).toBe('consumed');
    expect((await rpc(stack.socket, 'signer_createKey', { kind: 'secp256k1' })).error).toMatchObject({ code: -32010 });
  });
});

describe('after a restart', () => {
  it('a request that may have been signed before the restart is refused (AUTH_BEFORE_RESTART, data.expiresAfter); enclave-signer call signs again past the barrier', async () => {
    const early = signedBody('backend', 'personal_sign', ['0x05', address], { ttlSeconds: 60 });
    await stack.stop();
    stack = await startDevStack({ dataDir: join(dir, 'data'), args: ['--policy', policyFile] });
    const r = await send(early);
    expect(!r.ok && r.error).toMatchObject({ code: 4100, data: { code: 'AUTH_BEFORE_RESTART', expiresAfter: expect.any(Number) } });
    const sig = ok(await signedCall('backend', 'personal_sign', ['0x05', address])) as Hex;
    expect((await recoverMessageAddress({ message: { raw: '0x05' }, signature: sig })).toLowerCase()).toBe(address.toLowerCase());
  });

  it('the restart guard holds the first guarded payment for approval; once approved and signed it is cleared', async () => {
    expect((await call(stack.socket, 'signer_status')).enclave.restartGuard).toEqual({ when: 'unclean', pending: true });
    const tx = { from: address, to: ALLOWED, value: '0x1', nonce: '0x9', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' };
    const held = failed(await signedCall('backend', 'eth_signTransaction', [tx]));
    expect(held).toMatchObject({ code: -32010, data: { code: 'APPROVAL_REQUIRED', rule: 'restart-guard', approvers: ['bob'] } });
    const a = await cli(['approve', held.data!.approvalId as string, '--socket', stack.socket, '--principal', 'bob', '--key', pem('bob'), '--json']);
    expect(a.code, a.stderr).toBe(0);
    expect(parseTransaction(ok(await signedCall('backend', 'eth_signTransaction', [tx])) as Hex).to).toBe(ALLOWED);
    expect((await call(stack.socket, 'signer_status')).enclave.restartGuard).toEqual({ when: 'unclean', pending: false });
    // The next one signs without approval.
    expect(parseTransaction(ok(await signedCall('backend', 'eth_signTransaction', [{ ...tx, nonce: '0xa' }])) as Hex).nonce).toBe(10);
  });
});
