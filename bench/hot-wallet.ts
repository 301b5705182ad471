/**
 * The baseline the appliance is measured against (issue 11 §3): a minimal hot
 * wallet, as a custody team without an enclave would run it. One Node
 * process, the key in process memory, @noble/secp256k1 v3, JSON-RPC
 * `signer_signDigest` over geth-style IPC (newline-delimited JSON on a Unix
 * socket) and over HTTP on another Unix socket. No policy, no audit, no
 * attestation: the cost of exactly those is what the benchmark shows.
 *
 * Usage (bench/e2e.ts starts it): node dist/bench/hot-wallet.js --ipc PATH --http PATH
 * Prints one JSON line {"ready":true,"pid":…} on stdout when both listen.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import * as secp from '@noble/secp256k1';

secp.hashes.hmacSha256 = (k: Uint8Array, m: Uint8Array) => hmac(sha256, k, m);
secp.hashes.sha256 = sha256;

const key = secp.utils.randomSecretKey();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** One JSON-RPC request → one answer string. Errors answer, never throw. */
function handle(text: string): string {
  let id: unknown = null;
  try {
    const req = JSON.parse(text) as { id?: unknown; method?: string; params?: { digest?: string } };
    id = req.id ?? null;
    if (req.method !== 'signer_signDigest') return JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32601, message: 'method not found' } });
    const d = req.params?.digest;
    if (typeof d !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(d)) return JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32602, message: 'digest: 32 bytes hex' } });
    const sig = secp.sign(Buffer.from(d.slice(2), 'hex'), key, { prehash: false, format: 'recovered' });
    const rec = sig[0]!;
    const rs = hex(sig.subarray(1));
    const result = { r: `0x${rs.slice(0, 64)}`, s: `0x${rs.slice(64)}`, yParity: rec, v: 27 + rec, signature: `0x${rs}${(27 + rec).toString(16)}` };
    return JSON.stringify({ jsonrpc: '2.0', id, result });
  } catch (e) {
    return JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32700, message: (e as Error).message } });
  }
}

const { values } = parseArgs({ options: { ipc: { type: 'string' }, http: { type: 'string' } } });
if (!values.ipc || !values.http) throw new Error('usage: hot-wallet --ipc PATH --http PATH');

const ipc = createServer((sock) => {
  sock.setEncoding('utf8');
  let buf = '';
  sock.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) sock.write(`${handle(line)}\n`);
    }
  });
  sock.on('error', () => {});
});

const http = createHttpServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => (body += c));
  req.on('end', () => {
    const out = handle(body);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
    res.end(out);
  });
});
http.keepAliveTimeout = 60_000;

await Promise.all([new Promise<void>((r) => ipc.listen(values.ipc, r)), new Promise<void>((r) => http.listen(values.http, r))]);
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
process.on('SIGTERM', () => {
  ipc.close();
  http.close();
  process.exit(0);
});
