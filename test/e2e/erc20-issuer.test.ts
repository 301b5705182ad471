/**
 * The ERC-20 issuer example (examples/erc20-issuer/, issue 12 §4) on hardhat's
 * EDR: the token compiled with solc-wasm is deployed through the signer in
 * proxy mode, a mint to a KYC'd holder is mined, and the policy refuses a
 * transfer to a non-KYC'd address, a mint over the daily cap and a burn by
 * the issuer (decided by `enclave-signer policy explain` with the enclave's
 * engine until the enclave loads a policy — docs/policy.md, "Wiring status").
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript example, no declarations
import { runScenario } from '../../examples/erc20-issuer/scenario.mjs';
import { startHardhatNode, type HardhatNode } from '../hardhat-node.js';
import { startDevStack, type DevStack } from './dev-stack.js';

const dir = mkdtempSync(join(tmpdir(), 'es-e2e-erc20-'));
let node: HardhatNode;
let stack: DevStack;

beforeAll(async () => {
  node = await startHardhatNode(31337);
  stack = await startDevStack({ dataDir: join(dir, 'data'), args: ['--downstream', node.url] });
}, 120_000);
afterAll(async () => {
  await Promise.all([stack?.stop(), node?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

it('deploy, mint to a KYC’d holder (mined); transfer to a non-KYC’d address, mint over the cap and a burn by the issuer are refused and never reach the chain', async () => {
  const steps: Record<string, any>[] = [];
  await runScenario({ socket: stack.socket, node: node.url, fund: true, log: (s: Record<string, unknown>) => steps.push(s) });
  const by = Object.fromEntries(steps.map((s) => [s.step, s]));
  expect(by.deploy.token).toMatch(/^0x[0-9a-fA-F]{40}$/);
  expect(by.mint).toMatchObject({ mined: true, balance: String(600n * 10n ** 18n) });
  expect(by['transfer-outsider']).toMatchObject({ refused: true, reachedChain: false, reason: expect.stringMatching(/refused|no rule|denied/i) });
  expect(by['mint-over-cap']).toMatchObject({ refused: true, reachedChain: false, reason: expect.stringMatching(/window|cap|mint-kyc/i) });
  expect(by['burn-treasury']).toMatchObject({ explain: 'signed', rule: 'burn-treasury' });
  expect(by['burn-issuer']).toMatchObject({ refused: true, reachedChain: false });
  expect(by.done).toMatchObject({ ok: true });
  // Its scratch directory (the policy it wrote, the explain requests) is gone afterwards.
  expect(by.policy.file).toMatch(/erc20-issuer-/);
  expect(existsSync(dirname(by.policy.file)), `${dirname(by.policy.file)} was left behind`).toBe(false);
}, 120_000);
