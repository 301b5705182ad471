/**
 * The KMS byte pipe (parent/kms-pipe.ts) with real sockets: the enclave side
 * is a Unix socket (never vsock here), the KMS side a TCP server on
 * 127.0.0.1 — an echo server, a stalled reader, a TLS server under the dev CA
 * behind a recording tap.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDevCa } from '../dev/ca/index.js';
import { KmsPipeError, loadAllowlist, parseAllowlist, startKmsPipe, type AllowedTarget, type KmsPipe } from './kms-pipe.js';

let dir: string;
const cleanups: (() => Promise<void> | void)[] = [];
beforeEach(() => {
  // Short paths: a Unix socket path has at most 107 bytes.
  dir = mkdtempSync(join(tmpdir(), 'kp-'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

const sha256 = (chunks: Buffer[]) => {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
};

async function listenTcp(server: Server): Promise<AllowedTarget> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { address: '127.0.0.1', port: (server.address() as AddressInfo).port };
}

/** Echoes every byte; half-close aware (answers everything, then ends). Hashes what it received. */
async function echoServer(): Promise<{ target: AllowedTarget; received: () => string }> {
  const h = createHash('sha256');
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d: Buffer) => h.update(d));
    s.pipe(s);
  });
  return { target: await listenTcp(server), received: () => h.copy().digest('hex') };
}

async function pipeTo(target: AllowedTarget, extra: Partial<Parameters<typeof startKmsPipe>[0]> = {}): Promise<KmsPipe & { path: string }> {
  const path = join(dir, 'pipe.sock');
  const pipe = await startKmsPipe({ listen: `unix:${path}`, target, allowlist: [target], ...extra });
  cleanups.push(() => pipe.close());
  return Object.assign(pipe, { path });
}

function dial(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
    cleanups.push(() => void s.destroy());
  });
}

const closed = (s: Socket) => new Promise<void>((r) => (s.destroyed && s.closed ? r() : s.once('close', () => r())));

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Bytes the kernel has taken from this socket (sent on, not queued in node). */
const flushed = (s: Socket) => s.bytesWritten - s.writableLength;

/** Writes `data` respecting backpressure; resolves with a stop() and a progress counter. */
function pump(s: Socket, data: Buffer, chunk = 1 << 20): { done: Promise<void> } {
  let off = 0;
  const done = new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    const go = () => {
      while (off < data.length) {
        const part = data.subarray(off, off + chunk);
        off += part.length;
        if (!s.write(part)) return void s.once('drain', go);
      }
      resolve();
    };
    go();
  });
  return { done };
}

