import { describe, expect, it } from 'vitest';
import { chainIdFlag } from '../cli/values.js';
import { chainIdMethods } from './chain-id.js';
import { txForChain } from '../common/rpc/sign-call.js';
import { resolveParentConfig } from './config.js';

const tx = { from: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', nonce: '0x0' };

describe('chain id', () => {
  it('without --chain-id: no eth_chainId / net_version (they stay -32601), and chainId is required', () => {
    expect(chainIdMethods(undefined)).toEqual([]);
    expect(() => txForChain(tx, undefined)).toThrow(/chainId: required \(never defaulted\)/);
    expect(txForChain({ ...tx, chainId: 5 }, undefined)).toEqual({ ...tx, chainId: 5 });
  });
  it('eth_chainId is a hex quantity, net_version a decimal string', async () => {
    const m = new Map(chainIdMethods(31337));
    expect(await m.get('eth_chainId')!(undefined)).toBe('0x7a69');
    expect(await m.get('net_version')!([])).toBe('31337');
    await expect(m.get('net_version')!(['x'])).rejects.toThrow(/params/);
  });
  it('a transaction without chainId is signed for the configured chain (as geth and clef do)', () => {
    expect(txForChain(tx, 1)).toEqual({ ...tx, chainId: '0x1' });
    expect(txForChain({ ...tx, chainId: null }, 10)).toEqual({ ...tx, chainId: '0xa' });
  });
  it('the same chain in any spelling passes unchanged; another chain is refused naming chainId with a hint', () => {
    expect(txForChain({ ...tx, chainId: '0x7a69' }, 31337).chainId).toBe('0x7a69');
    expect(txForChain({ ...tx, chainId: 31337 }, 31337).chainId).toBe(31337);
    let err: unknown;
    try {
      txForChain({ ...tx, chainId: '0x1' }, 31337);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'INVALID_PARAMS', field: 'chainId', message: "chainId: 1 is not this signer's chain (31337)" });
    expect((err as { hint?: string }).hint).toMatch(/--chain-id 31337/);
    expect(() => txForChain({ ...tx, chainId: '0x01' }, 1)).toThrow(/chainId: expected/);
  });
  it('--chain-id takes decimal or 0x hex, 1 .. 2^53-1; the config refuses anything else', () => {
    expect(chainIdFlag(undefined)).toBeUndefined();
    expect(chainIdFlag('1')).toBe(1);
    expect(chainIdFlag('0x7a69')).toBe(31337);
    for (const bad of ['0', '-1', '01', '1.5', 'mainnet', '0x', '99999999999999999', '']) expect(() => chainIdFlag(bad), bad).toThrow(/is not a chain id/);
    const base = { enclave: 'unix:/tmp/x', socket: '/tmp/s.sock', keystore: '/tmp/k', allowAnyPcrs: true };
    expect(resolveParentConfig({ ...base, chainId: 5 }).chainId).toBe(5);
    expect(resolveParentConfig(base).chainId).toBeUndefined();
    for (const chainId of [0, -1, 1.5, 2 ** 53]) expect(() => resolveParentConfig({ ...base, chainId })).toThrow(/chainId must be an integer/);
  });
});
