/**
 * Proxy mode against a hostile or broken downstream node (issue 12 §2, "Bad
 * input"): down, slow, garbage, oversized, redirecting, or refusing — each is
 * a clear -32002 / -32603 / the node's own error for that request, within the
 * deadline, and a transaction is never signed twice.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DownstreamError, createDownstream, resolveDownstreamConfig, type Downstream } from './downstream.js';
import { checkDownstreamChain, downstreamMethods } from './downstream-methods.js';
import { createNonceTracker } from './downstream-nonces.js';
import { RPC } from './jsonrpc.js';
import type { Method, MethodContext } from './methods.js';
import { toRpcError } from './rpc-errors.js';
import { transactionHash } from './send-transaction.js';
import { CancellationSource } from '../common/cancellation.js';

type Mode = 'ok' | 'slow' | 'garbage' | 'huge' | 'redirect' | 'http502' | 'refuse-raw' | 'slow-raw' | 'wrong-id' | 'deny-4001';
let mode: Mode = 'ok';
let server: Server;
let url: string;
const seen: string[] = [];
let pendingCount = 5;

function answer(res: ServerResponse, body: string): void {
  const msg = JSON.parse(body) as { id: number; method: string; params: unknown[] };
  seen.push(msg.method);
  const reply = (o: Record<string, unknown>): void => void res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, ...o }));
  if (mode === 'slow' || (mode === 'slow-raw' && msg.method === 'eth_sendRawTransaction')) return; // never answers
  if (mode === 'garbage') return void res.end('<html>not json</html>');
  if (mode === 'huge') return void res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: 'x'.repeat(4096) }));
  if (mode === 'redirect') {
    res.statusCode = 307;
    res.setHeader('location', 'http://169.254.169.254/latest/meta-data/');
    return void res.end();
  }
  if (mode === 'http502') {
    res.statusCode = 502;
    return void res.end('Bad Gateway');
  }
  if (mode === 'wrong-id') return void res.end(JSON.stringify({ jsonrpc: '2.0', id: 999_999, result: '0x1' }));
  if (mode === 'deny-4001') return reply({ error: { code: 4001, message: 'denied: by the node\u0000\u001b[31m' } });
  switch (msg.method) {
    case 'eth_chainId':
      return reply({ result: '0x7a69' });
    case 'eth_getBlockByNumber':
      return reply({ result: { number: '0x1', baseFeePerGas: '0x3b9aca00', gasLimit: '0x1c9c380' } });
    case 'eth_maxPriorityFeePerGas':
      return reply({ result: '0x1' });
    case 'eth_estimateGas':
      return reply({ result: '0x5208' });
    case 'eth_getTransactionCount':
      return reply({ result: `0x${pendingCount.toString(16)}` });
    case 'eth_sendRawTransaction':
      if (mode === 'refuse-raw') return reply({ error: { code: -32003, message: 'nonce too low' } });
      return reply({ result: transactionHash(msg.params[0] as string) });
    case 'eth_call':
      return reply({ error: { code: 3, message: 'execution reverted: not KYC', data: '0x08c379a0' } });
    default:
      return reply({ error: { code: -32601, message: `no ${msg.method}` } });
  }
}

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => answer(res, body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://user:apikey@127.0.0.1:${(server.address() as { port: number }).port}/v3/SECRETKEY`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function node(timeoutMs = 300, maxBodyBytes = 2048): Downstream {
  return createDownstream(resolveDownstreamConfig({ url, timeoutMs, maxBodyBytes }));
}

async function failure(p: Promise<unknown>): Promise<{ e: DownstreamError; wire: ReturnType<typeof toRpcError>['error'] }> {
  const e = await p.then(
    () => {
      throw new Error('expected a failure');
    },
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(DownstreamError);
  return { e: e as DownstreamError, wire: toRpcError(e).error };
}

/** A stand-in for the socket's eth_signTransaction that counts what it signs. */
function countingSigner(): { sign: Method; signed: unknown[] } {
  const signed: unknown[] = [];
  let n = 0;
  return {
    signed,
    sign: async (params) => {
      signed.push((params as unknown[])[0]);
      n++;
      return `0x02${n.toString(16).padStart(2, '0')}${'ab'.repeat(40)}`;
    },
  };
}

