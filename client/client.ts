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
 * same JSON-RPC id. Signing and key creation are NEVER resent: the signer does
 * not deduplicate requests by id yet, so a resend after a lost answer could
 * sign twice (two valid signatures over different nonces, or two keys). Such
 * a failure surfaces as EnclaveSignerConnectionError and the caller decides.
 *
 * Principal: with `principal: { name, key }` every request carries a fresh
 * `signer_auth` (./principal.ts, docs/principals.md), re-signed with a new
 * request id on every attempt (the enclave refuses a reused one as
 * AUTH_REPLAYED). The one exception to "never resent": a 4100
 * AUTH_BEFORE_RESTART refusal is re-signed once with an expiry after the
 * enclave's restart barrier — the enclave refused it before doing anything,
 * so sending it again cannot sign twice.
 *
 * Session: with `session: true` (or `{ ttlSeconds }`) and a principal, the principal's key signs
 * one signer_openSession and later requests carry an HMAC under the session key (./session.ts):
 * the policy must allow the principal sessions. A request refused because the enclave no longer
 * knows the session (restart, expiry) is sent once more under a new session — refused before
 * anything was done, like AUTH_BEFORE_RESTART.
 *
 * Errors: a JSON-RPC error answer is an EnclaveSignerRpcError (code, message,
 * data: code, hint, field, rule); -32010 is its subclass ApprovalRequiredError.
 */
import { randomBytes } from 'node:crypto';
import { SIGNER_AUTH_MEMBER } from '../common/auth/request.js';
import { DEFAULT_REQUEST_TTL_SECONDS } from '../common/auth/client-signer.js';
import { OPEN_SESSION_METHOD } from '../common/auth/session.js';
import { ClientSession, isSessionGone, type SessionOptions } from './session.js';
import { readApprovalView, signApprovalOf, waitForApproval, type ApprovalView, type WaitForApprovalOptions } from './approvals.js';
import { EnclaveSignerConnectionError, rpcErrorOf, type EnclaveSignerRpcError } from './errors.js';
import { audienceResolver, loadPrincipal, MAX_REQUEST_TTL_SECONDS, signerAuth, type LoadedPrincipal, type PrincipalCredentials } from './principal.js';
import { httpTransport, ipcTransport, type RpcRequest, type Transport } from './transport.js';

/** @deprecated use PrincipalCredentials (the name is kept for callers typed against the earlier hook). */
export type Principal = PrincipalCredentials;

export type SignerEndpoint = { socket: string; transport?: 'ipc' | 'http' } | { url: string };

export type SignerClientOptions = SignerEndpoint & {
  /** Deadline of one attempt. Default 30 s. */
  timeoutMs?: number;
  /** Extra attempts for methods safe to resend (never signing). Default 2. */
  retries?: number;
  /** Sign every request as this principal (docs/principals.md). Without it the caller is the enclave's `host`. */
  principal?: PrincipalCredentials;
  /**
   * The enclave's policy hash, the audience of signed requests and approvals
   * (`enclave-signer policy hash FILE`). Recommended: pins it. Without it the
   * client asks `signer_status` once and caches the answer.
   */
  policyHash?: string;
  /**
   * Authenticate requests with a session MAC instead of a signature each (needs `principal`, and a
   * policy that gives the principal `sessions`; docs/principals.md "Sessions").
   */
  session?: boolean | SessionOptions;
};

/**
 * What the ethers and viem adapters take (client/ethers.ts EnclaveSignerOptions, client/viem.ts
 * EnclaveAccountOptions): where the signer is, or a client to share, and the key's address.
 */
