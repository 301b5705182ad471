/**
 * Ethereum transactions (`eth_signTransaction`): legacy with EIP-155, EIP-2930, EIP-1559,
 * EIP-4844 (blob versioned hashes only, no sidecar) and EIP-7702. The request is parsed into
 * one typed shape per transaction type, RLP-encoded by viem's `serializeTransaction`, hashed
 * with keccak256, signed, and re-encoded with the signature — the same bytes viem's
 * `account.signTransaction` and ethers' `Transaction.serialized` produce.
 *
 * chainId is required for every type, legacy included: a signature without replay
 * protection (or for a chain picked by default) is never produced.
 */
import { keccak_256 } from '@noble/hashes/sha3.js';
import type { TransactionSerializable } from 'viem';
import { serializeTransaction } from 'viem/utils';
import { signDigestRaw } from './ecdsa.js';
import { addressFromPrivateKey, readAddress } from './eth-address.js';
import { guarded, invalidParams, SigningError } from './errors.js';
import {
  bigintToBytes,
  describe,
  isPlainObject,
  hexOf,
  MAX_UINT64,
  quantityHex,
  readArray,
  readBytes,
  readHexData,
  readObject,
  readPrivateKey,
  readQuantity,
  readSafeQuantity,
  type Hex,
} from './validate.js';

export type EthTransactionType = 'legacy' | 'eip2930' | 'eip1559' | 'eip4844' | 'eip7702';

export interface AccessListEntry {
  address: Hex;
  storageKeys: Hex[];
}

/** An authorization tuple carried by an EIP-7702 transaction (signed by whoever delegates). */
export interface SignedAuthorizationTuple {
  chainId: number;
  address: Hex;
  nonce: number;
  yParity: 0 | 1;
  r: Hex;
  s: Hex;
}

interface TxCommon {
  /** ≥ 1, required. */
  chainId: number;
  nonce: number;
  gas: bigint;
  value: bigint;
  data: Hex;
  /** When the request names a sender, it must be the signing key's address (lowercase here). */
  from?: Hex;
}

export interface LegacyTransaction extends TxCommon {
  type: 'legacy';
  /** null = contract creation. */
  to: Hex | null;
  gasPrice: bigint;
}
export interface Eip2930Transaction extends TxCommon {
  type: 'eip2930';
  to: Hex | null;
  gasPrice: bigint;
  accessList: AccessListEntry[];
}
export interface Eip1559Transaction extends TxCommon {
  type: 'eip1559';
  to: Hex | null;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  accessList: AccessListEntry[];
}
export interface Eip4844Transaction extends TxCommon {
  type: 'eip4844';
  to: Hex;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  accessList: AccessListEntry[];
  maxFeePerBlobGas: bigint;
  blobVersionedHashes: Hex[];
}
export interface Eip7702Transaction extends TxCommon {
  type: 'eip7702';
  to: Hex;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  accessList: AccessListEntry[];
  authorizationList: SignedAuthorizationTuple[];
}

export type EthTransaction =
  | LegacyTransaction
  | Eip2930Transaction
  | Eip1559Transaction
  | Eip4844Transaction
  | Eip7702Transaction;

export interface SignedEthTransaction {
  /** The signed transaction, ready for eth_sendRawTransaction. */
  raw: Hex;
  /** Transaction hash: keccak256(raw). */
  hash: Hex;
  /** What was signed: keccak256 of the unsigned encoding. */
  signingHash: Hex;
  type: EthTransactionType;
  /** Checksummed sender. */
  from: Hex;
  r: Hex;
  s: Hex;
  yParity: 0 | 1;
  /** Legacy: chainId·2 + 35 + yParity (EIP-155); typed: yParity. As a hex quantity. */
  v: Hex;
}

/** Fields of a JSON-RPC transaction request we understand; anything else is refused. */
const TX_FIELDS = [
  'type',
  'chainId',
  'nonce',
  'gas',
  'to',
  'value',
  'data',
  'input',
  'from',
  'gasPrice',
  'maxFeePerGas',
  'maxPriorityFeePerGas',
  'accessList',
  'maxFeePerBlobGas',
  'blobVersionedHashes',
  'authorizationList',
  // Recognised only to say why they are refused:
  'blobs',
  'sidecars',
] as const;

