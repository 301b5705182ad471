/**
 * `enclave-signer/client`: a typed JSON-RPC client for the signing socket.
 *
 *   const signer = createSignerClient({ socket: '/run/enclave-signer/signer.sock' });
 *   const [address] = await signer.accounts();
 *   const raw = await signer.signTransaction({ from: address, to, value: '0x1', … });
 *
 * Connection: `socket` speaks geth-style IPC over the Unix socket (`transport:
 * 'http'` for HTTP over the same socket); `url` speaks HTTP to the loopback
 * listener. A dropped IPC connection is reopened by the next request.
 *
 * Retries: only methods that change nothing (reads, public-key derivation,
 * attestation) are resent after a connection failure or a timeout, with the
 * same request id. Signing and key creation are NEVER resent: the signer does
 * not deduplicate requests by id yet, so a resend after a lost answer could
 * sign twice (two valid signatures over different nonces, or two keys). Such
 * a failure surfaces as EnclaveSignerConnectionError and the caller decides.
 *
 * Errors: a JSON-RPC error answer is an EnclaveSignerRpcError (code, message,
 * data: code, hint, field, rule).
 */
import { randomBytes } from 'node:crypto';
import { EnclaveSignerConnectionError, rpcErrorOf } from './errors.js';
import { httpTransport, ipcTransport, type RpcRequest, type Transport } from './transport.js';

/**
 * Principal request signing (the authorization scheme of the signer). Not
 * wired yet: the hook is typed so callers can be written against it; the
 * client refuses to start with one until the signer defines what is signed.
 */
export interface Principal {
  /** The principal's name, as registered with the signer. */
  name: string;
  /** Signs a request digest (32 bytes) with the principal's key. */
  sign: (digest: Uint8Array) => Uint8Array | Promise<Uint8Array>;
}

export type SignerEndpoint = { socket: string; transport?: 'ipc' | 'http' } | { url: string };

export type SignerClientOptions = SignerEndpoint & {
  /** Deadline of one attempt. Default 30 s. */
  timeoutMs?: number;
  /** Extra attempts for methods safe to resend (never signing). Default 2. */
  retries?: number;
  /** Principal request signing: reserved (see Principal). */
  principal?: Principal;
};

/** Methods safe to resend: they change nothing and return the same answer (or a fresh equivalent). */
export const RETRYABLE_METHODS: ReadonlySet<string> = new Set([
  'eth_accounts',
  'eth_chainId',
  'net_version',
  'signer_listKeys',
  'signer_getKey',
  'signer_deriveKey',
  'signer_status',
  'signer_attest',
]);

/** A transaction as the signer takes it (JSON-RPC quantities as 0x hex or numbers). */
export interface RpcTransaction {
  from: string;
  to?: string | null;
  value?: string | number;
  data?: string;
  input?: string;
  nonce?: string | number;
  gas?: string | number;
  gasPrice?: string | number;
  maxFeePerGas?: string | number;
  maxPriorityFeePerGas?: string | number;
  maxFeePerBlobGas?: string | number;
  chainId?: string | number;
  type?: string | number;
  accessList?: readonly { address: string; storageKeys: readonly string[] }[];
  blobVersionedHashes?: readonly string[];
  authorizationList?: readonly unknown[];
}

export interface PublicKeyInfo {
  keyId: string;
  kind: 'secp256k1' | 'bip32-seed';
  keyringId: string;
  publicKey: string;
  address?: string;
  xpub?: string;
  fingerprint?: string;
  label: string | null;
  createdAt: string;
}

export interface SignerClient {
  /** Any method; resent only when it is in RETRYABLE_METHODS. */
  request<T = unknown>(method: string, params?: unknown): Promise<T>;
  accounts(): Promise<string[]>;
  chainId(): Promise<number>;
  signTransaction(tx: RpcTransaction): Promise<string>;
  /** personal_sign: `message` is 0x hex bytes or text. */
  personalSign(address: string, message: string): Promise<string>;
  /** eth_signTypedData_v4 with the EIP-712 document (object or JSON string). */
  signTypedData(address: string, typedData: unknown): Promise<string>;
  signAuthorization(p: { account?: string; keyId?: string; chainId: number | string; address: string; nonce: number | string; path?: string }): Promise<{ chainId: number; address: string; nonce: number; yParity: number; r: string; s: string; [k: string]: unknown }>;
  signDigest(p: { keyId: string; digest: string; path?: string }): Promise<Record<string, unknown>>;
  /** signer_signPsbt: the PSBT as base64; the result carries the signed PSBT. */
  signPsbt(p: { keyId: string; psbt: string }): Promise<{ psbt: string; [k: string]: unknown }>;
  createKey(p?: { kind?: 'secp256k1' | 'bip32-seed'; label?: string }): Promise<PublicKeyInfo>;
  listKeys(p?: { kind?: 'secp256k1' | 'bip32-seed' }): Promise<PublicKeyInfo[]>;
  getKey(keyId: string): Promise<PublicKeyInfo>;
  status(): Promise<Record<string, unknown>>;
  close(): void;
}

function transportFor(o: SignerEndpoint): Transport {
  if ('url' in o && typeof o.url === 'string') return httpTransport({ url: o.url });
  if ('socket' in o && typeof o.socket === 'string') return o.transport === 'http' ? httpTransport({ socketPath: o.socket }) : ipcTransport(o.socket);
  throw new TypeError('enclave-signer client: give { socket } (the signing socket path) or { url } (its loopback HTTP URL)');
}

export function createSignerClient(options: SignerClientOptions): SignerClient {
  if (options.principal !== undefined) {
    throw new TypeError('enclave-signer client: principal request signing is not available yet (the signer does not verify principals)');
  }
  const transport = transportFor(options);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const retries = options.retries ?? 2;
  // Ids unique across clients and processes, so a retry is recognisably the same request.
  const prefix = randomBytes(6).toString('hex');
  let counter = 0;

  async function request<T>(method: string, params?: unknown): Promise<T> {
    const req: RpcRequest = { jsonrpc: '2.0', id: `${prefix}-${++counter}`, method };
    if (params !== undefined) req.params = params;
    const attempts = RETRYABLE_METHODS.has(method) ? 1 + retries : 1;
    for (let i = 1; ; i++) {
      let res;
      try {
        res = await transport.send(req, timeoutMs);
      } catch (e) {
        if (i < attempts && e instanceof EnclaveSignerConnectionError) {
          await new Promise((r) => setTimeout(r, 50 * i));
          continue;
        }
        throw e;
      }
      if (res.error !== undefined) throw rpcErrorOf(method, res.error);
      return res.result as T;
    }
  }

  return {
    request,
    accounts: () => request('eth_accounts', []),
    chainId: async () => Number(await request<string>('eth_chainId', [])),
    signTransaction: (tx) => request('eth_signTransaction', [tx]),
    personalSign: (address, message) => request('personal_sign', [message, address]),
    signTypedData: (address, typedData) => request('eth_signTypedData_v4', [address, typeof typedData === 'string' ? typedData : JSON.stringify(typedData, bigintJson)]),
    signAuthorization: (p) => request('signer_signAuthorization', p),
    signDigest: (p) => request('signer_signDigest', p),
    signPsbt: (p) => request('signer_signPsbt', p),
    createKey: (p = {}) => request('signer_createKey', p),
    listKeys: (p = {}) => request('signer_listKeys', p),
    getKey: (keyId) => request('signer_getKey', { keyId }),
    status: () => request('signer_status', {}),
    close: () => transport.close(),
  };
}

/** EIP-712 values may be bigints (viem, ethers): as decimal strings, which every EIP-712 encoder reads. */
export function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