/** Waits until `read()` has not changed for `quietMs` (a stalled stream); returns its value. */
async function stalled(read: () => number, quietMs = 500): Promise<number> {
  let last = -1;
  let since = Date.now();
  for (;;) {
    const v = read();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

// ------------------------------------------------------------------ allowlist

describe('parseAllowlist (vsock-proxy format)', () => {
  it('reads flow and block entries, lower-casing host names', () => {
    const text = [
      'allowlist:',
      '- {address: kms.us-east-1.amazonaws.com, port: 443}',
      '- {address: KMS-FIPS.eu-west-1.AmazonAWS.com, port: 443}',
      '- address: 127.0.0.1',
      '  port: 8443',
      '',
    ].join('\n');
    expect(parseAllowlist(text)).toEqual([
      { address: 'kms.us-east-1.amazonaws.com', port: 443 },
      { address: 'kms-fips.eu-west-1.amazonaws.com', port: 443 },
      { address: '127.0.0.1', port: 8443 },
    ]);
  });

  it('loads a file', () => {
    const f = join(dir, 'vsock-proxy.yaml');
    writeFileSync(f, 'allowlist:\n- {address: kms.us-east-1.amazonaws.com, port: 443}\n');
    expect(loadAllowlist(f)).toEqual([{ address: 'kms.us-east-1.amazonaws.com', port: 443 }]);
  });

  it.each([
    ['not YAML', 'allowlist: [ {address: kms', /not valid YAML/],
    ['empty file', '', /"allowlist:" sequence/],
    ['no allowlist key', 'hosts:\n- {address: a.b, port: 443}\n', /"allowlist:" sequence/],
    ['allowlist is a map', 'allowlist: {address: a.b, port: 443}\n', /"allowlist:" sequence/],
    ['scalar entry', 'allowlist:\n- kms.us-east-1.amazonaws.com:443\n', /allowlist\[0\]\.address/],
    ['null entry', 'allowlist:\n-\n', /allowlist\[0\]\.address/],
    ['missing port', 'allowlist:\n- {address: a.b}\n', /allowlist\[0\]\.port/],
    ['port as string', "allowlist:\n- {address: a.b, port: '443'}\n", /allowlist\[0\]\.port/],
    ['port 0', 'allowlist:\n- {address: a.b, port: 0}\n', /allowlist\[0\]\.port/],
    ['port 65536', 'allowlist:\n- {address: a.b, port: 65536}\n', /allowlist\[0\]\.port/],
    ['port 44.3', 'allowlist:\n- {address: a.b, port: 44.3}\n', /allowlist\[0\]\.port/],
    ['address with a space', "allowlist:\n- {address: 'a b', port: 443}\n", /allowlist\[0\]\.address/],
    ['address with a path', 'allowlist:\n- {address: a.b/x, port: 443}\n', /allowlist\[0\]\.address/],
    ['address a number', 'allowlist:\n- {address: 443, port: 443}\n', /allowlist\[0\]\.address/],
    ['second entry bad', 'allowlist:\n- {address: a.b, port: 443}\n- {address: "", port: 443}\n', /allowlist\[1\]\.address/],
  ])('%s → PIPE_BAD_ALLOWLIST', (_name, text, message) => {
    let err: unknown;
    try {
      parseAllowlist(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KmsPipeError);
    expect((err as KmsPipeError).code).toBe('PIPE_BAD_ALLOWLIST');
    expect((err as Error).message).toMatch(message);
  });
});

describe('startKmsPipe', () => {
  it('refuses a target that is not in the allowlist, before listening', async () => {
    const path = join(dir, 'never.sock');
    const allowlist = parseAllowlist('allowlist:\n- {address: kms.us-east-1.amazonaws.com, port: 443}\n');
    for (const target of [
      { address: 'kms.us-east-2.amazonaws.com', port: 443 },
      { address: 'kms.us-east-1.amazonaws.com', port: 80 },
      { address: 'evil.example', port: 443 },
    ]) {
      await expect(startKmsPipe({ listen: `unix:${path}`, target, allowlist })).rejects.toMatchObject({ code: 'PIPE_NOT_ALLOWED' });
    }
    await expect(startKmsPipe({ listen: `unix:${path}`, target: { address: 'kms.us-east-1.amazonaws.com', port: 443 }, allowlist: [] })).rejects.toMatchObject({
      code: 'PIPE_NOT_ALLOWED',
    });
    expect(existsSync(path)).toBe(false);
    // Host names compare case-insensitively, as DNS does.
    const pipe = await startKmsPipe({ listen: `unix:${path}`, target: { address: 'KMS.us-east-1.amazonaws.com', port: 443 }, allowlist });
    await pipe.close();
  });

  it('pipes 16 MiB both ways through a TCP echo server, byte for byte (sha256), half-close included', async () => {
    const echo = await echoServer();
    const pipe = await pipeTo(echo.target);
    expect(pipe.uri).toBe(`unix:${pipe.path}`);
    const c = await dial(pipe.path);
    const data = randomBytes(16 << 20);
    const back: Buffer[] = [];
    let backLen = 0;
    c.on('data', (d: Buffer) => {
      back.push(d);
      backLen += d.length;
    });
    await pump(c, data).done;
    c.end(); // half-close: the echo must still come back in full
    await closed(c);
    expect(backLen).toBe(data.length);
    const want = sha256([data]);
    expect(echo.received()).toBe(want);
    expect(sha256(back)).toBe(want);
    await waitFor(() => pipe.active === 0, 'the pipe to close');
  });

  it('applies backpressure towards the enclave: a stalled KMS side stalls the writer instead of filling the parent', async () => {
    const total = 64 << 20;
    const held: Socket[] = [];
    const h = createHash('sha256');
    let got = 0;
    const target = await listenTcp(
      createServer((s) => {
        held.push(s);
        s.pause(); // reads nothing for now
        s.on('data', (d: Buffer) => {
          h.update(d);
          got += d.length;
        });
      }),
    );
    const pipe = await pipeTo(target);
    const c = await dial(pipe.path);
    const data = randomBytes(total);
    const p = pump(c, data);
    await waitFor(() => held.length === 1, 'the KMS side connection');
    const accepted = await stalled(() => flushed(c));
    // What left the writer is bounded by socket buffers on the way, not by the 64 MiB it wants to send.
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(total / 2);
    expect(got).toBe(0);
    held[0]!.resume();
    await p.done;
    c.end();
    await waitFor(() => got === total, 'every byte at the KMS side');
    expect(h.digest('hex')).toBe(sha256([data]));
  });

  it('applies backpressure towards KMS: an enclave that does not read stalls the KMS side', async () => {
    const total = 64 << 20;
    const data = randomBytes(total);
    let server: Socket | undefined;
    const target = await listenTcp(
      createServer((s) => {
        server = s;
        pump(s, data).done.then(
          () => s.end(),
          () => {},
        );
      }),
    );
    const pipe = await pipeTo(target);
    const c = await dial(pipe.path);
    c.pause();
    await waitFor(() => server !== undefined, 'the KMS side connection');
    const accepted = await stalled(() => flushed(server!));
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(total / 2);
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    c.resume();
    await closed(c);
    expect(sha256(chunks)).toBe(sha256([data]));
  });

  it('delivers the whole answer when KMS sends it and closes while the enclave reads slowly', async () => {
    const data = randomBytes(8 << 20);
    const target = await listenTcp(createServer((s) => s.end(data)));
    const pipe = await pipeTo(target);
    const c = await dial(pipe.path);
    // A slow reader: the socket buffers towards the enclave stay full, so when KMS's FIN
    // arrives the parent still holds bytes it has not delivered.
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => {
      chunks.push(d);
      c.pause();
      setTimeout(() => c.resume(), 1);
    });
    await closed(c);
    expect(Buffer.concat(chunks).length).toBe(data.length);
    expect(sha256(chunks)).toBe(sha256([data]));
  });

  it('enforces the connection limit: extra connections are closed, the others keep working, a freed slot is reused', async () => {
    const echo = await echoServer();
    const logs: string[] = [];
    const pipe = await pipeTo(echo.target, { maxConnections: 2, log: (l) => logs.push(l) });
    const roundTrip = async (s: Socket, msg: string) => {
      const got = new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString())));
      s.write(msg);
      return got;
    };
    const c1 = await dial(pipe.path);
    const c2 = await dial(pipe.path);
    expect(await roundTrip(c1, 'one')).toBe('one');
    expect(await roundTrip(c2, 'two')).toBe('two');
    expect(pipe.active).toBe(2);

    const c3 = await dial(pipe.path);
    let c3data = 0;
    c3.on('data', (d: Buffer) => (c3data += d.length));
    c3.on('error', () => {});
    c3.write('three');
    await closed(c3);
    expect(c3data).toBe(0);
    expect(logs).toContain('kms pipe: refusing a connection, 2 already open');
    expect(await roundTrip(c1, 'still one')).toBe('still one');
    expect(pipe.active).toBe(2);

    c1.end();
    await closed(c1);
    await waitFor(() => pipe.active === 1, 'the freed slot');
    const c4 = await dial(pipe.path);
    expect(await roundTrip(c4, 'four')).toBe('four');
    expect(pipe.active).toBe(2);
  });

  it('closes idle pipes and keeps busy ones', async () => {
    const echo = await echoServer();
    const pipe = await pipeTo(echo.target, { idleTimeoutMs: 300 });
    const idle = await dial(pipe.path);
    const busy = await dial(pipe.path);
    let echoed = 0;
    busy.on('data', (d: Buffer) => (echoed += d.length));
    const ticker = setInterval(() => busy.write('x'), 30);
    cleanups.push(() => clearInterval(ticker));
    await closed(idle);
    // The busy pipe has outlived several idle periods by now and still echoes.
    const before = echoed;
    await new Promise((r) => setTimeout(r, 1_000));
    expect(busy.closed).toBe(false);
    expect(echoed).toBeGreaterThan(before);
    clearInterval(ticker);
    await closed(busy);
    await waitFor(() => pipe.active === 0, 'both pipes to go');
  });

  it('closes the enclave side when KMS cannot be reached', async () => {
    const probe = createServer();
    const target = await listenTcp(probe);
    await new Promise<void>((r) => probe.close(() => r()));
    const pipe = await pipeTo(target);
    const c = await dial(pipe.path);
    c.on('error', () => {});
    await closed(c);
    await waitFor(() => pipe.active === 0, 'the pipe to forget it');
  });

  it('close() ends open pipes and stops listening', async () => {
    const echo = await echoServer();
    const pipe = await pipeTo(echo.target);
    const c = await dial(pipe.path);
    c.on('error', () => {});
    await waitFor(() => pipe.active === 1, 'the pipe');
    await pipe.close();
    await closed(c);
    await expect(dial(pipe.path)).rejects.toMatchObject({ code: expect.stringMatching(/ENOENT|ECONNREFUSED/) });
  });
});

