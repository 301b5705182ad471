#!/usr/bin/env node
// @ts-check
/**
 * What a custody backend does with the signing socket, start to finish:
 *
 *   1. GET /readyz and signer_status before signing: is the enclave attested
 *      (which image, which PCRs) and the keyring unlocked?
 *   2. find its key by label, or create it (signer_createKey);
 *   3. list the accounts (eth_accounts) and check the key is among them;
 *   4. sign an EIP-1559 transaction with viem over IPC, and check the
 *      signature locally before broadcasting it;
 *   5. sign EIP-712 typed data, and check it too;
 *   6. handle failures by their JSON-RPC code: 4001 (the enclave's policy
 *      said no: never retry, escalate), -32602 (our request is wrong: fix
 *      it, never retry), -32002 (enclave not attested / restarting: wait for
 *      /readyz, then retry), -32005 (busy: back off, retry).
 *
 * The signer is not an Ethereum node: nonce, gas and fees come from the
 * backend's own node, and the chain id from its own configuration (the
 * socket does not serve eth_chainId).
 *
 * Usage:  node examples/custody-client.mjs <signing-socket> [--chain-id N] [--label NAME] [--ready-timeout SEC]
 *         (after `npm ci`; start the appliance with `npm start` or
 *          `node bin/enclave-signer.js dev`, which prints the socket path)
 *
 * Prints one JSON line per step on stdout. Exit status: 0 every signature
 * checked out; 1 failure; 2 usage error; 3 the signer did not become ready
 * in time; 4 the enclave's policy denied a request (4001; the other steps
 * still ran).
 */
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import {
  createClient,
  defineChain,
  recoverTransactionAddress,
  recoverTypedDataAddress,
  parseTransaction,
  walletActions,
} from 'viem';
import { ipc } from 'viem/node';

/** JSON-RPC codes the signer answers with. */
export const CODES = Object.freeze({
  DENIED: 4001,
  INVALID_PARAMS: -32602,
  METHOD_NOT_FOUND: -32601,
  UNAVAILABLE: -32002,
  LIMIT_EXCEEDED: -32005,
});

/** A JSON-RPC error answer, as thrown by `rpc()` below. */
export class SignerRpcError extends Error {
  /**
   * @param {string} method
   * @param {{ code: number, message: string, data?: { code?: string, field?: string, hint?: string } }} error
   */
  constructor(method, error) {
    super(`${method}: ${error.message}`);
    this.name = 'SignerRpcError';
    this.code = error.code;
    this.data = error.data;
  }
}

/**
 * What to do about a failure — from its JSON-RPC code alone (never parse messages).
 *   denied      the enclave's policy refused: do not retry, alert a human
 *   invalid     our request is wrong (or names an unknown key): fix the caller, do not retry
 *   unavailable enclave not attested, restarting, keyring locked, keystore busy: wait for /readyz, retry
 *   busy        too many requests in flight: back off, retry
 *   fatal       anything else (method not served, internal error, transport failure)
 * @param {unknown} err
 * @returns {{ action: 'denied' | 'invalid' | 'unavailable' | 'busy' | 'fatal', code?: number, reason?: string, message?: string, field?: string, hint?: string }}
 */
export function classify(err) {
  // viem wraps the JSON-RPC error (RpcRequestError) in typed errors; walk to it.
  /** @type {any} */
  const e = err;
  /** @type {any} */
  const inner =
    e && typeof e.walk === 'function' ? (e.walk((/** @type {any} */ x) => x && x.name === 'RpcRequestError') ?? e.walk((/** @type {any} */ x) => typeof x?.code === 'number')) : e;
  const code = typeof inner?.code === 'number' ? inner.code : undefined;
  const data = inner?.data && typeof inner.data === 'object' ? inner.data : {};
  const message = inner?.details ?? inner?.message;
  const out = { code, reason: data.code ?? message, message, field: data.field, hint: data.hint };
  switch (code) {
    case CODES.DENIED:
      return { action: 'denied', ...out };
    case CODES.INVALID_PARAMS:
      return { action: 'invalid', ...out };
    case CODES.UNAVAILABLE:
      return { action: 'unavailable', ...out };
    case CODES.LIMIT_EXCEEDED:
      return { action: 'busy', ...out };
    default:
      return { action: 'fatal', ...out };
  }
}

/**
 * HTTP over the Unix socket (node:http speaks it natively).
 * @param {string} socketPath
 * @param {{ method?: string, path?: string, body?: string }} [opts]
 * @returns {Promise<{ status: number, body: string }>}
 */
