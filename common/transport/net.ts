/**
 * unix and tcp transports over node:net. Both hand out plain net.Socket
 * streams; the bridge on top owns framing, so nothing here reads or writes.
 */
import { lstat, chmod, unlink } from 'node:fs/promises';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { TransportError } from './errors.js';
import type { ConnectOptions, ConnectionHandler, ListenOptions, Transport, TransportListener } from './types.js';
import { formatTransportUri, type TcpAddress, type TransportAddress, type UnixAddress } from './uri.js';

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

function errnoOf(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : e instanceof Error ? e.message : String(e);
}

function connectHint(code: string, a: TransportAddress): string | undefined {
  if (code === 'ECONNREFUSED') return a.scheme === 'unix' ? 'nothing listens on that socket (stale file?)' : 'nothing listens on that port';
  if (code === 'ENOENT') return 'the socket file does not exist: is the server running, and is the path right?';
  if (code === 'EACCES') return 'permission denied on the socket file';
  return undefined;
}

function connectNet(a: UnixAddress | TcpAddress, opts: ConnectOptions): Promise<Duplex> {
  const uri = formatTransportUri(a);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    return Promise.reject(new TransportError('TRANSPORT_BAD_URI', `connect timeoutMs must be a positive integer, got ${String(timeoutMs)}`));
  }
  if (a.scheme === 'tcp' && a.port === 0) {
    return Promise.reject(new TransportError('TRANSPORT_BAD_URI', `cannot connect to ${uri}: port 0 only makes sense for listen`));
  }
  const signal = opts.signal;
  if (signal?.aborted) return Promise.reject(new TransportError('TRANSPORT_CONNECT_FAILED', `connect to ${uri} aborted`, { cause: signal.reason }));

  return new Promise<Duplex>((resolve, reject) => {
    const sock = a.scheme === 'unix' ? net.createConnection({ path: a.path }) : net.createConnection({ host: a.host, port: a.port });
    const done = (err?: TransportError) => {
      clearTimeout(timer);
      sock.removeListener('error', onError);
      sock.removeListener('connect', onConnect);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        sock.destroy();
        reject(err);
      } else {
        if (a.scheme === 'tcp') sock.setNoDelay(true); // frames are small and latency-bound
        resolve(sock);
      }
    };
    const onError = (e: Error) => {
      const code = errnoOf(e);
      const hint = connectHint(code, a);
      done(new TransportError('TRANSPORT_CONNECT_FAILED', `cannot connect to ${uri}: ${code}`, hint === undefined ? { cause: e } : { cause: e, hint }));
    };
    const onConnect = () => done();
    const onAbort = () => done(new TransportError('TRANSPORT_CONNECT_FAILED', `connect to ${uri} aborted`, { cause: signal?.reason }));
    const timer = setTimeout(() => done(new TransportError('TRANSPORT_TIMEOUT', `connect to ${uri} did not complete within ${timeoutMs} ms`)), timeoutMs);
    sock.once('error', onError);
    sock.once('connect', onConnect);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function bind(server: net.Server, a: UnixAddress | TcpAddress, backlog: number | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    const opts: net.ListenOptions = a.scheme === 'unix' ? { path: a.path } : { host: a.host, port: a.port };
    if (backlog !== undefined) opts.backlog = backlog;
    server.listen(opts, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
}

/** True when `path` is a socket file that refuses connections, i.e. left behind by a dead process. */
async function isStaleSocket(path: string): Promise<boolean> {
  try {
    if (!(await lstat(path)).isSocket()) return false;
  } catch {
    return false;
  }
  return new Promise<boolean>((resolve) => {
    const probe = net.createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

async function listenNet(a: UnixAddress | TcpAddress, onConnection: ConnectionHandler, opts: ListenOptions): Promise<TransportListener> {
  const uri = formatTransportUri(a);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    if (a.scheme === 'tcp') sock.setNoDelay(true);
    try {
      onConnection(sock);
    } catch {
      // The handler's bug must not take the listener down; this connection is lost.
      sock.destroy();
    }
  });

  try {
    try {
      await bind(server, a, opts.backlog);
    } catch (e) {
      if (a.scheme === 'unix' && errnoOf(e) === 'EADDRINUSE' && opts.replaceStaleSocket !== false && (await isStaleSocket(a.path))) {
        await unlink(a.path);
        await bind(server, a, opts.backlog);
      } else {
        throw e;
      }
    }
    if (a.scheme === 'unix' && opts.unixSocketMode !== undefined) await chmod(a.path, opts.unixSocketMode);
  } catch (e) {
    server.close();
    const code = errnoOf(e);
    if (code === 'EADDRINUSE') {
      throw new TransportError('TRANSPORT_ADDRESS_IN_USE', `cannot listen on ${uri}: something is already listening there`, { cause: e });
    }
    throw new TransportError('TRANSPORT_LISTEN_FAILED', `cannot listen on ${uri}: ${code}`, { cause: e });
  }

  // After binding, server errors (EMFILE on accept…) go to the caller's hook, never crash the process.
  server.on('error', (e) => opts.onError?.(e));

  let actual = uri;
  const addr = server.address();
  if (a.scheme === 'tcp' && addr !== null && typeof addr === 'object') actual = formatTransportUri({ scheme: 'tcp', host: addr.address, port: addr.port });

  let closing: Promise<void> | undefined;
  return {
    uri: actual,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}

export const unixTransport: Transport<UnixAddress> = {
  connect: (a, opts) => connectNet(a, opts),
  listen: (a, onConnection, opts) => listenNet(a, onConnection, opts),
};

export const tcpTransport: Transport<TcpAddress> = {
  connect: (a, opts) => connectNet(a, opts),
  listen: (a, onConnection, opts) => listenNet(a, onConnection, opts),
};