// ------------------------------------------------------------------ TLS end to end

describe('TLS through the pipe', () => {
  /** A TCP proxy between the pipe and the server that records every byte in both directions. */
  async function tap(to: AllowedTarget): Promise<{ target: AllowedTarget; seen: () => Buffer }> {
    const seen: Buffer[] = [];
    const server = createServer((a) => {
      const b = createConnection({ host: to.address, port: to.port });
      a.on('data', (d: Buffer) => seen.push(Buffer.from(d)));
      b.on('data', (d: Buffer) => seen.push(Buffer.from(d)));
      a.pipe(b).pipe(a);
      a.on('error', () => b.destroy());
      b.on('error', () => a.destroy());
    });
    return { target: await listenTcp(server), seen: () => Buffer.concat(seen) };
  }

  const ca = createDevCa();
  const cert = ca.issueTlsServerCert(['localhost']);
  const MARKER = `PLAINTEXT-MARKER-${randomBytes(8).toString('hex')}`;
  const REPLY = `SERVER-REPLY-${randomBytes(8).toString('hex')}`;

  async function tlsServer(): Promise<AllowedTarget> {
    const server = createTlsServer({ key: cert.keyPem, cert: cert.chainPem }, (s) => {
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.includes(MARKER)) s.end(`${REPLY} ${got.length}`);
      });
      s.on('error', () => {});
    });
    return listenTcp(server);
  }

  function tlsOver(path: string, opts: { ca?: string; servername: string }): Promise<TLSSocket> {
    return new Promise((resolve, reject) => {
      const raw = createConnection({ path });
      cleanups.push(() => void raw.destroy());
      const s = tlsConnect({ socket: raw, servername: opts.servername, ...(opts.ca === undefined ? {} : { ca: opts.ca }) });
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
    });
  }

  it('the client verifies the server end to end, and the pipe only ever carries ciphertext', async () => {
    const t = await tap(await tlsServer());
    const pipe = await pipeTo(t.target);
    const s = await tlsOver(pipe.path, { ca: cert.caPem, servername: 'localhost' });
    expect(s.authorized).toBe(true);
    expect(s.getPeerCertificate().subjectaltname).toContain('DNS:localhost');
    let reply = '';
    s.on('data', (d: Buffer) => (reply += d.toString()));
    s.write(`${MARKER} `.repeat(100));
    await new Promise<void>((r) => s.once('end', () => r()));
    s.end();
    expect(reply).toBe(`${REPLY} ${(MARKER.length + 1) * 100}`);

    const wire = t.seen();
    expect(wire.length).toBeGreaterThan((MARKER.length + 1) * 100); // the data went through the tap…
    expect(wire[0]).toBe(0x16); // …starting with a TLS handshake record
    expect(wire.indexOf(MARKER)).toBe(-1); // …and never in the clear
    expect(wire.indexOf(REPLY)).toBe(-1);
  });

  it('the same tap does see plaintext sent without TLS (so the test above can fail)', async () => {
    const echo = await echoServer();
    const t = await tap(echo.target);
    const pipe = await pipeTo(t.target);
    const c = await dial(pipe.path);
    const got = new Promise<void>((r) => c.once('data', () => r()));
    c.write(MARKER);
    await got;
    expect(t.seen().indexOf(MARKER)).toBeGreaterThanOrEqual(0);
  });

  it('the pipe cannot make a wrong server pass: unknown CA and wrong host name fail in the client', async () => {
    const t = await tap(await tlsServer());
    const pipe = await pipeTo(t.target);
    await expect(tlsOver(pipe.path, { servername: 'localhost' })).rejects.toMatchObject({ code: expect.stringMatching(/CERT|ISSUER|SELF_SIGNED/) });
    await expect(tlsOver(pipe.path, { ca: cert.caPem, servername: 'kms.us-east-1.amazonaws.com' })).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });
});