function httpUnix(socketPath, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.body === undefined ? {} : { 'content-type': 'application/json' },
        timeout: 35_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

let nextId = 1;

/**
 * One JSON-RPC call over HTTP on the socket (for the signer_* methods).
 * @param {string} socketPath
 * @param {string} method
 * @param {unknown} [params]
 * @returns {Promise<any>}
 */
export async function rpc(socketPath, method, params) {
  const res = await httpUnix(socketPath, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, ...(params === undefined ? {} : { params }) }) });
  if (res.status !== 200) throw new Error(`${method}: HTTP ${res.status}`);
  const answer = JSON.parse(res.body);
  if (answer.error) throw new SignerRpcError(method, answer.error);
  return answer.result;
}

/**
 * Polls GET /readyz until 200. Until then the body says why (not attested yet,
 * attestation failed, keyring locked …); that reason is what to page someone with.
 * @param {string} socketPath
 * @param {number} timeoutMs
 */
export async function waitUntilReady(socketPath, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    try {
      const r = await httpUnix(socketPath, { path: '/readyz' });
      const body = JSON.parse(r.body);
      if (r.status === 200) return body;
      last = body.reason ?? `HTTP ${r.status}`;
    } catch (e) {
      last = /** @type {Error} */ (e).message;
    }
    if (Date.now() > deadline) throw Object.assign(new Error(`signer not ready: ${last}`), { notReady: true });
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Runs `fn`, retrying only what is worth retrying (unavailable: after /readyz
 * is 200 again; busy: after a backoff). Denials and invalid requests go straight up.
 * @template T
 * @param {string} socketPath
 * @param {() => Promise<T>} fn
 * @param {{ attempts?: number, log?: (o: object) => void }} [opts]
 * @returns {Promise<T>}
 */
export async function withRetry(socketPath, fn, opts = {}) {
  const attempts = opts.attempts ?? 3;
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      const c = classify(e);
      if (i >= attempts || (c.action !== 'unavailable' && c.action !== 'busy')) throw e;
      opts.log?.({ step: 'retry', attempt: i, action: c.action, reason: c.reason });
      if (c.action === 'unavailable') await waitUntilReady(socketPath, 30_000);
      else await new Promise((r) => setTimeout(r, 100 * 2 ** i));
    }
  }
}

/** @param {object} o */
const out = (o) => process.stdout.write(`${JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`);

