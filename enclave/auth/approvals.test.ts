import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { signApproval } from '../../common/auth/client-signer.js';
import { requestDigest } from '../../common/auth/request.js';
import { approvalRequiredError, approvalView } from './approval-required.js';
import { ApprovalBook, type ApprovalRequest } from './approvals.js';
import { AUDIENCE, testPrincipals, errorCode } from './test-helpers.js';

const { keys, registry } = testPrincipals();
type Name = keyof typeof keys;
const T0 = 1_800_000_000;
const PARAMS = [{ to: '0x' + '22'.repeat(20), value: '0xde0b6b3a7640000' }];
const DIGEST = requestDigest(AUDIENCE, 'eth_signTransaction', PARAMS);
const OTHER_DIGEST = requestDigest(AUDIENCE, 'eth_signTransaction', [{ ...PARAMS[0], to: '0x' + '66'.repeat(20) }]);

function setup(now = { t: T0 }) {
  let n = 0;
  const book = new ApprovalBook({ principals: registry, now: () => now.t, newId: () => `apr_test${++n}` });
  const req: ApprovalRequest = { requestDigest: DIGEST, rule: 'treasury', threshold: 2, approvers: ['alice', 'bob', 'carol'], requester: 'backend', ttlSeconds: 3600, request: { method: 'eth_signTransaction', params: PARAMS } };
  return { book, req, now };
}
const sig = (who: Name, approvalId: string, digest = DIGEST, decision: 'approve' | 'reject' = 'approve', as: string = who, requester = 'backend', rule = 'treasury') =>
  signApproval({ key: keys[who], approver: as, approvalId, requestDigest: digest, requester, rule, decision }).signature;
const code = errorCode;

