/**
 * `enclave-signer dev --chain-id N` (issue 12 §1): unmodified clients work
 * against the signing socket — viem's wallet client asks `eth_chainId` before
 * signing, ethers' providers detect the network with it — over raw IPC and
 * over HTTP, with no action overrides and no staticNetwork. A transaction for
 * another chain is refused with -32602 naming `chainId`.
 */
import { IpcSocketProvider, JsonRpcProvider, Transaction } from 'ethers';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createWalletClient, http, parseTransaction, recoverTransactionAddress, type Hex, type TransactionSerialized } from 'viem';
import { hardhat, mainnet } from 'viem/chains';
import { ipc } from 'viem/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, rpc, startDevStack, type DevStack } from './dev-stack.js';

const CHAIN_ID = 31337;
const TO = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' as const;
const dir = mkdtempSync(join(tmpdir(), 'es-e2e-chainid-'));
let stack: DevStack;
let address: Hex;

beforeAll(async () => {
  stack = await startDevStack({ dataDir: join(dir, 'data'), http: true, args: ['--chain-id', String(CHAIN_ID)] });
  address = (await call(stack.socket, 'signer_createKey', { label: 'chain-id' })).address;
});
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('eth_chainId and net_version', () => {
  it('answer the configured chain id as nodes do (hex quantity, decimal string)', async () => {
    expect(await call(stack.socket, 'eth_chainId')).toBe('0x7a69');
    expect(await call(stack.socket, 'eth_chainId', [])).toBe('0x7a69');
    expect(await call(stack.socket, 'net_version', [])).toBe('31337');
  });
  it('take no params', async () => {
    const r = await rpc(stack.socket, 'eth_chainId', [1]);
    expect(r.error?.code).toBe(-32602);
  });
});

describe('viem walletClient.signTransaction, no action overrides', () => {
  const transports = { 'ipc(socket)': () => ipc(stack.socket), 'http(loopback)': () => http(stack.http!) };
  for (const [name, transport] of Object.entries(transports)) {
    it(`${name}: EIP-1559 transaction signed for the signer's chain`, async () => {
      // viem checks the client's chain against eth_chainId before it signs
      // (assertCurrentChain): with eth_chainId served, the stock chain object
      // is all it needs. (With no chain at all viem refuses by itself —
      // ChainNotFoundError — unless the call says chain: null.)
      const client = createWalletClient({ chain: hardhat, transport: transport() });
      expect(await client.getChainId()).toBe(CHAIN_ID);
      const raw = await client.signTransaction({
        account: address,
        to: TO,
        value: 1n,
        nonce: 0,
        gas: 21000n,
        maxFeePerGas: 2_000_000_000n,
        maxPriorityFeePerGas: 1_000_000_000n,
      });
      const tx = parseTransaction(raw);
      expect(tx.chainId).toBe(CHAIN_ID);
      expect(tx.to?.toLowerCase()).toBe(TO.toLowerCase());
      expect(await recoverTransactionAddress({ serializedTransaction: raw as TransactionSerialized })).toBe(address);
      // chain: null skips viem's check; the signer's eth_chainId still sets the chain.
      const bare = await createWalletClient({ transport: transport() }).signTransaction({ account: address, chain: null, to: TO, value: 1n, nonce: 1, gas: 21000n, gasPrice: 1n });
      expect(parseTransaction(bare).chainId).toBe(CHAIN_ID);
    });
  }

  it('a client configured for another chain: viem itself refuses (ChainMismatchError), nothing is signed', async () => {
    const client = createWalletClient({ chain: mainnet, transport: ipc(stack.socket) });
    const e = await client.signTransaction({ account: address, to: TO, value: 1n, nonce: 0, gas: 21000n, gasPrice: 1n }).catch((x: unknown) => x);
    expect((e as Error).name).toBe('ChainMismatchError');
  });
});

describe('ethers getSigner(addr).signTransaction, no staticNetwork', () => {
  const providers = {
    'IpcSocketProvider(socket)': () => new IpcSocketProvider(stack.socket),
    'JsonRpcProvider(loopback http)': () => new JsonRpcProvider(stack.http!),
  };
  for (const [name, make] of Object.entries(providers)) {
    it(`${name}: network detected, transaction without chainId signed for it`, async () => {
      const provider = make();
      try {
        expect((await provider.getNetwork()).chainId).toBe(BigInt(CHAIN_ID));
        const signer = await provider.getSigner(address);
        const raw = await signer.signTransaction({ to: TO, value: 1n, nonce: 0, gasLimit: 21000n, maxFeePerGas: 2_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n, type: 2 });
        const tx = Transaction.from(raw);
        expect(tx.chainId).toBe(BigInt(CHAIN_ID));
        expect(tx.from).toBe(address);
        // A legacy transaction gets EIP-155 replay protection for the same chain.
        const legacy = Transaction.from(await signer.signTransaction({ to: TO, value: 1n, nonce: 1, gasLimit: 21000n, gasPrice: 1_000_000_000n, type: 0 }));
        expect(legacy.chainId).toBe(BigInt(CHAIN_ID));
        expect(legacy.from).toBe(address);
      } finally {
        provider.destroy();
      }
    });
  }

  it('IpcSocketProvider: a transaction for another chain is refused (ethers raises, the signer names chainId)', async () => {
    const provider = new IpcSocketProvider(stack.socket);
    try {
      const signer = await provider.getSigner(address);
      const e = await signer.signTransaction({ to: TO, value: 1n, nonce: 0, gasLimit: 21000n, gasPrice: 1n, chainId: 1n }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(Error);
      expect(String((e as Error).message)).toMatch(/chainId: 1 is not this signer's chain \(31337\)/);
    } finally {
      provider.destroy();
    }
  });
});

describe('a transaction for another chain', () => {
  it('is refused with -32602 naming chainId, with a hint (decimal and hex spellings)', async () => {
    for (const chainId of ['0x1', 1, '0x7a6a']) {
      const r = await rpc(stack.socket, 'eth_signTransaction', [{ from: address, to: TO, value: '0x1', nonce: '0x0', gas: '0x5208', gasPrice: '0x1', chainId }]);
      expect(r.error?.code).toBe(-32602);
      expect(r.error?.message).toMatch(/chainId: \d+ is not this signer's chain \(31337\)/);
      expect(r.error?.data).toMatchObject({ field: 'chainId', hint: expect.stringMatching(/--chain-id 31337/) });
    }
  });
  it('the configured chain, spelled either way, is signed', async () => {
    for (const chainId of ['0x7a69', CHAIN_ID]) {
      const raw = await call(stack.socket, 'eth_signTransaction', [{ from: address, to: TO, value: '0x1', nonce: '0x0', gas: '0x5208', gasPrice: '0x1', chainId }]);
      expect(Transaction.from(raw).chainId).toBe(BigInt(CHAIN_ID));
    }
  });
});
