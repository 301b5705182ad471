/**
 * The ERC-20 issuer example with the policy ENFORCED by the running enclave
 * (issue 12 §4.3, `scenario.mjs --enforced`), on hardhat's EDR.
 *
 * The policy names the token (its address) and the two key ids, and must
 * exist before `enclave-signer dev --policy` starts. Both are known in
 * advance: the keys are created first by a dev run under the permissive dev
 * policy on the same data directory (the keystore keeps them), and the token's
 * address is the CREATE address of the issuer key at its next nonce. Then dev
 * restarts with `--policy` and the scenario sends every step to the socket:
 * the deploy and the mint to a KYC'd holder are mined, while the transfer to
 * a non-KYC'd address, the mint over the daily cap and a burn by the issuer
 * come back 4001 from the enclave and never reach the chain.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getContractAddress, type Address } from 'viem';
import { afterAll, beforeAll, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript example, no declarations
import { DAILY_MINT_CAP, KYC, runScenario } from '../../examples/erc20-issuer/scenario.mjs';
// @ts-expect-error plain JavaScript example, no declarations
import { issuerPolicy } from '../../examples/erc20-issuer/policy.mjs';
import { startHardhatNode, type HardhatNode } from '../hardhat-node.js';
import { call, startDevStack, type DevStack } from './dev-stack.js';

const dir = mkdtempSync(join(tmpdir(), 'es-e2e-erc20-enforced-'));
const dataDir = join(dir, 'data');
const policyFile = join(dir, 'issuer-policy.json');
let node: HardhatNode;
let stack: DevStack | undefined;

beforeAll(async () => {
  const [n, first] = await Promise.all([startHardhatNode(31337), startDevStack({ dataDir })]);
  node = n;
  // 1. The keys, under the permissive dev policy (the issuer policy allows no signer_createKey).
  const issuer = await call(first.socket, 'signer_createKey', { label: 'erc20-issuer' });
  const treasury = await call(first.socket, 'signer_createKey', { label: 'erc20-treasury' });
  await first.stop();
  // 2. The policy, naming the token at the CREATE address of the issuer's next nonce.
  const nonce = BigInt(await node.rpc('eth_getTransactionCount', [issuer.address, 'pending']));
  const token = getContractAddress({ from: issuer.address as Address, nonce });
  writeFileSync(policyFile, JSON.stringify(issuerPolicy({ chainId: 31337, token, issuerKeyId: issuer.keyId, treasuryKeyId: treasury.keyId, kyc: KYC, dailyMintCap: DAILY_MINT_CAP })));
  // 3. The appliance under that policy, in proxy mode in front of the node.
  stack = await startDevStack({ dataDir, args: ['--policy', policyFile, '--downstream', node.url] });
}, 120_000);
afterAll(async () => {
  await Promise.all([stack?.stop(), node?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

it('enforced by the enclave: deploy and a mint to a KYC’d holder are mined; a transfer to a non-KYC’d address, a mint over the daily cap and a burn by the issuer are 4001 and never reach the chain', async () => {
  const steps: Record<string, any>[] = [];
  await runScenario({ socket: stack!.socket, node: node.url, fund: true, enforced: true, policyOut: join(dir, 'scenario-policy.json'), log: (s: Record<string, unknown>) => steps.push(s) });
  const by = Object.fromEntries(steps.map((s) => [s.step, s]));
  expect(by.policy.hash).toBe((await call(stack!.socket, 'signer_status', {})).policy.hash);
  expect(by.deploy.token).toMatch(/^0x[0-9a-fA-F]{40}$/);
  expect(by.mint).toMatchObject({ mined: true, balance: String(600n * 10n ** 18n) });
  // Deny by default: no rule allows a transfer to this recipient.
  expect(by['transfer-outsider']).toMatchObject({ refused: true, code: 4001, dataCode: 'POLICY_DENIED', rule: null, reachedChain: false });
  // The rule matches, its window (600 already minted today) does not have room for 500 more.
  expect(by['mint-over-cap']).toMatchObject({ refused: true, code: 4001, dataCode: 'POLICY_DENIED', rule: 'mint-kyc', reachedChain: false });
  expect(by['mint-over-cap'].message).toMatch(/window/);
  expect(by['burn-issuer']).toMatchObject({ refused: true, code: 4001, reachedChain: false });
  expect(by.done).toMatchObject({ ok: true, enforcedBy: 'enclave' });
}, 60_000);
