/**
 * IPC flow control, one connection against the limits it is promised (docs/parent.md: "≤ 64 per
 * IPC connection (reading pauses), reading also pauses while a client does not read its
 * answers"). Review finding (session: parent request handling): both limits were checked only
 * after a whole read had been dispatched — one 64 KiB read of small messages started thousands
 * of requests — and the hand-over from protocol sniffing (server.ts) resumed the socket after the
 * first read even when that read had paused it, so a connection whose first read reached the
 * limits was never paused again while they held. A client that never read its answers kept the
 * parent reading and answering into memory: 60 such connections took a dev parent with a 384 MB
 * heap down with "JavaScript heap out of memory" (every client, every request in flight).
 *
 * Real Unix sockets, serveIpc as server.ts calls it; the handler is a stand-in for the dispatcher.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { serveIpc, type IpcOptions } from './ipc.js';

const dir = mkdtempSync(join(tmpdir(), 'es-ipcflow-'));
let n = 0;
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server whose connections are served by serveIpc with `opts`; `first` bytes are read before the hand-over, as server.ts sniffs. */
async function serve(opts: Omit<IpcOptions, 'maxMessageBytes'>): Promise<{ path: string; conns: Socket[] }> {
  const path = join(dir, `s${++n}.sock`);
  const conns: Socket[] = [];
  const server: Server = createServer({ allowHalfOpen: true }, (sock) => {
    conns.push(sock);
    sock.on('error', () => {});
    // Like server.ts: the first read is taken to tell the protocol, then handed over with the socket paused.
    sock.once('data', (first: Buffer) => {
      sock.pause();
      serveIpc(sock, first, { maxMessageBytes: 1024 * 1024, ...opts });
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  cleanups.push(() => {
    for (const c of conns) c.destroy();
    server.close();
  });
  return { path, conns };
}

async function client(path: string): Promise<Socket> {
  const s = connect({ path });
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  cleanups.push(() => s.destroy());
  return s;
}

const msg = (id: number) => `{"jsonrpc":"2.0","id":${id},"method":"m"}`;

describe('IPC flow control (review finding: limits not enforced within a read, lost at the hand-over)', () => {
  it('at most maxPending messages are handled at once, however the client writes them; all are answered in the end', async () => {
    const held: (() => void)[] = [];
    let started = 0;
    let running = 0;
    let most = 0;
    const { path } = await serve({
      maxPending: 8,
      handle: (m) => {
        started++;
        running++;
        most = Math.max(most, running);
        return new Promise((resolve) =>
          held.push(() => {
            running--;
            resolve(`{"id":${JSON.parse(m.toString()).id}}`);
          }),
        );
      },
    });
    const c = await client(path);
    const answers: string[] = [];
    let buf = '';
    c.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) answers.push(buf.slice(0, i));
    });
    // 500 messages in one write (one read on the server), then 500 more in later writes.
    c.write(Array.from({ length: 500 }, (_, i) => msg(i)).join(''));
    await sleep(100);
    for (let i = 500; i < 1000; i += 50) c.write(Array.from({ length: 50 }, (_, j) => msg(i + j)).join('\n'));
    await sleep(300);
    expect(started).toBeLessThanOrEqual(8);
    // Released a few at a time, the rest follow: nothing read is lost.
    while (answers.length < 1000) {
      const batch = held.splice(0);
      for (const f of batch) f();
      await sleep(batch.length === 0 ? 20 : 0);
      expect(running).toBeLessThanOrEqual(8);
    }
    expect(most).toBeLessThanOrEqual(8);
    expect(new Set(answers.map((a) => JSON.parse(a).id)).size).toBe(1000);
  });

  it('a client that never reads its answers stops being read: what the parent holds for it stays near maxWriteBufferBytes', async () => {
    const answer = `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"${'x'.repeat(1000)}"}}`;
    let handled = 0;
    const { path, conns } = await serve({
      maxPending: 64,
      maxWriteBufferBytes: 256 * 1024,
      handle: async () => {
        handled++;
        return answer;
      },
    });
    const c = await client(path);
    c.pause(); // never reads
    // 20 MB of small messages (~20 GB of answers if all were read and answered).
    const chunk = Buffer.from('{}'.repeat(32 * 1024));
    for (let i = 0; i < 320; i++) c.write(chunk);
    await sleep(1000);
    const server = conns[0]!;
    // Bound: the threshold, plus the answers of what was in flight when reading paused, plus one answer.
    expect(server.writableLength).toBeLessThanOrEqual(256 * 1024 + 65 * (answer.length + 1));
    expect(handled).toBeLessThan(2000);
    // And reading stopped: what was read and not started waits in memory too.
    expect(server.bytesRead).toBeLessThan(1024 * 1024);
  });
});

describe('IPC clients that never read, against the real parent (review finding)', () => {
  it('16 connections flooding batches of bad requests and never reading: the parent holds little for each, and keeps serving', async () => {
    const { spawn } = await import('node:child_process');
    const { setFlagsFromString } = await import('node:v8');
    const { runInNewContext } = await import('node:vm');
    const { httpRequest, rpc, startRig } = await import('./test-helpers.js');
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const rigDir = mkdtempSync(join(tmpdir(), 'es-ipcflow-rig-'));
    const r = await startRig({ dir: rigDir });
    try {
      const N = 16;
      // The clients run in another process: their own write buffers must not count here.
      // Each writes 4 MiB of `[{},…{}]` batches (100 invalid requests each: ~35 answer bytes per byte sent).
      const script = `
        const net = require('node:net');
        const batch = '[' + Array(100).fill('{}').join(',') + ']';
        const payload = Buffer.from(batch.repeat(Math.ceil(4 * 1024 * 1024 / batch.length)));
        let open = 0;
        for (let i = 0; i < ${N}; i++) {
          const s = net.connect(process.argv[1]);
          s.on('error', () => {});
          s.on('connect', () => { s.pause(); s.write(payload); if (++open === ${N}) process.stdout.write('sent\\n'); });
        }
        setInterval(() => {}, 1000);
      `;
      gc();
      const before = process.memoryUsage().heapUsed;
      const child = spawn(process.execPath, ['-e', script, r.socket], { stdio: ['ignore', 'pipe', 'ignore'] });
      try {
        await new Promise((res) => child.stdout!.once('data', res));
        // Let the parent read and answer what it will: until its count of answered requests stops moving.
        const answered = async () => Number(/requests_total\{method="invalid",outcome="invalid_request"\} (\d+)/.exec((await httpRequest(r.socket, { method: 'GET', path: '/metrics' })).body)?.[1] ?? 0);
        for (let last = -1, now = await answered(); now !== last; last = now, await sleep(500), now = await answered());
        gc();
        const perConnection = (process.memoryUsage().heapUsed - before) / N;
        // Was ~12 MB each (8 MiB threshold checked only after whole reads): 1024 of them are ~12 GB.
        expect(perConnection).toBeLessThan(3 * 1024 * 1024);
        expect((await rpc(r.socket, 'eth_accounts')).result).toEqual([]);
      } finally {
        child.kill();
      }
    } finally {
      await r.close();
      rmSync(rigDir, { recursive: true, force: true });
    }
  }, 60_000);
});
