/**
 * Real clients against the real appliance: `enclave-signer dev` spawned as a
 * child process (KMS emulator, enclave child with the simulated NSM, parent
 * with its signing socket and a loopback HTTP listener). Every signature is
 * checked by an independent library, never by the signer itself:
 *
 *   ethers v6  IpcSocketProvider and JsonRpcProvider → JsonRpcSigner
 *   viem       ipc() and http() wallet clients with a JSON-RPC account;
 *              EIP-2930 / EIP-4844 / EIP-7702 through raw JSON-RPC
 *   Bitcoin    PSBTs built, finalized and extracted with @scure/btc-signer,
 *              signatures checked against BIP143 / BIP341 sighashes
 *   curl       --unix-socket: signer_status, /healthz, /readyz, /metrics
 *
 * and finally a rerun of the dev stack over the same data directory serves
 * the same keys.
 */
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { IpcSocketProvider, JsonRpcProvider, Transaction, verifyMessage as ethersVerifyMessage, verifyTypedData as ethersVerifyTypedData, type TypedDataField } from 'ethers';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createClient,
  getAddress,
  hexToBytes,
  http,
  parseTransaction,
  recoverMessageAddress,
  recoverTransactionAddress,
  recoverTypedDataAddress,
  verifyMessage,
  type Chain,
  type Hex,
  type TransactionSerialized,
  type Transport,
  walletActions,
} from 'viem';
import { mainnet, sepolia } from 'viem/chains';
import { ipc } from 'viem/node';
import { recoverAuthorizationAddress } from 'viem/utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CURL, call, curl, rpc, startDevStack, type DevStack } from './dev-stack.js';
import { EIP712_MAIL } from '../eip712-mail.js';

const dir = mkdtempSync(join(tmpdir(), 'es-e2e-clients-'));
let stack: DevStack;
let address: Hex;
let keyId: string;

beforeAll(async () => {
  stack = await startDevStack({ dataDir: join(dir, 'data'), http: true });
  const k = await call(stack.socket, 'signer_createKey', { label: 'e2e-clients' });
  address = k.address;
  keyId = k.keyId;
});
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const TO = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' as const;

const typedData = EIP712_MAIL;

describe('ethers v6 JsonRpcSigner', () => {
  // A signer is not a node: it does not serve eth_chainId. With a static
  // network ethers never asks for it, and complete transactions need no
  // other node method (no populate, no estimate).
  const providers = {
    'IpcSocketProvider (unix socket)': () => new IpcSocketProvider(stack.socket, 1, { staticNetwork: true }),
    'JsonRpcProvider (loopback HTTP)': () => new JsonRpcProvider(stack.http!, 1, { staticNetwork: true }),
  };
  for (const [name, make] of Object.entries(providers)) {
    it(`${name}: signTransaction (EIP-1559, legacy), signMessage, signTypedData`, async () => {
      const provider = make();
      try {
        expect(await provider.send('eth_accounts', [])).toContain(address);
        const signer = await provider.getSigner(address);
        expect(await signer.getAddress()).toBe(address);

        const raw1559 = await signer.signTransaction({ type: 2, chainId: 1, nonce: 7, to: TO, value: 10n ** 15n, gasLimit: 21_000, maxFeePerGas: 30n * 10n ** 9n, maxPriorityFeePerGas: 10n ** 9n, data: '0xdeadbeef' });
        const t2 = Transaction.from(raw1559);
        expect(t2.from).toBe(address);
        expect([t2.type, t2.chainId, t2.nonce, t2.to, t2.value, t2.data]).toEqual([2, 1n, 7, TO, 10n ** 15n, '0xdeadbeef']);

        // Legacy with chainId: EIP-155 replay protection (v = chainId·2 + 35 + yParity).
        const rawLegacy = await signer.signTransaction({ type: 0, chainId: 11155111, nonce: 0, to: TO, value: 1n, gasLimit: 21_000, gasPrice: 2n * 10n ** 9n });
        const t0 = Transaction.from(rawLegacy);
        expect(t0.from).toBe(address);
        expect([t0.type, t0.chainId, t0.gasPrice]).toEqual([0, 11155111n, 2n * 10n ** 9n]);
        expect([11155111 * 2 + 35, 11155111 * 2 + 36]).toContain(Number(t0.signature!.networkV));

        const msg = `hello from ethers over ${name}`;
        const sig = await signer.signMessage(msg);
        expect(ethersVerifyMessage(msg, sig)).toBe(address);

        const types = typedData.types as unknown as Record<string, TypedDataField[]>;
        const tsig = await signer.signTypedData(typedData.domain, types, typedData.message);
        expect(ethersVerifyTypedData(typedData.domain, types, typedData.message, tsig)).toBe(address);
      } finally {
        provider.destroy();
      }
    });
  }

  it('a JSON-RPC error reaches ethers as an error, not a hang', async () => {
    const provider = new IpcSocketProvider(stack.socket, 1, { staticNetwork: true });
    try {
      const signer = await provider.getSigner(address);
      // No chainId: the signer refuses (never defaults it) with -32602.
      await expect(provider.send('eth_signTransaction', [{ from: address, to: TO, nonce: '0x0', gas: '0x5208', gasPrice: '0x1' }])).rejects.toThrow(/chainId/);
      // Sending needs a node (nonce, gas, broadcast): the signer says it does not serve that.
      await expect(signer.sendTransaction({ to: TO, value: 1n })).rejects.toThrow(/not served by this signer/);
    } finally {
      provider.destroy();
    }
  });
});

