/**
 * One entry point for every transport: callers say `connect(uri)` or
 * `listen(uri, onConnection)` and the URI's scheme picks the implementation.
 * A native vsock addon plugs in with `registerTransport('vsock', impl)`; no
 * caller changes.
 */
import type { Duplex } from 'node:stream';
import { TransportError } from './errors.js';
import { tcpTransport, unixTransport } from './net.js';
import type { ConnectOptions, ConnectionHandler, ListenOptions, Transport, TransportListener } from './types.js';
import { parseTransportUri, type AddressFor, type TransportScheme } from './uri.js';
import { unavailableVsockTransport } from './vsock-unavailable.js';

type Registry = { [S in TransportScheme]: Transport<AddressFor<S>> };

const builtin: Registry = {
  unix: unixTransport,
  tcp: tcpTransport,
  vsock: unavailableVsockTransport,
};
const registry: Registry = { ...builtin };

/**
 * Installs `impl` for `scheme` (replacing the current one) and returns a
 * function that restores the previous implementation.
 */
export function registerTransport<S extends TransportScheme>(scheme: S, impl: Transport<AddressFor<S>>): () => void {
  if (!Object.hasOwn(builtin, scheme)) throw new TransportError('TRANSPORT_BAD_IMPL', `unknown transport scheme ${JSON.stringify(String(scheme))}`);
  if (typeof impl?.connect !== 'function' || typeof impl.listen !== 'function') {
    throw new TransportError('TRANSPORT_BAD_IMPL', `a transport for "${scheme}" must have connect() and listen() functions`);
  }
  const slots = registry as Record<S, Transport<AddressFor<S>>>;
  const previous = slots[scheme];
  slots[scheme] = impl;
  return () => {
    if (slots[scheme] === impl) slots[scheme] = previous;
  };
}

function implFor<S extends TransportScheme>(scheme: S): Transport<AddressFor<S>> {
  return registry[scheme];
}

/** Connects to `uri`. Rejects with TransportError (TRANSPORT_BAD_URI, _UNAVAILABLE, _CONNECT_FAILED, _TIMEOUT). */
export async function connect(uri: string, opts: ConnectOptions = {}): Promise<Duplex> {
  const a = parseTransportUri(uri);
  return (implFor(a.scheme) as Transport).connect(a, opts);
}

/**
 * Listens on `uri`; `onConnection` receives each accepted stream (and owns it).
 * Rejects with TransportError (TRANSPORT_BAD_URI, _UNAVAILABLE, _ADDRESS_IN_USE, _LISTEN_FAILED).
 */
export async function listen(uri: string, onConnection: ConnectionHandler, opts: ListenOptions = {}): Promise<TransportListener> {
  const a = parseTransportUri(uri);
  return (implFor(a.scheme) as Transport).listen(a, onConnection, opts);
}
