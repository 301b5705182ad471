import { Transaction as EthersTransaction, JsonRpcProvider, Wallet } from 'ethers';
import { formatTransactionRequest, numberToHex, recoverTransactionAddress, type TransactionSerializable } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, describe, expect, it } from 'vitest';
import { signAuthorization } from './eth-authorization.js';
import { parseEthTransaction, signEthTransaction } from './eth-transaction.js';
import { SigningError } from './errors.js';
import { bytes, KEY_A, KEY_B } from './test-helpers.js';

const key = bytes(KEY_A);
const account = privateKeyToAccount(KEY_A);
const wallet = new Wallet(KEY_A);
const provider = new JsonRpcProvider(undefined, 1, { staticNetwork: true });
afterAll(() => provider.destroy());

const TO = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' as const;
const DELEGATE = '0x5FbDB2315678afecb367f032d93F642f64180aa3' as const;
const accessList = [
  {
    address: '0xde0B295669a9FD93d5F28D9Ec85E40f4cb697BAe' as const,
    storageKeys: [
      '0x0000000000000000000000000000000000000000000000000000000000000003',
      '0x0000000000000000000000000000000000000000000000000000000000000007',
    ] as `0x${string}`[],
  },
];

// An authorization signed by another account, carried by the 7702 transaction.
const otherAuth = signAuthorization(bytes(KEY_B), { chainId: 1, address: DELEGATE, nonce: 7 });

/** One transaction of each type, in viem's shape (viem is the reference signer). */
const cases: { name: string; tx: TransactionSerializable }[] = [
  {
    name: 'legacy (EIP-155)',
    tx: { type: 'legacy', chainId: 1, nonce: 9, gasPrice: 20_000_000_000n, gas: 21_000n, to: TO, value: 10n ** 18n, data: '0x' },
  },
  {
    name: 'legacy contract creation on a large chain id',
    tx: { type: 'legacy', chainId: 11_155_111, nonce: 0, gasPrice: 1n, gas: 100_000n, value: 0n, data: '0x6080604052' },
  },
  {
    name: 'EIP-2930',
    tx: { type: 'eip2930', chainId: 10, nonce: 1, gasPrice: 3n, gas: 50_000n, to: TO, value: 5n, data: '0xdeadbeef', accessList },
  },
  {
    name: 'EIP-1559',
    tx: {
      type: 'eip1559',
      chainId: 1,
      nonce: 42,
      maxFeePerGas: 30_000_000_000n,
      maxPriorityFeePerGas: 1_500_000_000n,
      gas: 60_000n,
      to: TO,
      value: 0n,
      data: '0xa9059cbb000000000000000000000000f39fd6e51aad88f6f4ce6ab8827279cfffb922660000000000000000000000000000000000000000000000000de0b6b3a7640000',
      accessList,
    },
  },
  {
    name: 'EIP-1559 with zero nonce, zero tip and no access list',
    tx: { type: 'eip1559', chainId: 8453, nonce: 0, maxFeePerGas: 1n, maxPriorityFeePerGas: 0n, gas: 21_000n, to: TO, value: 1n },
  },
  {
    name: 'EIP-4844 (versioned hashes, no sidecar)',
    tx: {
      type: 'eip4844',
      chainId: 1,
      nonce: 3,
      maxFeePerGas: 40_000_000_000n,
      maxPriorityFeePerGas: 2_000_000_000n,
      maxFeePerBlobGas: 1_000_000_000n,
      gas: 100_000n,
      to: TO,
      value: 0n,
      data: '0x',
      blobVersionedHashes: [
        '0x01a915e4d060149eb4365960e6a7a45f334393093061116b197e3240065ff2d8',
        '0x0100000000000000000000000000000000000000000000000000000000000001',
      ],
    },
  },
  {
    name: 'EIP-7702 (authorization list)',
    tx: {
      type: 'eip7702',
      chainId: 1,
      nonce: 5,
      maxFeePerGas: 10_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
      gas: 200_000n,
      to: TO,
      value: 0n,
      data: '0x',
      authorizationList: [
        { chainId: otherAuth.chainId, address: otherAuth.address, nonce: otherAuth.nonce, r: otherAuth.r, s: otherAuth.s, yParity: otherAuth.yParity },
      ],
    },
  },
];

