/**
 * The package exports against the real appliance (`enclave-signer dev
 * --chain-id 31337`, issue 12 §3 and §5): enclave-signer/client,
 * enclave-signer/viem, enclave-signer/ethers and enclave-signer/bitcoin.
 * Every signature is checked by the libraries' own verify/recover functions;
 * sendTransaction runs against a loopback stand-in node (test/fake-node.ts)
 * that records the raw transaction — no real EVM yet.
 */
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import * as btc from '@scure/btc-signer';
import { JsonRpcProvider, Transaction as EthersTransaction, verifyMessage as ethersVerifyMessage, verifyTypedData as ethersVerifyTypedData, type TypedDataField } from 'ethers';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BaseError, createWalletClient, http, parseTransaction, recoverTransactionAddress, verifyMessage, verifyTypedData, type Hex, type TransactionSerialized } from 'viem';
import { hardhat } from 'viem/chains';
import { recoverAuthorizationAddress } from 'viem/utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REGTEST, bitcoinAccount, buildPsbt, signAndExtract } from '../../client/bitcoin.js';
import { EnclaveSigner } from '../../client/ethers.js';
import { EnclaveSignerRpcError, createSignerClient, type SignerClient } from '../../client/index.js';
import { EnclaveSignerViemError, enclaveAccount } from '../../client/viem.js';
import { EIP712_MAIL } from '../eip712-mail.js';
import { startFakeNode, type FakeNode } from '../fake-node.js';
import { call, startDevStack, type DevStack } from './dev-stack.js';

const CHAIN_ID = 31337;
const TO = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' as const;
const UNKNOWN = '0x000000000000000000000000000000000000dEaD' as const;
const dir = mkdtempSync(join(tmpdir(), 'es-e2e-adapters-'));
let stack: DevStack;
let denying: DevStack;
let node: FakeNode;
let address: Hex;
let deniedAddress: Hex;

