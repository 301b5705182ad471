/**
 * vsock://cid:port over AF_VSOCK, on the native addon (native/).
 *
 * - `unavailableVsockTransport` (vsock-unavailable.ts, re-exported here) is the
 *   registry's default: every vsock URI fails with TRANSPORT_UNAVAILABLE and
 *   no socket API is touched, so real vsock is opt-in per process.
 * - `vsockTransport`, the real one. A process that runs inside an enclave (or
 *   on the parent instance, or in the QEMU test guest) opts in with
 *   `await registerVsockTransport()`. The addon is loaded on first use; where
 *   it is missing or the kernel has no AF_VSOCK, connect/listen fail with
 *   TRANSPORT_UNAVAILABLE.
 *
 * Streams are FdSocket (native/fd-socket.ts): a Duplex with real backpressure
 * over the non-blocking socket, because net.Socket refuses AF_VSOCK fds.
 */
import type { Duplex } from 'node:stream';
import { loadNativeAddon, type NativeAddon, type PollHandle } from '../../native/addon.js';
import { FdSocket, systemError } from '../../native/fd-socket.js';
import { TransportError } from './errors.js';
import { registerTransport } from './registry.js';
import type { ConnectOptions, ConnectionHandler, ListenOptions, Transport, TransportListener } from './types.js';
import { formatTransportUri, VMADDR_CID_ANY, VMADDR_PORT_ANY, type VsockAddress } from './uri.js';

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** node's default listen backlog. */
const DEFAULT_BACKLOG = 511;
/** After EMFILE & co. on accept, wait this long before trying again instead of spinning on a readable listener. */
const ACCEPT_BACKOFF_MS = 100;
/** errno codes that mean "this kernel has no usable AF_VSOCK". */
const NO_VSOCK = new Set(['EAFNOSUPPORT', 'EPROTONOSUPPORT', 'ESOCKTNOSUPPORT', 'EPFNOSUPPORT']);

/** Re-exported: the registry's default lives in its own module (vsock-unavailable.ts). */
export { unavailableVsockTransport } from './vsock-unavailable.js';

function codeOf(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : e instanceof Error ? e.message : String(e);
}

function addonFor(uri: string, op: string): NativeAddon {
  try {
    return loadNativeAddon();
  } catch (e) {
    throw new TransportError('TRANSPORT_UNAVAILABLE', `cannot ${op} ${uri}: ${(e as Error).message}`, {
      cause: e,
      hint: (e as { hint?: string }).hint ?? 'build the native addon with `npm run build:native`',
    });
  }
}

function noVsock(uri: string, op: string, e: unknown): TransportError {
  return new TransportError('TRANSPORT_UNAVAILABLE', `cannot ${op} ${uri}: this kernel has no AF_VSOCK (${codeOf(e)})`, {
    cause: e,
    hint: 'load the vsock kernel modules (vsock, and a transport such as vmw_vsock_virtio_transport or vsock_loopback), or use a unix:/tcp:// URI',
  });
}

function closeQuietly(addon: NativeAddon, fd: number): void {
  try {
    addon.close(fd);
  } catch {
    /* nothing useful to do */
  }
}