describe('viem wallet client with a JSON-RPC account', () => {
  // viem's signTransaction always asks the transport for eth_chainId, which a
  // signer does not serve. viem's override point (getAction looks an action
  // up on the client first) supplies it from the caller's own config; it has
  // to be in place before walletActions binds its client.
  const walletClient = (chain: Chain, transport: Transport) =>
    createClient({ account: address, chain, transport })
      .extend(() => ({ getChainId: async () => chain.id }))
      .extend(walletActions);

  const transports: Record<string, () => Transport> = {
    'ipc()': () => ipc(stack.socket),
    'http()': () => http(stack.http!),
  };
  for (const [name, transport] of Object.entries(transports)) {
    it(`${name}: signTransaction (EIP-1559 on mainnet, legacy on sepolia), signMessage, signTypedData`, async () => {
      const main = walletClient(mainnet, transport());
      const sep = walletClient(sepolia, transport());
      try {
        expect(await main.getAddresses()).toContain(address);

        const raw = await main.signTransaction({ to: TO, value: 10n ** 16n, nonce: 3, gas: 21_000n, maxFeePerGas: 20n * 10n ** 9n, maxPriorityFeePerGas: 10n ** 9n });
        expect(await recoverTransactionAddress({ serializedTransaction: raw })).toBe(address);
        expect(parseTransaction(raw)).toMatchObject({ type: 'eip1559', chainId: 1, nonce: 3, to: TO.toLowerCase(), value: 10n ** 16n });

        const rawLegacy = await sep.signTransaction({ type: 'legacy', to: TO, value: 5n, nonce: 0, gas: 21_000n, gasPrice: 10n ** 9n });
        expect(await recoverTransactionAddress({ serializedTransaction: rawLegacy })).toBe(address);
        expect(parseTransaction(rawLegacy)).toMatchObject({ type: 'legacy', chainId: sepolia.id, gasPrice: 10n ** 9n });

        const message = `hello from viem over ${name}`;
        const sig = await main.signMessage({ message });
        expect(await recoverMessageAddress({ message, signature: sig })).toBe(address);
        expect(await verifyMessage({ address, message, signature: sig })).toBe(true);
        const raw32 = await main.signMessage({ message: { raw: '0x' + 'ab'.repeat(32) as Hex } });
        expect(await recoverMessageAddress({ message: { raw: '0x' + 'ab'.repeat(32) as Hex }, signature: raw32 })).toBe(address);

        const tsig = await main.signTypedData(typedData);
        expect(await recoverTypedDataAddress({ ...typedData, signature: tsig })).toBe(address);
      } finally {
        if (name === 'ipc()') (await main.transport.getRpcClient?.())?.close();
      }
    });
  }

  it('EIP-2930 and EIP-4844 (blob versioned hashes, no sidecar) via eth_signTransaction', async () => {
    const accessList = [{ address: TO, storageKeys: ['0x' + '00'.repeat(31) + '01'] }] as const;
    const raw2930 = (await call(stack.socket, 'eth_signTransaction', [
      { type: '0x1', from: address, chainId: '0x1', nonce: '0x9', to: TO, value: '0x0', gas: '0x7530', gasPrice: '0x3b9aca00', accessList, data: '0x' },
    ])) as Hex;
    expect(await recoverTransactionAddress({ serializedTransaction: raw2930 as TransactionSerialized })).toBe(address);
    const p1 = parseTransaction(raw2930);
    expect(p1).toMatchObject({ type: 'eip2930', chainId: 1, nonce: 9, gas: 30_000n, gasPrice: 10n ** 9n });
    expect(p1.accessList!.map((e) => ({ ...e, address: getAddress(e.address) }))).toEqual(accessList);

    const hashes = ['0x01' + '11'.repeat(31), '0x01' + '22'.repeat(31)] as Hex[];
    const raw4844 = (await call(stack.socket, 'eth_signTransaction', [
      {
        type: '0x3',
        from: address,
        chainId: '0x1',
        nonce: '0x0',
        to: TO,
        gas: '0x5208',
        maxFeePerGas: '0x77359400',
        maxPriorityFeePerGas: '0x3b9aca00',
        maxFeePerBlobGas: '0x3b9aca00',
        blobVersionedHashes: hashes,
      },
    ])) as Hex;
    expect(raw4844.startsWith('0x03')).toBe(true);
    expect(await recoverTransactionAddress({ serializedTransaction: raw4844 as TransactionSerialized })).toBe(address);
    const p3 = parseTransaction(raw4844);
    expect(p3).toMatchObject({ type: 'eip4844', chainId: 1, maxFeePerBlobGas: 10n ** 9n });
    expect(p3.blobVersionedHashes).toEqual(hashes);
    expect(p3.sidecars).toBeFalsy(); // the signing form: versioned hashes only
  });

  it('EIP-7702: signer_signAuthorization, then a type-4 transaction carrying it', async () => {
    const delegate = '0x5FbDB2315678afecb367f032d93F642f64180aa3' as const;
    const auth = await call(stack.socket, 'signer_signAuthorization', { account: address, chainId: 1, address: delegate, nonce: 5 });
    expect(auth).toMatchObject({ chainId: 1, nonce: 5, signer: address });
    expect(getAddress(auth.address)).toBe(delegate);
    const authorization = { chainId: auth.chainId as number, address: auth.address as Hex, nonce: auth.nonce as number, r: auth.r as Hex, s: auth.s as Hex, yParity: auth.yParity as number };
    expect(await recoverAuthorizationAddress({ authorization })).toBe(address);

    // keyId addressing works too, and chainId 0 (all chains) is refused by default.
    const byId = await call(stack.socket, 'signer_signAuthorization', { keyId, chainId: '0x1', address: delegate, nonce: '0x5' });
    expect([byId.r, byId.s]).toEqual([auth.r, auth.s]); // RFC 6979: same key, same message
    expect((await rpc(stack.socket, 'signer_signAuthorization', { keyId, chainId: 0, address: delegate, nonce: 0 })).error).toMatchObject({ code: -32602 });

    const raw = (await call(stack.socket, 'eth_signTransaction', [
      {
        type: '0x4',
        from: address,
        chainId: '0x1',
        nonce: '0x4',
        to: address,
        gas: '0x186a0',
        maxFeePerGas: '0x77359400',
        maxPriorityFeePerGas: '0x3b9aca00',
        authorizationList: [{ chainId: '0x1', address: delegate, nonce: '0x5', yParity: `0x${auth.yParity.toString(16)}`, r: auth.r, s: auth.s }],
      },
    ])) as Hex;
    expect(raw.startsWith('0x04')).toBe(true);
    expect(await recoverTransactionAddress({ serializedTransaction: raw as TransactionSerialized })).toBe(address);
    const p = parseTransaction(raw);
    expect(p.type).toBe('eip7702');
    expect(p.authorizationList).toHaveLength(1);
    expect(await recoverAuthorizationAddress({ authorization: p.authorizationList![0]! })).toBe(address);
  });
});

