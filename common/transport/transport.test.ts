import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { TransportError } from './errors.js';
import { connect, listen, registerTransport } from './registry.js';
import type { TransportListener } from './types.js';
import type { VsockAddress } from './uri.js';

const dir = mkdtempSync(join(tmpdir(), 'es-transport-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sockPath = () => join(dir, `s${n++}.sock`);

async function rejectsWith(p: Promise<unknown>, code: string): Promise<TransportError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TransportError);
    expect((e as TransportError).code).toBe(code);
    return e as TransportError;
  }
  throw new Error(`expected ${code}, resolved`);
}

/** Echo server: every accepted stream pipes back into itself. */
function echoListen(uri: string): Promise<TransportListener> {
  return listen(uri, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
}

function roundTrip(s: Duplex, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString();
      if (got.length >= payload.length) resolve(got);
    });
    s.on('error', reject);
    s.write(payload);
  });
}

const uris: [string, () => string][] = [
  ['unix', () => `unix:${sockPath()}`],
  ['tcp', () => 'tcp://127.0.0.1:0'],
];

describe.each(uris)('%s transport', (_name, mkUri) => {
  it('listens, connects, and carries bytes both ways', async () => {
    const l = await echoListen(mkUri());
    if (l.uri.startsWith('tcp:')) expect(l.uri).toMatch(/^tcp:\/\/127\.0\.0\.1:[1-9][0-9]*$/);
    const s = await connect(l.uri);
    expect(await roundTrip(s, 'ping-pong')).toBe('ping-pong');
    s.destroy();
    await l.close();
  });

  it('close() stops accepting and destroys open connections', async () => {
    const l = await echoListen(mkUri());
    const s = await connect(l.uri);
    const closed = new Promise((r) => s.once('close', r));
    await l.close();
    await closed;
    await rejectsWith(connect(l.uri), 'TRANSPORT_CONNECT_FAILED');
    await l.close(); // idempotent
  });

  it('a throwing connection handler loses that connection only', async () => {
    let calls = 0;
    const l = await listen(mkUri(), (s) => {
      if (calls++ === 0) throw new Error('handler bug');
      s.pipe(s);
    });
    const first = await connect(l.uri);
    await new Promise((r) => first.once('close', r));
    const second = await connect(l.uri);
    expect(await roundTrip(second, 'still here')).toBe('still here');
    second.destroy();
    await l.close();
  });

  it('connect with an already-aborted signal fails without connecting', async () => {
    const l = await echoListen(mkUri());
    await rejectsWith(connect(l.uri, { signal: AbortSignal.abort() }), 'TRANSPORT_CONNECT_FAILED');
    await l.close();
  });
});

describe('unix transport specifics', () => {
  it('connect to a missing socket says so', async () => {
    const e = await rejectsWith(connect(`unix:${join(dir, 'nobody-here.sock')}`), 'TRANSPORT_CONNECT_FAILED');
    expect(e.message).toContain('ENOENT');
    expect(e.hint).toContain('does not exist');
  });

  it('refuses to displace a live listener', async () => {
    const uri = `unix:${sockPath()}`;
    const l = await echoListen(uri);
    await rejectsWith(echoListen(uri), 'TRANSPORT_ADDRESS_IN_USE');
    const s = await connect(uri); // the first listener is untouched
    expect(await roundTrip(s, 'x')).toBe('x');
    s.destroy();
    await l.close();
    expect(existsSync(uri.slice(5))).toBe(false); // node unlinks on close
  });

  /** Leaves a socket file behind the way a crash does: listen in a child, SIGKILL it. */
  async function makeStaleSocket(path: string): Promise<void> {
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(statSync(path).isSocket()).toBe(true);
  }

  it('replaces a stale socket file left by a killed process', async () => {
    const path = sockPath();
    await makeStaleSocket(path);
    await rejectsWith(connect(`unix:${path}`), 'TRANSPORT_CONNECT_FAILED'); // ECONNREFUSED: nobody home
    const l = await echoListen(`unix:${path}`);
    const s = await connect(`unix:${path}`);
    expect(await roundTrip(s, 'revived')).toBe('revived');
    s.destroy();
    await l.close();
  });

  it('with replaceStaleSocket: false a stale socket is an error; a regular file is never removed', async () => {
    const stale = sockPath();
    await makeStaleSocket(stale);
    await rejectsWith(listen(`unix:${stale}`, () => {}, { replaceStaleSocket: false }), 'TRANSPORT_ADDRESS_IN_USE');
    expect(statSync(stale).isSocket()).toBe(true);

    const file = sockPath();
    writeFileSync(file, 'not a socket');
    await rejectsWith(echoListen(`unix:${file}`), 'TRANSPORT_ADDRESS_IN_USE');
    expect(existsSync(file)).toBe(true);
  });

  it('applies unixSocketMode', async () => {
    const path = sockPath();
    const l = await listen(`unix:${path}`, (s) => s.destroy(), { unixSocketMode: 0o600 });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    await l.close();
  });

  it('listen in a missing directory is TRANSPORT_LISTEN_FAILED', async () => {
    await rejectsWith(echoListen(`unix:${join(dir, 'no', 'such', 'dir.sock')}`), 'TRANSPORT_LISTEN_FAILED');
  });
});

