/**
 * enclave-signer/client's approval helpers against the real appliance
 * (`enclave-signer dev --policy FILE`): a host request that needs 2 of alice,
 * bob and carol is an ApprovalRequiredError (and, through the viem adapter,
 * an EnclaveSignerViemError carrying it); approve() — which recomputes the
 * digest from the request the enclave shows — counts for the enclave;
 * waitForApproval() sees the outcome; the identical request then signs once;
 * reject() vetoes.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTransaction, recoverTransactionAddress, type Hex } from 'viem';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createSignerClient, type SignerClient } from '../../client/client.js';
import { ApprovalRequiredError } from '../../client/errors.js';
import { EnclaveSignerViemError, enclaveAccount } from '../../client/viem.js';
import { startDevStack, type DevStack } from './dev-stack.js';

const TREASURY = '0x90f79bf6eb2c4f870365e785982e1f101e93b906';
const dir = mkdtempSync(join(tmpdir(), 'es-e2e-client-approvals-'));
const keys = {
  alice: generateKeyPairSync('ed25519'),
  bob: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  carol: generateKeyPairSync('ed25519'),
};
const spki = (k: { publicKey: { export(o: { type: 'spki'; format: 'pem' }): string | Buffer } }) => String(k.publicKey.export({ type: 'spki', format: 'pem' }));
const POLICY = {
  policyVersion: 1,
  name: 'e2e-client-approvals',
  principals: { alice: { alg: 'ed25519', publicKey: spki(keys.alice) }, bob: { alg: 'ecdsa-p256', publicKey: spki(keys.bob) }, carol: { alg: 'ed25519', publicKey: spki(keys.carol) } },
  rules: [
    { id: 'create', effect: 'allow', ops: ['signer_createKey'] },
    { id: 'treasury', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [TREASURY], approvals: { threshold: 2, from: ['alice', 'bob', 'carol'], ttlSeconds: 3600 } },
  ],
};

let stack: DevStack;
let client: SignerClient;
let address: Hex;
beforeAll(async () => {
  const policyFile = join(dir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify(POLICY));
  stack = await startDevStack({ dataDir: join(dir, 'data'), args: ['--policy', policyFile] });
  client = createSignerClient({ socket: stack.socket });
  address = (await client.createKey()).address as Hex;
}, 120_000);
afterAll(async () => {
  client?.close();
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const tx = (value: string) => ({ from: address, to: TREASURY, value, nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' });

it('2 of 3 with the client helpers: ApprovalRequiredError → approve (alice, bob) → waitForApproval approved → the identical request signs once; reject vetoes another', async () => {
  const first = await client.signTransaction(tx('0x1')).catch((e: unknown) => e);
  expect(first).toBeInstanceOf(ApprovalRequiredError);
  const pending = first as ApprovalRequiredError;
  expect(pending).toMatchObject({ code: -32010, rule: 'treasury', threshold: 2, approvers: ['alice', 'bob', 'carol'], requestDigest: expect.stringMatching(/^[0-9a-f]{64}$/), expiresAt: expect.any(Number) });

  // The viem adapter surfaces the same refusal as its error type, with the typed error as cause.
  const viaViem = await enclaveAccount({ client, address })
    .signTransaction({ chainId: 1, type: 'eip1559', to: TREASURY, value: 1n, nonce: 0, gas: 21000n, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 1n })
    .catch((e: unknown) => e);
  expect(viaViem).toBeInstanceOf(EnclaveSignerViemError);
  expect(viaViem).toMatchObject({ code: -32010, rule: 'treasury', data: { approvalId: pending.approvalId } });
  expect((viaViem as Error).cause).toBeInstanceOf(ApprovalRequiredError);

  const view = await client.getApproval(pending.approvalId);
  expect(view).toMatchObject({ status: 'pending', requester: 'host', requestDigest: pending.requestDigest, request: { method: 'eth_signTransaction' } });
  expect(view.intent).toBeDefined();
  expect(await client.policyHash()).toBe(((await client.status()).policy as { hash: string }).hash);

  expect(await client.approve(pending.approvalId, { name: 'alice', key: keys.alice.privateKey })).toMatchObject({ status: 'pending', approvedBy: ['alice'] });
  const waiting = client.waitForApproval(pending.approvalId, { pollMs: 50, timeoutMs: 30_000 });
  const bobPem = keys.bob.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  expect(await client.approve(pending.approvalId, { name: 'bob', key: bobPem })).toMatchObject({ status: 'approved', approvedBy: ['alice', 'bob'] });
  expect((await waiting).status).toBe('approved');

  const raw = (await client.signTransaction(tx('0x1'))) as Hex;
  expect(await recoverTransactionAddress({ serializedTransaction: raw as never })).toBe(address);
  expect(parseTransaction(raw).to).toBe(TREASURY);
  expect((await client.getApproval(pending.approvalId)).status).toBe('consumed');
  expect((await client.listApprovals()).some((v) => v.approvalId === pending.approvalId && v.status === 'consumed')).toBe(true);

  // Another request (other value) is another approval; carol vetoes it.
  const other = (await client.signTransaction(tx('0x2')).catch((e: unknown) => e)) as ApprovalRequiredError;
  expect(other).toBeInstanceOf(ApprovalRequiredError);
  expect(other.approvalId).not.toBe(pending.approvalId);
  expect(await client.reject(other.approvalId, { name: 'carol', key: keys.carol.privateKey })).toMatchObject({ status: 'rejected', rejectedBy: 'carol' });
  expect((await client.waitForApproval(other.approvalId, { pollMs: 50, timeoutMs: 10_000 })).status).toBe('rejected');
  const late = await client.approve(other.approvalId, { name: 'alice', key: keys.alice.privateKey }).catch((e: unknown) => e);
  expect(late).toMatchObject({ code: -32011, data: { code: 'APPROVAL_REJECTED' } });
}, 60_000);
