/**
 * Placeholder vsock transport. The real one is a native addon that calls
 * registerTransport('vsock', impl) when loaded; until then every vsock
 * connect/listen fails with TRANSPORT_UNAVAILABLE.
 *
 * Deliberately no fallback: the development machine must never open an
 * AF_VSOCK socket (its CIDs lead to the machine's host, not to anything of
 * ours), so this file touches no socket API at all.
 */
import { TransportError } from './errors.js';
import type { Transport } from './types.js';
import { formatTransportUri, type VsockAddress } from './uri.js';

function unavailable(a: VsockAddress, op: string): TransportError {
  return new TransportError('TRANSPORT_UNAVAILABLE', `cannot ${op} ${formatTransportUri(a)}: no vsock transport is registered in this process`, {
    hint: "load the native vsock addon (it calls registerTransport('vsock', …)), or use a unix:/tcp:// URI in development",
  });
}

export const unavailableVsockTransport: Transport<VsockAddress> = {
  async connect(a) {
    throw unavailable(a, 'connect to');
  },
  async listen(a) {
    throw unavailable(a, 'listen on');
  },
};
