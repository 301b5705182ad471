/**
 * Review of time in the auth state machines (approvals, replay cache, sessions): what a clock
 * that moves (a slow signature, a dev/VM clock stepped back) does to expiries.
 */
import { describe, expect, it } from 'vitest';
import { signApproval } from '../../common/auth/client-signer.js';
import { requestDigest } from '../../common/auth/request.js';
import { ApprovalBook, type ApprovalRequest } from './approvals.js';
import { AUDIENCE, testPrincipals } from './test-helpers.js';

const { keys, registry } = testPrincipals();
const T0 = 1_800_000_000;
const PARAMS = [{ to: '0x' + '22'.repeat(20), value: '0xde0b6b3a7640000' }];
const DIGEST = requestDigest(AUDIENCE, 'eth_signTransaction', PARAMS);

describe('an approval used by a signature that finished after its expiry', () => {
  // The gate checks the approval when it decides (before the worker signs) and consumes it once
  // the signature exists. A signature that finishes after expiresAt found the record "expired":
  // consume threw (ApprovalsGate.consumed swallows it) and the record stayed approved, not used.
  // With the clock one second behind (a dev/VM clock stepped back; another instance of a fleet
  // whose record still holds the approval), the identical request was signed a second time.
  it('is marked used anyway: the signature exists', () => {
    const now = { t: T0 };
    let n = 0;
    const book = new ApprovalBook({ principals: registry, now: () => now.t, newId: () => `apr_test${++n}` });
    const req: ApprovalRequest = { requestDigest: DIGEST, rule: 'treasury', threshold: 1, approvers: ['alice', 'bob'], requester: 'backend', ttlSeconds: 60, request: { method: 'eth_signTransaction', params: PARAMS } };
    const a = book.authorize(req);
    book.approve(a.approvalId, 'alice', signApproval({ key: keys.alice, approver: 'alice', approvalId: a.approvalId, requestDigest: DIGEST, requester: 'backend', rule: 'treasury', decision: 'approve' }).signature);
    now.t = T0 + 59;
    expect(book.authorize(req)).toMatchObject({ approvalId: a.approvalId, approvedBy: ['alice'] }); // decided: sign
    now.t = T0 + 61; // the signature took a while
    try {
      book.consume(a.approvalId, { requestDigest: DIGEST, rule: 'treasury', requester: 'backend' });
    } catch {
      // ApprovalsGate.consumed ignores a failed consume
    }
    now.t = T0 + 59; // the clock steps back
    const again = book.authorize(req);
    expect(again.approvalId === a.approvalId && again.approvedBy.length >= 1 && again.consumedAt === null).toBe(false);
  });
});