/** The JSON-RPC request viem's wallet client sends for eth_signTransaction. */
function viemRpcRequest(tx: TransactionSerializable): Record<string, unknown> {
  return {
    ...formatTransactionRequest({ ...(tx as object), from: account.address } as Parameters<typeof formatTransactionRequest>[0]),
    chainId: numberToHex(tx.chainId!),
  };
}

/** ethers' TransactionRequest for the same transaction. */
function ethersRequest(tx: TransactionSerializable): Record<string, unknown> {
  const t = tx as Record<string, unknown>;
  const type = { legacy: 0, eip2930: 1, eip1559: 2, eip4844: 3, eip7702: 4 }[tx.type as string];
  const out: Record<string, unknown> = {
    type,
    chainId: t.chainId,
    nonce: t.nonce,
    gasLimit: t.gas,
    to: t.to ?? null,
    value: t.value ?? 0n,
    data: t.data ?? '0x',
    from: account.address,
  };
  for (const k of ['gasPrice', 'maxFeePerGas', 'maxPriorityFeePerGas', 'maxFeePerBlobGas', 'accessList', 'blobVersionedHashes']) {
    if (t[k] !== undefined) out[k] = t[k];
  }
  if (tx.type === 'eip7702') {
    out.authorizationList = tx.authorizationList!.map((a) => ({
      address: a.address,
      chainId: a.chainId,
      nonce: a.nonce,
      signature: { r: a.r, s: a.s, yParity: a.yParity },
    }));
  }
  return out;
}

describe('eth_signTransaction: every type, proven by viem and ethers', () => {
  for (const { name, tx } of cases) {
    it(name, async () => {
      const ours = signEthTransaction(key, viemRpcRequest(tx));

      // Byte-identical to viem's own local-account signer (RFC 6979 is deterministic).
      expect(ours.raw).toBe(await account.signTransaction(tx));
      // And to ethers' Wallet.
      const ethersTx = ethersRequest(tx);
      expect(ours.raw).toBe(await wallet.signTransaction(ethersTx));

      // Independent recovery of the sender.
      expect(await recoverTransactionAddress({ serializedTransaction: ours.raw as never })).toBe(account.address);
      const parsed = EthersTransaction.from(ours.raw);
      expect(parsed.from).toBe(account.address);
      expect(parsed.hash).toBe(ours.hash);
      expect(parsed.chainId).toBe(BigInt(tx.chainId!));
      expect(parsed.unsignedHash).toBe(ours.signingHash);
      expect(ours.from).toBe(account.address);
      expect(ours.type).toBe(tx.type);

      // The request as ethers' JsonRpcSigner puts it on the wire is accepted and gives the same bytes.
      const ethersWire = provider.getRpcTransaction(ethersTx) as Record<string, unknown>;
      if (tx.type === 'eip4844') {
        // ethers 6 drops maxFeePerBlobGas from JSON-RPC requests; we refuse rather than default it.
        expect(ethersWire.maxFeePerBlobGas).toBeUndefined();
        expect(() => signEthTransaction(key, ethersWire)).toThrow(expect.objectContaining({ field: 'maxFeePerBlobGas' }));
        ethersWire.maxFeePerBlobGas = numberToHex(tx.maxFeePerBlobGas!);
      }
      expect(signEthTransaction(key, ethersWire).raw).toBe(ours.raw);
    });
  }

  it('legacy v is EIP-155 (chainId*2+35+yParity)', () => {
    const r = signEthTransaction(key, viemRpcRequest(cases[1]!.tx));
    expect(BigInt(r.v)).toBe(11_155_111n * 2n + 35n + BigInt(r.yParity));
    expect(EthersTransaction.from(r.raw).signature!.networkV).toBe(BigInt(r.v));
  });

  it('typed values (bigint, type names) are accepted as well as JSON-RPC hex', async () => {
    const tx = cases[3]!.tx;
    const r = signEthTransaction(key, { ...tx });
    expect(r.raw).toBe(await account.signTransaction(tx));
  });

  it('infers the type from fee fields like geth when `type` is absent', () => {
    for (const c of cases) {
      const req = viemRpcRequest(c.tx);
      delete req.type;
      expect(parseEthTransaction(req).type).toBe(c.tx.type);
    }
  });

  it('accepts `input` as an alias of `data`, and both when equal', async () => {
    const req = viemRpcRequest(cases[3]!.tx);
    const data = req.data;
    const alias: Record<string, unknown> = { ...req, input: data };
    delete alias.data;
    expect(signEthTransaction(key, alias).raw).toBe(await account.signTransaction(cases[3]!.tx));
    expect(signEthTransaction(key, { ...req, input: data }).raw).toBe(await account.signTransaction(cases[3]!.tx));
  });

  it('refuses a `from` that is not the signing key', () => {
    const req = { ...viemRpcRequest(cases[0]!.tx), from: TO };
    expect(() => signEthTransaction(key, req)).toThrow(expect.objectContaining({ code: 'SIGN_FROM_MISMATCH', field: 'from' }));
    // lowercase spelling of our own address is fine
    expect(() => signEthTransaction(key, { ...req, from: account.address.toLowerCase() })).not.toThrow();
  });
});

