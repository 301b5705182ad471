import { SignerError } from '../errors.js';

export type TransportErrorCode =
  /** The URI does not parse or names something impossible. */
  | 'TRANSPORT_BAD_URI'
  /** No working implementation for the scheme on this machine/build (vsock until the native addon registers). */
  | 'TRANSPORT_UNAVAILABLE'
  /** connect() failed: refused, no such socket, unreachable, aborted. */
  | 'TRANSPORT_CONNECT_FAILED'
  /** connect() did not complete within its timeout. */
  | 'TRANSPORT_TIMEOUT'
  /** listen() failed because something live already listens there. */
  | 'TRANSPORT_ADDRESS_IN_USE'
  /** listen() failed for another reason (permissions, missing directory…). */
  | 'TRANSPORT_LISTEN_FAILED'
  /** registerTransport() was handed something that is not a transport. */
  | 'TRANSPORT_BAD_IMPL';

export class TransportError extends SignerError {
  constructor(code: TransportErrorCode, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
  }
}
