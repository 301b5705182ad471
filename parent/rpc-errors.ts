/**
 * What a client sees when a method fails. Errors are mapped by `code` alone
 * (never by parsing messages); `data.code` carries the stable code so clients
 * can branch on it, `data.hint` what to do about it. Anything that is not a
 * SignerError is a bug and is reported as a bare internal error: no stack
 * traces, no library messages.
 */
import { isSignerError } from '../common/errors.js';
import { InvalidParamError } from '../common/rpc/errors.js';
import { DownstreamError } from './downstream.js';
import { RPC, type RpcErrorObject } from './jsonrpc.js';

export type Outcome = 'ok' | 'invalid_request' | 'not_found' | 'invalid_params' | 'denied' | 'unavailable' | 'busy' | 'error';

/** Enclave/parent codes that mean "the request itself is wrong". */
const INVALID_PARAMS_CODES = new Set([
  'PARENT_INVALID_PARAMS',
  'INVALID_PARAMS',
  'SIGN_INVALID_PARAMS',
  'SIGN_FROM_MISMATCH',
  'SIGN_PSBT_INVALID',
  'SIGN_PSBT_NOT_OURS',
  'SIGN_PSBT_DERIVATION_MISMATCH',
  'SIGN_PSBT_UNSUPPORTED_INPUT',
]);

/** The enclave's policy point said no. */
const DENIED_CODES = new Set(['POLICY_DENIED', 'POLICY_UNAVAILABLE', 'AUDIT_UNAVAILABLE']);

const UNAVAILABLE_CODES = new Set([
  'PARENT_NOT_ATTESTED',
  'PARENT_ENCLAVE_UNAVAILABLE',
  'PARENT_KEYRING_LOCKED',
  'KEYSTORE_UNAVAILABLE',
  'KEYSTORE_VERSION',
  'KEYRING_LOCKED',
  'KMS_NO_CREDENTIALS',
  'PARENT_AUDIT_UNAVAILABLE',
  'AUDIT_NOT_OPEN',
  // The enclave refuses to sign until an operator resolves its sealed state (docs/principals.md).
  'SEALED_STATE_MALFORMED',
  'SEALED_STATE_TAMPERED',
  'SEALED_STATE_ROLLBACK',
  'SEALED_STATE_WRONG_KEYRING',
  'SEALED_STATE_KEY',
  'SEALED_STATE_NOT_RESTORED',
  // Fleet scope (docs/scale-out.md): the shared state moved under the request; retry.
  'SEALED_STATE_STALE',
  'PARENT_STATE_CONFLICT',
]);

const APPROVAL_REQUIRED_RPC = -32010;
const APPROVAL_RPC = -32011;

/** Members of an enclave error's data a client may see (all set by the enclave's own code). */
const REMOTE_DATA_KEYS = ['rule', 'approvalId', 'requestDigest', 'threshold', 'approvers', 'expiresAt', 'expiresAfter'] as const;

/** EIP-1193 "Unauthorized": a signed request the enclave did not accept (docs/principals.md). */
const AUTH_RPC = RPC.UNAUTHORIZED;

const BUSY_CODES = new Set(['PARENT_BUSY', 'BRIDGE_BUSY']);

export interface MappedError {
  error: RpcErrorObject;
  outcome: Outcome;
}

export function toRpcError(e: unknown): MappedError {
  if (!isSignerError(e)) return { error: { code: RPC.INTERNAL_ERROR, message: 'internal error' }, outcome: 'error' };
  // A parameter the parent itself refused keeps the code clients have always seen for it.
  const data: Record<string, unknown> = { code: e instanceof InvalidParamError ? 'PARENT_INVALID_PARAMS' : e.code };
  if (e.hint !== undefined) data.hint = e.hint;
  // The enclave's structured refusal details (data.rule: the policy rule that decided).
  const remote = (e as { data?: unknown }).data;
  if (remote instanceof Map) {
    for (const k of REMOTE_DATA_KEYS) {
      const v = remote.get(k);
      if (v === null || typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v))) data[k] = v;
      else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) data[k] = [...v];
    }
  }
  const field = (e as { field?: unknown }).field;
  if (typeof field === 'string') data.field = field;
  const message = e.message;
  if (INVALID_PARAMS_CODES.has(e.code)) return { error: { code: RPC.INVALID_PARAMS, message: `invalid params: ${message}`, data }, outcome: 'invalid_params' };
  // Quorum approvals (docs/principals.md): -32010 waits for approvers, -32011 refuses an approval action.
  if (e.code.startsWith('AUTH_')) return { error: { code: AUTH_RPC, message: `unauthorized: ${message}`, data }, outcome: 'denied' };
  if (e.code === 'APPROVAL_REQUIRED') return { error: { code: APPROVAL_REQUIRED_RPC, message, data }, outcome: 'denied' };
  if (e.code.startsWith('APPROVAL_')) return { error: { code: APPROVAL_RPC, message, data }, outcome: 'denied' };
  if (DENIED_CODES.has(e.code)) {
    // The enclave's policy messages start with "denied:"; make sure every denial says so.
    return { error: { code: RPC.DENIED, message: /\bdenied\b/i.test(message) ? message : `denied: ${message}`, data }, outcome: 'denied' };
  }
  if (UNAVAILABLE_CODES.has(e.code)) return { error: { code: RPC.UNAVAILABLE, message, data }, outcome: 'unavailable' };
  if (BUSY_CODES.has(e.code)) return { error: { code: RPC.LIMIT_EXCEEDED, message: `busy: ${message}`, data }, outcome: 'busy' };
  if (e instanceof DownstreamError) return downstreamRpcError(e, data);
  if (e.code === 'BRIDGE_CANCELLED') return { error: { code: RPC.SERVER_ERROR, message: 'request cancelled', data }, outcome: 'error' };
  if (e.code === 'INTERNAL' || e.code === 'SIGN_INTERNAL') {
    return { error: { code: RPC.INTERNAL_ERROR, message: `enclave internal error: ${message}`, data }, outcome: 'error' };
  }
  // Everything else the enclave or parent refused for a reason of its own (KMS, worker, PSBT signing, …).
  return { error: { code: RPC.SERVER_ERROR, message, data }, outcome: 'error' };
}

/**
 * Proxy mode's node errors (parent/downstream.ts): the node's own JSON-RPC
 * error passes through (code, message, data — e.g. a revert reason clients
 * decode); a node that is down or slow is -32002, one that answers garbage
 * -32603, each with what the node did.
 */
function downstreamRpcError(e: DownstreamError, data: Record<string, unknown>): MappedError {
  if (e.code === 'DOWNSTREAM_ERROR' && e.nodeError) {
    const { code, message } = e.nodeError;
    // A node cannot pose as this signer's policy: its 4001 is not a denial by the enclave.
    const error: RpcErrorObject = { code: code === RPC.DENIED ? RPC.SERVER_ERROR : code, message };
    if (e.nodeError.data !== undefined) error.data = e.nodeError.data;
    return { error, outcome: 'error' };
  }
  if (e.code === 'DOWNSTREAM_UNAVAILABLE') return { error: { code: RPC.UNAVAILABLE, message: e.message, data }, outcome: 'unavailable' };
  return { error: { code: RPC.INTERNAL_ERROR, message: e.message, data }, outcome: 'error' };
}