describe('Bitcoin: BIP32 seed, derivation, PSBT signing', () => {
  it('P2WPKH and P2TR key-path inputs signed by the enclave, finalized and extracted by @scure/btc-signer, verified against the sighashes', async () => {
    const seed = await call(stack.socket, 'signer_createKey', { kind: 'bip32-seed', label: 'e2e-btc' });
    expect(seed).toMatchObject({ kind: 'bip32-seed', fingerprint: expect.stringMatching(/^[0-9a-f]{8}$/), xpub: expect.stringMatching(/^xpub/) });
    expect(seed).not.toHaveProperty('blob');

    const WPKH = "m/84'/0'/0'/0/0";
    const TR = "m/86'/0'/0'/0/0";
    const wpkhInfo = await call(stack.socket, 'signer_deriveKey', { keyId: seed.keyId, path: WPKH });
    const trInfo = await call(stack.socket, 'signer_deriveKey', { keyId: seed.keyId, path: TR });
    expect(wpkhInfo).toMatchObject({ path: WPKH, masterFingerprint: seed.fingerprint, depth: 5 });
    expect(trInfo).toMatchObject({ path: TR, masterFingerprint: seed.fingerprint });
    // Independent check of the derivation: the account xpub, derived publicly by @scure/bip32, gives the same child.
    const account = await call(stack.socket, 'signer_deriveKey', { keyId: seed.keyId, path: "m/84'/0'/0'" });
    expect(HDKey.fromExtendedKey(account.xpub).derive('m/0/0').publicKey).toEqual(hexToBytes(wpkhInfo.publicKey));

    const fingerprint = parseInt(seed.fingerprint, 16);
    const wpkhPub = hexToBytes(wpkhInfo.publicKey);
    const trX = hexToBytes(trInfo.xOnlyPublicKey);
    const wpkh = btc.p2wpkh(wpkhPub);
    const tr = btc.p2tr(trX);
    const dest = btc.p2wpkh(secp256k1.getPublicKey(new Uint8Array(32).fill(7)));
    const tx = new btc.Transaction();
    tx.addInput({
      txid: hexToBytes(`0x${'a1'.repeat(32)}`),
      index: 0,
      witnessUtxo: { script: wpkh.script, amount: 120_000n },
      bip32Derivation: [[wpkhPub, { fingerprint, path: btc.bip32Path(WPKH) }]],
    });
    tx.addInput({
      txid: hexToBytes(`0x${'b2'.repeat(32)}`),
      index: 1,
      witnessUtxo: { script: tr.script, amount: 80_000n },
      tapInternalKey: trX,
      tapBip32Derivation: [[trX, { hashes: [], der: { fingerprint, path: btc.bip32Path(TR) } }]],
    });
    tx.addOutput({ script: dest.script, amount: 199_000n });
    const psbt = Buffer.from(tx.toPSBT()).toString('base64');

    const res = await call(stack.socket, 'signer_signPsbt', { keyId: seed.keyId, psbt });
    expect(res.signedInputs).toEqual([0, 1]);
    expect(res.masterFingerprint).toBe(seed.fingerprint);

    const signed = btc.Transaction.fromPSBT(Buffer.from(res.psbt, 'base64'));
    expect(signed.getInput(0).finalScriptWitness).toBeUndefined(); // the signer does not finalize
    signed.finalize();
    const final = btc.Transaction.fromRaw(signed.extract());
    expect(final.isFinal).toBe(true);
    expect(final.outputsLength).toBe(1);

    // P2WPKH: [DER sig ‖ SIGHASH_ALL, pubkey] valid for the BIP143 sighash.
    const [sig0, pub0] = signed.getInput(0).finalScriptWitness!;
    expect(pub0).toEqual(wpkhPub);
    expect(sig0![sig0!.length - 1]).toBe(btc.SigHash.ALL);
    const sighash0 = signed.preimageWitnessV0(0, btc.OutScript.encode({ type: 'pkh', hash: wpkh.hash! }), btc.SigHash.ALL, 120_000n);
    expect(secp256k1.verify(sig0!.subarray(0, -1), sighash0, wpkhPub, { prehash: false, format: 'der' })).toBe(true);

    // P2TR key path: one 64-byte BIP340 signature (SIGHASH_DEFAULT) under the tweaked output key.
    const w1 = signed.getInput(1).finalScriptWitness!;
    expect(w1).toHaveLength(1);
    expect(w1[0]).toHaveLength(64);
    const sighash1 = signed.preimageWitnessV1(1, [wpkh.script, tr.script], btc.SigHash.DEFAULT, [120_000n, 80_000n]);
    expect(schnorr.verify(w1[0]!, sighash1, tr.tweakedPubkey)).toBe(true);
  });
});

