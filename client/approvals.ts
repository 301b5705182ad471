/**
 * Quorum-approval helpers for `enclave-signer/client` (docs/principals.md,
 * "Quorum approvals"): read an approval, approve or reject it as a principal,
 * wait for its outcome.
 *
 * Why approve() recomputes the digest: the approval view travels through the
 * untrusted host, which could show the approver a harmless request next to
 * the digest of a harmful one. The approver signs the digest, so the helper
 * recomputes it from the request shown (and the policy hash) and refuses to
 * sign when they differ — exactly what `enclave-signer approve` does. What is
 * signed is then the request the caller can inspect in the returned view.
 */
import { signApproval } from '../common/auth/client-signer.js';
import { requestDigest } from '../common/auth/request.js';
import { ApprovalTimeoutError, EnclaveSignerRpcError } from './errors.js';
import type { LoadedPrincipal } from './principal.js';

export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'consumed' | 'expired';

/** What signer_getApproval / signer_listApprovals / signer_approve / signer_reject answer. */
export interface ApprovalView {
  approvalId: string;
  status: ApprovalStatus;
  /** The digest approvers sign (hex); approve() checks it against `request`. */
  requestDigest: string;
  rule: string;
  threshold: number;
  approvers: string[];
  requester: string;
  approvedBy: string[];
  rejectedBy: string | null;
  /** Unix seconds (the enclave's clock). */
  expiresAt: number;
  /** The request the digest covers, as the enclave signs it (op, {keyId, request}); null if not kept. */
  request: { method: string; params: unknown } | null;
  /** The intent the enclave decoded from the request (informative: the host could alter its display). */
  intent?: unknown;
  [k: string]: unknown;
}

const STATUSES: ReadonlySet<string> = new Set(['pending', 'approved', 'rejected', 'consumed', 'expired']);
/** States after which an approval never changes again (or only to expired). */
export const SETTLED: ReadonlySet<ApprovalStatus> = new Set(['approved', 'rejected', 'consumed', 'expired']);

function shapeError(method: string, what: string): EnclaveSignerRpcError {
  return new EnclaveSignerRpcError(method, -32603, `the signer's approval view is malformed: ${what}`, { code: 'CLIENT_APPROVAL_SHAPE', hint: 'the signing host may be compromised' });
}

/** Checks an approval view's shape (the answer comes through the untrusted host). */
export function readApprovalView(method: string, v: unknown, approvalId?: string): ApprovalView {
  const o = v as Partial<ApprovalView> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw shapeError(method, 'not an object');
  if (typeof o.approvalId !== 'string' || (approvalId !== undefined && o.approvalId !== approvalId)) throw shapeError(method, `not approval ${approvalId ?? '(any)'}`);
  if (typeof o.requestDigest !== 'string' || !/^[0-9a-f]{64}$/.test(o.requestDigest)) throw shapeError(method, 'requestDigest is not 64 hex characters');
  if (typeof o.status !== 'string' || !STATUSES.has(o.status)) throw shapeError(method, `unknown status ${JSON.stringify(String(o.status)).slice(0, 40)}`);
  // An approval signature names the requester and rule shown (approval message v2): both must be there to be named.
  if (typeof o.requester !== 'string' || o.requester.length === 0) throw shapeError(method, 'requester is not a principal name');
  if (typeof o.rule !== 'string' || o.rule.length === 0) throw shapeError(method, 'rule is not a rule id');
  const r = o.request as { method?: unknown } | null | undefined;
  if (r !== null && r !== undefined && typeof r.method !== 'string') throw shapeError(method, 'request.method is not a string');
  return { ...(o as ApprovalView), request: r === undefined ? null : (o.request as ApprovalView['request']) };
}

/**
 * The approval message signature for `view`, after checking that the digest
 * is the one of the request it shows, under `audience` (the policy hash).
 */
export function signApprovalOf(view: ApprovalView, audience: string, approver: LoadedPrincipal, decision: 'approve' | 'reject'): { approvalId: string; approver: string; signature: string } {
  const method = decision === 'approve' ? 'signer_approve' : 'signer_reject';
  if (view.request === null) {
    throw new EnclaveSignerRpcError(method, -32603, `approval ${view.approvalId} does not show its request, so its digest cannot be checked; refusing to sign blind`, { code: 'CLIENT_APPROVAL_UNVERIFIABLE' });
  }
  const recomputed = requestDigest(audience, view.request.method, view.request.params);
  if (recomputed !== view.requestDigest) {
    throw new EnclaveSignerRpcError(method, -32603, `the request shown for ${view.approvalId} does not match its digest (shown ${view.requestDigest}, recomputed ${recomputed}); not signing`, {
      code: 'CLIENT_APPROVAL_MISMATCH',
      hint: 'the host may be showing you a different request than the one waiting for approval; report it',
    });
  }
  // The requester and rule as shown: the enclave refuses the signature if they are not the approval's.
  const s = signApproval({ key: approver.key, approver: approver.name, approvalId: view.approvalId, requestDigest: recomputed, requester: view.requester, rule: view.rule, decision });
  return { approvalId: view.approvalId, approver: approver.name, signature: s.signature };
}

export interface WaitForApprovalOptions {
  /** Between two polls. Default 1 000 ms. */
  pollMs?: number;
  /** Give up (ApprovalTimeoutError) after this long. Default: until the approval expires. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Polls until the approval is settled (approved, rejected, consumed or
 * expired) and returns that view. The status comes through the host: a host
 * that claims "approved" early only makes the resubmitted request come back
 * -32010 again; the enclave decides.
 */
export async function waitForApproval(get: () => Promise<ApprovalView>, approvalId: string, o: WaitForApprovalOptions = {}): Promise<ApprovalView> {
  const pollMs = o.pollMs ?? 1000;
  const deadline = o.timeoutMs === undefined ? undefined : Date.now() + o.timeoutMs;
  for (;;) {
    o.signal?.throwIfAborted();
    const view = await get();
    if (SETTLED.has(view.status)) return view;
    // Nothing changes after expiresAt (enclave clock); stop polling shortly after it by ours.
    if (deadline === undefined && Date.now() / 1000 > view.expiresAt + 5) return { ...view, status: 'expired' };
    if (deadline !== undefined && Date.now() + pollMs > deadline) throw new ApprovalTimeoutError(approvalId, view.status, o.timeoutMs!);
    await sleep(pollMs, o.signal);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(t);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', abort, { once: true });
  });
}