export type AdapterOptions<A extends string = string> = (SignerEndpoint | { /** Use this client instead of opening one (shares its connection). */ client: SignerClient }) & {
  /** The key's address (eth_accounts lists them). */
  address: A;
  /**
   * Sign every request as this principal ({ name, key }: PEM or KeyObject,
   * Ed25519 or ECDSA P-256; docs/principals.md). Ignored with `client` (the
   * client's own principal applies).
   */
  principal?: PrincipalCredentials;
  /** The enclave's policy hash, the audience of signed requests (recommended with `principal`: pins it). */
  policyHash?: string;
  /** With `principal`: one signed signer_openSession, then a MAC per request (docs/principals.md "Sessions"). Ignored with `client`. */
  session?: SignerClientOptions['session'];
  /** Deadline of one call. Default 30 s. */
  timeoutMs?: number;
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
  'signer_getApproval',
  'signer_listApprovals',
  'signer_getReceipt',
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
  /**
   * signer_getReceipt: the audit receipt for a result this signer released, or for a key it made
   * (pass the key as createKey/getKey returned it). Keep it, and verify it offline with
   * `enclave-signer receipt verify FILE --result <the result, hex or JSON> --manifest …`: a key's
   * receipt is what proves its address or xpub is the enclave's (docs/audit.md "Receipts"). The
   * receipt comes from the host, so it proves nothing until verified.
   */
  getReceipt(result: unknown): Promise<Record<string, unknown>>;
  status(): Promise<Record<string, unknown>>;
  /** signer_getApproval: the approval's state, its request and the intent the enclave decoded. */
  getApproval(approvalId: string): Promise<ApprovalView>;
  listApprovals(): Promise<ApprovalView[]>;
  /**
   * Approves as `approver`: fetches the approval, recomputes its request
   * digest from the request shown and the policy hash, refuses to sign when
   * they differ (CLIENT_APPROVAL_MISMATCH), signs the approval message and
   * sends signer_approve. Resolves with the view after the approval.
   */
  approve(approvalId: string, approver: PrincipalCredentials): Promise<ApprovalView>;
  /** Rejects (vetoes) as `approver`, with the same digest check as approve. */
  reject(approvalId: string, approver: PrincipalCredentials): Promise<ApprovalView>;
  /** Polls getApproval until approved, rejected, consumed or expired. */
  waitForApproval(approvalId: string, options?: WaitForApprovalOptions): Promise<ApprovalView>;
  /** The policy hash signed requests and approvals are addressed to (pinned, or signer_status). */
  policyHash(): Promise<string>;
  close(): void;
}

function transportFor(o: SignerEndpoint): Transport {
  if ('url' in o && typeof o.url === 'string') return httpTransport({ url: o.url });
  if ('socket' in o && typeof o.socket === 'string') return o.transport === 'http' ? httpTransport({ socketPath: o.socket }) : ipcTransport(o.socket);
  throw new TypeError('enclave-signer client: give { socket } (the signing socket path) or { url } (its loopback HTTP URL)');
}

/** The JSON-RPC code of an authentication refusal (docs/principals.md). */
export const AUTH_RPC_CODE = 4100;

/** A barrier this many seconds past what we would sign now is waited out rather than refused. */
const RESTART_WAIT_SECONDS = 5;

/**
 * When a 4100 AUTH_BEFORE_RESTART may be re-signed: once, to an expiry the enclave would accept
 * from us — now, or after a wait of at most RESTART_WAIT_SECONDS (right after an unclean restart
 * the barrier is the enclave's boot + its longest expiry, one second past what we sign at once).
 */
async function restartExpiry(e: EnclaveSignerRpcError): Promise<number | undefined> {
  if (e.code !== AUTH_RPC_CODE || e.data?.code !== 'AUTH_BEFORE_RESTART') return undefined;
  const after = e.data.expiresAfter;
  if (typeof after !== 'number' || !Number.isSafeInteger(after)) return undefined;
  // The answer comes through the host. An expiry beyond what the enclave accepts now would hand the
  // host a signed request it could hold and submit later (when the enclave's clock catches up): never.
  const now = Math.floor(Date.now() / 1000);
  if (after + 1 <= now) return undefined;
  const early = after + 1 - (now + MAX_REQUEST_TTL_SECONDS);
  if (early > RESTART_WAIT_SECONDS) return undefined;
  if (early > 0) await new Promise((r) => setTimeout(r, early * 1000 + 50));
  return after + 1;
}

