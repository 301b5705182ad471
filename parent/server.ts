/**
 * The signing socket: one Unix socket speaking two protocols, told apart by
 * the first bytes of each connection —
 *
 *   "POST ", "GET ", … (an HTTP request line) → node's http.Server (JSON-RPC over HTTP,
 *                                                /healthz, /readyz, /metrics)
 *   "{" or "[" (after optional whitespace)     → raw JSON-RPC IPC, geth style (ipc.ts)
 *   anything else                               → one parse error, then closed
 *
 * plus, optionally, HTTP on a loopback TCP port. Who may sign is decided by
 * who may open the socket: mode 0600 by default.
 */
import { chmodSync, lstatSync, linkSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import * as net from 'node:net';
import { dirname, join } from 'node:path';
import { createConnectionTracker, guardHttpConnection, httpRequestStarted, MAX_HEADER_FIELDS, type ConnectionTracker } from './connections.js';
import { ParentError } from './errors.js';
import { serveIpc } from './ipc.js';
import { RPC, errorResponse } from './jsonrpc.js';
import type { Cancellation } from '../common/cancellation.js';

export interface SigningServerOptions {
  socketPath: string;
  socketMode: number;
  http?: { host: string; port: number };
  /** The HTTP handler for the Unix socket (no Host check: the file mode is the gate). */
  unixHttpHandler: (req: IncomingMessage, res: ServerResponse) => void;
  /** The HTTP handler for the TCP listener, given the allowed Host header values. */
  tcpHttpHandler: (allowedHosts: ReadonlySet<string>) => (req: IncomingMessage, res: ServerResponse) => void;
  /** IPC message handler (see ipc.ts). */
  ipcHandle: (message: Buffer, cancellation: Cancellation) => Promise<string | undefined>;
  maxBodyBytes: number;
  /** Connections at once per listener. Default 1024. Same as `limits.maxConnections`. */
  maxConnections?: number;
  /** Timeouts and the connection cap; defaults in DEFAULT_CONNECTION_LIMITS. */
  limits?: Partial<ConnectionLimits>;
}

export interface SigningServer {
  readonly socketPath: string;
  /** http://127.0.0.1:PORT when the TCP listener is on. */
  readonly httpUrl: string | undefined;
  close(): Promise<void>;
}

/** The longest HTTP method token we recognise, plus its space. */
const MAX_METHOD = 8;
const HTTP_METHOD = /^[A-Z]{3,7} /;

export type Protocol = 'http' | 'ipc' | 'garbage' | 'more';

/** Decides a connection's protocol from the bytes seen so far. */
export function classify(buf: Buffer): Protocol {
  let i = 0;
  while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x0a || buf[i] === 0x0d || buf[i] === 0x09)) i++;
  if (i === buf.length) return buf.length > 4096 ? 'garbage' : 'more';
  const first = buf[i]!;
  if (first === 0x7b || first === 0x5b) return 'ipc';
  if (i > 0) return 'garbage'; // an HTTP request line starts at byte 0
  const head = buf.subarray(0, MAX_METHOD).toString('latin1');
  if (HTTP_METHOD.test(head)) return 'http';
  if (/^[A-Z]*$/.test(head) && head.length < MAX_METHOD) return 'more';
  return 'garbage';
}

