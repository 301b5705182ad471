/**
 * Errors of the parent⇄enclave bridge. Two families:
 *
 * - `BridgeError`: something went wrong on *this* side of the connection
 *   (a bad frame arrived, the deadline passed, the connection dropped…).
 * - `BridgeRemoteError`: the peer answered a request with an `err` message.
 *   Its `code` is whatever the peer sent (a SignerError code of the enclave,
 *   `INTERNAL`, or one of the bridge's own remote codes such as
 *   `BRIDGE_BUSY`), so callers map errors by `code` alone.
 */
import type { CborValue } from '../cbor.js';
import { SignerError } from '../errors.js';

export type BridgeErrorCode =
  /** A frame's declared length exceeds the receiver's cap (or an outgoing one would). */
  | 'BRIDGE_FRAME_TOO_LARGE'
  /** Zero-length frame, or a frame body that is not exactly one well-formed CBOR item. */
  | 'BRIDGE_BAD_FRAME'
  /** A well-formed frame that is not a valid message, or a message out of place. */
  | 'BRIDGE_PROTOCOL'
  /** The peer's hello names a protocol version this side does not speak. */
  | 'BRIDGE_VERSION'
  /** Hello not received in time, or the peer has the wrong role. */
  | 'BRIDGE_HANDSHAKE'
  /** A request's deadline passed before its response arrived. */
  | 'BRIDGE_TIMEOUT'
  /** The caller (client side) or the peer (server side) cancelled the request. */
  | 'BRIDGE_CANCELLED'
  /** The connection closed while the request was pending. */
  | 'BRIDGE_DISCONNECTED'
  /** The peer has too many requests (or connections) in flight. */
  | 'BRIDGE_BUSY'
  /** A value handed to the bridge cannot be encoded as CBOR. */
  | 'BRIDGE_ENCODE'
  /** A handler's result does not fit in one frame. */
  | 'BRIDGE_RESULT_TOO_LARGE'
  /** A request arrived on a connection that has no handler. */
  | 'BRIDGE_NOT_SERVING'
  /** A caller passed an invalid argument or option (method name, deadline, cap…). */
  | 'BRIDGE_BAD_ARGUMENT';

export class BridgeError extends SignerError {
  constructor(code: BridgeErrorCode, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
  }
}

/** The peer answered with `{t:'err', error:{code, message, data?}}`. */
export class BridgeRemoteError extends SignerError {
  /** Always true: the code and message came from the other side of the bridge. */
  readonly remote = true;
  readonly data: CborValue | undefined;
  /** The offending request field, when the other side named one (data.field). */
  readonly field: string | undefined;

  constructor(code: string, message: string, data?: CborValue) {
    // data.hint / data.field become the usual SignerError properties, so callers
    // treat a remote refusal exactly like a local one.
    const text = (k: string) => (data instanceof Map && typeof data.get(k) === 'string' ? (data.get(k) as string) : undefined);
    const hint = text('hint');
    super(code, message, hint === undefined ? {} : { hint });
    this.data = data;
    this.field = text('field');
  }
}

/** Coerces anything caught at the bridge boundary into a BridgeError of the given code. */
export function asBridgeError(e: unknown, code: BridgeErrorCode, prefix: string): BridgeError {
  if (e instanceof BridgeError) return e;
  const detail = e instanceof Error ? e.message : String(e);
  return new BridgeError(code, `${prefix}: ${detail}`, { cause: e });
}