function connectVsock(a: VsockAddress, opts: ConnectOptions): Promise<Duplex> {
  const uri = formatTransportUri(a);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    return Promise.reject(new TransportError('TRANSPORT_BAD_URI', `connect timeoutMs must be a positive integer, got ${String(timeoutMs)}`));
  }
  if (a.cid === VMADDR_CID_ANY || a.port === VMADDR_PORT_ANY) {
    return Promise.reject(new TransportError('TRANSPORT_BAD_URI', `cannot connect to ${uri}: the "any" cid/port only makes sense for listen`));
  }
  const signal = opts.signal;
  if (signal?.aborted) return Promise.reject(new TransportError('TRANSPORT_CONNECT_FAILED', `connect to ${uri} aborted`, { cause: signal.reason }));

  let addon: NativeAddon;
  let started: { fd: number; connected: boolean };
  try {
    addon = addonFor(uri, 'connect to');
    try {
      started = addon.vsockConnect(a.cid, a.port);
    } catch (e) {
      if (NO_VSOCK.has(codeOf(e))) throw noVsock(uri, 'connect to', e);
      throw failed(uri, e);
    }
    if (started.connected) return Promise.resolve(new FdSocket(addon, started.fd, { remote: uri }));
  } catch (e) {
    return Promise.reject(e);
  }

  const { fd } = started;
  return new Promise<Duplex>((resolve, reject) => {
    let poll: PollHandle | null = null;
    const done = (err: TransportError | null) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (poll !== null) addon.pollClose(poll);
      poll = null;
      if (err !== null) {
        closeQuietly(addon, fd);
        reject(err);
        return;
      }
      try {
        resolve(new FdSocket(addon, fd, { remote: uri })); // owns (and on failure closes) fd
      } catch (e) {
        reject(failed(uri, e));
      }
    };
    const onAbort = () => done(new TransportError('TRANSPORT_CONNECT_FAILED', `connect to ${uri} aborted`, { cause: signal?.reason }));
    const timer = setTimeout(() => done(new TransportError('TRANSPORT_TIMEOUT', `connect to ${uri} did not complete within ${timeoutMs} ms`)), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      poll = addon.pollCreate(fd, (status) => {
        if (poll === null) return;
        // Writable (or an error condition, which libuv reports as status EBADF) means the
        // handshake finished one way or the other: SO_ERROR says which.
        let errno: number;
        try {
          errno = addon.socketError(fd);
        } catch (e) {
          done(failed(uri, e));
          return;
        }
        if (errno !== 0) done(failed(uri, systemError(-errno, 'connect')));
        else if (status < 0) done(failed(uri, systemError(status, 'connect')));
        else done(null);
      });
      addon.pollSet(poll, addon.constants.POLL_WRITABLE);
    } catch (e) {
      done(failed(uri, e));
    }
  });
}

function failed(uri: string, e: unknown): TransportError {
  if (e instanceof TransportError) return e;
  const code = codeOf(e);
  // vsock reports a refused connection as ECONNRESET (the peer answers the request with RST).
  const hint =
    code === 'ECONNRESET' || code === 'ECONNREFUSED'
      ? 'nothing listens on that vsock port (is the enclave/parent process up?)'
      : code === 'ENODEV' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
        ? 'no vsock transport reaches that CID from here'
        : undefined;
  return new TransportError('TRANSPORT_CONNECT_FAILED', `cannot connect to ${uri}: ${code}`, hint === undefined ? { cause: e } : { cause: e, hint });
}