function listenOn(server: net.Server, opts: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    server.listen(opts, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
}

/** True when `path` is a socket nobody answers on (left behind by a crash). */
function isStaleSocket(path: string): Promise<boolean> {
  try {
    if (!lstatSync(path).isSocket()) return Promise.resolve(false);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const probe = net.createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

/** Tells what is in the way at `path`: nothing (or a stale socket, removed), else an error. */
async function clearPath(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new ParentError('PARENT_LISTEN', `cannot listen on ${path}: a file that is not a socket is in the way`);
  if (!(await isStaleSocket(path))) throw new ParentError('PARENT_LISTEN', `cannot listen on ${path}: another process is listening on it`);
  unlinkSync(path);
}

/** The longest path a Unix socket may have (sun_path, Linux: 108 bytes with the NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * Listens on `path` with `mode`, with no moment at which anyone else can
 * connect: the socket is created inside a fresh 0700 directory next to
 * `path` (nobody but us can reach it there, whatever the umask), given its
 * mode, and only then linked into place (the private name goes with the
 * directory). So any connection accepted before the mode was final came
 * from a process that may open the socket anyway (our own user, or root).
 * Setting the umask around listen() instead would race with every other
 * file this process creates meanwhile.
 */
async function listenUnix(server: net.Server, path: string, mode: number): Promise<void> {
  await clearPath(path);
  let staging: string;
  try {
    staging = mkdtempSync(join(dirname(path), '.'));
  } catch (e) {
    throw new ParentError('PARENT_LISTEN', `cannot listen on ${path}: cannot create a private directory next to it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const temp = join(staging, 's');
  try {
    if (Buffer.byteLength(temp) > MAX_SOCKET_PATH) {
      throw new ParentError('PARENT_LISTEN', `cannot listen on ${path}: the path is too long to create the socket safely`, {
        hint: `use a socket path whose directory name is shorter (at most ${MAX_SOCKET_PATH - 10} bytes)`,
      });
    }
    try {
      await listenOn(server, { path: temp });
    } catch (e) {
      throw new ParentError('PARENT_LISTEN', `cannot listen on ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    try {
      chmodSync(temp, mode);
    } catch (e) {
      server.close();
      throw new ParentError('PARENT_LISTEN', `cannot set mode ${mode.toString(8)} on ${path}: ${(e as NodeJS.ErrnoException).code ?? ''}`, { cause: e });
    }
    // link(2), not rename(2): it never replaces what another process put at `path` meanwhile.
    try {
      try {
        linkSync(temp, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        await clearPath(path);
        linkSync(temp, path);
      }
    } catch (e) {
      server.close();
      if (e instanceof ParentError) throw e;
      throw new ParentError('PARENT_LISTEN', `cannot listen on ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function createHttp(handler: (req: IncomingMessage, res: ServerResponse) => void, limits: ConnectionLimits): HttpServer {
  const s = createHttpServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
    httpRequestStarted(req, res);
    handler(req, res);
  });
  // Our own deadlines (connections.ts) rule; node's are set no tighter so they never cut in first.
  s.headersTimeout = limits.headersTimeoutMs;
  s.requestTimeout = Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs);
  s.keepAliveTimeout = limits.keepAliveTimeoutMs;
  s.maxHeadersCount = MAX_HEADER_FIELDS; // http.ts refuses a request that reaches it (node drops the rest silently)
  s.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  return s;
}

/** Per-connection limits of the signing socket (and the loopback HTTP listener). */
export interface ConnectionLimits {
  /** Connections at once per listener; at the cap the least useful idle one is closed (connections.ts). */
  maxConnections: number;
  /** From accept to the bytes that tell HTTP from IPC (Unix socket). */
  detectTimeoutMs: number;
  /** HTTP: to complete request headers, from detection or the previous answer. */
  headersTimeoutMs: number;
  /** HTTP: from complete headers to the answer. */
  requestTimeoutMs: number;
  /** HTTP: an idle keep-alive connection. */
  keepAliveTimeoutMs: number;
  /** IPC: from a message's first byte to its last. */
  ipcMessageTimeoutMs: number;
  /** IPC: idle between complete messages; 0 = never (ethers' IpcSocketProvider holds one socket for good). */
  ipcIdleTimeoutMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  maxConnections: 1024,
  detectTimeoutMs: 10_000,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 120_000,
  keepAliveTimeoutMs: 5_000,
  ipcMessageTimeoutMs: 30_000,
  ipcIdleTimeoutMs: 0,
});

export async function startSigningServer(opts: SigningServerOptions): Promise<SigningServer> {
  const limits: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, ...(opts.maxConnections === undefined ? {} : { maxConnections: opts.maxConnections }), ...opts.limits };
  for (const [k, v] of Object.entries(limits)) {
    if (!Number.isSafeInteger(v) || v < 0 || (v === 0 && k !== 'ipcIdleTimeoutMs')) {
      throw new ParentError('PARENT_CONFIG', `connection limit ${k} must be a positive integer, got ${String(v)}`);
    }
  }
  const unixConns = createConnectionTracker(limits.maxConnections);
  const httpDeadlines = { headersTimeoutMs: limits.headersTimeoutMs, requestTimeoutMs: limits.requestTimeoutMs };
  /** Tells the tracker when an HTTP request is being handled (body complete until answered). */
  const trackHttp = (tracker: ConnectionTracker, handler: (req: IncomingMessage, res: ServerResponse) => void) => (req: IncomingMessage, res: ServerResponse) => {
    const t = tracker.get(req.socket);
    let begun = false;
    req.once('end', () => {
      begun = true;
      tracker.begin(t);
    });
    res.once('close', () => {
      if (begun) tracker.end(t);
      else if (t) {
        t.answered++;
        t.lastActiveAt = Date.now();
      }
    });
    handler(req, res);
  };
  const unixHttp = createHttp(trackHttp(unixConns, opts.unixHttpHandler), limits);
  const onUnixConnection = (sock: net.Socket) => {
    sock.on('error', () => {}); // resets are the client's business; 'close' follows
    const tracked = unixConns.admit(sock);
    if (!tracked) return;
    // Undetected for too long (nothing, or only blanks, or half a method name): closed.
    const detect = setTimeout(() => sock.destroy(), limits.detectTimeoutMs);
    detect.unref();
    sock.once('close', () => clearTimeout(detect));
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const p = classify(seen);
      if (p === 'more') return;
      clearTimeout(detect);
      sock.removeListener('data', onData);
      sock.pause();
      if (p === 'http') {
        guardHttpConnection(sock, httpDeadlines);
        sock.unshift(seen);
        unixHttp.emit('connection', sock);
        sock.resume();
      } else if (p === 'ipc') {
        serveIpc(sock, seen, {
          handle: opts.ipcHandle,
          maxMessageBytes: opts.maxBodyBytes,
          messageTimeoutMs: limits.ipcMessageTimeoutMs,
          idleTimeoutMs: limits.ipcIdleTimeoutMs,
          onRequestStart: () => unixConns.begin(tracked),
          onRequestEnd: () => unixConns.end(tracked),
        });
      } else {
        sock.end(`${JSON.stringify(errorResponse(null, RPC.PARSE_ERROR, 'parse error: expected an HTTP request or JSON-RPC (a JSON object or array)'))}\n`);
        const t = setTimeout(() => sock.destroy(), 1_000);
        t.unref();
      }
    };
    sock.on('data', onData);
  };

  const unixServer = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, onUnixConnection);
  unixServer.on('error', () => {}); // accept errors (EMFILE) must not crash the process
  await listenUnix(unixServer, opts.socketPath, opts.socketMode);

  let tcpServer: HttpServer | undefined;
  let tcpConns: ConnectionTracker | undefined;
  let httpUrl: string | undefined;
  if (opts.http) {
    const { host, port } = opts.http;
    // The Host values are only known once the port is: the handler reads them late.
    let allowed: ReadonlySet<string> = new Set();
    const tracker = createConnectionTracker(limits.maxConnections);
    tcpConns = tracker;
    const handler = (req: IncomingMessage, res: ServerResponse) => opts.tcpHttpHandler(allowed)(req, res);
    tcpServer = createHttp(trackHttp(tracker, handler), limits);
    // Runs after http.Server's own connection listener: the socket is already its.
    tcpServer.on('connection', (sock: net.Socket) => {
      if (tracker.admit(sock)) guardHttpConnection(sock, httpDeadlines);
    });
    try {
      await listenOn(tcpServer, { host, port });
    } catch (e) {
      unixServer.close();
      throw new ParentError('PARENT_LISTEN', `cannot listen on ${host}:${port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    tcpServer.on('error', () => {});
    const addr = tcpServer.address() as net.AddressInfo;
    const hostPart = net.isIPv6(host) ? `[${host}]` : host;
    allowed = new Set([`${hostPart}:${addr.port}`, ...(host.startsWith('127.') ? [`localhost:${addr.port}`] : [])].map((h) => h.toLowerCase()));
    httpUrl = `http://${hostPart}:${addr.port}`;
  }

  let closing: Promise<void> | undefined;
  return {
    socketPath: opts.socketPath,
    httpUrl,
    close() {
      closing ??= (async () => {
        const done = [new Promise<void>((r) => unixServer.close(() => r()))];
        if (tcpServer) {
          const s = tcpServer;
          done.push(new Promise<void>((r) => s.close(() => r())));
          s.closeAllConnections();
        }
        unixHttp.closeAllConnections();
        unixConns.destroyAll();
        tcpConns?.destroyAll();
        await Promise.all(done);
        try {
          if (lstatSync(opts.socketPath).isSocket()) unlinkSync(opts.socketPath);
        } catch {
          // already removed by node on close
        }
      })();
      return closing;
    },
  };
}