describe('tcp transport specifics', () => {
  it('connect to a closed port is TRANSPORT_CONNECT_FAILED with ECONNREFUSED', async () => {
    const l = await echoListen('tcp://127.0.0.1:0');
    const uri = l.uri;
    await l.close();
    expect((await rejectsWith(connect(uri), 'TRANSPORT_CONNECT_FAILED')).message).toContain('ECONNREFUSED');
  });

  it('port 0 is for listening only', async () => {
    await rejectsWith(connect('tcp://127.0.0.1:0'), 'TRANSPORT_BAD_URI');
  });

  it('a port in use is TRANSPORT_ADDRESS_IN_USE', async () => {
    const l = await echoListen('tcp://127.0.0.1:0');
    await rejectsWith(echoListen(l.uri), 'TRANSPORT_ADDRESS_IN_USE');
    await l.close();
  });
});

describe('bad URIs reject through connect/listen', () => {
  it('rejects (never throws synchronously) with TRANSPORT_BAD_URI', async () => {
    await rejectsWith(connect('ftp://x:1'), 'TRANSPORT_BAD_URI');
    await rejectsWith(listen('tcp://127.0.0.1', () => {}), 'TRANSPORT_BAD_URI');
  });
});

describe('vsock', () => {
  it('parses but is unavailable until a native transport registers (no socket is opened)', async () => {
    const e = await rejectsWith(connect('vsock://3:8000'), 'TRANSPORT_UNAVAILABLE');
    expect(e.message).toContain('vsock://3:8000');
    expect(e.hint).toBeTruthy(); // says how to enable vsock; wording belongs to vsock.ts
    await rejectsWith(listen('vsock://4294967295:5000', () => {}), 'TRANSPORT_UNAVAILABLE');
    // validation still happens first
    await rejectsWith(connect('vsock://3:99999999999'), 'TRANSPORT_BAD_URI');
  });

  it('registerTransport plugs in an implementation without changing callers, and restores', async () => {
    // A stand-in "native" transport that maps vsock addresses onto unix sockets.
    const seen: VsockAddress[] = [];
    const toUnix = (a: VsockAddress) => `unix:${join(dir, `vsock-${a.cid}-${a.port}.sock`)}`;
    const restore = registerTransport('vsock', {
      connect: (a, opts) => {
        seen.push(a);
        return connect(toUnix(a), opts);
      },
      listen: async (a, onConnection, opts) => {
        seen.push(a);
        const l = await listen(toUnix(a), onConnection, opts);
        return { uri: `vsock://${a.cid}:${a.port}`, close: () => l.close() };
      },
    });
    try {
      const l = await echoListen('vsock://1:5005');
      expect(l.uri).toBe('vsock://1:5005');
      const s = await connect('vsock://1:5005');
      expect(await roundTrip(s, 'over "vsock"')).toBe('over "vsock"');
      s.destroy();
      await l.close();
      expect(seen).toEqual([
        { scheme: 'vsock', cid: 1, port: 5005 },
        { scheme: 'vsock', cid: 1, port: 5005 },
      ]);
    } finally {
      restore();
    }
    await rejectsWith(connect('vsock://1:5005'), 'TRANSPORT_UNAVAILABLE');
  });

  it('registerTransport refuses unknown schemes and non-transports', () => {
    expect(() => registerTransport('http' as 'tcp', { connect: async () => undefined as never, listen: async () => undefined as never })).toThrow(TransportError);
    expect(() => registerTransport('vsock', {} as never)).toThrow(/must have connect\(\) and listen\(\)/);
  });
});
