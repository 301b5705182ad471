/**
 * The shape of an enclave method (the `enclave-api` methods over the bridge): the params as
 * decoded from the bridge frame (untrusted: every method validates them), and what the bridge
 * tells it about the request.
 */
import type { Cancellation } from '../common/cancellation.js';
import type { CborValue } from '../common/cbor.js';

/** What the bridge tells a method about its request. */
export interface RequestContext {
  cancellation?: Cancellation;
  deadline?: number;
  /** The params exactly as decoded from the bridge frame (the audit record's requestDigest). */
  raw?: CborValue;
}

/** An enclave method: the params decoded from the bridge frame (untrusted), the request's context. */
export type EnclaveMethod = (p: Record<string, unknown>, ctx?: RequestContext) => Promise<unknown>;