async function listenVsock(a: VsockAddress, onConnection: ConnectionHandler, opts: ListenOptions): Promise<TransportListener> {
  const uri = formatTransportUri(a);
  const backlog = opts.backlog ?? DEFAULT_BACKLOG;
  if (!Number.isSafeInteger(backlog) || backlog < 1 || backlog > 65535) {
    throw new TransportError('TRANSPORT_LISTEN_FAILED', `cannot listen on ${uri}: backlog must be an integer 1..65535, got ${String(backlog)}`);
  }
  const addon = addonFor(uri, 'listen on');
  let fd: number;
  try {
    fd = addon.vsockListen(a.cid, a.port, backlog);
  } catch (e) {
    const code = codeOf(e);
    if (NO_VSOCK.has(code)) throw noVsock(uri, 'listen on', e);
    if (code === 'EADDRINUSE') throw new TransportError('TRANSPORT_ADDRESS_IN_USE', `cannot listen on ${uri}: something is already listening there`, { cause: e });
    const hint = code === 'EADDRNOTAVAIL' ? `CID ${a.cid} is not this machine's; listen on vsock://${VMADDR_CID_ANY}:${a.port} (any) instead` : undefined;
    throw new TransportError('TRANSPORT_LISTEN_FAILED', `cannot listen on ${uri}: ${code}`, hint === undefined ? { cause: e } : { cause: e, hint });
  }

  let actual = uri;
  try {
    actual = formatTransportUri({ scheme: 'vsock', cid: a.cid, port: addon.vsockLocalAddress(fd).port });
  } catch {
    /* keep the requested URI */
  }

  const sockets = new Set<FdSocket>();
  let closed = false;
  let backoff: NodeJS.Timeout | undefined;
  let poll: PollHandle;

  const report = (e: unknown) => {
    try {
      opts.onError?.(e as Error);
    } catch {
      /* the hook's bug must not take the listener down */
    }
  };

  const acceptAll = () => {
    while (!closed) {
      let c: { fd: number; cid: number; port: number } | null;
      try {
        c = addon.vsockAccept(fd);
      } catch (e) {
        // EMFILE, ENFILE, ENOBUFS…: the listener stays readable, so pause rather than spin.
        report(e);
        addon.pollSet(poll, 0);
        backoff = setTimeout(() => {
          backoff = undefined;
          if (!closed) addon.pollSet(poll, addon.constants.POLL_READABLE);
        }, ACCEPT_BACKOFF_MS);
        return;
      }
      if (c === null) return;
      let sock: FdSocket;
      try {
        sock = new FdSocket(addon, c.fd, { remote: `vsock://${c.cid}:${c.port}` });
      } catch (e) {
        report(e);
        continue;
      }
      sockets.add(sock);
      sock.once('close', () => sockets.delete(sock));
      try {
        onConnection(sock);
      } catch {
        // The handler's bug must not take the listener down; this connection is lost.
        sock.destroy();
      }
    }
  };

  try {
    poll = addon.pollCreate(fd, (status) => {
      if (closed) return;
      if (status < 0) {
        report(systemError(status, 'accept'));
        return;
      }
      try {
        acceptAll();
      } catch (e) {
        report(e);
      }
    });
    addon.pollSet(poll, addon.constants.POLL_READABLE);
  } catch (e) {
    closeQuietly(addon, fd);
    throw new TransportError('TRANSPORT_LISTEN_FAILED', `cannot listen on ${uri}: ${codeOf(e)}`, { cause: e });
  }

  let closing: Promise<void> | undefined;
  return {
    uri: actual,
    close() {
      closing ??= (async () => {
        closed = true;
        clearTimeout(backoff);
        addon.pollClose(poll);
        closeQuietly(addon, fd);
        const waits = [...sockets].map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.once('close', () => resolve()))));
        for (const s of sockets) s.destroy();
        await Promise.all(waits);
      })();
      return closing;
    },
  };
}

/** The real vsock transport (lazy addon). Not installed by default: see registerVsockTransport. */
export const vsockTransport: Transport<VsockAddress> = {
  connect: (a, opts) => connectVsock(a, opts),
  listen: (a, onConnection, opts) => listenVsock(a, onConnection, opts),
};

/**
 * Installs the real vsock transport in the registry, so that connect()/listen()
 * on vsock:// URIs use AF_VSOCK. Returns a function that restores the previous
 * transport. Only call it in processes that run where vsock leads somewhere of
 * ours (enclave, parent instance, test guest). Async for its callers' sake
 * (it once loaded the registry lazily); it installs synchronously.
 */
export async function registerVsockTransport(): Promise<() => void> {
  return registerTransport('vsock', vsockTransport);
}


/**
 * Installs the vsock transport only when one of `uris` is a vsock:// URI, so a
 * process configured with unix:/tcp:// only (development) never can open
 * AF_VSOCK by accident.
 */
export async function registerVsockTransportFor(uris: readonly (string | undefined)[]): Promise<void> {
  if (uris.some((u) => u?.startsWith('vsock:'))) await registerVsockTransport();
}
