/**
 * Hostile local clients and a hostile host against the parent's connections
 * and boot (issue 8, findings 6, 8 and 9):
 *
 * - 6: idle, undetected, slowloris and stalled-IPC connections cannot shut a
 *   working client out, and are closed after their deadline;
 * - 8: the signing socket is never reachable by others before its mode is
 *   final, whatever the umask;
 * - 9: a keyring.create whose answer is lost does not stick the boot.
 *
 * Small timeouts come in through the server's options; nothing here asserts
 * how long anything took, only that it eventually happened.
 */
import { mkdtempSync, rmSync, chmodSync, statSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { IpcSocketProvider } from 'ethers';
import { createClient } from 'viem';
import { ipc } from 'viem/node';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startSigningServer, type ConnectionLimits, type SigningServer } from '../../parent/server.js';
import { httpRequest, ipcExchange, rpc, startRig, waitFor, type Rig } from '../../parent/test-helpers.js';

vi.setConfig({ testTimeout: 60_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-hh-conn-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Fails instead of hanging when a client never gets its answer. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p.finally(() => clearTimeout(t)), new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`no answer: ${what}`)), ms)))]);
}

function openConnection(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path }, () => resolve(s));
    s.once('error', reject);
  });
}

function closed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve();
    s.on('error', () => {});
    s.resume();
    s.once('close', () => resolve());
  });
}

const CHAIN_ID = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'eth_chainId' });

let n = 0;
/** A signing server with a canned IPC/HTTP answer and the given limits. */
async function cannedServer(limits: Partial<ConnectionLimits>, extra: { socketMode?: number; http?: boolean } = {}): Promise<SigningServer> {
  const answer = JSON.stringify({ jsonrpc: '2.0', id: 7, result: '0x1' });
  return startSigningServer({
    socketPath: join(dir, `canned-${++n}.sock`),
    socketMode: extra.socketMode ?? 0o600,
    ...(extra.http ? { http: { host: '127.0.0.1', port: 0 } } : {}),
    unixHttpHandler: (req, res) => {
      req.resume();
      req.on('end', () => res.end(answer));
    },
    tcpHttpHandler: () => (_req, res) => res.end(answer),
    ipcHandle: async () => answer,
    maxBodyBytes: 1024 * 1024,
    ...(limits.maxConnections === undefined ? {} : { maxConnections: limits.maxConnections }),
    limits,
  });
}

describe('finding 6: idle connections cannot lock clients out', () => {
  let r: Rig;
  const idle: net.Socket[] = [];
  beforeAll(async () => {
    r = await startRig({ dir });
  });
  afterAll(async () => {
    for (const s of idle) s.destroy();
    await r.close();
  });

  it('finding 6: 1,024 idle connections (half having sent one space) do not shut out fresh ethers, viem, raw IPC and HTTP clients', async () => {
    for (let i = 0; i < 1024; i++) {
      const s = await openConnection(r.socket);
      s.on('error', () => {});
      if (i % 2 === 0) s.write(' ');
      idle.push(s);
    }
    const raw = await ipcExchange(r.socket, `${JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'eth_accounts' })}\n`, 1, 15_000);
    expect(JSON.parse(raw.lines[0]!)).toEqual({ jsonrpc: '2.0', id: 7, result: [] });

    const provider = new IpcSocketProvider(r.socket, 1, { staticNetwork: true });
    try {
      expect(await within(provider.send('eth_accounts', []), 15_000, 'ethers IpcSocketProvider')).toEqual([]);
    } finally {
      provider.destroy();
    }

    const viem = createClient({ transport: ipc(r.socket, { timeout: 15_000, reconnect: false }) });
    expect(await viem.request({ method: 'eth_accounts' })).toEqual([]);

    expect((await within(httpRequest(r.socket, { method: 'GET', path: '/healthz' }), 15_000, 'HTTP /healthz')).status).toBe(200);
    // The room was made by closing idle connections that had never been answered.
    expect(idle.some((s) => s.destroyed || s.readableEnded)).toBe(true);
  });
});

