/**
 * How auth, approval and sealed-state refusals should appear on the
 * JSON-RPC wire (proposed; the parent does not serve them yet — see
 * docs/principals.md "Wiring status"):
 *
 *   AUTH_*          4100  (EIP-1193 "Unauthorized": the caller is not who it claims, or the request is stale/replayed)
 *   APPROVAL_*    -32011  (the approval action is refused; data.approvalId names it)
 *   APPROVAL_REQUIRED -32010 (./approval-required.ts)
 *   SEALED_STATE_* -32002 (unavailable: the enclave refuses to sign until an operator resolves it)
 *
 * data is { code, approvalId? } — clients branch on data.code, never on messages.
 */
import { AuthError } from '../../common/auth/errors.js';
import { ApprovalError, type SealedStateError } from './errors.js';

export const AUTH_RPC_CODE = 4100;
export const APPROVAL_RPC_CODE = -32011;
export const SEALED_STATE_RPC_CODE = -32002;

export function authRpcError(e: AuthError | ApprovalError | SealedStateError): { code: number; message: string; data: { code: string; approvalId?: string; hint?: string } } {
  const code = e instanceof AuthError ? AUTH_RPC_CODE : e instanceof ApprovalError ? APPROVAL_RPC_CODE : SEALED_STATE_RPC_CODE;
  const data: { code: string; approvalId?: string; hint?: string } = { code: e.code };
  if (e instanceof ApprovalError && e.approvalId !== undefined) data.approvalId = e.approvalId;
  if (e.hint !== undefined) data.hint = e.hint;
  return { code, message: e.message, data };
}
