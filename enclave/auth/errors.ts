/**
 * Errors of quorum approvals (issue 9 §5) and of the sealed enclave state
 * (§6). Request-authentication errors are in common/auth/errors.ts because
 * the client shares them.
 */
import { SignerError } from '../../common/errors.js';

export type ApprovalErrorCode =
  /** No approval with this id (never created, or dropped after it expired). */
  | 'APPROVAL_UNKNOWN'
  /** The approval window has passed; the request needs a new approval. */
  | 'APPROVAL_EXPIRED'
  /** An approver rejected the request: one rejection vetoes it until the approval expires. */
  | 'APPROVAL_REJECTED'
  /** The approval was already used to sign (each approval signs once). */
  | 'APPROVAL_CLOSED'
  /** The principal is not one of the rule's approvers. */
  | 'APPROVAL_NOT_APPROVER'
  /** The requesting principal tried to approve its own request. */
  | 'APPROVAL_SELF'
  /** The signature is not the approver's over this approval's request digest. */
  | 'APPROVAL_BAD_SIGNATURE'
  /** The rule's approvers, without the requester, cannot reach the threshold. */
  | 'APPROVAL_IMPOSSIBLE'
  /** Too many live approvals (in all, or for this requester); refusing a new one. */
  | 'APPROVAL_BOOK_FULL'
  /** The approval is not in the state this operation needs (e.g. consuming a pending one). */
  | 'APPROVAL_NOT_READY'
  /** Restored approval state is malformed: never trusted. */
  | 'APPROVAL_STATE_INVALID';

export class ApprovalError extends SignerError {
  override readonly code: ApprovalErrorCode;
  readonly approvalId: string | undefined;

  constructor(code: ApprovalErrorCode, message: string, opts: { approvalId?: string; cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
    this.code = code;
    this.approvalId = opts.approvalId;
  }
}

export type SealedStateErrorCode =
  /** The record is not the documented shape. */
  | 'SEALED_STATE_MALFORMED'
  /** Authentication failed: the ciphertext, nonce, sequence or keyring id was changed, or it is not ours. */
  | 'SEALED_STATE_TAMPERED'
  /** The record was sealed under another keyring. */
  | 'SEALED_STATE_WRONG_KEYRING'
  /** The record is older than one this enclave has already seen in its life (rollback). */
  | 'SEALED_STATE_ROLLBACK'
  /** The key handed in is not a 32-byte keyring key. */
  | 'SEALED_STATE_KEY'
  /** A keyring is unlocked but its sealed state was not handed back yet (state.restore): nothing is decided without it. */
  | 'SEALED_STATE_NOT_RESTORED'
  /**
   * Fleet scope: the record handed in is older than (or forks from) one this enclave was already
   * handed, or the fleet state changed under a request in flight. Nothing was released for that
   * request; it is safe to retry (the parent reads the store again).
   */
  | 'SEALED_STATE_STALE'
  /** A request carried fleet state, but this enclave's policy keeps its state per instance. */
  | 'SEALED_STATE_SCOPE';

export class SealedStateError extends SignerError {
  override readonly code: SealedStateErrorCode;

  constructor(code: SealedStateErrorCode, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
    this.code = code;
  }
}