describe('curl --unix-socket', () => {
  it.skipIf(CURL === undefined)('signer_status, /healthz, /readyz, /metrics', async () => {
    const s = stack.socket;
    const status = JSON.parse(
      (await curl(['-sS', '--unix-socket', s, '-H', 'content-type: application/json', '-d', '{"jsonrpc":"2.0","id":1,"method":"signer_status"}', 'http://signer/'])).stdout,
    );
    expect(status.result).toMatchObject({ ready: true, gate: { state: 'ready' }, keyring: { state: 'unlocked' }, enclave: { nsm: 'simulated' } });
    expect(status.result.keys).toBeGreaterThanOrEqual(1);
    expect(status.result.attestation.pcrs['0']).toMatch(/^[0-9a-f]{96}$/);

    const code = async (path: string) => (await curl(['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--unix-socket', s, `http://signer${path}`])).stdout;
    expect(await code('/healthz')).toBe('200');
    expect(JSON.parse((await curl(['-sS', '--unix-socket', s, 'http://signer/healthz'])).stdout)).toEqual({ status: 'ok' });
    expect(await code('/readyz')).toBe('200');
    const ready = JSON.parse((await curl(['-sS', '--unix-socket', s, 'http://signer/readyz'])).stdout);
    expect(ready).toMatchObject({ ready: true, gate: { state: 'ready' }, keyring: { state: 'unlocked' } });
    expect(ready.attestation.manifest.image.name).toBe('enclave-signer-dev');

    const metrics = (await curl(['-sS', '--unix-socket', s, 'http://signer/metrics'])).stdout;
    expect(metrics).toContain('enclave_signer_parent_ready 1');
    expect(metrics).toMatch(/enclave_signer_parent_requests_total\{method="signer_createKey",outcome="ok"\} [1-9]/);
    expect(metrics).toMatch(/enclave_signer_parent_requests_total\{method="signer_status",outcome="ok"\} [1-9]/);
    expect(metrics).toMatch(/enclave_signer_parent_attestations_total\{result="ok"\} [1-9]/);
  });
});

