/**
 * The registry's default for vsock:// URIs: every connect/listen fails with
 * TRANSPORT_UNAVAILABLE and no socket API is touched. The development machine
 * must never open an AF_VSOCK socket (its CIDs lead to the machine's host, not
 * to anything of ours), so real vsock (vsock.ts) is opt-in per process.
 *
 * A module of its own so that the registry needs nothing from vsock.ts: the
 * dependency runs one way only, vsock.ts → registry.ts (no import cycle).
 */
import { TransportError } from './errors.js';
import type { Transport } from './types.js';
import { formatTransportUri, type VsockAddress } from './uri.js';

function unavailable(a: VsockAddress, op: string): TransportError {
  return new TransportError('TRANSPORT_UNAVAILABLE', `cannot ${op} ${formatTransportUri(a)}: no vsock transport is registered in this process`, {
    hint: 'call registerVsockTransport() (common/transport/vsock.ts) in a process that runs where vsock exists, or use a unix:/tcp:// URI in development',
  });
}

/** Refuses everything without touching a socket. */
export const unavailableVsockTransport: Transport<VsockAddress> = {
  async connect(a) {
    throw unavailable(a, 'connect to');
  },
  async listen(a) {
    throw unavailable(a, 'listen on');
  },
};
