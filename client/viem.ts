/**
 * `enclave-signer/viem`: an enclave key as a viem Account.
 *
 *   const account = enclaveAccount({ socket: '/run/enclave-signer/signer.sock', address });
 *   const wallet = createWalletClient({ account, chain: mainnet, transport: http(NODE_URL) });
 *   await wallet.sendTransaction({ to, value });   // viem fills nonce/gas/fees from the node
 *
 * signMessage, signTransaction, signTypedData and signAuthorization each make
 * one call to the signing socket; the node never sees the signer. Failures
 * are EnclaveSignerViemError (a viem BaseError) carrying the JSON-RPC code,
 * the stable data.code and the policy rule.
 */
import {
  BaseError,
  bytesToHex,
  formatTransactionRequest,
  getTypesForEIP712Domain,
  numberToHex,
  parseTransaction,
  recoverMessageAddress,
  recoverTransactionAddress,
  recoverTypedDataAddress,
  serializeTypedData,
  stringToHex,
  type Address,
  type Hex,
  type LocalAccount,
  type SignableMessage,
  type TransactionSerializable,
  type TransactionSerialized,
} from 'viem';
import { toAccount } from 'viem/accounts';
import { recoverAuthorizationAddress } from 'viem/utils';
import { answerMismatch, checkSignedTransaction, checkSigner, hexAnswer } from './check.js';
import { type AdapterOptions, createSignerClient } from './client.js';
import { EnclaveSignerRpcError, type EnclaveSignerErrorData } from './errors.js';

export type EnclaveAccountOptions = AdapterOptions<Address>;

/** A signer refusal or failure, as viem's error type. */
export class EnclaveSignerViemError extends BaseError {
  /** The JSON-RPC error code (4001 denied, -32602 invalid params, -32002 unavailable, …); undefined for connection failures. */
  readonly code: number | undefined;
  readonly data: EnclaveSignerErrorData | undefined;
  /** The policy rule (data.rule), else the stable error code (data.code). */
  readonly rule: string | undefined;

  constructor(method: string, cause: Error) {
    const rpc = cause instanceof EnclaveSignerRpcError ? cause : undefined;
    super(`enclave-signer ${method} failed: ${cause.message}`, {
      cause,
      name: 'EnclaveSignerViemError',
      metaMessages: rpc ? [`code: ${rpc.code}`, ...(rpc.rule ? [`rule: ${rpc.rule}`] : []), ...(rpc.hint ? [`hint: ${rpc.hint}`] : [])] : [],
    });
    this.code = rpc?.code;
    this.data = rpc?.data;
    this.rule = rpc?.rule;
  }
}

async function wrap<T>(method: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw new EnclaveSignerViemError(method, e instanceof Error ? e : new Error(String(e)));
  }
}

function messageHex(message: SignableMessage): Hex {
  if (typeof message === 'string') return stringToHex(message);
  return typeof message.raw === 'string' ? message.raw : bytesToHex(message.raw);
}

/**
 * The transaction as JSON-RPC. The enclave serializes and signs it itself, so
 * a chain's custom `serializer` (viem option) is not used: the enclave signs
 * the standard Ethereum transaction types only.
 */
function rpcTransaction(address: Address, tx: TransactionSerializable): Record<string, unknown> {
  const rpc: Record<string, unknown> = { ...formatTransactionRequest(tx as Parameters<typeof formatTransactionRequest>[0]), from: address };
  if (tx.chainId !== undefined) rpc.chainId = numberToHex(tx.chainId);
  return rpc;
}

export function enclaveAccount(options: EnclaveAccountOptions): LocalAccount<'enclave-signer'> {
  const client = 'client' in options ? options.client : createSignerClient(options);
  const address = options.address;
  const account = toAccount({
    address,
    signMessage: ({ message }) =>
      wrap('personal_sign', async () => {
        const raw = messageHex(message);
        const signature = hexAnswer('personal_sign', await client.personalSign(address, raw), 65) as Hex;
        checkSigner('personal_sign', await recoverMessageAddress({ message: { raw }, signature }), address);
        return signature;
      }),
    signTransaction: (tx) =>
      wrap('eth_signTransaction', async () => {
        const request = rpcTransaction(address, tx as TransactionSerializable);
        const raw = hexAnswer('eth_signTransaction', await client.signTransaction(request as never)) as Hex;
        const parsed = parseTransaction(raw) as Record<string, unknown>;
        const recovered = await recoverTransactionAddress({ serializedTransaction: raw as TransactionSerialized });
        checkSignedTransaction(request, parsed, recovered, address);
        return raw;
      }),
    signTypedData: (td) =>
      wrap('eth_signTypedData_v4', async () => {
        const { domain, message, primaryType } = td as { domain?: Record<string, unknown>; message: Record<string, unknown>; primaryType: string };
        const types = { EIP712Domain: getTypesForEIP712Domain({ domain: domain as never }), ...(td.types as Record<string, unknown>) };
        const signature = hexAnswer('eth_signTypedData_v4', await client.signTypedData(address, serializeTypedData({ domain, message, primaryType, types } as never)), 65) as Hex;
        checkSigner('eth_signTypedData_v4', await recoverTypedDataAddress({ domain, message, primaryType, types, signature } as never), address);
        return signature;
      }),
    signAuthorization: (req) =>
      wrap('signer_signAuthorization', async () => {
        const contract = (req.address ?? req.contractAddress) as Address;
        const a = await client.signAuthorization({ account: address, chainId: req.chainId, address: contract, nonce: req.nonce });
        if (a === null || typeof a !== 'object') throw answerMismatch('signer_signAuthorization', 'not an authorization object');
        const yParity = typeof a.yParity === 'string' ? Number(a.yParity) : a.yParity;
        if (yParity !== 0 && yParity !== 1) throw answerMismatch('signer_signAuthorization', 'yParity is not 0 or 1');
        const signed = { address: contract, chainId: req.chainId, nonce: req.nonce, r: hexAnswer('signer_signAuthorization', a.r, 32) as Hex, s: hexAnswer('signer_signAuthorization', a.s, 32) as Hex, yParity };
        checkSigner('signer_signAuthorization', await recoverAuthorizationAddress({ authorization: signed }), address);
        return signed;
      }),
  });
  return { ...account, source: 'enclave-signer' } as LocalAccount<'enclave-signer'>;
}