describe('restart over the same data directory', () => {
  it('stops cleanly on SIGTERM; the rerun serves the same keys and signs with them', async () => {
    const accounts = await call(stack.socket, 'eth_accounts', []);
    const keys = (await call(stack.socket, 'signer_listKeys', {})) as { keyId: string; xpub?: string }[];
    const seed = keys.find((k) => k.xpub !== undefined);
    expect(accounts).toContain(address);
    expect(seed).toBeDefined();

    const socket = stack.socket;
    const dataDir = stack.dataDir;
    const exit = await stack.stop();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(existsSync(socket)).toBe(false); // the socket file is removed on shutdown

    stack = await startDevStack({ dataDir, http: true });
    expect(await call(stack.socket, 'eth_accounts', [])).toEqual(accounts);
    expect((await call(stack.socket, 'signer_listKeys', {})).map((k: { keyId: string }) => k.keyId)).toEqual(keys.map((k) => k.keyId));

    const message = 'signed after a restart';
    const sig = (await call(stack.socket, 'personal_sign', [message, address])) as Hex;
    expect(await recoverMessageAddress({ message, signature: sig })).toBe(address);
    const derived = await call(stack.socket, 'signer_deriveKey', { keyId: seed!.keyId, path: 'm' });
    expect(derived.xpub).toBe(seed!.xpub);
  });
});
