/**
 * The contract every transport implements (node:net for unix/tcp here; a
 * native addon for vsock later). Callers never see it: they go through
 * `connect(uri)` / `listen(uri, …)` in registry.ts.
 */
import type { Duplex } from 'node:stream';
import type { TransportAddress } from './uri.js';

export interface ConnectOptions {
  /** Give up connecting after this long (TRANSPORT_TIMEOUT). Default 10 s. */
  timeoutMs?: number;
  /** Aborting it gives up connecting (TRANSPORT_CONNECT_FAILED). */
  signal?: AbortSignal;
}

export interface ListenOptions {
  /** Pending-connection queue length. Default: node's. */
  backlog?: number;
  /** unix only: chmod the socket file to this mode after binding, e.g. 0o600. */
  unixSocketMode?: number;
  /**
   * unix only: when the path holds a socket file nobody listens on (left
   * behind by a crash), remove it and bind. Default true. A live listener is
   * never displaced: that is TRANSPORT_ADDRESS_IN_USE.
   */
  replaceStaleSocket?: boolean;
  /** Errors of the listening socket after it is up (e.g. EMFILE on accept). Default: ignored. */
  onError?: (error: Error) => void;
}

export type ConnectionHandler = (socket: Duplex) => void;

export interface TransportListener {
  /** Where it actually listens, as a URI (tcp port 0 resolved to the real port). */
  readonly uri: string;
  /** Stops accepting, destroys the connections it accepted that are still open, resolves when done. */
  close(): Promise<void>;
}

export interface Transport<A extends TransportAddress = TransportAddress> {
  connect(address: A, opts: ConnectOptions): Promise<Duplex>;
  listen(address: A, onConnection: ConnectionHandler, opts: ListenOptions): Promise<TransportListener>;
}
