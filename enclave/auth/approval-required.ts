/**
 * The JSON-RPC answer for a request that waits for approvals (issue 9 §5):
 *
 *   { code: -32010, message: "approval required: …",
 *     data: { code: "APPROVAL_REQUIRED", approvalId, requestDigest, rule, threshold, approvers, expiresAt } }
 *
 * `expiresAt` is Unix seconds (enclave clock), like `signer_auth.expiresAt`.
 * A client resubmits the identical request (with a fresh signer_auth) once
 * `signer_getApproval` reports `approved`.
 */
import { approvalStatus, type ApprovalRecord, type ApprovalStatus } from './approvals.js';

export const APPROVAL_REQUIRED_RPC_CODE = -32010;

export interface ApprovalRequiredData {
  code: 'APPROVAL_REQUIRED';
  approvalId: string;
  requestDigest: string;
  rule: string;
  threshold: number;
  approvers: string[];
  expiresAt: number;
}

export interface ApprovalRequiredError {
  code: typeof APPROVAL_REQUIRED_RPC_CODE;
  message: string;
  data: ApprovalRequiredData;
}

export function approvalRequiredError(r: ApprovalRecord): ApprovalRequiredError {
  const eligible = r.approvers.filter((a) => a !== r.requester);
  return {
    code: APPROVAL_REQUIRED_RPC_CODE,
    message: `approval required: rule ${r.rule} needs ${r.threshold} of ${eligible.join(', ')} (${r.approvedBy.length} so far)`,
    data: {
      code: 'APPROVAL_REQUIRED',
      approvalId: r.approvalId,
      requestDigest: r.requestDigest,
      rule: r.rule,
      threshold: r.threshold,
      approvers: eligible,
      expiresAt: r.expiresAt,
    },
  };
}

/** What signer_getApproval / signer_listApprovals / signer_approve answer (the decoded intent is added by the caller). */
export interface ApprovalView extends Omit<ApprovalRequiredData, 'code'> {
  status: ApprovalStatus;
  requester: string;
  approvedBy: string[];
  rejectedBy: string | null;
  /** The request the digest covers (null if the enclave did not keep it); approvers recompute the digest from it. */
  request: { method: string; params: unknown } | null;
}

export function approvalView(r: ApprovalRecord, now: number): ApprovalView {
  return {
    approvalId: r.approvalId,
    status: approvalStatus(r, now),
    requestDigest: r.requestDigest,
    rule: r.rule,
    threshold: r.threshold,
    approvers: r.approvers.filter((a) => a !== r.requester),
    requester: r.requester,
    approvedBy: [...r.approvedBy],
    rejectedBy: r.rejectedBy,
    expiresAt: r.expiresAt,
    request: r.request === null ? null : { method: r.request.method, params: JSON.parse(r.request.paramsJson) as unknown },
  };
}