describe('eth_signTransaction: chainId is required, never defaulted', () => {
  for (const { name, tx } of cases) {
    it(`${name} without chainId is refused`, () => {
      const req = viemRpcRequest(tx);
      delete req.chainId;
      let err: unknown;
      try {
        signEthTransaction(key, req);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SigningError);
      expect(err).toMatchObject({ code: 'SIGN_INVALID_PARAMS', field: 'chainId' });
      // null is "not given" too
      expect(() => signEthTransaction(key, { ...req, chainId: null })).toThrow(expect.objectContaining({ field: 'chainId' }));
    });
  }
  it('chainId 0 is refused', () => {
    expect(() => signEthTransaction(key, { ...viemRpcRequest(cases[3]!.tx), chainId: '0x0' })).toThrow(
      expect.objectContaining({ code: 'SIGN_INVALID_PARAMS', field: 'chainId' }),
    );
  });
});

describe('eth_signTransaction: malformed requests are typed errors', () => {
  const base1559 = viemRpcRequest(cases[3]!.tx);
  const base4844 = viemRpcRequest(cases[5]!.tx);
  const base7702 = viemRpcRequest(cases[6]!.tx);
  const table: { name: string; req: unknown; field: string }[] = [
    { name: 'not an object', req: '0x02', field: 'transaction' },
    { name: 'array', req: [base1559], field: 'transaction' },
    { name: 'unknown field', req: { ...base1559, gasLimit: '0x5208' }, field: 'gasLimit' },
    { name: 'unsupported type', req: { ...base1559, type: '0x5' }, field: 'type' },
    { name: 'garbage type', req: { ...base1559, type: 'eip9999' }, field: 'type' },
    { name: 'no fee fields', req: { chainId: '0x1', nonce: '0x0', gas: '0x5208', to: TO }, field: 'type' },
    { name: 'missing nonce', req: { ...base1559, nonce: undefined }, field: 'nonce' },
    { name: 'missing gas', req: { ...base1559, gas: undefined }, field: 'gas' },
    { name: 'missing maxFeePerGas', req: { ...base1559, maxFeePerGas: undefined }, field: 'maxFeePerGas' },
    { name: 'tip above fee cap', req: { ...base1559, maxPriorityFeePerGas: '0xffffffffffff' }, field: 'maxPriorityFeePerGas' },
    { name: 'gasPrice on 1559', req: { ...base1559, gasPrice: '0x1' }, field: 'gasPrice' },
    { name: 'maxFeePerGas on legacy', req: { ...viemRpcRequest(cases[0]!.tx), maxFeePerGas: '0x1' }, field: 'maxFeePerGas' },
    { name: 'accessList on explicit legacy', req: { ...viemRpcRequest(cases[0]!.tx), accessList: [] }, field: 'accessList' },
    { name: 'decimal string quantity', req: { ...base1559, value: '100' }, field: 'value' },
    { name: 'odd-length data', req: { ...base1559, data: '0xabc' }, field: 'data' },
    { name: 'data without 0x', req: { ...base1559, data: 'abcd' }, field: 'data' },
    { name: 'data/input disagree', req: { ...base1559, data: '0x01', input: '0x02' }, field: 'input' },
    { name: 'short to address', req: { ...base1559, to: '0x1234' }, field: 'to' },
    { name: 'bad checksum to', req: { ...base1559, to: '0x70997970c51812dc3A010C7d01b50e0d17dc79C8' }, field: 'to' },
    { name: 'negative number value', req: { ...base1559, value: -1 }, field: 'value' },
    { name: 'unsafe number', req: { ...base1559, value: 2 ** 60 }, field: 'value' },
    { name: 'value above 2^256-1', req: { ...base1559, value: `0x1${'0'.repeat(64)}` }, field: 'value' },
    { name: 'gas above 2^64-1', req: { ...base1559, gas: `0x1${'0'.repeat(16)}` }, field: 'gas' },
    { name: 'nonce beyond safe integer', req: { ...base1559, nonce: '0xffffffffffffffff' }, field: 'nonce' },
    { name: 'access list entry with extra key', req: { ...base1559, accessList: [{ address: TO, storageKeys: [], x: 1 }] }, field: 'accessList[0].x' },
    { name: 'short storage key', req: { ...base1559, accessList: [{ address: TO, storageKeys: ['0x01'] }] }, field: 'accessList[0].storageKeys[0]' },
    { name: '4844 without to', req: { ...base4844, to: undefined }, field: 'to' },
    { name: '4844 without versioned hashes', req: { ...base4844, blobVersionedHashes: undefined }, field: 'blobVersionedHashes' },
    { name: '4844 with empty versioned hashes', req: { ...base4844, blobVersionedHashes: [] }, field: 'blobVersionedHashes' },
    { name: '4844 versioned hash with wrong version', req: { ...base4844, blobVersionedHashes: [`0x02${'00'.repeat(31)}`] }, field: 'blobVersionedHashes[0]' },
    { name: '4844 versioned hash of 31 bytes', req: { ...base4844, blobVersionedHashes: [`0x01${'00'.repeat(30)}`] }, field: 'blobVersionedHashes[0]' },
    { name: '4844 missing maxFeePerBlobGas', req: { ...base4844, maxFeePerBlobGas: undefined }, field: 'maxFeePerBlobGas' },
    { name: '4844 with sidecar blobs', req: { ...base4844, blobs: ['0x00'] }, field: 'blobs' },
    { name: '7702 without to', req: { ...base7702, to: null }, field: 'to' },
    { name: '7702 empty authorization list', req: { ...base7702, authorizationList: [] }, field: 'authorizationList' },
    {
      name: '7702 authorization missing yParity',
      req: { ...base7702, authorizationList: [{ chainId: '0x1', address: DELEGATE, nonce: '0x0', r: '0x1', s: '0x1' }] },
      field: 'authorizationList[0].yParity',
    },
    {
      name: '7702 authorization yParity 2',
      req: { ...base7702, authorizationList: [{ chainId: '0x1', address: DELEGATE, nonce: '0x0', r: '0x1', s: '0x1', yParity: '0x2' }] },
      field: 'authorizationList[0].yParity',
    },
    {
      name: '7702 authorization v disagreeing with yParity',
      req: { ...base7702, authorizationList: [{ chainId: '0x1', address: DELEGATE, nonce: '0x0', r: '0x1', s: '0x1', yParity: '0x0', v: '0x1c' }] },
      field: 'authorizationList[0].v',
    },
    { name: 'authorizationList on 1559', req: { ...base1559, type: '0x2', authorizationList: base7702.authorizationList }, field: 'authorizationList' },
  ];
  for (const { name, req, field } of table) {
    it(name, () => {
      let err: unknown;
      try {
        signEthTransaction(key, req);
      } catch (e) {
        err = e;
      }
      expect(err, 'should have thrown').toBeInstanceOf(SigningError);
      expect((err as SigningError).code).toBe('SIGN_INVALID_PARAMS');
      expect((err as SigningError).field).toBe(field);
    });
  }

  it('bad private keys are SIGN_INVALID_KEY, without echoing the key', () => {
    const req = viemRpcRequest(cases[3]!.tx);
    for (const k of [new Uint8Array(31), new Uint8Array(32), bytes('ff'.repeat(32)), KEY_A as unknown as Uint8Array]) {
      let err: unknown;
      try {
        signEthTransaction(k, req);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'SIGN_INVALID_KEY' });
      expect(String((err as Error).message)).not.toContain(KEY_A.slice(2, 20));
    }
  });
});
