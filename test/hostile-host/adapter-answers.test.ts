/**
 * The host answers the adapters' signing requests (issue 12 §3). The parent
 * is untrusted: an insider can answer eth_signTransaction with another
 * transaction the enclave signed for the same key (another recipient, value
 * or chain), or answer any request with a signature by another key. The viem
 * and ethers adapters recover and compare before returning, so such an answer
 * is refused (CLIENT_ANSWER_MISMATCH) and never reaches sendTransaction.
 *
 * The stand-in host below holds the "enclave" key itself (a local viem
 * account) so its forgeries are valid signatures by the right key.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transaction } from 'ethers';
import { BaseError, hexToBytes, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import * as btc from '@scure/btc-signer';
import { signPsbt } from '../../client/bitcoin.js';
import { createSignerClient } from '../../client/client.js';
import { EnclaveSigner } from '../../client/ethers.js';
import { enclaveAccount } from '../../client/viem.js';

const KEY = privateKeyToAccount(`0x${'11'.repeat(32)}`);
const OTHER = privateKeyToAccount(`0x${'22'.repeat(32)}`);
const TO = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' as const;
const ATTACKER = '0x000000000000000000000000000000000000bad1' as const;

let server: Server;
let dir: string;
let socket: string;
const connections = new Set<Socket>();
/** How the hostile host answers one request. */
let forge: (method: string, params: unknown[]) => Promise<unknown>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'es-hostile-adapters-'));
  socket = join(dir, 's.sock');
  server = createServer((s: Socket) => {
    connections.add(s);
    let buf = '';
    s.setEncoding('utf8').on('data', async (c: string) => {
      buf += c;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const req = JSON.parse(buf.slice(0, nl)) as { id: unknown; method: string; params: unknown[] };
        buf = buf.slice(nl + 1);
        s.write(`${JSON.stringify({ jsonrpc: '2.0', id: req.id, result: await forge(req.method, req.params) })}\n`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
});
afterAll(async () => {
  for (const s of connections) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

/** The request as the honest enclave would sign it, with `change` applied (signed by the right key). */
function txAnswer(change: Record<string, unknown>) {
  return async (_m: string, params: unknown[]) => {
    const r = params[0] as Record<string, string>;
    return KEY.signTransaction({
      chainId: Number(r.chainId ?? '0x1'),
      to: r.to as Hex,
      value: BigInt(r.value ?? 0),
      nonce: Number(r.nonce),
      gas: BigInt(r.gas!),
      gasPrice: BigInt(r.gasPrice!),
      type: 'legacy',
      ...change,
    });
  };
}

const TX = { chainId: 1, to: TO, value: 5n, nonce: 3, gas: 21000n, gasPrice: 7n } as const;

describe('hostile host answers the adapters', () => {
  it('finding: a transaction signed by the right key for another recipient is refused by both adapters, not returned', async () => {
    forge = txAnswer({ to: ATTACKER });
    const v = await enclaveAccount({ socket, address: KEY.address }).signTransaction({ ...TX, type: 'legacy' }).catch((x: unknown) => x);
    expect(v).toBeInstanceOf(BaseError);
    expect(v).toMatchObject({ data: { code: 'CLIENT_ANSWER_MISMATCH' } });
    expect((v as Error).message).toMatch(/to is 0x0+bad1/i);
    const e = await new EnclaveSigner({ socket, address: KEY.address }).signTransaction({ chainId: 1, to: TO, value: 5n, nonce: 3, gasLimit: 21000n, gasPrice: 7n }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'UNKNOWN_ERROR', error: { data: { code: 'CLIENT_ANSWER_MISMATCH' } } });
  });

  it('finding: another value, nonce or chain in the answer is refused', async () => {
    for (const change of [{ value: 5_000_000n }, { nonce: 4 }, { chainId: 5 }, { gasPrice: 700n }]) {
      forge = txAnswer(change);
      const v = await enclaveAccount({ socket, address: KEY.address }).signTransaction({ ...TX, type: 'legacy' }).catch((x: unknown) => x);
      expect(v, JSON.stringify(change, (_k, x) => (typeof x === 'bigint' ? String(x) : x))).toMatchObject({ data: { code: 'CLIENT_ANSWER_MISMATCH' } });
    }
  });

  it('finding: a contract creation answered with a transfer (to and value set) is refused', async () => {
    forge = async (_m, params) => {
      const r = params[0] as Record<string, string>;
      return KEY.signTransaction({ chainId: 1, to: ATTACKER, value: 10n ** 18n, data: r.data as Hex, nonce: 3, gas: 100000n, gasPrice: 7n, type: 'legacy' });
    };
    const v = await enclaveAccount({ socket, address: KEY.address }).signTransaction({ chainId: 1, data: '0x6000', nonce: 3, gas: 100000n, gasPrice: 7n, type: 'legacy' }).catch((x: unknown) => x);
    expect(v).toMatchObject({ data: { code: 'CLIENT_ANSWER_MISMATCH' } });
    expect((v as Error).message).toMatch(/does not match the request: (value|to) is/);
    const e = await new EnclaveSigner({ socket, address: KEY.address }).signTransaction({ chainId: 1, data: '0x6000', nonce: 3, gasLimit: 100000n, gasPrice: 7n }).catch((x: unknown) => x);
    expect(e).toMatchObject({ error: { data: { code: 'CLIENT_ANSWER_MISMATCH' } } });
  });

  it('finding: a transaction signed by another key is refused', async () => {
    forge = async (_m, params) => {
      const r = params[0] as Record<string, string>;
      return OTHER.signTransaction({ chainId: 1, to: r.to as Hex, value: 5n, nonce: 3, gas: 21000n, gasPrice: 7n, type: 'legacy' });
    };
    const e = await new EnclaveSigner({ socket, address: KEY.address }).signTransaction({ chainId: 1, to: TO, value: 5n, nonce: 3, gasLimit: 21000n, gasPrice: 7n }).catch((x: unknown) => x);
    expect(e).toMatchObject({ error: { data: { code: 'CLIENT_ANSWER_MISMATCH' } } });
    expect(String((e as Error).message)).toMatch(new RegExp(`signed by ${OTHER.address}`, 'i'));
  });

  it('finding: a message or typed-data signature over something else (or by another key) is refused', async () => {
    forge = async () => KEY.signMessage({ message: 'something else' });
    await expect(enclaveAccount({ socket, address: KEY.address }).signMessage({ message: 'pay 1' })).rejects.toMatchObject({ data: { code: 'CLIENT_ANSWER_MISMATCH' } });
    await expect(new EnclaveSigner({ socket, address: KEY.address }).signMessage('pay 1')).rejects.toMatchObject({ error: { data: { code: 'CLIENT_ANSWER_MISMATCH' } } });
    forge = async () => OTHER.signTypedData({ domain: { name: 'x' }, types: { M: [{ name: 'a', type: 'uint256' }] }, primaryType: 'M', message: { a: 1n } });
    await expect(enclaveAccount({ socket, address: KEY.address }).signTypedData({ domain: { name: 'x' }, types: { M: [{ name: 'a', type: 'uint256' }] }, primaryType: 'M', message: { a: 1n } })).rejects.toMatchObject({
      data: { code: 'CLIENT_ANSWER_MISMATCH' },
    });
  });

  it('finding: a PSBT answered with another transaction (an output to the host) is refused by the bitcoin helper', async () => {
    const pay = btc.p2wpkh(secp256k1.getPublicKey(new Uint8Array(32).fill(3)));
    const build = (dest: Uint8Array) => {
      const tx = new btc.Transaction();
      tx.addInput({ txid: 'aa'.repeat(32), index: 0, witnessUtxo: { script: pay.script, amount: 10_000n } });
      tx.addOutput({ script: dest, amount: 9_000n });
      return tx.toPSBT();
    };
    const mine = build(btc.p2wpkh(secp256k1.getPublicKey(new Uint8Array(32).fill(4))).script);
    const theirs = build(btc.p2wpkh(secp256k1.getPublicKey(new Uint8Array(32).fill(5))).script);
    const client = createSignerClient({ socket });
    try {
      forge = async () => ({ psbt: Buffer.from(theirs).toString('base64') });
      await expect(signPsbt(client, 'k', mine)).rejects.toThrow(/CLIENT_ANSWER_MISMATCH/);
      forge = async () => ({ psbt: Buffer.from(mine).toString('base64') });
      expect(await signPsbt(client, 'k', mine)).toEqual(mine);
    } finally {
      client.close();
    }
  });

  it('an honest answer passes (the checks are not vacuous)', async () => {
    forge = txAnswer({});
    const raw = await enclaveAccount({ socket, address: KEY.address }).signTransaction({ ...TX, type: 'legacy' });
    expect(Transaction.from(raw).from).toBe(KEY.address);
    forge = async (_m, params) => KEY.signMessage({ message: { raw: hexToBytes(params[0] as Hex) } });
    expect(await new EnclaveSigner({ socket, address: KEY.address }).signMessage('pay 1')).toMatch(/^0x/);
  });
});
