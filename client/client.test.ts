/**
 * The client's connection handling against a stand-in IPC server that drops
 * the connection on the first request: reads are resent (same request id)
 * over a new connection; signing is never resent (the signer does not
 * deduplicate by id yet, so a resend could sign twice).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSignerClient } from './client.js';
import { EnclaveSignerConnectionError, EnclaveSignerRpcError } from './errors.js';

let server: Server | undefined;
let dir: string | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  if (dir) rmSync(dir, { recursive: true, force: true });
  server = undefined;
});

/** A geth-style IPC server: drops the connection on the first `dropFirst` requests, then answers. */
async function ipcServer(dropFirst: number): Promise<{ path: string; seen: { method: string; id: unknown }[]; connections: () => number }> {
  dir = mkdtempSync(join(tmpdir(), 'es-client-'));
  const path = join(dir, 's.sock');
  const seen: { method: string; id: unknown }[] = [];
  let connections = 0;
  server = createServer((s: Socket) => {
    connections++;
    let buf = '';
    s.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const req = JSON.parse(buf.slice(0, nl)) as { id: unknown; method: string };
        buf = buf.slice(nl + 1);
        seen.push({ method: req.method, id: req.id });
        if (seen.length <= dropFirst) {
          s.destroy();
          return;
        }
        const answer = req.method === 'personal_sign' ? { error: { code: 4001, message: 'denied: no', data: { code: 'POLICY_DENIED', rule: 'no-messages' } } } : { result: ['0xabc'] };
        s.write(`${JSON.stringify({ jsonrpc: '2.0', id: req.id, ...answer })}\n`);
      }
    });
  });
  await new Promise<void>((r) => server!.listen(path, r));
  return { path, seen, connections: () => connections };
}

describe('enclave-signer/client connection handling', () => {
  it('a read is resent with the same request id after the connection drops, over a new connection', async () => {
    const srv = await ipcServer(1);
    const c = createSignerClient({ socket: srv.path });
    expect(await c.accounts()).toEqual(['0xabc']);
    expect(srv.seen).toHaveLength(2);
    expect(srv.seen[0]!.id).toBe(srv.seen[1]!.id);
    expect(srv.connections()).toBe(2);
    // The next request opens no new connection: the reopened one is kept.
    await c.accounts();
    expect(srv.connections()).toBe(2);
    c.close();
  });

  it('signing is never resent: the dropped request fails with EnclaveSignerConnectionError, the next one reconnects', async () => {
    const srv = await ipcServer(1);
    const c = createSignerClient({ socket: srv.path });
    const e = await c.signTransaction({ from: '0x01', nonce: 0 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EnclaveSignerConnectionError);
    expect(srv.seen.filter((s) => s.method === 'eth_signTransaction')).toHaveLength(1);
    expect(await c.accounts()).toEqual(['0xabc']);
    c.close();
  });

  it('an error answer is an EnclaveSignerRpcError carrying code, data and rule, and is not retried', async () => {
    const srv = await ipcServer(0);
    const c = createSignerClient({ socket: srv.path });
    const e = await c.personalSign('0x01', 'hi').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EnclaveSignerRpcError);
    expect(e).toMatchObject({ code: 4001, rule: 'no-messages', data: { code: 'POLICY_DENIED' }, method: 'personal_sign' });
    expect(srv.seen).toHaveLength(1);
    c.close();
  });

  it('nothing listening: a connection error after the retries, naming the socket', async () => {
    dir = mkdtempSync(join(tmpdir(), 'es-client-'));
    const c = createSignerClient({ socket: join(dir, 'none.sock'), retries: 1 });
    await expect(c.accounts()).rejects.toThrow(/cannot connect to .*none\.sock/);
    c.close();
  });

  it('a principal without a usable key is refused when the client is built (never silently unsigned)', () => {
    expect(() => createSignerClient({ socket: '/x', principal: { name: 'p', key: 'not a PEM key' } })).toThrow(/principal\.key/);
  });
});