/** @param {string[]} argv */
export async function main(argv) {
  let args;
  try {
    args = parseArgs({ args: argv, allowPositionals: true, options: { 'chain-id': { type: 'string', default: '1' }, label: { type: 'string', default: 'custody-example' }, 'ready-timeout': { type: 'string', default: '30' } } });
  } catch (e) {
    process.stderr.write(`${/** @type {Error} */ (e).message}\nUsage: node examples/custody-client.mjs <signing-socket> [--chain-id N] [--label NAME] [--ready-timeout SEC]\n`);
    return 2;
  }
  const socketPath = args.positionals[0];
  const chainId = Number(args.values['chain-id']);
  const label = String(args.values.label);
  const readyTimeoutMs = Number(args.values['ready-timeout']) * 1000;
  if (!socketPath || args.positionals.length !== 1 || !Number.isSafeInteger(chainId) || chainId < 1 || !(readyTimeoutMs > 0)) {
    process.stderr.write('Usage: node examples/custody-client.mjs <signing-socket> [--chain-id N] [--label NAME] [--ready-timeout SEC]\n');
    return 2;
  }

  // 1. Ready? /readyz first (cheap), then signer_status for what was attested.
  try {
    await waitUntilReady(socketPath, readyTimeoutMs);
  } catch (e) {
    out({ step: 'readyz', ok: false, reason: /** @type {Error} */ (e).message });
    return 3;
  }
  const status = await rpc(socketPath, 'signer_status');
  if (!status.ready || status.keyring?.state !== 'unlocked') {
    out({ step: 'status', ok: false, gate: status.gate, keyring: status.keyring });
    return 3;
  }
  // A backend that pins the image compares these with its release's PCR manifest.
  out({
    step: 'status',
    ok: true,
    image: status.attestation?.manifest?.image ?? null,
    pcr0: status.attestation?.pcrs?.['0'] ?? null,
    root: status.attestation?.root?.name ?? null,
    keyring: status.keyring.keyringId,
  });

  // 2. Our key: found by label, or created once.
  const keys = await rpc(socketPath, 'signer_listKeys', { kind: 'secp256k1' });
  let key = keys.find((/** @type {any} */ k) => k.label === label);
  if (!key) key = await withRetry(socketPath, () => rpc(socketPath, 'signer_createKey', { kind: 'secp256k1', label }), { log: out });
  out({ step: 'key', keyId: key.keyId, address: key.address, created: !keys.includes(key) });
  /** @type {`0x${string}`} */
  const account = key.address;

  const chain = defineChain({ id: chainId, name: `chain ${chainId}`, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [] } } });
  // The chain id is ours to know, not the signer's: give viem's getChainId
  // action an answer before walletActions binds the client.
  const wallet = createClient({ account, chain, transport: ipc(socketPath) })
    .extend(() => ({ getChainId: async () => chainId }))
    .extend(walletActions);

  try {
    // 3. The accounts the signer serves.
    const accounts = await wallet.getAddresses();
    if (!accounts.includes(key.address)) throw new Error('our key is not among eth_accounts');
    out({ step: 'accounts', count: accounts.length });

    let denied = 0;
    /**
     * One signing step. A policy denial (4001) is an answer, not a crash:
     * record it, do not retry, carry on with the next request.
     * @param {string} name
     * @param {() => Promise<object>} fn
     */
    const step = async (name, fn) => {
      try {
        out({ step: name, ok: true, ...(await withRetry(socketPath, fn, { log: out })) });
      } catch (e) {
        const c = classify(e);
        if (c.action !== 'denied') throw e;
        denied++;
        out({ step: name, ok: false, ...c }); // page a human: the enclave's policy refused
      }
    };

    // 4. An EIP-1559 transaction. Nonce, gas and fees come from our own node in real life.
    const tx = /** @type {const} */ ({ to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', value: 10n ** 15n, nonce: 0, gas: 21_000n, maxFeePerGas: 30n * 10n ** 9n, maxPriorityFeePerGas: 10n ** 9n });
    await step('signTransaction', async () => {
      const rawTx = await wallet.signTransaction({ account, ...tx });
      // Trust, but verify: the host the socket lives on is not trusted.
      const from = await recoverTransactionAddress({ serializedTransaction: rawTx });
      const parsed = parseTransaction(rawTx);
      if (from !== key.address || parsed.chainId !== chainId || parsed.nonce !== tx.nonce || parsed.value !== tx.value || parsed.to?.toLowerCase() !== tx.to.toLowerCase()) {
        throw new Error('the signed transaction is not what we asked for');
      }
      return { rawTx, from };
    });

    // 5. EIP-712 typed data (an off-chain order, say).
    const typedData = /** @type {const} */ ({
      domain: { name: 'Custody Desk', version: '1', chainId, verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC' },
      types: {
        Order: [
          { name: 'account', type: 'address' },
          { name: 'amount', type: 'uint256' },
          { name: 'nonce', type: 'uint64' },
        ],
      },
      primaryType: 'Order',
      message: { account: key.address, amount: 12345n, nonce: 1n },
    });
    await step('signTypedData', async () => {
      const signature = await wallet.signTypedData({ account, ...typedData });
      if ((await recoverTypedDataAddress({ ...typedData, signature })) !== key.address) throw new Error('typed-data signature does not recover to our key');
      return { signature };
    });

    // 6. What failures look like. A transaction without chainId is refused
    //    (the signer never defaults it): -32602, names the field, not retried.
    try {
      await wallet.request({ method: 'eth_signTransaction', params: [{ from: key.address, to: tx.to, nonce: '0x0', gas: '0x5208', maxFeePerGas: '0x1', maxPriorityFeePerGas: '0x1' }] });
      throw new Error('a transaction without chainId was signed');
    } catch (e) {
      const c = classify(e);
      if (c.action !== 'invalid') throw e;
      out({ step: 'invalidParamsHandled', ...c });
    }
    // An unknown key id is -32602 too.
    try {
      await rpc(socketPath, 'signer_signDigest', { keyId: 'no-such-key', digest: `0x${'00'.repeat(32)}` });
      throw new Error('an unknown key id was accepted');
    } catch (e) {
      const c = classify(e);
      if (c.action !== 'invalid') throw e;
      out({ step: 'unknownKeyHandled', ...c });
    }
    out({ step: 'done', ok: denied === 0, denied, address: key.address, chainId });
    return denied === 0 ? 0 : 4;
  } finally {
    // viem's IPC transport keeps the socket open for reuse; close it so the process can exit.
    const rpcClient = await wallet.transport.getRpcClient?.();
    rpcClient?.close();
  }
}

// Run when executed directly (not when imported by tests).
if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e) => {
      const c = classify(e);
      out({ step: 'failed', ...c, message: /** @type {Error} */ (e).message });
      process.exitCode = 1;
    },
  );
}