describe('finding 6: the cap evicts the least useful connection, never a working one', () => {
  let s: SigningServer;
  afterEach(async () => s?.close());

  it('finding 6: at the cap, a fresh client gets in and an answered (idle) ethers-style client keeps its socket', async () => {
    s = await cannedServer({ maxConnections: 4 });
    // A long-lived IPC client that has been answered (like ethers' IpcSocketProvider).
    const worker = await openConnection(s.socketPath);
    const lines: string[] = [];
    worker.on('data', (d) => lines.push(...d.toString().split('\n').filter(Boolean)));
    worker.write(`${CHAIN_ID}\n`);
    await waitFor(() => lines.length === 1, 10_000, 'first answer');
    const hogs: net.Socket[] = [];
    for (let i = 0; i < 6; i++) hogs.push(await openConnection(s.socketPath));
    for (const h of hogs) h.on('error', () => {});
    const fresh = await ipcExchange(s.socketPath, `${CHAIN_ID}\n`, 1, 10_000);
    expect(fresh.lines).toHaveLength(1);
    // The answered client was not the one closed to make room.
    expect(worker.destroyed).toBe(false);
    worker.write(`${CHAIN_ID}\n`);
    await waitFor(() => lines.length === 2, 10_000, 'second answer on the long-lived client');
    worker.destroy();
    for (const h of hogs) h.destroy();
  });
});

