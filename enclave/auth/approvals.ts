/**
 * Quorum approvals with separation of duties (issue 9 §5), as a state machine
 * with no I/O: the enclave creates a pending approval when the policy says a
 * request needs one, approvers sign the request digest, and the identical
 * request is signed once the threshold is met.
 *
 *   pending ──approve×threshold──▶ approved ──consume (on signing)──▶ consumed
 *      │  ╲                           │
 *      │   ╲──reject (any approver)───┴──▶ rejected (veto)
 *      └──(expiresAt passes)──▶ expired          (all states end at expiresAt)
 *
 * What counts (each refusal has its own code, ./errors.ts):
 *   - an approval is a signature by the approver's key over the approval
 *     message (common/auth/request.ts), which names the approval id, the
 *     approver, the decision and the request digest — so a signature for
 *     another digest, another approval or by another key is refused;
 *   - the same approver approving twice counts once;
 *   - the requester can never approve its own request, even if listed;
 *   - one rejection vetoes (until the approval expires);
 *   - approvals expire (enclave clock);
 *   - an approved record is used once, by the same requester, for the same
 *     digest and rule; any change to the request is another digest and needs
 *     a new approval.
 */
import { randomBytes } from 'node:crypto';
import { canonicalRequestJson } from '../../common/auth/canonical.js';
import { AuthError } from '../../common/auth/errors.js';
import { approvalMessage, approvalMessageV1, toBase64Url, type ApprovalDecision, type WebAuthnAssertion } from '../../common/auth/request.js';
import { ApprovalError } from './errors.js';
import type { PrincipalRegistry } from './principals.js';

export const DEFAULT_MAX_APPROVALS = 4096;
export const DEFAULT_MAX_PENDING_PER_REQUESTER = 256;

export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'consumed' | 'expired';

export interface ApprovalRecord {
  approvalId: string;
  /** Hex SHA-256 request digest (common/auth/request.ts). */
  requestDigest: string;
  /** Id of the policy rule that asked for approvals. */
  rule: string;
  threshold: number;
  approvers: string[];
  requester: string;
  createdAt: number;
  expiresAt: number;
  approvedBy: string[];
  rejectedBy: string | null;
  consumedAt: number | null;
  /**
   * The request as the enclave received it, so approvers can recompute the
   * digest themselves; params as canonical JSON text (keeps the sealed state
   * shallow whatever the params' depth).
   */
  request: { method: string; paramsJson: string } | null;
}

export interface ApprovalsState {
  v: 1;
  records: ApprovalRecord[];
}

export interface ApprovalRequest {
  requestDigest: string;
  rule: string;
  threshold: number;
  approvers: readonly string[];
  requester: string;
  ttlSeconds: number;
  request?: { method: string; params: unknown };
}

export function approvalStatus(r: ApprovalRecord, now: number): ApprovalStatus {
  if (r.consumedAt !== null) return 'consumed';
  if (r.rejectedBy !== null) return now >= r.expiresAt ? 'expired' : 'rejected';
  if (now >= r.expiresAt) return 'expired';
  return r.approvedBy.length >= r.threshold ? 'approved' : 'pending';
}

/** Whether the record approves this very request: its digest, rule and requester. */
function isFor(r: ApprovalRecord, m: { requestDigest: string; rule: string; requester: string }): boolean {
  return r.requestDigest === m.requestDigest && r.rule === m.rule && r.requester === m.requester;
}

export interface ApprovalBookOptions {
  principals: PrincipalRegistry;
  now: () => number;
  maxRecords?: number;
  maxPendingPerRequester?: number;
  newId?: () => string;
}

export class ApprovalBook {
  readonly #records = new Map<string, ApprovalRecord>();
  readonly #principals: PrincipalRegistry;
  readonly #now: () => number;
  readonly #max: number;
  readonly #maxPerRequester: number;
  readonly #newId: () => string;

  constructor(o: ApprovalBookOptions, state?: ApprovalsState) {
    this.#principals = o.principals;
    this.#now = o.now;
    this.#max = o.maxRecords ?? DEFAULT_MAX_APPROVALS;
    this.#maxPerRequester = o.maxPendingPerRequester ?? DEFAULT_MAX_PENDING_PER_REQUESTER;
    this.#newId = o.newId ?? (() => `apr_${toBase64Url(randomBytes(16))}`);
    if (state !== undefined) for (const r of checkApprovalsState(state).records) this.#records.set(r.approvalId, r);
  }

