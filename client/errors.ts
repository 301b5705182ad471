/**
 * What a client of the signing socket sees when a request fails. The
 * JSON-RPC `code` (-32602 invalid params, 4001 denied, -32002 unavailable, …;
 * docs/json-rpc.md) and the stable `data.code` are for branching; `rule` is
 * the policy rule that denied a request, when the signer names one.
 */

/** The signer's `error.data`: a stable code, and what to do about it. */
export interface EnclaveSignerErrorData {
  /** Stable error code, e.g. PARENT_INVALID_PARAMS, POLICY_DENIED, PARENT_KEYRING_LOCKED. */
  code?: string;
  hint?: string;
  /** The offending parameter (invalid params). */
  field?: string;
  /** The policy rule that decided (denials, when the policy names it). */
  rule?: string;
  [k: string]: unknown;
}

/** A JSON-RPC error answer from the signer. */
export class EnclaveSignerRpcError extends Error {
  override readonly name = 'EnclaveSignerRpcError';
  /** The JSON-RPC error code. */
  readonly code: number;
  readonly data: EnclaveSignerErrorData | undefined;
  /** The method that failed. */
  readonly method: string;

  constructor(method: string, code: number, message: string, data?: EnclaveSignerErrorData) {
    super(message);
    this.method = method;
    this.code = code;
    this.data = data;
  }

  /** The policy rule (data.rule), else the stable error code (data.code). */
  get rule(): string | undefined {
    return this.data?.rule ?? this.data?.code;
  }

  get hint(): string | undefined {
    return this.data?.hint;
  }
}

/** The signer could not be reached, or answered with something that is not JSON-RPC. */
export class EnclaveSignerConnectionError extends Error {
  override readonly name = 'EnclaveSignerConnectionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Builds the error for one JSON-RPC `error` member (defensive: the socket may be anything). */
export function rpcErrorOf(method: string, e: unknown): EnclaveSignerRpcError {
  const o = (e !== null && typeof e === 'object' ? e : {}) as Record<string, unknown>;
  const code = typeof o.code === 'number' ? o.code : -32603;
  const message = typeof o.message === 'string' ? o.message : 'error without a message';
  const data = o.data !== null && typeof o.data === 'object' && !Array.isArray(o.data) ? (o.data as EnclaveSignerErrorData) : undefined;
  return new EnclaveSignerRpcError(method, code, message, data);
}
