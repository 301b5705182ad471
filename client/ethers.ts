/**
 * `enclave-signer/ethers`: an enclave key as an ethers v6 Signer.
 *
 *   const provider = new JsonRpcProvider(NODE_URL);
 *   const signer = new EnclaveSigner({ socket: '/run/enclave-signer/signer.sock', address }, provider);
 *   await signer.sendTransaction({ to, value });   // AbstractSigner populates from the provider
 *
 * signTransaction, signMessage and signTypedData each make one call to the
 * signing socket. Failures are ethers errors made with makeError: a policy
 * denial (4001) is ACTION_REJECTED, anything else UNKNOWN_ERROR; both carry
 * `error` (the JSON-RPC code, message and data) and `rule`.
 */
import {
  AbstractSigner,
  TypedDataEncoder,
  accessListify,
  getBigInt,
  hexlify,
  makeError,
  resolveAddress,
  toQuantity,
  toUtf8Bytes,
  Transaction,
  verifyMessage,
  verifyTypedData,
  type Provider,
  type TransactionLike,
  type TransactionRequest,
  type TypedDataDomain,
  type TypedDataField,
} from 'ethers';
import { type AdapterOptions, createSignerClient, type SignerClient } from './client.js';
import { checkSignedTransaction, checkSigner, hexAnswer } from './check.js';
import { EnclaveSignerRpcError } from './errors.js';

export type EnclaveSignerOptions = AdapterOptions;

type Action = 'signTransaction' | 'signMessage' | 'signTypedData';

function ethersError(action: Action, e: unknown): Error {
  if (!(e instanceof EnclaveSignerRpcError)) {
    return makeError(`enclave-signer ${action} failed: ${(e as Error)?.message ?? String(e)}`, 'UNKNOWN_ERROR', { error: e });
  }
  const error = { code: e.code, message: e.message, data: e.data };
  if (e.code === 4001) return makeError(`enclave-signer denied ${action}: ${e.message}`, 'ACTION_REJECTED', { action, reason: 'rejected', info: { error, rule: e.rule } });
  return makeError(`enclave-signer ${action} failed: ${e.message}`, 'UNKNOWN_ERROR', { error, rule: e.rule });
}

async function wrap<T>(action: Action, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw ethersError(action, e);
  }
}

const QUANTITIES = ['chainId', 'gasLimit', 'gasPrice', 'type', 'maxFeePerGas', 'maxPriorityFeePerGas', 'maxFeePerBlobGas', 'nonce', 'value'] as const;

/** The request as a JSON-RPC transaction (what ethers' JsonRpcSigner sends). */
function rpcTransaction(tx: TransactionLike<string>, from: string): Record<string, unknown> {
  const out: Record<string, unknown> = { from };
  for (const k of QUANTITIES) {
    const v = tx[k];
    if (v === undefined || v === null) continue;
    out[k === 'gasLimit' ? 'gas' : k] = toQuantity(getBigInt(v, `tx.${k}`));
  }
  if (tx.to != null) out.to = tx.to;
  if (tx.data != null) out.data = hexlify(tx.data);
  if (tx.accessList != null) out.accessList = accessListify(tx.accessList);
  if (tx.blobVersionedHashes != null) out.blobVersionedHashes = tx.blobVersionedHashes;
  return out;
}

export class EnclaveSigner extends AbstractSigner {
  readonly address: string;
  readonly #client: SignerClient;

  constructor(options: EnclaveSignerOptions, provider?: Provider | null) {
    super(provider ?? null);
    this.address = options.address;
    this.#client = 'client' in options ? options.client : createSignerClient(options);
  }

  override connect(provider: Provider | null): EnclaveSigner {
    return new EnclaveSigner({ address: this.address, client: this.#client }, provider);
  }

  override async getAddress(): Promise<string> {
    return this.address;
  }

  override async signTransaction(request: TransactionRequest): Promise<string> {
    return wrap('signTransaction', async () => {
      const to = request.to == null ? undefined : await resolveAddress(request.to, this.provider);
      if (request.from != null) {
        const from = await resolveAddress(request.from, this.provider);
        if (from.toLowerCase() !== this.address.toLowerCase()) throw new Error(`transaction from ${from} is not this signer's address ${this.address}`);
      }
      // Field by field, not a spread: AbstractSigner.sendTransaction hands over an ethers Transaction, whose fields are getters.
      const r = request as TransactionLike<string>;
      const tx: TransactionLike<string> = { to };
      for (const k of [...QUANTITIES, 'data', 'accessList', 'blobVersionedHashes'] as const) if (r[k] != null) (tx as Record<string, unknown>)[k] = r[k];
      const rpc = rpcTransaction(tx, this.address);
      const raw = hexAnswer('eth_signTransaction', await this.#client.signTransaction(rpc as never));
      const t = Transaction.from(raw);
      const signed = {
        type: t.type,
        to: t.to,
        value: t.value,
        nonce: t.nonce,
        gas: t.gasLimit,
        gasPrice: t.type === 2 ? undefined : t.gasPrice,
        maxFeePerGas: t.maxFeePerGas,
        maxPriorityFeePerGas: t.maxPriorityFeePerGas,
        maxFeePerBlobGas: t.maxFeePerBlobGas,
        chainId: t.chainId,
        data: t.data,
        accessList: t.accessList,
        blobVersionedHashes: t.blobVersionedHashes,
        authorizationList: t.authorizationList,
      };
      checkSignedTransaction(rpc, signed, t.from ?? '(unsigned)', this.address);
      return raw;
    });
  }

  override async signMessage(message: string | Uint8Array): Promise<string> {
    return wrap('signMessage', async () => {
      const bytes = typeof message === 'string' ? toUtf8Bytes(message) : message;
      const signature = hexAnswer('personal_sign', await this.#client.personalSign(this.address, hexlify(bytes)), 65);
      checkSigner('personal_sign', verifyMessage(bytes, signature), this.address);
      return signature;
    });
  }

  override async signTypedData(domain: TypedDataDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): Promise<string> {
    return wrap('signTypedData', async () => {
      const resolved = await TypedDataEncoder.resolveNames(domain, types, value, async (name) => {
        const a = await resolveAddress(name, this.provider);
        return a;
      });
      const signature = hexAnswer('eth_signTypedData_v4', await this.#client.signTypedData(this.address, JSON.stringify(TypedDataEncoder.getPayload(resolved.domain, types, resolved.value))), 65);
      checkSigner('eth_signTypedData_v4', verifyTypedData(resolved.domain, types, resolved.value, signature), this.address);
      return signature;
    });
  }
}
