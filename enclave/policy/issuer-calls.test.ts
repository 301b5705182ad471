/**
 * An issuer's mint(address,uint256) and burn(uint256) (examples/erc20-issuer/): decoded only
 * when canonical, matched by `erc20.functions` "mint"/"burn", mint recipients and the window's
 * amount counted, a mint's recipient is a counterparty for deny rules.
 */
import { encodeFunctionData, parseAbi } from 'viem';
import { describe, expect, it } from 'vitest';
import { decodeCall } from './calldata.js';
import { evaluate, recordSigned } from './evaluate.js';
import { emptyWindowState } from './windows.js';
import { BLOCKED, intentOf, KEY_1, KEY_2, KYC_1, policy, STRANGER, tx, USDC } from './test-fixtures.js';

const ABI = parseAbi(['function mint(address to, uint256 value)', 'function burn(uint256 value)']);
const mint = (to: string, v: bigint) => encodeFunctionData({ abi: ABI, functionName: 'mint', args: [to as `0x${string}`, v] });
const burn = (v: bigint) => encodeFunctionData({ abi: ABI, functionName: 'burn', args: [v] });
const NOW = 1_800_000_000;

const P = policy([
  { id: 'blocklist', effect: 'deny', to: [BLOCKED] },
  { id: 'mint-kyc', effect: 'allow', ops: ['eth_signTransaction'], keys: [KEY_1], erc20: { tokens: [USDC], functions: ['mint'], recipients: [KYC_1, BLOCKED], maxAmount: '1000' }, window: { seconds: 86400, maxAmount: '1000' } },
  { id: 'burn-treasury', effect: 'allow', ops: ['eth_signTransaction'], keys: [KEY_2], erc20: { tokens: [USDC], functions: ['burn'] } },
]);

const decide = (data: string, key = KEY_1, windows = emptyWindowState()) => evaluate(P, intentOf('eth_signTransaction', tx({ to: USDC, data }), key), { principal: 'host', now: NOW, windows });

describe('issuer calls', () => {
  it('decodes canonical mint and burn, keeps anything else raw', () => {
    expect(decodeCall(mint(KYC_1, 5n))).toEqual({ kind: 'erc20-mint', to: KYC_1, amount: 5n });
    expect(decodeCall(burn(7n))).toEqual({ kind: 'erc20-burn', amount: 7n });
    expect(decodeCall(`${burn(7n)}00` as `0x${string}`).kind).toBe('other');
  });

  it('mint: KYC recipients only, under the cap, and the window counts minted units', () => {
    expect(decide(mint(KYC_1, 600n))).toMatchObject({ outcome: 'signed', rule: 'mint-kyc' });
    expect(decide(mint(STRANGER, 1n)).outcome).toBe('refused');
    expect(decide(mint(KYC_1, 1001n)).outcome).toBe('refused');
    const first = decide(mint(KYC_1, 600n));
    const w = recordSigned(P, emptyWindowState(), first, intentOf('eth_signTransaction', tx({ to: USDC, data: mint(KYC_1, 600n) }), KEY_1), NOW);
    expect(decide(mint(KYC_1, 500n), KEY_1, w)).toMatchObject({ outcome: 'refused', rule: 'mint-kyc' });
    expect(decide(mint(KYC_1, 400n), KEY_1, w).outcome).toBe('signed');
  });

  it('a deny rule’s `to` stops a mint to a blocked address even when an allow rule lists it', () => {
    expect(decide(mint(BLOCKED, 1n))).toMatchObject({ outcome: 'refused', rule: 'blocklist' });
  });

  it('burn: only the treasury key; a mint rule never matches a burn', () => {
    expect(decide(burn(1n), KEY_2)).toMatchObject({ outcome: 'signed', rule: 'burn-treasury' });
    expect(decide(burn(1n), KEY_1).outcome).toBe('refused');
  });
});