function ctx(): MethodContext {
  const key = { keyId: 'k', kind: 'secp256k1', address: '0x1111111111111111111111111111111111111111' };
  return { keystore: { getKeyByAddress: () => key } as never, gate: {} as never, keystoreReadonly: false, chainId: 31337, cancellation: new CancellationSource() };
}

function sendTx(nodeApi: Downstream, sign: Method): Method {
  return new Map(downstreamMethods(nodeApi, sign)).get('eth_sendTransaction')!;
}

const TX = { from: '0x1111111111111111111111111111111111111111', to: '0x2222222222222222222222222222222222222222', value: '0x1' };

describe('downstream node: bad input', () => {
  it('the config takes http(s) URLs only', () => {
    expect(() => resolveDownstreamConfig('ftp://x')).toThrow(/not http: or https:/);
    expect(() => resolveDownstreamConfig('unix:/tmp/x')).toThrow(/not http/);
    expect(() => resolveDownstreamConfig('nope')).toThrow(/not a URL/);
    expect(resolveDownstreamConfig('https://node.example/rpc').timeoutMs).toBe(10_000);
  });

  it('describe names the origin only: the API key in the path or user info never shows', () => {
    const d = node();
    expect(d.describe).not.toMatch(/SECRETKEY|apikey/);
  });

  it('a node that is down: -32002 naming the node, never the API key', async () => {
    const down = createDownstream(resolveDownstreamConfig({ url: 'http://127.0.0.1:1/v3/SECRETKEY', timeoutMs: 1000 }));
    const { e, wire } = await failure(down.call('eth_blockNumber', []));
    expect(wire.code).toBe(RPC.UNAVAILABLE);
    expect(e.message).toMatch(/unreachable \(ECONNREFUSED\)/);
    expect(JSON.stringify(wire)).not.toMatch(/SECRETKEY/);
  });

  it('a slow node: -32002 at the deadline', async () => {
    mode = 'slow';
    const { wire } = await failure(node(200).call('eth_blockNumber', []));
    expect(wire).toMatchObject({ code: RPC.UNAVAILABLE, message: expect.stringMatching(/no answer within 200 ms/) });
  });

  it('garbage, an oversized answer, a mismatched id: -32603 saying what was wrong', async () => {
    mode = 'garbage';
    expect((await failure(node().call('eth_blockNumber', []))).wire).toMatchObject({ code: RPC.INTERNAL_ERROR, message: expect.stringMatching(/not JSON/) });
    mode = 'huge';
    expect((await failure(node().call('eth_blockNumber', []))).wire).toMatchObject({ code: RPC.INTERNAL_ERROR, message: expect.stringMatching(/over the 2048-byte cap/) });
    mode = 'wrong-id';
    expect((await failure(node().call('eth_blockNumber', []))).wire).toMatchObject({ code: RPC.INTERNAL_ERROR, message: expect.stringMatching(/id does not match/) });
  });

  it('a redirect is refused, not followed', async () => {
    mode = 'redirect';
    seen.length = 0;
    const { wire } = await failure(node().call('eth_blockNumber', []));
    expect(wire.message).toMatch(/HTTP 307 redirect refused/);
    expect(seen).toEqual(['eth_blockNumber']);
  });

  it('an HTTP error page is -32002 with its status', async () => {
    mode = 'http502';
    expect((await failure(node().call('eth_blockNumber', []))).wire).toMatchObject({ code: RPC.UNAVAILABLE, message: expect.stringMatching(/HTTP 502: Bad Gateway/) });
  });

  it('the node’s JSON-RPC error passes through (code, message, data); a node cannot pose as the policy (4001)', async () => {
    mode = 'ok';
    const { wire } = await failure(node().call('eth_call', [{}]));
    expect(wire).toEqual({ code: 3, message: 'execution reverted: not KYC', data: '0x08c379a0' });
    mode = 'deny-4001';
    const denied = (await failure(node().call('eth_blockNumber', []))).wire;
    expect(denied.code).toBe(RPC.SERVER_ERROR);
    expect(denied.message).toBe('denied: by the node [31m');
  });

  it('startup: the node’s chain id is served; a contradicting --chain-id or a node that is down refuses the start', async () => {
    mode = 'ok';
    expect(await checkDownstreamChain(node(), undefined)).toBe(31337);
    expect(await checkDownstreamChain(node(), 31337)).toBe(31337);
    await expect(checkDownstreamChain(node(), 1)).rejects.toThrow(/--chain-id 1 contradicts the downstream node .* 31337/);
    mode = 'slow';
    await expect(checkDownstreamChain(node(200), 1)).rejects.toThrow(/cannot read the node's chain id: .*no answer within/);
  });
});

describe('eth_sendTransaction through a downstream node', () => {
  it('fills nonce (pending), gas (+20 %) and EIP-1559 fees, signs once, returns the hash', async () => {
    mode = 'ok';
    pendingCount = 5;
    const { sign, signed } = countingSigner();
    const hash = await sendTx(node(), sign)([TX], ctx());
    expect(signed).toEqual([{ ...TX, type: '0x2', maxPriorityFeePerGas: '0x1', maxFeePerGas: '0x77359401', gas: '0x6270', nonce: '0x5' }]);
    expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
  });

  it('concurrent sends from one key get distinct nonces even when the node’s pending count lags', async () => {
    mode = 'ok';
    pendingCount = 9; // the node never counts our sends: only the local tracker can keep them apart
    const { sign, signed } = countingSigner();
    const send = sendTx(node(), sign);
    await Promise.all(Array.from({ length: 5 }, () => send([TX], ctx())));
    expect((signed as { nonce: string }[]).map((t) => t.nonce).sort()).toEqual(['0x9', '0xa', '0xb', '0xc', '0xd']);
  });

  it('the node refuses the signed transaction: its error with the hash, signed once, and the nonce is the node’s again', async () => {
    mode = 'refuse-raw';
    pendingCount = 20;
    const { sign, signed } = countingSigner();
    const send = sendTx(node(), sign);
    const { wire } = await failure(send([TX], ctx()));
    expect(signed).toHaveLength(1);
    expect(wire.code).toBe(-32003);
    expect(wire.message).toMatch(/^nonce too low \(signed transaction 0x[0-9a-f]{64}, not re-signed\)$/);
    mode = 'ok';
    await send([TX], ctx());
    expect((signed[1] as { nonce: string }).nonce).toBe('0x14');
  });

  it('the node goes silent after signing: -32002 within the deadline naming the hash, never signed twice', async () => {
    mode = 'slow-raw';
    const { sign, signed } = countingSigner();
    const { e, wire } = await failure(sendTx(node(300), sign)([TX], ctx()));
    expect(signed).toHaveLength(1);
    expect(wire.code).toBe(RPC.UNAVAILABLE);
    expect(e.message).toMatch(/may not have received the signed transaction 0x[0-9a-f]{64} \(it was signed once and is not signed again\)/);
  });

  it('the node is down before signing: -32002 and nothing is signed', async () => {
    mode = 'slow';
    const { sign, signed } = countingSigner();
    const { wire } = await failure(sendTx(node(200), sign)([TX], ctx()));
    expect(wire.code).toBe(RPC.UNAVAILABLE);
    expect(signed).toHaveLength(0);
  });

  it('a key the keystore does not hold is -32602 before the node is asked anything', async () => {
    mode = 'ok';
    seen.length = 0;
    const c = { ...ctx(), keystore: { getKeyByAddress: () => undefined } as never };
    await expect(sendTx(node(), countingSigner().sign)([TX], c)).rejects.toMatchObject({ code: 'PARENT_INVALID_PARAMS', field: 'from' });
    expect(seen).toEqual([]);
  });
});

describe('nonce tracker', () => {
  it('keys do not wait for each other; one key runs one send at a time', async () => {
    const t = createNonceTracker();
    const order: string[] = [];
    let releaseA!: () => void;
    const a = t.withKey('0xA', async () => {
      order.push('a1 start');
      await new Promise<void>((r) => (releaseA = r));
      order.push('a1 end');
    });
    const a2 = t.withKey('0xa', async () => void order.push('a2'));
    await t.withKey('0xB', async () => void order.push('b'));
    expect(order).toEqual(['a1 start', 'b']);
    releaseA();
    await Promise.all([a, a2]);
    expect(order).toEqual(['a1 start', 'b', 'a1 end', 'a2']);
  });
});