const TYPE_NAMES: Record<string, EthTransactionType> = {
  legacy: 'legacy',
  eip2930: 'eip2930',
  eip1559: 'eip1559',
  eip4844: 'eip4844',
  eip7702: 'eip7702',
};
const TYPE_BY_NUMBER: EthTransactionType[] = ['legacy', 'eip2930', 'eip1559', 'eip4844', 'eip7702'];
const TYPE_BYTE: Record<EthTransactionType, number> = { legacy: 0, eip2930: 1, eip1559: 2, eip4844: 3, eip7702: 4 };

/** JSON clients send null for "not set"; treat it like an absent key (geth does the same). */
function given(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function readType(v: unknown): EthTransactionType {
  // Own names only: `in` also finds Object.prototype's ("toString", "__proto__", …), which made the
  // parser return undefined and the caller throw an untyped TypeError (review finding).
  if (typeof v === 'string' && Object.hasOwn(TYPE_NAMES, v)) return TYPE_NAMES[v]!;
  const n = readQuantity(v, 'type', 0xffn);
  const t = TYPE_BY_NUMBER[Number(n)];
  if (t === undefined) throw invalidParams('type', 'unsupported transaction type (supported: 0x0–0x4)');
  return t;
}

function inferType(req: Record<string, unknown>): EthTransactionType {
  if (given(req.authorizationList)) return 'eip7702';
  if (given(req.blobVersionedHashes) || given(req.maxFeePerBlobGas)) return 'eip4844';
  if (given(req.maxFeePerGas) || given(req.maxPriorityFeePerGas)) return 'eip1559';
  if (given(req.gasPrice)) return given(req.accessList) ? 'eip2930' : 'legacy';
  throw invalidParams('type', 'cannot infer the transaction type: give `type` or its fee fields');
}

function required(req: Record<string, unknown>, field: string, type: EthTransactionType): unknown {
  const v = req[field];
  if (!given(v)) throw invalidParams(field, `required for ${type} transactions`);
  return v;
}

function forbid(req: Record<string, unknown>, fields: readonly string[], type: EthTransactionType): void {
  for (const f of fields) if (given(req[f])) throw invalidParams(f, `not a field of ${type} transactions`);
}

function readAccessList(v: unknown): AccessListEntry[] {
  if (!given(v)) return [];
  return readArray(v, 'accessList').map((item, i) => {
    const f = `accessList[${i}]`;
    const o = readObject(item, f, ['address', 'storageKeys']);
    return {
      address: readAddress(o.address, `${f}.address`),
      storageKeys: readArray(o.storageKeys ?? [], `${f}.storageKeys`).map((k, j) =>
        readHexData(k, `${f}.storageKeys[${j}]`, { length: 32 }),
      ),
    };
  });
}

function readBlobHashes(v: unknown): Hex[] {
  return readArray(v, 'blobVersionedHashes', { min: 1 }).map((h, i) => {
    const f = `blobVersionedHashes[${i}]`;
    const b = readBytes(h, f, { length: 32 });
    // EIP-4844: version byte 0x01 = VERSIONED_HASH_VERSION_KZG.
    if (b[0] !== 0x01) throw invalidParams(f, 'versioned hash must start with version byte 0x01 (KZG)');
    return hexOf(b);
  });
}

function readYParity(o: Record<string, unknown>, f: string): 0 | 1 {
  let fromV: 0 | 1 | undefined;
  if (given(o.v)) {
    const v = readQuantity(o.v, `${f}.v`, 28n);
    if (v === 0n || v === 27n) fromV = 0;
    else if (v === 1n || v === 28n) fromV = 1;
    else throw invalidParams(`${f}.v`, 'expected 0, 1, 27 or 28');
  }
  if (!given(o.yParity)) {
    if (fromV === undefined) throw invalidParams(`${f}.yParity`, 'required');
    return fromV;
  }
  const y = Number(readQuantity(o.yParity, `${f}.yParity`, 1n)) as 0 | 1;
  if (fromV !== undefined && fromV !== y) throw invalidParams(`${f}.v`, 'disagrees with yParity');
  return y;
}

function readAuthorizationList(v: unknown): SignedAuthorizationTuple[] {
  return readArray(v, 'authorizationList', { min: 1 }).map((item, i) => {
    const f = `authorizationList[${i}]`;
    const o = readObject(item, f, ['chainId', 'address', 'nonce', 'yParity', 'v', 'r', 's']);
    for (const k of ['chainId', 'address', 'nonce', 'r', 's']) {
      if (!given(o[k])) throw invalidParams(`${f}.${k}`, 'required');
    }
    return {
      chainId: readSafeQuantity(o.chainId, `${f}.chainId`),
      address: readAddress(o.address, `${f}.address`),
      nonce: readSafeQuantity(o.nonce, `${f}.nonce`),
      yParity: readYParity(o, f),
      r: hexOf(bigintToBytes(readQuantity(o.r, `${f}.r`), 32)),
      s: hexOf(bigintToBytes(readQuantity(o.s, `${f}.s`), 32)),
    };
  });
}

function readData(req: Record<string, unknown>): Hex {
  const data = given(req.data) ? readHexData(req.data, 'data') : undefined;
  const input = given(req.input) ? readHexData(req.input, 'input') : undefined;
  if (data !== undefined && input !== undefined && data !== input) {
    throw invalidParams('input', 'both `data` and `input` given with different contents');
  }
  return data ?? input ?? '0x';
}

/**
 * Validates a JSON-RPC transaction request (hex quantities; bigint/number also accepted)
 * and returns the typed transaction. The type is taken from `type` or inferred from the fee
 * fields as geth does; fields that do not belong to that type are refused.
 */
export function parseEthTransaction(request: unknown): EthTransaction {
  if (!isPlainObject(request)) throw invalidParams('transaction', `expected an object, got ${describe(request)}`);
  // Top-level fields are named bare (`chainId`, not `transaction.chainId`), as clients spell them.
  const req = readObject(request, '', TX_FIELDS);
  if (given(req.blobs) || given(req.sidecars)) {
    throw invalidParams(given(req.blobs) ? 'blobs' : 'sidecars', 'blob sidecars are not signed here', {
      hint: 'send blobVersionedHashes only; attach the sidecar after signing',
    });
  }
  const type = given(req.type) ? readType(req.type) : inferType(req);

  if (!given(req.chainId)) {
    throw invalidParams('chainId', 'required (never defaulted)', { hint: 'set the chain id of the network this transaction is for' });
  }
  const chainId = readSafeQuantity(req.chainId, 'chainId');
  if (chainId === 0) throw invalidParams('chainId', 'must be at least 1');

  const common: TxCommon = {
    chainId,
    // EIP-2681: nonce < 2^64-1; we also need it to fit a JS number (viem's type).
    nonce: readSafeQuantity(required(req, 'nonce', type), 'nonce'),
    gas: readQuantity(required(req, 'gas', type), 'gas', MAX_UINT64),
    value: given(req.value) ? readQuantity(req.value, 'value') : 0n,
    data: readData(req),
  };
  if (given(req.from)) common.from = readAddress(req.from, 'from');
  const to = given(req.to) ? readAddress(req.to, 'to') : null;

  const dynamicFees = (): { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } => {
    const maxFeePerGas = readQuantity(required(req, 'maxFeePerGas', type), 'maxFeePerGas');
    const maxPriorityFeePerGas = readQuantity(required(req, 'maxPriorityFeePerGas', type), 'maxPriorityFeePerGas');
    if (maxPriorityFeePerGas > maxFeePerGas) {
      throw invalidParams('maxPriorityFeePerGas', 'must not exceed maxFeePerGas');
    }
    return { maxFeePerGas, maxPriorityFeePerGas };
  };
  const needTo = (): Hex => {
    if (to === null) throw invalidParams('to', `required for ${type} transactions (they cannot create contracts)`);
    return to;
  };
  const BLOB = ['maxFeePerBlobGas', 'blobVersionedHashes'] as const;
  const DYNAMIC = ['maxFeePerGas', 'maxPriorityFeePerGas'] as const;

  switch (type) {
    case 'legacy':
      forbid(req, [...DYNAMIC, ...BLOB, 'accessList', 'authorizationList'], type);
      return { type, ...common, to, gasPrice: readQuantity(required(req, 'gasPrice', type), 'gasPrice') };
    case 'eip2930':
      forbid(req, [...DYNAMIC, ...BLOB, 'authorizationList'], type);
      return {
        type,
        ...common,
        to,
        gasPrice: readQuantity(required(req, 'gasPrice', type), 'gasPrice'),
        accessList: readAccessList(req.accessList),
      };
    case 'eip1559':
      forbid(req, ['gasPrice', ...BLOB, 'authorizationList'], type);
      return { type, ...common, to, ...dynamicFees(), accessList: readAccessList(req.accessList) };
    case 'eip4844':
      forbid(req, ['gasPrice', 'authorizationList'], type);
      return {
        type,
        ...common,
        to: needTo(),
        ...dynamicFees(),
        accessList: readAccessList(req.accessList),
        maxFeePerBlobGas: readQuantity(required(req, 'maxFeePerBlobGas', type), 'maxFeePerBlobGas'),
        blobVersionedHashes: readBlobHashes(required(req, 'blobVersionedHashes', type)),
      };
    case 'eip7702':
      forbid(req, ['gasPrice', ...BLOB], type);
      return {
        type,
        ...common,
        to: needTo(),
        ...dynamicFees(),
        accessList: readAccessList(req.accessList),
        authorizationList: readAuthorizationList(required(req, 'authorizationList', type)),
      };
  }
}

/** The viem shape of a parsed transaction (no signature fields, so nothing leaks into the unsigned form). */
function toViem(tx: EthTransaction): TransactionSerializable {
  const base = {
    chainId: tx.chainId,
    nonce: tx.nonce,
    gas: tx.gas,
    to: tx.to ?? undefined,
    value: tx.value,
    data: tx.data,
  };
  switch (tx.type) {
    case 'legacy':
      return { ...base, type: 'legacy', gasPrice: tx.gasPrice };
    case 'eip2930':
      return { ...base, type: 'eip2930', gasPrice: tx.gasPrice, accessList: tx.accessList };
    case 'eip1559':
      return {
        ...base,
        type: 'eip1559',
        maxFeePerGas: tx.maxFeePerGas,
        maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
        accessList: tx.accessList,
      };
    case 'eip4844':
      return {
        ...base,
        to: tx.to,
        type: 'eip4844',
        maxFeePerGas: tx.maxFeePerGas,
        maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
        accessList: tx.accessList,
        maxFeePerBlobGas: tx.maxFeePerBlobGas,
        blobVersionedHashes: tx.blobVersionedHashes,
      };
    case 'eip7702':
      return {
        ...base,
        to: tx.to,
        type: 'eip7702',
        maxFeePerGas: tx.maxFeePerGas,
        maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
        accessList: tx.accessList,
        authorizationList: tx.authorizationList,
      };
  }
}

function hexToBytes(h: Hex): Uint8Array {
  return new Uint8Array(Buffer.from(h.slice(2), 'hex'));
}

/** keccak256 of the unsigned encoding: the digest an Ethereum transaction signature covers. */
export function transactionSigningHash(tx: EthTransaction): Hex {
  const unsigned = guarded('transaction encoding', () => serializeTransaction(toViem(tx)));
  return hexOf(keccak_256(hexToBytes(unsigned)));
}

/** `eth_signTransaction`: validates `request`, signs it, returns the raw signed transaction. */
export function signEthTransaction(privateKey: Uint8Array, request: unknown): SignedEthTransaction {
  return signParsedEthTransaction(privateKey, parseEthTransaction(request));
}

/** Signs a transaction parseEthTransaction already produced (the enclave decides on this same value). */
export function signParsedEthTransaction(privateKey: Uint8Array, tx: EthTransaction): SignedEthTransaction {
  const key = readPrivateKey(privateKey);
  const from = addressFromPrivateKey(key);
  if (tx.from !== undefined && tx.from !== from.toLowerCase()) {
    throw new SigningError('SIGN_FROM_MISMATCH', 'transaction `from` is not the address of the signing key', {
      field: 'from',
    });
  }
  const viemTx = toViem(tx);
  const signingHash = transactionSigningHash(tx);
  const sig = signDigestRaw(key, hexToBytes(signingHash));
  const r = hexOf(bigintToBytes(sig.r, 32));
  const s = hexOf(bigintToBytes(sig.s, 32));
  // viem's legacy encoder derives the EIP-155 v from chainId and the 27/28 form of v.
  const raw = guarded('transaction encoding', () =>
    serializeTransaction(viemTx, { r, s, v: 27n + BigInt(sig.yParity), yParity: sig.yParity }),
  ) as Hex;
  const v = tx.type === 'legacy' ? BigInt(tx.chainId) * 2n + 35n + BigInt(sig.yParity) : BigInt(sig.yParity);
  const rawBytes = hexToBytes(raw);
  if (tx.type !== 'legacy' && rawBytes[0] !== TYPE_BYTE[tx.type]) {
    throw new SigningError('SIGN_INTERNAL', 'encoder produced the wrong transaction type');
  }
  return {
    raw,
    hash: hexOf(keccak_256(rawBytes)),
    signingHash,
    type: tx.type,
    from,
    r,
    s,
    yParity: sig.yParity,
    v: quantityHex(v),
  };
}
