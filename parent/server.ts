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
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import * as net from 'node:net';
import { ParentError } from './errors.js';
import { serveIpc } from './ipc.js';
import { RPC, errorResponse } from './jsonrpc.js';

export interface SigningServerOptions {
  socketPath: string;
  socketMode: number;
  http?: { host: string; port: number };
  /** The HTTP handler for the Unix socket (no Host check: the file mode is the gate). */
  unixHttpHandler: (req: IncomingMessage, res: ServerResponse) => void;
  /** The HTTP handler for the TCP listener, given the allowed Host header values. */
  tcpHttpHandler: (allowedHosts: ReadonlySet<string>) => (req: IncomingMessage, res: ServerResponse) => void;
  /** IPC message handler (see ipc.ts). */
  ipcHandle: (message: Buffer, signal: AbortSignal) => Promise<string | undefined>;
  maxBodyBytes: number;
  /** Connections at once per listener. Default 1024. */
  maxConnections?: number;
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

async function listenUnix(server: net.Server, path: string, mode: number): Promise<void> {
  try {
    await listenOn(server, { path });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' && (await isStaleSocket(path))) {
      unlinkSync(path);
      await listenOn(server, { path });
    } else if (code === 'EADDRINUSE') {
      let what = 'another process is listening on it';
      try {
        if (!lstatSync(path).isSocket()) what = 'a file that is not a socket is in the way';
      } catch {
        // gone meanwhile
      }
      throw new ParentError('PARENT_LISTEN', `cannot listen on ${path}: ${what}`, { cause: e });
    } else {
      throw new ParentError('PARENT_LISTEN', `cannot listen on ${path}: ${code ?? (e as Error).message}`, { cause: e });
    }
  }
  try {
    chmodSync(path, mode);
  } catch (e) {
    server.close();
    throw new ParentError('PARENT_LISTEN', `cannot set mode ${mode.toString(8)} on ${path}: ${(e as NodeJS.ErrnoException).code ?? ''}`, { cause: e });
  }
}

function configureHttp(s: HttpServer): void {
  s.headersTimeout = 20_000;
  s.requestTimeout = 120_000;
  s.keepAliveTimeout = 5_000;
  s.maxHeadersCount = 100;
  s.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
}

export async function startSigningServer(opts: SigningServerOptions): Promise<SigningServer> {
  const maxConnections = opts.maxConnections ?? 1024;
  const sockets = new Set<net.Socket>();
  const unixHttp = createHttpServer({ maxHeaderSize: 16 * 1024 }, opts.unixHttpHandler);
  configureHttp(unixHttp);

  const onUnixConnection = (sock: net.Socket) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    sock.on('error', () => {}); // resets are the client's business; 'close' follows
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const p = classify(seen);
      if (p === 'more') return;
      sock.removeListener('data', onData);
      sock.pause();
      if (p === 'http') {
        sock.unshift(seen);
        unixHttp.emit('connection', sock);
        sock.resume();
      } else if (p === 'ipc') {
        serveIpc(sock, seen, { handle: opts.ipcHandle, maxMessageBytes: opts.maxBodyBytes });
      } else {
        sock.end(`${JSON.stringify(errorResponse(null, RPC.PARSE_ERROR, 'parse error: expected an HTTP request or JSON-RPC (a JSON object or array)'))}\n`);
        const t = setTimeout(() => sock.destroy(), 1_000);
        t.unref();
      }
    };
    sock.on('data', onData);
  };

  const unixServer = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, onUnixConnection);
  unixServer.maxConnections = maxConnections;
  unixServer.on('error', () => {}); // accept errors (EMFILE) must not crash the process
  await listenUnix(unixServer, opts.socketPath, opts.socketMode);

  let tcpServer: HttpServer | undefined;
  let httpUrl: string | undefined;
  if (opts.http) {
    const { host, port } = opts.http;
    // The Host values are only known once the port is: the handler reads them late.
    let allowed: ReadonlySet<string> = new Set();
    const handler = (req: IncomingMessage, res: ServerResponse) => opts.tcpHttpHandler(allowed)(req, res);
    tcpServer = createHttpServer({ maxHeaderSize: 16 * 1024 }, handler);
    configureHttp(tcpServer);
    tcpServer.maxConnections = maxConnections;
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
        for (const s of sockets) s.destroy();
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