beforeAll(async () => {
  [stack, denying, node] = await Promise.all([
    startDevStack({ dataDir: join(dir, 'data'), http: true, args: ['--chain-id', String(CHAIN_ID)] }),
    // A second appliance whose enclave refuses personal_sign: a policy denial (4001).
    startDevStack({ dataDir: join(dir, 'deny'), args: ['--chain-id', String(CHAIN_ID), '--deny-op', 'personal_sign'] }),
    startFakeNode(CHAIN_ID),
  ]);
  address = (await call(stack.socket, 'signer_createKey', { label: 'adapters' })).address;
  deniedAddress = (await call(denying.socket, 'signer_createKey', { label: 'denied' })).address;
}, 90_000);
afterAll(async () => {
  await Promise.all([stack?.stop(), denying?.stop(), node?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('enclave-signer/client', () => {
  const endpoints = {
    'IPC (socket)': () => ({ socket: stack.socket }),
    'HTTP over the socket': () => ({ socket: stack.socket, transport: 'http' as const }),
    'HTTP (loopback url)': () => ({ url: stack.http! }),
  };
  for (const [name, ep] of Object.entries(endpoints)) {
    it(`${name}: typed calls; a refusal is an EnclaveSignerRpcError with code, data.code, field and hint`, async () => {
      const c = createSignerClient(ep());
      try {
        expect(await c.accounts()).toContain(address);
        expect(await c.chainId()).toBe(CHAIN_ID);
        const raw = await c.signTransaction({ from: address, to: TO, value: '0x1', nonce: '0x0', gas: '0x5208', gasPrice: '0x1' });
        expect(EthersTransaction.from(raw).from).toBe(address);
        const e = await c.personalSign(UNKNOWN, 'hi').catch((x: unknown) => x);
        expect(e).toBeInstanceOf(EnclaveSignerRpcError);
        expect(e).toMatchObject({ code: -32602, method: 'personal_sign', rule: 'PARENT_INVALID_PARAMS', data: { field: 'params[1]', hint: expect.stringMatching(/eth_accounts/) } });
      } finally {
        c.close();
      }
    });
  }
});

describe('enclave-signer/viem: enclaveAccount', () => {
  let client: SignerClient;
  beforeAll(() => {
    client = createSignerClient({ socket: stack.socket });
  });
  afterAll(() => client.close());

  it('signMessage and signTypedData verify with viem', async () => {
    const account = enclaveAccount({ socket: stack.socket, address });
    expect(account.address).toBe(address);
    for (const message of ['hello enclave', '0x1234', { raw: '0xdeadbeef' as const }, { raw: new Uint8Array([1, 2, 3]) }]) {
      const signature = await account.signMessage({ message });
      expect(await verifyMessage({ address, message, signature }), JSON.stringify(message)).toBe(true);
    }
    const signature = await account.signTypedData(EIP712_MAIL);
    expect(await verifyTypedData({ ...EIP712_MAIL, address, signature })).toBe(true);
    // bigint values (as viem callers write them) are serialized for the signer.
    const big = { ...EIP712_MAIL, domain: { ...EIP712_MAIL.domain, chainId: 31337n } };
    expect(await verifyTypedData({ ...big, address, signature: await account.signTypedData(big) })).toBe(true);
  });

  it('signTransaction and signAuthorization recover to the address', async () => {
    const account = enclaveAccount({ client, address });
    const raw = await account.signTransaction({ chainId: CHAIN_ID, to: TO, value: 5n, nonce: 3, gas: 21000n, maxFeePerGas: 2n, maxPriorityFeePerGas: 1n, type: 'eip1559' });
    expect(parseTransaction(raw)).toMatchObject({ chainId: CHAIN_ID, nonce: 3, value: 5n, type: 'eip1559' });
    expect(await recoverTransactionAddress({ serializedTransaction: raw as TransactionSerialized })).toBe(address);
    const auth = await account.signAuthorization!({ chainId: CHAIN_ID, address: TO, nonce: 7 });
    expect(auth).toMatchObject({ chainId: CHAIN_ID, address: TO, nonce: 7 });
    expect(await recoverAuthorizationAddress({ authorization: auth })).toBe(address);
  });

  it('createWalletClient({ account, chain, transport: http(node) }).sendTransaction: filled by the node, signed by the enclave', async () => {
    const wallet = createWalletClient({ account: enclaveAccount({ client, address }), chain: hardhat, transport: http(node.url) });
    const before = node.sent.length;
    const hash = await wallet.sendTransaction({ to: TO, value: 1000n });
    expect(node.sent.length).toBe(before + 1);
    const raw = node.sent.at(-1)!;
    expect(await recoverTransactionAddress({ serializedTransaction: raw as TransactionSerialized })).toBe(address);
    expect(parseTransaction(raw)).toMatchObject({ chainId: CHAIN_ID, to: TO.toLowerCase(), value: 1000n, gas: 21000n });
    expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
  });

  it('an unknown address and a policy denial are viem BaseErrors carrying the JSON-RPC code and rule', async () => {
    const unknown = await enclaveAccount({ client, address: UNKNOWN }).signMessage({ message: 'x' }).catch((x: unknown) => x);
    expect(unknown).toBeInstanceOf(BaseError);
    expect(unknown).toBeInstanceOf(EnclaveSignerViemError);
    expect(unknown).toMatchObject({ code: -32602, rule: 'PARENT_INVALID_PARAMS' });
    const denied = await enclaveAccount({ socket: denying.socket, address: deniedAddress }).signMessage({ message: 'x' }).catch((x: unknown) => x);
    expect(denied).toBeInstanceOf(BaseError);
    expect(denied).toMatchObject({ code: 4001, rule: '--deny-op' });
    expect((denied as BaseError).shortMessage).toMatch(/denied/);
  });
});

describe('enclave-signer/ethers: EnclaveSigner', () => {
  const typed = EIP712_MAIL as unknown as { domain: Record<string, unknown>; types: Record<string, TypedDataField[]>; message: Record<string, unknown> };

  it('signMessage, signTypedData and signTransaction verify with ethers', async () => {
    const signer = new EnclaveSigner({ socket: stack.socket, address });
    expect(await signer.getAddress()).toBe(address);
    for (const m of ['hello enclave', new Uint8Array([0, 1, 2])]) expect(ethersVerifyMessage(m, await signer.signMessage(m))).toBe(address);
    expect(ethersVerifyTypedData(typed.domain, typed.types, typed.message, await signer.signTypedData(typed.domain, typed.types, typed.message))).toBe(address);
    const raw = await signer.signTransaction({ to: TO, value: 1n, nonce: 0, gasLimit: 21000n, maxFeePerGas: 2n, maxPriorityFeePerGas: 1n, type: 2, chainId: CHAIN_ID });
    const tx = EthersTransaction.from(raw);
    expect(tx.from).toBe(address);
    expect(tx.chainId).toBe(BigInt(CHAIN_ID));
  });

  it('connect(provider).sendTransaction: AbstractSigner populates from the node, the enclave signs', async () => {
    const provider = new JsonRpcProvider(node.url, CHAIN_ID, { staticNetwork: true });
    try {
      const signer = new EnclaveSigner({ url: stack.http!, address }).connect(provider);
      expect(signer.provider).toBe(provider);
      const before = node.sent.length;
      const res = await signer.sendTransaction({ to: TO, value: 42n });
      expect(node.sent.length).toBe(before + 1);
      const tx = EthersTransaction.from(node.sent.at(-1)!);
      expect(tx.from).toBe(address);
      expect(tx.value).toBe(42n);
      expect(tx.chainId).toBe(BigInt(CHAIN_ID));
      expect(res.hash).toBe(tx.hash);
    } finally {
      provider.destroy();
    }
  });

  it('an unknown address and a policy denial are ethers errors (makeError) carrying the JSON-RPC code and rule', async () => {
    const unknown = await new EnclaveSigner({ socket: stack.socket, address: UNKNOWN }).signMessage('x').catch((x: unknown) => x);
    expect(unknown).toMatchObject({ code: 'UNKNOWN_ERROR', error: { code: -32602 }, rule: 'PARENT_INVALID_PARAMS' });
    const denied = await new EnclaveSigner({ socket: denying.socket, address: deniedAddress }).signMessage('x').catch((x: unknown) => x);
    expect(denied).toMatchObject({ code: 'ACTION_REJECTED', action: 'signMessage', reason: 'rejected', info: { error: { code: 4001 }, rule: '--deny-op' } });
  });
});

describe('enclave-signer/bitcoin', () => {
  it('a regtest P2WPKH + P2TR spend: PSBT built from the account xpubs, signed in the enclave, finalized, extracted, every input verifies', async () => {
    const client = createSignerClient({ socket: stack.socket });
    try {
      const seed = await client.createKey({ kind: 'bip32-seed', label: 'adapters-btc' });
      const wpkhAccount = await bitcoinAccount(client, seed.keyId, "m/84'/1'/0'");
      const trAccount = await bitcoinAccount(client, seed.keyId, "m/86'/1'/0'");
      expect(wpkhAccount.masterFingerprint).toBe(seed.fingerprint);
      const dest = btc.p2wpkh(secp256k1.getPublicKey(new Uint8Array(32).fill(7)), REGTEST);
      const psbt = buildPsbt({
        network: REGTEST,
        utxos: [
          { txid: 'a1'.repeat(32), vout: 0, amount: 120_000n, type: 'p2wpkh', account: wpkhAccount, path: '0/3' },
          { txid: 'b2'.repeat(31) + 'c3', vout: 1, amount: 80_000n, type: 'p2tr', account: trAccount, path: '1/0' },
        ],
        outputs: [{ address: dest.address!, amount: 199_000n }],
      });
      const { hex, txid, tx } = await signAndExtract(client, seed.keyId, psbt);
      expect(dest.address).toMatch(/^bcrt1q/);
      const final = btc.Transaction.fromRaw(Buffer.from(hex, 'hex'));
      expect(final.id).toBe(txid);
      expect(final.inputsLength).toBe(2);

      // The derived keys are the enclave's: check against signer_deriveKey of the full paths.
      const wpkhPub = Buffer.from((await client.request<{ publicKey: string }>('signer_deriveKey', { keyId: seed.keyId, path: "m/84'/1'/0'/0/3" })).publicKey.slice(2), 'hex');
      const trX = Buffer.from((await client.request<{ xOnlyPublicKey: string }>('signer_deriveKey', { keyId: seed.keyId, path: "m/86'/1'/0'/1/0" })).xOnlyPublicKey.slice(2), 'hex');
      const wpkh = btc.p2wpkh(wpkhPub, REGTEST);
      const tr = btc.p2tr(trX, undefined, REGTEST);

      // P2WPKH: DER signature ‖ SIGHASH_ALL over the BIP143 sighash, under the derived key.
      const [sig0, pub0] = final.getInput(0).finalScriptWitness!;
      expect(Buffer.from(pub0!)).toEqual(wpkhPub);
      const sighash0 = tx.preimageWitnessV0(0, btc.OutScript.encode({ type: 'pkh', hash: wpkh.hash! }), btc.SigHash.ALL, 120_000n);
      expect(secp256k1.verify(sig0!.subarray(0, -1), sighash0, wpkhPub, { prehash: false, format: 'der' })).toBe(true);
      // P2TR key path: BIP340 signature over the BIP341 sighash, under the tweaked output key.
      const [sig1] = final.getInput(1).finalScriptWitness!;
      expect(sig1).toHaveLength(64);
      const sighash1 = tx.preimageWitnessV1(1, [wpkh.script, tr.script], btc.SigHash.DEFAULT, [120_000n, 80_000n]);
      expect(schnorr.verify(sig1!, sighash1, tr.tweakedPubkey)).toBe(true);
    } finally {
      client.close();
    }
  });

  it('a utxo whose script is not the derived one is refused before anything is signed', async () => {
    const account = { xpub: 'xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8', path: "m/84'/0'/0'", masterFingerprint: '00000000' };
    expect(() => buildPsbt({ utxos: [{ txid: 'aa'.repeat(32), vout: 0, amount: 1n, type: 'p2wpkh', account, path: '0/0', script: `0014${'00'.repeat(20)}` }], outputs: [] })).toThrow(/is not the P2WPKH of m\/84'\/0'\/0'\/0\/0/);
    expect(() => buildPsbt({ utxos: [{ txid: 'aa'.repeat(32), vout: 0, amount: 1n, type: 'p2wpkh', account, path: "0'/0" }], outputs: [] })).toThrow(/non-hardened/);
  });
});
