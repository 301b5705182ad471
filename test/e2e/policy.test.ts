/**
 * The policy engine in the running appliance (issue 9): `enclave-signer dev --policy FILE`
 * runs a real policy; ethers and viem see 4001 with the deciding rule in data.rule; the
 * policy's hash is in signer_status and in the attestation document's user_data; an invalid
 * policy stops dev before anything starts; without --policy the banner names the permissive
 * dev policy.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonRpcProvider } from 'ethers';
import { createClient, http, parseTransaction, recoverTransactionAddress, walletActions, type Hex } from 'viem';
import { mainnet } from 'viem/chains';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCbor } from '../../common/cbor.js';
import { parseAttestation } from '../../attestation/index.js';
import { BIN, REPO, call, rpc, startDevStack, type DevStack } from './dev-stack.js';

const ALLOWED = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
const BLOCKED = '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc';
const POLICY = {
  policyVersion: 1,
  name: 'e2e-hot-wallet',
  rules: [
    { id: 'blocklist', effect: 'deny', to: [BLOCKED] },
    { id: 'create', effect: 'allow', ops: ['signer_createKey'] },
    { id: 'eth-small', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [ALLOWED], maxValueWei: '1000000000000000000' },
  ],
};

const dir = mkdtempSync(join(tmpdir(), 'es-e2e-policy-'));
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