describe('quorum approvals', () => {
  it('2-of-3: pending → approved after two distinct approvers → consumed once; the identical request then needs a new approval', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    expect(book.status(a.approvalId)).toBe('pending');
    expect(approvalRequiredError(a)).toEqual({
      code: -32010,
      message: 'approval required: rule treasury needs 2 of alice, bob, carol (0 so far)',
      data: { code: 'APPROVAL_REQUIRED', approvalId: a.approvalId, requestDigest: DIGEST, rule: 'treasury', threshold: 2, approvers: ['alice', 'bob', 'carol'], expiresAt: T0 + 3600 },
    });
    // Resubmitting while pending answers with the same approval, not a new one.
    expect(book.authorize(req).approvalId).toBe(a.approvalId);
    book.approve(a.approvalId, 'alice', sig('alice', a.approvalId));
    expect(book.status(a.approvalId)).toBe('pending');
    book.approve(a.approvalId, 'bob', sig('bob', a.approvalId));
    expect(book.authorize(req)).toMatchObject({ approvalId: a.approvalId, approvedBy: ['alice', 'bob'] });
    book.consume(a.approvalId, { requestDigest: DIGEST, rule: 'treasury', requester: 'backend' });
    expect(book.status(a.approvalId)).toBe('consumed');
    const again = book.authorize(req);
    expect(again.approvalId).not.toBe(a.approvalId);
    expect(book.status(again.approvalId)).toBe('pending');
  });

  it('a repeated approval by the same approver counts once', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    book.approve(a.approvalId, 'alice', sig('alice', a.approvalId));
    const r = book.approve(a.approvalId, 'alice', sig('alice', a.approvalId));
    expect(r.approvedBy).toEqual(['alice']);
    expect(book.status(a.approvalId)).toBe('pending');
  });

  it('hostile host: an approval signature for another digest → APPROVAL_BAD_SIGNATURE', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    expect(code(() => book.approve(a.approvalId, 'alice', sig('alice', a.approvalId, OTHER_DIGEST)))).toBe('APPROVAL_BAD_SIGNATURE');
    expect(book.get(a.approvalId).approvedBy).toEqual([]);
  });

  it('hostile host: an approval signed for another approval id → APPROVAL_BAD_SIGNATURE', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    expect(code(() => book.approve(a.approvalId, 'alice', sig('alice', 'apr_other')))).toBe('APPROVAL_BAD_SIGNATURE');
  });

  it('a signature by any other key (an outsider, or bob’s key claimed as alice) → APPROVAL_BAD_SIGNATURE', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    expect(code(() => book.approve(a.approvalId, 'alice', sig('outsider', a.approvalId, DIGEST, 'approve', 'alice')))).toBe('APPROVAL_BAD_SIGNATURE');
    expect(code(() => book.approve(a.approvalId, 'alice', sig('bob', a.approvalId, DIGEST, 'approve', 'alice')))).toBe('APPROVAL_BAD_SIGNATURE');
    expect(code(() => book.approve(a.approvalId, 'alice', 'not-base64+/'))).toBe('APPROVAL_BAD_SIGNATURE');
  });

  it('hostile host: a rejection signature cannot be used as an approval, nor the reverse', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    expect(code(() => book.approve(a.approvalId, 'alice', sig('alice', a.approvalId, DIGEST, 'reject')))).toBe('APPROVAL_BAD_SIGNATURE');
    expect(code(() => book.reject(a.approvalId, 'alice', sig('alice', a.approvalId, DIGEST, 'approve')))).toBe('APPROVAL_BAD_SIGNATURE');
    expect(book.status(a.approvalId)).toBe('pending');
  });

  it('a principal who is not an approver of the rule → APPROVAL_NOT_APPROVER (also unknown names)', () => {
    const { book, req } = setup();
    const a = book.authorize({ ...req, approvers: ['alice', 'bob'], threshold: 1 });
    expect(code(() => book.approve(a.approvalId, 'carol', sig('carol', a.approvalId)))).toBe('APPROVAL_NOT_APPROVER');
    expect(code(() => book.approve(a.approvalId, 'mallory', sig('outsider', a.approvalId, DIGEST, 'approve', 'mallory')))).toBe('APPROVAL_NOT_APPROVER');
    expect(code(() => book.approve(a.approvalId, 'host', 'AAAA'))).toBe('APPROVAL_NOT_APPROVER');
  });

  it('separation of duties: the requester cannot approve its own request, even when listed as an approver', () => {
    const { book, req } = setup();
    const a = book.authorize({ ...req, requester: 'alice' });
    expect(code(() => book.approve(a.approvalId, 'alice', sig('alice', a.approvalId)))).toBe('APPROVAL_SELF');
    expect(approvalRequiredError(a).data.approvers).toEqual(['bob', 'carol']);
  });

  it('a rule whose approvers minus the requester cannot reach the threshold → APPROVAL_IMPOSSIBLE', () => {
    const { book, req } = setup();
    expect(code(() => book.authorize({ ...req, requester: 'alice', approvers: ['alice', 'bob'], threshold: 2 }))).toBe('APPROVAL_IMPOSSIBLE');
  });

  it('one rejection vetoes: further approvals are refused, resubmission stays refused until expiry', () => {
    const { book, req, now } = setup();
    const a = book.authorize(req);
    book.approve(a.approvalId, 'alice', sig('alice', a.approvalId));
    book.reject(a.approvalId, 'carol', sig('carol', a.approvalId, DIGEST, 'reject'));
    expect(book.status(a.approvalId)).toBe('rejected');
    expect(code(() => book.approve(a.approvalId, 'bob', sig('bob', a.approvalId)))).toBe('APPROVAL_REJECTED');
    expect(code(() => book.authorize(req))).toBe('APPROVAL_REJECTED');
    now.t = T0 + 3600;
    expect(book.authorize(req).approvalId).not.toBe(a.approvalId);
  });

  it('approvals expire: approving after expiry → APPROVAL_EXPIRED; an approved but unused record expires too', () => {
    const { book, req, now } = setup();
    const a = book.authorize(req);
    book.approve(a.approvalId, 'alice', sig('alice', a.approvalId));
    book.approve(a.approvalId, 'bob', sig('bob', a.approvalId));
    now.t = T0 + 3600;
    expect(code(() => book.approve(a.approvalId, 'carol', sig('carol', a.approvalId)))).toBe('APPROVAL_EXPIRED');
    expect(code(() => book.consume(a.approvalId, { requestDigest: DIGEST, rule: 'treasury', requester: 'backend' }))).toBe('APPROVAL_EXPIRED');
    expect(book.authorize(req).approvalId).not.toBe(a.approvalId);
  });

  it('any change to the request is another digest: the approval does not carry over', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    book.approve(a.approvalId, 'alice', sig('alice', a.approvalId));
    book.approve(a.approvalId, 'bob', sig('bob', a.approvalId));
    const changed = book.authorize({ ...req, requestDigest: OTHER_DIGEST });
    expect(changed.approvalId).not.toBe(a.approvalId);
    expect(book.status(changed.approvalId)).toBe('pending');
    expect(code(() => book.consume(a.approvalId, { requestDigest: OTHER_DIGEST, rule: 'treasury', requester: 'backend' }))).toBe('APPROVAL_NOT_READY');
    // Another requester resubmitting the approved bytes does not get the approval either.
    expect(code(() => book.consume(a.approvalId, { requestDigest: DIGEST, rule: 'treasury', requester: 'host' }))).toBe('APPROVAL_NOT_READY');
  });

  it('consuming a pending approval, or one already consumed, is refused', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    const m = { requestDigest: DIGEST, rule: 'treasury', requester: 'backend' };
    expect(code(() => book.consume(a.approvalId, m))).toBe('APPROVAL_NOT_READY');
    book.approve(a.approvalId, 'alice', sig('alice', a.approvalId));
    book.approve(a.approvalId, 'carol', sig('carol', a.approvalId));
    book.consume(a.approvalId, m);
    expect(code(() => book.consume(a.approvalId, m))).toBe('APPROVAL_CLOSED');
    expect(code(() => book.approve(a.approvalId, 'bob', sig('bob', a.approvalId)))).toBe('APPROVAL_CLOSED');
  });

  it('unknown approval id → APPROVAL_UNKNOWN', () => {
    const { book } = setup();
    expect(code(() => book.approve('apr_nope', 'alice', 'AAAA'))).toBe('APPROVAL_UNKNOWN');
    expect(code(() => book.get('apr_nope'))).toBe('APPROVAL_UNKNOWN');
  });

  it('WebAuthn-shaped approvals by a P-256 approver count', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    const w = signApproval({ key: keys.alice, approver: 'alice', approvalId: a.approvalId, requestDigest: DIGEST, requester: 'backend', rule: 'treasury', decision: 'approve', webauthn: {} });
    expect(book.approve(a.approvalId, 'alice', w.signature, w.webauthn).approvedBy).toEqual(['alice']);
  });

  it('durability: the exported state restores with its approvals (and bad state is refused)', () => {
    const { book, req, now } = setup();
    const a = book.authorize(req);
    book.approve(a.approvalId, 'alice', sig('alice', a.approvalId));
    const state = JSON.parse(JSON.stringify(book.export()));
    const restored = new ApprovalBook({ principals: registry, now: () => now.t }, state);
    restored.approve(a.approvalId, 'bob', sig('bob', a.approvalId));
    expect(restored.status(a.approvalId)).toBe('approved');
    expect(approvalView(restored.get(a.approvalId), now.t)).toMatchObject({ status: 'approved', approvedBy: ['alice', 'bob'], requester: 'backend' });
    const forged = JSON.parse(JSON.stringify(state));
    forged.records[0].approvedBy = ['backend'];
    expect(code(() => new ApprovalBook({ principals: registry, now: () => now.t }, forged))).toBe('APPROVAL_STATE_INVALID');
    expect(code(() => new ApprovalBook({ principals: registry, now: () => now.t }, { v: 2, records: [] } as never))).toBe('APPROVAL_STATE_INVALID');
  });

  it('bounded: a requester flooding pending approvals is refused, others are not', () => {
    let n = 0;
    const book = new ApprovalBook({ principals: registry, now: () => T0, maxPendingPerRequester: 3, newId: () => `apr_${++n}` });
    const base = { rule: 'treasury', threshold: 1, approvers: ['alice'], ttlSeconds: 60 };
    for (let i = 0; i < 3; i++) book.authorize({ ...base, requester: 'host', requestDigest: i.toString(16).padStart(64, '0') });
    expect(code(() => book.authorize({ ...base, requester: 'host', requestDigest: 'f'.repeat(64) }))).toBe('APPROVAL_BOOK_FULL');
    expect(book.authorize({ ...base, requester: 'backend', requestDigest: 'f'.repeat(64) }).requester).toBe('backend');
  });

  it('property: the record is approved iff at least threshold distinct eligible approvers approved and nobody rejected', () => {
    const names = ['alice', 'bob', 'carol'] as const;
    const action = fc.record({ who: fc.constantFrom<Name>('alice', 'bob', 'carol', 'backend', 'outsider'), decision: fc.constantFrom<'approve' | 'reject'>('approve', 'approve', 'approve', 'reject'), wrongDigest: fc.boolean() });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.array(action, { maxLength: 8 }), (threshold, actions) => {
        const { book, req } = setup();
        const a = book.authorize({ ...req, threshold });
        const approved = new Set<string>();
        let rejected: string | undefined;
        for (const x of actions) {
          const s = sig(x.who, a.approvalId, x.wrongDigest ? OTHER_DIGEST : DIGEST, x.decision);
          try {
            if (x.decision === 'approve') book.approve(a.approvalId, x.who, s);
            else book.reject(a.approvalId, x.who, s);
          } catch {
            continue;
          }
          // Reference model: only genuine signatures by listed approvers, before any veto, count —
          // and the vetoing approver's veto once more (answered as the first: its answer may have been lost).
          const again = x.decision === 'reject' && rejected === x.who;
          expect((names as readonly string[]).includes(x.who) && !x.wrongDigest && (rejected === undefined || again)).toBe(true);
          if (x.decision === 'reject') rejected = x.who;
          else approved.add(x.who);
        }
        const want = rejected !== undefined ? 'rejected' : approved.size >= threshold ? 'approved' : 'pending';
        expect(book.status(a.approvalId)).toBe(want);
      }),
      { numRuns: 40 },
    );
  });
});