describe('finding 6: the loopback HTTP listener has the same cap and deadlines', () => {
  let s: SigningServer;
  afterEach(async () => s?.close());

  it('finding 6: idle TCP connections at the cap do not shut out a fresh HTTP client; a slowloris is closed', async () => {
    s = await cannedServer({ maxConnections: 3, headersTimeoutMs: 300 }, { http: true });
    const { port } = new URL(s.httpUrl!);
    const tcp = () =>
      new Promise<net.Socket>((resolve, reject) => {
        const c = net.connect({ host: '127.0.0.1', port: Number(port) }, () => resolve(c));
        c.once('error', reject);
      });
    const hogs: net.Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const h = await tcp();
      h.on('error', () => {});
      hogs.push(h);
    }
    const answer = await within(
      new Promise<string>((resolve, reject) => {
        const c = net.connect({ host: '127.0.0.1', port: Number(port) }, () => c.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`));
        let got = '';
        c.on('data', (d) => (got += d));
        c.on('close', () => resolve(got));
        c.on('error', reject);
      }),
      15_000,
      'fresh HTTP client on TCP',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    const slow = await tcp();
    slow.write('POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const trickle = setInterval(() => slow.writable && slow.write('a'), 50);
    try {
      await within(closed(slow), 15_000, 'TCP slowloris closed');
    } finally {
      clearInterval(trickle);
      for (const h of hogs) h.destroy();
    }
  });
});

describe('finding 6: deadlines per connection', () => {
  let s: SigningServer;
  afterEach(async () => s?.close());

  it('finding 6: a connection that never tells its protocol (nothing, or one space) is closed', async () => {
    s = await cannedServer({ detectTimeoutMs: 200 });
    const silent = await openConnection(s.socketPath);
    const space = await openConnection(s.socketPath);
    space.write(' ');
    await within(Promise.all([closed(silent), closed(space)]), 15_000, 'undetected connections closed');
  });

  it('finding 6: a slowloris HTTP request (headers trickling in) is closed', async () => {
    s = await cannedServer({ headersTimeoutMs: 300 });
    const c = await openConnection(s.socketPath);
    c.write('POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const trickle = setInterval(() => c.writable && c.write('a'), 50);
    try {
      await within(closed(c), 15_000, 'slowloris closed');
    } finally {
      clearInterval(trickle);
    }
  });

  it('finding 6: an IPC message stalled half-way gets an error and the connection closes', async () => {
    s = await cannedServer({ ipcMessageTimeoutMs: 200 });
    const out = await ipcExchange(s.socketPath, '{"jsonrpc":"2.0","id":1,', 0, 15_000, true);
    expect(out.closed).toBe(true);
    expect(JSON.parse(out.lines[0]!).error.message).toMatch(/not completed within 200 ms/);
  });

  it('finding 6: an idle IPC connection between complete messages stays open (ethers keeps one for good)', async () => {
    s = await cannedServer({ ipcMessageTimeoutMs: 100, detectTimeoutMs: 100 });
    const c = await openConnection(s.socketPath);
    const lines: string[] = [];
    c.on('data', (d) => lines.push(...d.toString().split('\n').filter(Boolean)));
    c.write(CHAIN_ID);
    await waitFor(() => lines.length === 1, 10_000, 'first answer');
    await new Promise((r) => setTimeout(r, 500));
    expect(c.destroyed).toBe(false);
    c.write(CHAIN_ID);
    await waitFor(() => lines.length === 2, 10_000, 'answer after an idle spell');
    c.destroy();
  });
});

describe('finding 8: socket permission race', () => {
  let oldUmask: number;
  let s: SigningServer | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    process.umask(oldUmask);
    await s?.close();
  });

  it('finding 8: with umask 002 the socket is never reachable by others, not even at the moment it starts listening', async () => {
    oldUmask = process.umask(0o002);
    // A directory anybody may traverse (like /run/enclave-signer 0755): only the socket's own mode protects it.
    const open = mkdtempSync(join(dir, 'open-'));
    chmodSync(open, 0o755);
    const socketPath = join(open, 'signer.sock');
    const seen: { path: string; mode: number; dirMode: number }[] = [];
    const listen = net.Server.prototype.listen;
    vi.spyOn(net.Server.prototype, 'listen').mockImplementation(function (this: net.Server, ...args: unknown[]) {
      // Runs first thing once the socket accepts connections, before any code of the server's own.
      this.once('listening', () => {
        const p = this.address();
        if (typeof p !== 'string') return;
        seen.push({ path: p, mode: statSync(p).mode & 0o777, dirMode: statSync(dirname(p)).mode & 0o777 });
      });
      return (listen as (...a: unknown[]) => net.Server).apply(this, args);
    });
    s = await startSigningServer({
      socketPath,
      socketMode: 0o600,
      unixHttpHandler: (_req, res) => res.end(),
      tcpHttpHandler: () => (_req, res) => res.end(),
      ipcHandle: async () => undefined,
      maxBodyBytes: 1024,
    });
    expect(seen).toHaveLength(1);
    const at = seen[0]!;
    // Reachable by another user only if its mode grants it AND its directory lets them through.
    const othersCanConnect = (at.mode & 0o066) !== 0 && (at.dirMode & 0o011) !== 0;
    expect(othersCanConnect, `listening at ${at.path} with mode ${at.mode.toString(8)} in a directory of mode ${at.dirMode.toString(8)}`).toBe(false);
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    expect(statSync(socketPath).isSocket()).toBe(true);
    // Nothing is left behind next to it.
    await s.close();
    s = undefined;
    expect((await import('node:fs')).readdirSync(open)).toEqual([]);
  });
});

describe('finding 9: a lost keyring.create answer does not stick the boot', () => {
  let r: Rig;
  afterAll(async () => r?.close());

  it('finding 9: the bridge drops right after keyring.create, before the record is stored → boot completes with that keyring, /readyz ready', async () => {
    r = await startRig({ dir, enclave: { dropAfterKeyringCreate: true }, waitReady: false });
    await waitFor(() => r.parent.state().ready, 20_000, 'parent ready').catch((e: Error) => {
      throw new Error(`${e.message}; keyring: ${JSON.stringify(r.parent.state().keyring)}`);
    });
    expect(r.enclave!.calls.get('keyring.create')).toBe(1);
    const ready = await httpRequest(r.socket, { method: 'GET', path: '/readyz' });
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body).keyring.keyringId).toBe(r.enclave!.keyringId);
    // The stored keyring is the one the enclave holds: keys made now can be opened after a restart.
    const key = await rpc(r.socket, 'signer_createKey', { label: 'after-recovery' });
    expect(key.error).toBeUndefined();
    const signed = await rpc(r.socket, 'personal_sign', ['0x68656c6c6f', key.result.address]);
    expect(signed.result).toMatch(/^0x[0-9a-f]{130}$/);
    expect(r.logs.join('\n')).toMatch(/already unlocked in the enclave and is now stored/);
  });
});
