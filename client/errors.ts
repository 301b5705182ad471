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
  override readonly name: string = 'EnclaveSignerRpcError';
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

/** The JSON-RPC code of a request that waits for approvals (docs/principals.md). */
export const APPROVAL_REQUIRED_CODE = -32010;

/**
 * A request the policy allows only with approvals (-32010 APPROVAL_REQUIRED).
 * Approvers approve `approvalId` (SignerClient.approve); once it is approved,
 * send the identical request again. These fields come through the untrusted
 * host: they tell you what to do next, they bind nothing (an approver's
 * helper recomputes the digest from the request before signing).
 */
export class ApprovalRequiredError extends EnclaveSignerRpcError {
  override readonly name: string = 'ApprovalRequiredError';
  readonly approvalId: string;
  /** The request digest (hex) the approvers sign. */
  readonly requestDigest: string;
  readonly threshold: number;
  /** Who may approve (the requester excluded). */
  readonly approvers: string[];
  /** Unix seconds (the enclave's clock). */
  readonly expiresAt: number;

  constructor(method: string, message: string, data: EnclaveSignerErrorData & { approvalId: string; requestDigest: string; rule: string; threshold: number; approvers: string[]; expiresAt: number }) {
    super(method, APPROVAL_REQUIRED_CODE, message, data);
    this.approvalId = data.approvalId;
    this.requestDigest = data.requestDigest;
    this.threshold = data.threshold;
    this.approvers = [...data.approvers];
    this.expiresAt = data.expiresAt;
  }
}

function approvalRequiredData(d: EnclaveSignerErrorData | undefined): ConstructorParameters<typeof ApprovalRequiredError>[2] | undefined {
  if (d === undefined || d.code !== 'APPROVAL_REQUIRED') return undefined;
  const ok =
    typeof d.approvalId === 'string' &&
    typeof d.requestDigest === 'string' &&
    typeof d.rule === 'string' &&
    Number.isSafeInteger(d.threshold) &&
    Array.isArray(d.approvers) &&
    d.approvers.every((a) => typeof a === 'string') &&
    Number.isSafeInteger(d.expiresAt);
  return ok ? (d as ConstructorParameters<typeof ApprovalRequiredError>[2]) : undefined;
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
  // A -32010 without the documented data (the host may send anything) stays a plain EnclaveSignerRpcError.
  const approval = code === APPROVAL_REQUIRED_CODE ? approvalRequiredData(data) : undefined;
  if (approval) return new ApprovalRequiredError(method, message, approval);
  return new EnclaveSignerRpcError(method, code, message, data);
}

/** waitForApproval's deadline passed while the approval was still pending. */
export class ApprovalTimeoutError extends Error {
  override readonly name = 'ApprovalTimeoutError';
  readonly approvalId: string;
  /** The last status the signer reported. */
  readonly status: string;
  constructor(approvalId: string, status: string, timeoutMs: number) {
    super(`approval ${approvalId} is still ${status} after ${timeoutMs} ms`);
    this.approvalId = approvalId;
    this.status = status;
  }
}