export function createSignerClient(options: SignerClientOptions): SignerClient {
  const transport = transportFor(options);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const retries = options.retries ?? 2;
  const principal: LoadedPrincipal | undefined = options.principal === undefined ? undefined : loadPrincipal(options.principal);
  // Ids unique across clients and processes, so a retry is recognisably the same request.
  const prefix = randomBytes(6).toString('hex');
  let counter = 0;
  if (options.session && !principal) throw new TypeError('enclave-signer client: session needs a principal (the session is opened with its key)');
  const session =
    options.session && principal
      ? new ClientSession(principal, () => audience(), openSession, options.session === true ? {} : options.session)
      : undefined;

  async function openSession(params: unknown, auth: unknown): Promise<unknown> {
    for (let resigned = false; ; resigned = true) {
      const res = await transport.send({ jsonrpc: '2.0', id: `${prefix}-${++counter}`, method: OPEN_SESSION_METHOD, params, [SIGNER_AUTH_MEMBER]: auth }, timeoutMs);
      if (res.error === undefined) return res.result;
      const err = rpcErrorOf(OPEN_SESSION_METHOD, res.error);
      // The opening is a signed request like any other: re-signed once past a restart barrier.
      const after = resigned || !principal ? undefined : await restartExpiry(err);
      if (after === undefined || !principal) throw err;
      auth = signerAuth(principal, await audience(), OPEN_SESSION_METHOD, params, after);
    }
  }

  async function send<T>(method: string, params: unknown, sign: boolean): Promise<T> {
    const id = `${prefix}-${++counter}`;
    const attempts = RETRYABLE_METHODS.has(method) ? 1 + retries : 1;
    let expiresAt: number | undefined;
    let resigned = false;
    for (let i = 1; ; i++) {
      const req: RpcRequest = { jsonrpc: '2.0', id, method };
      if (params !== undefined) req.params = params;
      // A fresh signature (new request id) or sequence number per attempt: a resent signer_auth is AUTH_REPLAYED by design.
      if (sign && principal) {
        req[SIGNER_AUTH_MEMBER] = session
          ? await session.auth(method, params, expiresAt ?? Math.floor(Date.now() / 1000) + DEFAULT_REQUEST_TTL_SECONDS)
          : signerAuth(principal, await audience(), method, params, expiresAt);
      }
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
      if (res.error !== undefined) {
        const err = rpcErrorOf(method, res.error);
        if (session && !resigned && err.code === AUTH_RPC_CODE && isSessionGone(err.data?.code)) {
          const gone = (req[SIGNER_AUTH_MEMBER] as { session?: unknown }).session;
          if (typeof gone === 'string') session.forget(gone);
          resigned = true;
          i--;
          continue;
        }
        const after = sign && principal && !resigned && !session ? await restartExpiry(err) : undefined;
        if (after !== undefined) {
          resigned = true;
          expiresAt = after;
          i--;
          continue;
        }
        throw err;
      }
      return res.result as T;
    }
  }

  // The audience lookup itself is unsigned: it is what a signature needs first.
  const audience = audienceResolver(options.policyHash, () => send('signer_status', {}, false));
  const request = <T>(method: string, params?: unknown): Promise<T> => send<T>(method, params, true);

  const getApproval = async (approvalId: string) => readApprovalView('signer_getApproval', await request('signer_getApproval', { approvalId }), approvalId);
  const decide = async (approvalId: string, approver: PrincipalCredentials, decision: 'approve' | 'reject') => {
    const method = decision === 'approve' ? 'signer_approve' : 'signer_reject';
    const who = loadPrincipal(approver, 'approver');
    const view = await getApproval(approvalId);
    const params = signApprovalOf(view, await audience(), who, decision);
    return readApprovalView(method, await request(method, params), approvalId);
  };

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
    getReceipt: (result) => request('signer_getReceipt', { result }),
    status: () => request('signer_status', {}),
    getApproval,
    listApprovals: async () => {
      const list = await request<unknown>('signer_listApprovals', {});
      if (!Array.isArray(list)) throw rpcErrorOf('signer_listApprovals', { code: -32603, message: 'the signer did not answer with a list of approvals', data: { code: 'CLIENT_APPROVAL_SHAPE' } });
      return list.map((v) => readApprovalView('signer_listApprovals', v));
    },
    approve: (approvalId, approver) => decide(approvalId, approver, 'approve'),
    reject: (approvalId, approver) => decide(approvalId, approver, 'reject'),
    waitForApproval: (approvalId, o) => waitForApproval(() => getApproval(approvalId), approvalId, o),
    policyHash: () => audience(),
    close: () => {
      session?.close();
      transport.close();
    },
  };
}

/** EIP-712 values may be bigints (viem, ethers): as decimal strings, which every EIP-712 encoder reads. */
export function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
