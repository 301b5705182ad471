/**
 * The enclave link under trouble: the connection killed mid-request, an
 * enclave that is not up yet, garbage bytes on the link (at the start and
 * in the middle of a session), a request deadline passing. The parent
 * survives each, tells the client clearly, reconnects and re-attests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { type Hex, verifyMessage } from 'viem';
import { createDevCa } from '../dev/ca/index.js';
import { httpRequest, rpc, startFakeEnclave, startRig, waitFor, type FakeEnclave } from './test-helpers.js';

vi.setConfig({ testTimeout: 30_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-link-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function track<T extends { close(): Promise<unknown> }>(x: T): T {
  cleanups.push(() => x.close());
  return x;
}

/** A byte-level proxy between the parent and the enclave that can inject bytes toward the parent. */
async function startProxy(listenPath: string, targetPath: string): Promise<{ inject(b: Buffer): void; connections: number; close(): Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  let connections = 0;
  const server: Server = createServer((client) => {
    connections++;
    const upstream = createConnection({ path: targetPath });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(listenPath, r));
  return {
    inject(b) {
      for (const [client] of pairs) client.write(b);
    },
    get connections() {
      return connections;
    },
    async close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('the enclave connection', () => {
  it('killed mid-request: the client gets a clear error; the parent reconnects, re-attests and serves again', async () => {
    const r = track(await startRig({ dir, enclave: { signDelayMs: 300 } }));
    const address = (await rpc(r.socket, 'signer_createKey', {})).result.address as Hex;
    const attestsBefore = r.enclave!.calls.get('attest')!;
    const pending = rpc(r.socket, 'personal_sign', ['0x6869', address]);
    await waitFor(() => (r.enclave!.calls.get('sign') ?? 0) === 1, 5_000, 'sign reached the enclave');
    r.enclave!.dropConnections();
    const res = await pending;
    expect(res.error).toMatchObject({ code: -32002, message: expect.stringMatching(/^enclave unavailable: the connection was lost/), data: { code: 'PARENT_ENCLAVE_UNAVAILABLE' } });

    await waitFor(() => r.parent.state().reconnects >= 1 && r.parent.state().ready, 10_000, 'reconnected and ready');
    expect(r.enclave!.calls.get('attest')!).toBeGreaterThan(attestsBefore);
    expect(r.logs.some((l) => l.startsWith('enclave gate: connecting: connection lost'))).toBe(true);
    const again = await rpc(r.socket, 'personal_sign', ['0x6869', address]);
    expect(await verifyMessage({ address, message: 'hi', signature: again.result })).toBe(true);
    const m = await httpRequest(r.socket, { method: 'GET', path: '/metrics' });
    expect(m.body).toMatch(/enclave_signer_parent_enclave_reconnects_total [1-9]/);
  });

  it('an enclave that is not up yet: not ready with the reason, then ready once it starts', async () => {
    const ca = createDevCa();
    const r = track(await startRig({ dir, noEnclave: true, enclave: { ca } }));
    await waitFor(() => r.parent.state().gate.reason?.startsWith('cannot connect') === true, 5_000, 'connect failure reported');
    const ready = await httpRequest(r.socket, { method: 'GET', path: '/readyz' });
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body).reason).toMatch(/^enclave not attested: connecting: cannot connect: TRANSPORT_CONNECT_FAILED/);
    expect((await rpc(r.socket, 'eth_accounts')).result).toEqual([]); // keystore-only methods still work
    const enclave = track(await startFakeEnclave({ uri: r.enclaveUri, ca }));
    await waitFor(() => r.parent.state().ready, 10_000, 'ready after the enclave started');
    expect(enclave.calls.get('attest')).toBe(1);
  });

  it('garbage bytes instead of a bridge hello: the connection is dropped, the parent survives, and later attests the real enclave', async () => {
    const ca = createDevCa();
    const r = track(await startRig({ dir, noEnclave: true, enclave: { ca } }));
    const path = r.enclaveUri.slice('unix:'.length);
    let garbageConnections = 0;
    const garbage = createServer((s) => {
      garbageConnections++;
      s.on('error', () => {});
      s.resume(); // read (and ignore) what the parent sends, so its close is seen
      s.write(Buffer.from('\x00\x00\x00\x05hello, this is not CBOR at all \xff\xfe'));
    });
    await new Promise<void>((res) => garbage.listen(path, res));
    await waitFor(() => garbageConnections >= 3, 10_000, 'several reconnect attempts');
    expect(r.parent.state().ready).toBe(false);
    expect(r.parent.state().gate.state).not.toBe('ready');
    expect((await httpRequest(r.socket, { method: 'GET', path: '/healthz' })).status).toBe(200);
    expect((await rpc(r.socket, 'signer_createKey', {})).error?.code).toBe(-32002);
    await new Promise<void>((res) => garbage.close(() => res()));
    const enclave: FakeEnclave = track(await startFakeEnclave({ uri: r.enclaveUri, ca }));
    await waitFor(() => r.parent.state().ready, 10_000, 'ready with the real enclave');
    expect(enclave.calls.get('keyring.create')).toBe(1);
  });

  it('finding 2: a garbage frame (good length prefix) injected into an attested session is dropped on its own; the request in flight is answered, no reconnect', async () => {
    const ca = createDevCa();
    const enclavePath = join(dir, 'real-enclave-2.sock');
    const proxyPath = join(dir, 'proxy-2.sock');
    const enclave = track(await startFakeEnclave({ uri: `unix:${enclavePath}`, ca, signDelayMs: 300 }));
    const proxy = track(await startProxy(proxyPath, enclavePath));
    const r = track(await startRig({ dir, noEnclave: true, waitReady: true, enclave: { ca }, parent: { enclave: `unix:${proxyPath}` } }));
    const address = (await rpc(r.socket, 'signer_createKey', {})).result.address as Hex;
    const pending = rpc(r.socket, 'personal_sign', ['0x6869', address]);
    await waitFor(() => (enclave.calls.get('sign') ?? 0) === 1);
    proxy.inject(Buffer.from([0, 0, 0, 3, 0xff, 0xff, 0xff])); // a frame whose body is not CBOR
    const res = await pending;
    expect(res.result).toMatch(/^0x[0-9a-f]{130}$/);
    expect(r.parent.state().reconnects).toBe(0);
    expect(proxy.connections).toBe(1);
  });

  it('a broken length prefix injected into an attested session: the connection is dropped, requests in flight fail clearly, the parent re-attests', async () => {
    const ca = createDevCa();
    const enclavePath = join(dir, 'real-enclave.sock');
    const proxyPath = join(dir, 'proxy.sock');
    const enclave = track(await startFakeEnclave({ uri: `unix:${enclavePath}`, ca, signDelayMs: 300 }));
    const proxy = track(await startProxy(proxyPath, enclavePath));
    const r = track(await startRig({ dir, noEnclave: true, waitReady: true, enclave: { ca }, parent: { enclave: `unix:${proxyPath}` } }));
    const address = (await rpc(r.socket, 'signer_createKey', {})).result.address as Hex;
    const pending = rpc(r.socket, 'personal_sign', ['0x6869', address]);
    await waitFor(() => (enclave.calls.get('sign') ?? 0) === 1);
    proxy.inject(Buffer.from([0xff, 0xff, 0xff, 0xff])); // a length no peer writes: the stream cannot be resynchronised
    const res = await pending;
    expect(res.error?.code).toBe(-32002);
    expect(res.error?.message).toMatch(/^enclave unavailable/);
    await waitFor(() => r.parent.state().reconnects >= 1 && r.parent.state().ready, 10_000, 're-attested through the proxy');
    expect(proxy.connections).toBeGreaterThanOrEqual(2);
    expect(r.logs.some((l) => /connection lost: .*BRIDGE_FRAME_TOO_LARGE|connection lost/.test(l))).toBe(true);
    const ok = await rpc(r.socket, 'personal_sign', ['0x6869', address]);
    expect(ok.result).toMatch(/^0x[0-9a-f]{130}$/);
  });

  it('a client that hangs up mid-request cancels the request in the enclave', async () => {
    const r = track(await startRig({ dir, enclave: { signDelayMs: 2_000 } }));
    const address = (await rpc(r.socket, 'signer_createKey', {})).result.address;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'personal_sign', params: ['0x6869', address] });
    const s = createConnection({ path: r.socket });
    s.on('error', () => {});
    s.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await waitFor(() => (r.enclave!.calls.get('sign') ?? 0) === 1, 5_000, 'sign reached the enclave');
    s.destroy();
    await waitFor(() => r.enclave!.cancelled === 1, 5_000, 'the enclave saw the cancel');
    expect(r.parent.state().ready).toBe(true);
  });

  it('a request the enclave does not answer in time fails with the deadline; the connection stays up', async () => {
    const r = track(await startRig({ dir, enclave: { signDelayMs: 1_000 }, parent: { requestTimeoutMs: 150 } }));
    const address = (await rpc(r.socket, 'signer_createKey', {})).result.address;
    const res = await rpc(r.socket, 'personal_sign', ['0x6869', address]);
    expect(res.error).toMatchObject({ code: -32002, message: expect.stringMatching(/^enclave unavailable: no response to "sign" within 150 ms/) });
    expect(r.parent.state().ready).toBe(true);
    expect(r.parent.state().reconnects).toBe(0);
  });
});
