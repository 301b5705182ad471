/**
 * Proxy mode on a real EVM (issue 12 §2 and §3): `enclave-signer dev
 * --downstream <hardhat EDR node>`. eth_sendTransaction through the socket is
 * filled from the node, signed in the enclave, broadcast and mined with the
 * right sender; concurrent sends from one key get distinct nonces and all
 * mine; the viem and ethers adapters' sendTransaction are mined too.
 */
import { JsonRpcProvider, verifyMessage as ethersVerifyMessage, verifyTypedData as ethersVerifyTypedData, type TypedDataField } from 'ethers';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicClient, createWalletClient, http, verifyMessage, verifyTypedData, type Hex } from 'viem';
import { hardhat } from 'viem/chains';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnclaveSigner } from '../../client/ethers.js';
import { enclaveAccount } from '../../client/viem.js';
import { EIP712_MAIL } from '../eip712-mail.js';
import { startHardhatNode, type HardhatNode } from '../hardhat-node.js';
import { call, rpc, startDevStack, type DevStack } from './dev-stack.js';

const TO = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' as const;
const dir = mkdtempSync(join(tmpdir(), 'es-e2e-proxy-'));
let node: HardhatNode;
let stack: DevStack;
let address: Hex;

async function receipt(hash: string): Promise<Record<string, any>> {
  const r = await node.rpc('eth_getTransactionReceipt', [hash]);
  expect(r, `receipt of ${hash}`).not.toBeNull();
  return r;
}

beforeAll(async () => {
  node = await startHardhatNode(31337);
  // No --chain-id: the node's own (31337) is served.
  stack = await startDevStack({ dataDir: join(dir, 'data'), http: true, args: ['--downstream', node.url] });
  address = (await call(stack.socket, 'signer_createKey', { label: 'proxy' })).address;
  await node.rpc('hardhat_setBalance', [address, '0x56bc75e2d63100000']); // 100 ETH
}, 120_000);
afterAll(async () => {
  await Promise.all([stack?.stop(), node?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('proxy mode (--downstream) on hardhat EDR', () => {
  it('eth_chainId is the node’s; read methods are forwarded', async () => {
    expect(await call(stack.socket, 'eth_chainId')).toBe('0x7a69');
    expect(await call(stack.socket, 'net_version')).toBe('31337');
    expect(BigInt(await call(stack.socket, 'eth_getBalance', [address, 'latest']))).toBe(100n * 10n ** 18n);
    expect(await call(stack.socket, 'eth_blockNumber')).toMatch(/^0x[0-9a-f]+$/);
  });

  it('eth_sendTransaction: filled from the node, signed in the enclave, mined with the right sender', async () => {
    const hash = await call(stack.socket, 'eth_sendTransaction', [{ from: address, to: TO, value: '0x3e8' }]);
    expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
    const r = await receipt(hash);
    expect(r.status).toBe('0x1');
    expect(r.from).toBe(address.toLowerCase());
    const tx = await node.rpc('eth_getTransactionByHash', [hash]);
    expect(tx).toMatchObject({ type: '0x2', value: '0x3e8', chainId: '0x7a69' });
    // the node's estimate + 20 %
    const estimate = BigInt(await node.rpc('eth_estimateGas', [{ from: address, to: TO, value: '0x3e8' }]));
    expect(BigInt(tx.gas)).toBe((estimate * 12n) / 10n);
  });

  it('concurrent sends from one key get distinct nonces and all mine', async () => {
    const hashes: string[] = await Promise.all(Array.from({ length: 6 }, (_, i) => call(stack.socket, 'eth_sendTransaction', [{ from: address, to: TO, value: `0x${(i + 1).toString(16)}` }])));
    const txs = await Promise.all(hashes.map((h) => node.rpc('eth_getTransactionByHash', [h])));
    const nonces = new Set(txs.map((t) => t.nonce));
    expect(nonces.size).toBe(6);
    for (const h of hashes) expect((await receipt(h)).status).toBe('0x1');
  });

  it('node errors come back as JSON-RPC errors with the node’s message; signing methods are never forwarded', async () => {
    const tooMuch = await rpc(stack.socket, 'eth_sendTransaction', [{ from: address, to: TO, value: '0xffffffffffffffffffffffffffff' }]);
    expect(tooMuch.error?.message).toMatch(/insufficient funds|balance/i);
    expect(tooMuch.error?.code).not.toBe(4001);
    for (const m of ['eth_signTypedData', 'eth_signTypedData_v3', 'eth_sendUserOperation', 'hardhat_setBalance', 'debug_traceTransaction']) {
      expect((await rpc(stack.socket, m, [])).error?.code, m).toBe(-32601);
    }
  });

  it('viem: createWalletClient({ account: enclaveAccount, transport: http(node) }).sendTransaction is mined', async () => {
    const account = enclaveAccount({ socket: stack.socket, address });
    const wallet = createWalletClient({ account, chain: hardhat, transport: http(node.url) });
    const hash = await wallet.sendTransaction({ to: TO, value: 1000n });
    const pub = createPublicClient({ chain: hardhat, transport: http(node.url) });
    const r = await pub.waitForTransactionReceipt({ hash });
    expect(r.status).toBe('success');
    expect(r.from).toBe(address.toLowerCase());
    const signature = await account.signMessage({ message: 'on a real chain' });
    expect(await verifyMessage({ address, message: 'on a real chain', signature })).toBe(true);
    const typed = await account.signTypedData(EIP712_MAIL);
    expect(await verifyTypedData({ address, ...EIP712_MAIL, signature: typed })).toBe(true);
  });

  it('viem: a wallet client whose transport is the signer itself (proxy) sends too', async () => {
    const wallet = createWalletClient({ account: address, chain: hardhat, transport: http(stack.http!) });
    const hash = await wallet.sendTransaction({ to: TO, value: 7n });
    expect((await receipt(hash)).status).toBe('0x1');
  });

  it('ethers: EnclaveSigner.connect(JsonRpcProvider(node)).sendTransaction is mined', async () => {
    const provider = new JsonRpcProvider(node.url, 31337, { staticNetwork: true, pollingInterval: 100 });
    try {
      const signer = new EnclaveSigner({ socket: stack.socket, address }, provider);
      const res = await signer.sendTransaction({ to: TO, value: 42n });
      const r = await res.wait();
      expect(r?.status).toBe(1);
      expect(r?.from).toBe(address);
      const sig = await signer.signMessage('ethers on a real chain');
      expect(ethersVerifyMessage('ethers on a real chain', sig)).toBe(address);
      const t = EIP712_MAIL as unknown as { domain: Record<string, unknown>; types: Record<string, TypedDataField[]>; message: Record<string, unknown> };
      expect(ethersVerifyTypedData(t.domain, t.types, t.message, await signer.signTypedData(t.domain, t.types, t.message))).toBe(address);
    } finally {
      provider.destroy();
    }
  });

  it('a --chain-id that contradicts the node’s makes the appliance refuse to start', async () => {
    await expect(startDevStack({ dataDir: join(dir, 'wrong-chain'), args: ['--downstream', node.url, '--chain-id', '1'] })).rejects.toThrow(/--chain-id 1 contradicts the downstream node .*31337/);
  }, 60_000);
});