  /** Drops records whose approval window has passed: they can no longer change anything. */
  prune(now = this.#now()): void {
    for (const [id, r] of this.#records) if (now >= r.expiresAt) this.#records.delete(id);
  }

  /**
   * The decision point for a request the policy says needs approvals: the
   * live record for (digest, rule, requester) if there is one — approved
   * (sign, then consume), pending (answer -32010 again with the same id) —
   * or a new pending one. A vetoed request stays refused until it expires.
   */
  authorize(req: ApprovalRequest): ApprovalRecord {
    const now = this.#now();
    for (const r of this.#records.values()) {
      if (r.requestDigest !== req.requestDigest || r.rule !== req.rule || r.requester !== req.requester) continue;
      // Restored from sealed state, which holds digests, not requests: the identical request just
      // arrived (same digest), so approvers can be shown it again.
      if (r.request === null && req.request !== undefined) r.request = { method: req.request.method, paramsJson: canonicalRequestJson(req.request.params === undefined ? null : req.request.params) };
      const s = approvalStatus(r, now);
      if (s === 'approved' || s === 'pending') return copy(r);
      if (s === 'rejected') throw new ApprovalError('APPROVAL_REJECTED', `request was rejected by ${r.rejectedBy}`, { approvalId: r.approvalId, hint: `a new approval can be requested after ${r.expiresAt}` });
    }
    return this.#create(req, now);
  }

  #create(req: ApprovalRequest, now: number): ApprovalRecord {
    if (!Number.isSafeInteger(req.threshold) || req.threshold < 1) throw new ApprovalError('APPROVAL_IMPOSSIBLE', 'the threshold must be a positive integer');
    if (!Number.isSafeInteger(req.ttlSeconds) || req.ttlSeconds < 1) throw new ApprovalError('APPROVAL_IMPOSSIBLE', 'the approval lifetime must be a positive number of seconds');
    const approvers = [...new Set(req.approvers)];
    const eligible = approvers.filter((a) => a !== req.requester && this.#principals.has(a));
    if (eligible.length < req.threshold) {
      throw new ApprovalError('APPROVAL_IMPOSSIBLE', `rule ${req.rule} needs ${req.threshold} approvals but only ${eligible.length} approvers other than ${req.requester} exist`, {
        hint: 'the requester cannot approve its own request',
      });
    }
    this.prune(now);
    if (this.#records.size >= this.#max) throw new ApprovalError('APPROVAL_BOOK_FULL', `too many live approvals (${this.#max})`, { hint: 'resolve or let pending approvals expire' });
    let mine = 0;
    for (const r of this.#records.values()) if (r.requester === req.requester && approvalStatus(r, now) === 'pending') mine++;
    if (mine >= this.#maxPerRequester) throw new ApprovalError('APPROVAL_BOOK_FULL', `${req.requester} has ${mine} pending approvals already`, { hint: 'resolve or let them expire' });
    const r: ApprovalRecord = {
      approvalId: this.#newId(),
      requestDigest: req.requestDigest,
      rule: req.rule,
      threshold: req.threshold,
      approvers,
      requester: req.requester,
      createdAt: now,
      expiresAt: now + req.ttlSeconds,
      approvedBy: [],
      rejectedBy: null,
      consumedAt: null,
      request: req.request === undefined ? null : { method: req.request.method, paramsJson: canonicalRequestJson(req.request.params === undefined ? null : req.request.params) },
    };
    if (this.#records.has(r.approvalId)) throw new ApprovalError('APPROVAL_BOOK_FULL', 'approval id collision');
    this.#records.set(r.approvalId, r);
    return copy(r);
  }

  approve(approvalId: string, approver: string, signature: string, webauthn?: WebAuthnAssertion): ApprovalRecord {
    return this.#decide(approvalId, approver, 'approve', signature, webauthn);
  }

  reject(approvalId: string, approver: string, signature: string, webauthn?: WebAuthnAssertion): ApprovalRecord {
    return this.#decide(approvalId, approver, 'reject', signature, webauthn);
  }

  #decide(approvalId: string, approver: string, decision: ApprovalDecision, signature: string, webauthn: WebAuthnAssertion | undefined): ApprovalRecord {
    const now = this.#now();
    // The same approver's veto once more (its first answer lost on the way, e.g. a fleet race the
    // parent then retried): answered as the first, once its signature verifies; not APPROVAL_REJECTED.
    const prior = decision === 'reject' && typeof approvalId === 'string' ? this.#records.get(approvalId) : undefined;
    const r = prior !== undefined && prior.rejectedBy === approver && now < prior.expiresAt ? prior : this.#live(approvalId, now);
    if (approver === r.requester) throw new ApprovalError('APPROVAL_SELF', `${approver} requested this and cannot ${decision} it`, { approvalId, hint: 'separation of duties: another approver must decide' });
    if (!r.approvers.includes(approver) || !this.#principals.has(approver)) {
      throw new ApprovalError('APPROVAL_NOT_APPROVER', `${JSON.stringify(approver.slice(0, 64))} is not an approver of rule ${r.rule}`, { approvalId });
    }
    let ok: boolean;
    try {
      // v2 names the requester and rule the approver saw, so it verifies only against this
      // approval's own; v1 (tools from before v2) names neither and is still accepted.
      const m = { approvalId, approver, decision, requestDigest: r.requestDigest };
      ok = this.#principals.verify(approver, approvalMessage({ ...m, requester: r.requester, rule: r.rule }), signature, webauthn) || this.#principals.verify(approver, approvalMessageV1(m), signature, webauthn);
    } catch (e) {
      if (e instanceof AuthError) throw new ApprovalError('APPROVAL_BAD_SIGNATURE', `malformed ${decision} signature: ${e.message}`, { approvalId, cause: e });
      throw e;
    }
    if (!ok) throw new ApprovalError('APPROVAL_BAD_SIGNATURE', `the signature is not ${approver}'s ${decision} of request ${r.requestDigest}`, { approvalId, hint: `sign the approval message for this approval id and digest, requested by ${r.requester} under rule ${r.rule} (docs/principals.md); a signature naming another requester or rule is refused` });
    if (decision === 'reject') r.rejectedBy = approver;
    else if (!r.approvedBy.includes(approver)) r.approvedBy.push(approver);
    return copy(r);
  }

  /** A record that can still be decided on; the specific refusal otherwise. */
  #live(approvalId: string, now: number): ApprovalRecord {
    const r = typeof approvalId === 'string' ? this.#records.get(approvalId) : undefined;
    if (!r) throw new ApprovalError('APPROVAL_UNKNOWN', `no approval ${JSON.stringify(String(approvalId).slice(0, 64))}`);
    const s = approvalStatus(r, now);
    if (s === 'expired') throw new ApprovalError('APPROVAL_EXPIRED', `approval ${approvalId} expired at ${r.expiresAt}`, { approvalId, hint: 'submit the request again for a new approval' });
    if (s === 'rejected') throw new ApprovalError('APPROVAL_REJECTED', `approval ${approvalId} was rejected by ${r.rejectedBy}`, { approvalId });
    if (s === 'consumed') throw new ApprovalError('APPROVAL_CLOSED', `approval ${approvalId} was already used to sign`, { approvalId });
    return r;
  }

  /**
   * Marks an approved record used. Call it when the enclave signs the
   * request; the digest, rule and requester must be the approved ones.
   */
  consume(approvalId: string, match: { requestDigest: string; rule: string; requester: string }): ApprovalRecord {
    const now = this.#now();
    // The signature exists, so an approved record whose expiry passed while the worker signed (it
    // was checked when the request was decided) is marked used before the refusal: left "approved",
    // a clock that then stepped back — or another fleet instance whose clock is behind — signed it
    // again (review finding: enclave/auth/time-review.test.ts).
    const known = typeof approvalId === 'string' ? this.#records.get(approvalId) : undefined;
    if (known !== undefined && now >= known.expiresAt && approvalStatus(known, known.expiresAt - 1) === 'approved' && isFor(known, match)) {
      known.consumedAt = now;
      throw new ApprovalError('APPROVAL_EXPIRED', `approval ${approvalId} expired at ${known.expiresAt}; marked used, as its signature exists`, { approvalId });
    }
    const r = this.#live(approvalId, now);
    if (!isFor(r, match)) {
      throw new ApprovalError('APPROVAL_NOT_READY', `approval ${approvalId} is for another request`, { approvalId });
    }
    if (approvalStatus(r, now) !== 'approved') throw new ApprovalError('APPROVAL_NOT_READY', `approval ${approvalId} has ${r.approvedBy.length} of ${r.threshold} approvals`, { approvalId });
    r.consumedAt = now;
    return copy(r);
  }

  get(approvalId: string): ApprovalRecord {
    const r = typeof approvalId === 'string' ? this.#records.get(approvalId) : undefined;
    if (!r) throw new ApprovalError('APPROVAL_UNKNOWN', `no approval ${JSON.stringify(String(approvalId).slice(0, 64))}`);
    return copy(r);
  }

  /** Whether this book holds the approval (no copy: the fleet take-over asks it per record). */
  has(approvalId: string): boolean {
    return this.#records.has(approvalId);
  }

  list(): ApprovalRecord[] {
    return [...this.#records.values()].map(copy);
  }

  status(approvalId: string): ApprovalStatus {
    return approvalStatus(this.get(approvalId), this.#now());
  }

  /**
   * Fleet take-over (enclave/policy/durable.ts): folds another enclave's book into this one
   * instead of replacing it, so that no record it is handed makes a use or a veto here undone —
   * a record this enclave used to sign stays used. Per approval in both: votes are the union, a
   * rejection or a use in either book stands. Records only in `state` are added. Records only
   * here stay when used or rejected; the others go, as the replaced book dropped them: they are
   * entries whose record never reached the store (their -32010 was withheld), and keeping one
   * would answer the requester's resubmission with it instead of the fleet's entry its approvers
   * approved. Dropping those makes nothing signable. Returns the ids added and dropped.
   */
  merge(state: ApprovalsState): { added: string[]; dropped: string[] } {
    const taken = checkApprovalsState(state).records;
    const added: string[] = [];
    const dropped: string[] = [];
    const inTaken = new Set(taken.map((t) => t.approvalId));
    for (const [id, r] of this.#records) {
      if (inTaken.has(id) || r.consumedAt !== null || r.rejectedBy !== null) continue;
      this.#records.delete(id);
      dropped.push(id);
    }
    for (const t of taken) {
      const r = this.#records.get(t.approvalId);
      if (!r) {
        this.#records.set(t.approvalId, t);
        added.push(t.approvalId);
        continue;
      }
      // Ids are random per request: the same id is the same request, the same digest, rule and approvers.
      if (r.requestDigest !== t.requestDigest || r.rule !== t.rule || r.requester !== t.requester) continue;
      for (const a of t.approvedBy) if (!r.approvedBy.includes(a) && r.approvers.includes(a)) r.approvedBy.push(a);
      r.rejectedBy ??= t.rejectedBy;
      r.consumedAt ??= t.consumedAt;
      r.request ??= t.request;
    }
    return { added, dropped };
  }

  export(): ApprovalsState {
    this.prune();
    return { v: 1, records: this.list() };
  }
}

function copy(r: ApprovalRecord): ApprovalRecord {
  return { ...r, approvers: [...r.approvers], approvedBy: [...r.approvedBy], request: r.request === null ? null : { method: r.request.method, paramsJson: r.request.paramsJson } };
}

const HEX64 = /^[0-9a-f]{64}$/;
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256;
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Checks restored approval state member by member; anything unexpected refuses the whole state. */
export function checkApprovalsState(v: unknown): ApprovalsState {
  const bad = (why: string): never => {
    throw new ApprovalError('APPROVAL_STATE_INVALID', `restored approval state is invalid: ${why}`);
  };
  if (typeof v !== 'object' || v === null || (v as { v?: unknown }).v !== 1 || !Array.isArray((v as { records?: unknown }).records)) bad('expected { v: 1, records: [...] }');
  const records = (v as { records: unknown[] }).records;
  const ids = new Set<string>();
  records.forEach((x, i) => {
    const r = x as Partial<ApprovalRecord>;
    if (typeof r !== 'object' || r === null) bad(`records[${i}] is not an object`);
    if (!isStr(r.approvalId) || ids.has(r.approvalId)) bad(`records[${i}].approvalId`);
    ids.add(r.approvalId!);
    if (typeof r.requestDigest !== 'string' || !HEX64.test(r.requestDigest)) bad(`records[${i}].requestDigest`);
    if (!isStr(r.rule) || !isStr(r.requester)) bad(`records[${i}].rule/requester`);
    if (!isInt(r.threshold) || r.threshold < 1) bad(`records[${i}].threshold`);
    if (!isInt(r.createdAt) || !isInt(r.expiresAt)) bad(`records[${i}] times`);
    if (!Array.isArray(r.approvers) || !r.approvers.every(isStr)) bad(`records[${i}].approvers`);
    if (!Array.isArray(r.approvedBy) || !r.approvedBy.every((a) => isStr(a) && r.approvers!.includes(a) && a !== r.requester)) bad(`records[${i}].approvedBy`);
    if (r.rejectedBy !== null && !isStr(r.rejectedBy)) bad(`records[${i}].rejectedBy`);
    if (r.consumedAt !== null && !isInt(r.consumedAt)) bad(`records[${i}].consumedAt`);
    if (r.request !== null && (typeof r.request !== 'object' || !isStr(r.request?.method) || typeof r.request.paramsJson !== 'string')) bad(`records[${i}].request`);
  });
  return { v: 1, records: records.map((r) => copy(r as ApprovalRecord)) };
}