describe('merge (a fleet take-over folds another enclave\'s book into this one)', () => {
  it('votes are united; a use or a rejection in either book stands; entries only here that were never stored go', () => {
    let n = 0;
    const mine = new ApprovalBook({ principals: registry, now: () => T0, newId: () => `apr_mine${++n}` });
    const fleet = new ApprovalBook({ principals: registry, now: () => T0, newId: () => `apr_fleet${++n}` });
    const { req } = setup();
    // Shared entry: approved by alice here, by bob in the fleet's book.
    const shared = fleet.authorize(req);
    fleet.approve(shared.approvalId, 'bob', sig('bob', shared.approvalId));
    mine.merge(fleet.export());
    mine.approve(shared.approvalId, 'alice', sig('alice', shared.approvalId));
    // Used here (the fleet record never heard of it): must stay used.
    const other: ApprovalRequest = { ...req, requestDigest: OTHER_DIGEST };
    const used = mine.authorize(other);
    mine.approve(used.approvalId, 'alice', sig('alice', used.approvalId, OTHER_DIGEST));
    mine.approve(used.approvalId, 'carol', sig('carol', used.approvalId, OTHER_DIGEST));
    mine.consume(used.approvalId, { requestDigest: OTHER_DIGEST, rule: 'treasury', requester: 'backend' });
    // Opened here, its record never stored (the -32010 was withheld): goes, like the replaced book dropped it.
    const lost = mine.authorize({ ...req, requester: 'other-backend' });
    const { added, dropped } = mine.merge(fleet.export());
    expect(added).toEqual([]);
    expect(dropped).toEqual([lost.approvalId]);
    expect(mine.get(shared.approvalId).approvedBy.sort()).toEqual(['alice', 'bob']);
    expect(mine.status(used.approvalId)).toBe('consumed');
    expect(code(() => mine.get(lost.approvalId))).toBe('APPROVAL_UNKNOWN');
    // The requester's resubmission finds the fleet's entry, not a stale one of its own.
    expect(mine.authorize(req).approvalId).toBe(shared.approvalId);
  });
});

describe('a veto given twice', () => {
  it('the same approver\'s veto again is answered as the first (its first answer may have been lost); another decision still meets APPROVAL_REJECTED', () => {
    const { book, req } = setup();
    const a = book.authorize(req);
    book.reject(a.approvalId, 'carol', sig('carol', a.approvalId, DIGEST, 'reject'));
    expect(book.reject(a.approvalId, 'carol', sig('carol', a.approvalId, DIGEST, 'reject')).rejectedBy).toBe('carol');
    expect(code(() => book.reject(a.approvalId, 'carol', sig('bob', a.approvalId, DIGEST, 'reject', 'carol')))).toBe('APPROVAL_BAD_SIGNATURE');
    expect(code(() => book.approve(a.approvalId, 'alice', sig('alice', a.approvalId)))).toBe('APPROVAL_REJECTED');
    expect(code(() => book.reject(a.approvalId, 'bob', sig('bob', a.approvalId, DIGEST, 'reject')))).toBe('APPROVAL_REJECTED');
  });
});
