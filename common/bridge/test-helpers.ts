/** Tests that call a bridge handler directly: the context the bridge would hand it. */
import { cancellationOf } from '../cancellation.js';
import type { BridgeRequestContext } from './peer.js';

/** Request `id`, cancelled when `signal` aborts; `deadline` is absolute (Date.now() ms). */
export function requestContext(id: number, signal: AbortSignal = new AbortController().signal, deadline?: number): BridgeRequestContext {
  return { cancellation: cancellationOf(signal), id, ...(deadline === undefined ? {} : { deadline }) };
}
