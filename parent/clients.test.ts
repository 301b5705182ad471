/**
 * Unmodified client libraries against the signing socket: ethers v6's
 * IpcSocketProvider (newline-framed IPC) and JsonRpcSigner, viem's ipc()
 * transport (back-to-back JSON, no newlines) and http() transport (loopback
 * TCP), node:http over the Unix socket, and curl --unix-socket.
 */
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { IpcSocketProvider, Transaction, verifyMessage as ethersVerifyMessage, verifyTypedData as ethersVerifyTypedData } from 'ethers';
import { createClient, createWalletClient, http, walletActions, recoverTransactionAddress, verifyMessage, verifyTypedData, type Hex } from 'viem';
import { ipc } from 'viem/node';
import { mainnet } from 'viem/chains';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rpc, startRig, type Rig } from './test-helpers.js';
import { EIP712_MAIL } from '../test/eip712-mail.js';

vi.setConfig({ testTimeout: 30_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-clients-'));
let r: Rig;
let address: Hex;

beforeAll(async () => {
  r = await startRig({ dir, parent: { http: '127.0.0.1:0' } });
  address = (await rpc(r.socket, 'signer_createKey', { label: 'clients' })).result.address;
});
afterAll(async () => {
  await r.close();
  rmSync(dir, { recursive: true, force: true });
});

const typedData = EIP712_MAIL;

describe('ethers v6 over IPC', () => {
  it('IpcSocketProvider: eth_accounts and eth_signTransaction (raw send)', async () => {
    const provider = new IpcSocketProvider(r.socket, 1);
    try {
      expect(await provider.send('eth_accounts', [])).toEqual([address]);
      const raw = await provider.send('eth_signTransaction', [
        { from: address, to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', value: '0x1', nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1' },
      ]);
      expect(Transaction.from(raw).from).toBe(address);
      // Errors come back as JSON-RPC errors ethers understands.
      await expect(provider.send('eth_sendTransaction', [{}])).rejects.toThrow(/method not found/);
    } finally {
      provider.destroy();
    }
  });

  it('JsonRpcSigner: signTransaction, signMessage, signTypedData', async () => {
    const provider = new IpcSocketProvider(r.socket, 1);
    try {
      const signer = await provider.getSigner(address);
      const raw = await signer.signTransaction({ to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', value: 10n ** 15n, nonce: 4, gasLimit: 21000, chainId: 1, maxFeePerGas: 30n * 10n ** 9n, maxPriorityFeePerGas: 10n ** 9n, type: 2 });
      const tx = Transaction.from(raw);
      expect(tx.from).toBe(address);
      expect(tx.nonce).toBe(4);
      const sig = await signer.signMessage('hello from ethers');
      expect(ethersVerifyMessage('hello from ethers', sig)).toBe(address);
      const { EIP712Domain: _d, ...types } = { EIP712Domain: [], ...typedData.types };
      const tsig = await signer.signTypedData(typedData.domain, types as never, typedData.message);
      expect(ethersVerifyTypedData(typedData.domain, types as never, typedData.message, tsig)).toBe(address);
    } finally {
      provider.destroy();
    }
  });
});

describe('viem', () => {
  it('ipc(): getAddresses, signMessage, signTypedData and eth_signTransaction', async () => {
    const client = createWalletClient({ transport: ipc(r.socket) });
    try {
      expect(await client.getAddresses()).toEqual([address]);
      const sig = await client.signMessage({ account: address, message: 'hello from viem' });
      expect(await verifyMessage({ address, message: 'hello from viem', signature: sig })).toBe(true);
      const tsig = await client.signTypedData({ account: address, ...typedData });
      expect(await verifyTypedData({ address, ...typedData, signature: tsig })).toBe(true);
      const raw = await client.request({
        method: 'eth_signTransaction',
        params: [{ from: address, to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', value: '0x2', nonce: '0x1', gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1' } as never],
      });
      expect(await recoverTransactionAddress({ serializedTransaction: raw as never })).toBe(address);
    } finally {
      (await client.transport.getRpcClient()).close();
    }
  });

  it('ipc(): walletClient.signTransaction works once the client is told the chain id (the signer does not serve eth_chainId)', async () => {
    const base = createWalletClient({ chain: mainnet, transport: ipc(r.socket) });
    try {
      // Unmodified viem asks the node for eth_chainId first; a signer is not a node.
      await expect(base.signTransaction({ account: address, to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', value: 1n, nonce: 0, gas: 21000n, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 1n })).rejects.toThrow(
        /eth_chainId.*does not exist|not served by this signer/i,
      );
      // viem's action override (getAction): the chain id comes from the caller's own config.
      const client = createClient({ chain: mainnet, transport: ipc(r.socket) })
        .extend(() => ({ getChainId: async () => mainnet.id }))
        .extend(walletActions);
      const raw = await client.signTransaction({ account: address, to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', value: 1n, nonce: 0, gas: 21000n, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 1n });
      expect(await recoverTransactionAddress({ serializedTransaction: raw })).toBe(address);
      (await client.transport.getRpcClient()).close();
    } finally {
      (await base.transport.getRpcClient()).close();
    }
  });

  it('http() on the loopback TCP listener', async () => {
    expect(r.parent.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const client = createWalletClient({ transport: http(r.parent.httpUrl) });
    expect(await client.getAddresses()).toEqual([address]);
    const raw = await client.request({
      method: 'eth_signTransaction',
      params: [{ from: address, to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', value: '0x3', nonce: '0x2', gas: '0x5208', gasPrice: '0x3b9aca00', chainId: '0x1' } as never],
    });
    expect(await recoverTransactionAddress({ serializedTransaction: raw as never })).toBe(address);
    const sig = await client.signMessage({ account: address, message: 'over http' });
    expect(await verifyMessage({ address, message: 'over http', signature: sig })).toBe(true);
  });

  it('the TCP listener refuses a foreign Host header (DNS rebinding)', async () => {
    const url = new URL(r.parent.httpUrl!);
    const status = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: Number(url.port), method: 'GET', path: '/readyz', headers: { host }, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    expect(await status('evil.example')).toBe(403);
    expect(await status(`evil.example:${url.port}`)).toBe(403);
    expect(await status(`localhost:${url.port}`)).toBe(200);
    expect(await status(`127.0.0.1:${url.port}`)).toBe(200);
  });
});

describe('curl', () => {
  const curl = ['/usr/bin/curl', '/bin/curl', '/usr/local/bin/curl'].find((p) => existsSync(p));
  it.skipIf(curl === undefined)('curl --unix-socket: JSON-RPC, /readyz and /metrics', async () => {
    const run = promisify(execFile);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'eth_accounts', params: [] });
    const a = await run(curl!, ['-sS', '--unix-socket', r.socket, '-H', 'content-type: application/json', '-d', body, 'http://localhost/']);
    expect(JSON.parse(a.stdout)).toEqual({ jsonrpc: '2.0', id: 7, result: [address] });
    const ready = await run(curl!, ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--unix-socket', r.socket, 'http://localhost/readyz']);
    expect(ready.stdout).toBe('200');
    const m = await run(curl!, ['-sS', '--unix-socket', r.socket, 'http://localhost/metrics']);
    expect(m.stdout).toContain('enclave_signer_parent_ready 1');
    // curl's default form content type is refused (a browser could send it without a preflight).
    const form = await run(curl!, ['-sS', '-w', '\n%{http_code}', '--unix-socket', r.socket, '-d', body, 'http://localhost/']);
    expect(form.stdout.trim().split('\n').pop()).toBe('415');
  });
});
