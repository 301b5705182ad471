/**
 * Quorum approvals on the signing path (issue 9 §5), around the policy gate.
 *
 * The digest an approval covers is computed by the enclave over the request *as the enclave
 * signs it* — method = the sign op, params = {keyId, request} — with the policy hash as
 * audience (common/auth/request.ts `requestDigest`). The approval view carries that request,
 * so `enclave-signer approve` recomputes the digest itself; the decoded intent shown next to
 * it was built inside the enclave from the same parsed value the worker will sign. Resubmitting
 * the identical JSON-RPC request gives the same enclave request (the parent's translation is
 * deterministic), hence the same digest, and signs once; any change is another digest.
 */
import { requestDigest } from '../../common/auth/request.js';
import { ApprovalBook, approvalStatus, type ApprovalRecord, type ApprovalsState } from '../auth/approvals.js';
import { approvalView, type ApprovalView } from '../auth/approval-required.js';
import { ApprovalError } from '../auth/errors.js';
import { PrincipalRegistry } from '../auth/principals.js';
import { SignerError } from '../../common/errors.js';
import { ruleById } from './evaluate.js';
import type { PolicyGate, Ticket } from './gate.js';
import type { Intent } from './intent.js';

/** -32010 at the parent: data carries approvalId, requestDigest, rule, threshold, approvers, expiresAt. */
export class ApprovalRequiredError extends SignerError {
  readonly wireData: { approvalId: string; requestDigest: string; rule: string; threshold: number; approvers: string[]; expiresAt: number };
  constructor(r: ApprovalRecord) {
    const eligible = r.approvers.filter((a) => a !== r.requester);
    super('APPROVAL_REQUIRED', `approval required: rule ${r.rule} needs ${r.threshold} of ${eligible.join(', ')} (${r.approvedBy.length} so far)`, {
      hint: `approvers run: enclave-signer approve ${r.approvalId} --socket S --principal NAME --key KEY.pem; then resubmit the identical request`,
    });
    this.wireData = { approvalId: r.approvalId, requestDigest: r.requestDigest, rule: r.rule, threshold: r.threshold, approvers: eligible, expiresAt: r.expiresAt };
  }
}

/** ApprovalError with its approval id on the wire (data.approvalId). */
function withWireData(e: unknown): unknown {
  if (e instanceof ApprovalError && e.approvalId !== undefined) Object.defineProperty(e, 'wireData', { value: { approvalId: e.approvalId } });
  return e;
}

/** bigints → decimal strings: the intent as JSON for approvers. */
export function intentJson(i: Intent): unknown {
  return JSON.parse(JSON.stringify(i, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

/** Fleet scope: a pending request up to this size (JSON) is sealed with the shared approval book. */
export const SHARED_REQUEST_BYTES = 8 * 1024;

/** The approval record's rule id for a request held by the restart guard (reserved in policies). */
export const RESTART_GUARD_RULE = 'restart-guard';

/** What a used approval's signature answered (kept to answer the identical request again: `replayable`). */
export interface UsedAnswer {
  result: unknown;
  signer: unknown;
  /** The approval's rule: the record of the answer given again names it. */
  rule: string;
  /** The key it signed with and who asked: a request on another key or by another principal is not looked at further. */
  keyId: string | null;
  principal: string;
}

/** Fleet scope: the identical request of an approval used here, whose use no record taken over shows yet. */
export class ReplayedAnswer extends Error {
  constructor(readonly answer: UsedAnswer) {
    super('the answer of an approval used here is given again');
  }
}

/** Answers kept for `replayable`; beyond it the oldest go (their requests then need approval again). */
const MAX_USED_ANSWERS = 256;

/** What the approvals gate needs of the durable state for the restart guard (durable.ts). */
export interface RestartGuardState {
  pending(): boolean;
  clear(): void;
}

export interface ApprovalsGate {
  readonly book: ApprovalBook;
  /** Set once the durable state exists (it is built on this gate). */
  restartGuard: RestartGuardState | undefined;
  /** Replaces the book with restored (sealed) state; the decoded intents are restored with it. */
  restore(state: ApprovalsState, intents: Record<string, unknown>): void;
  /** Fleet take-over: folds another enclave's book into this one (ApprovalBook.merge). */
  merge(state: ApprovalsState, intents: Record<string, unknown>): void;
  /** The state to seal: the book, and in fleet scope (`shared`) the small requests and their intents. */
  export(shared?: boolean): { approvals: ApprovalsState; intents: Record<string, unknown> };
  /**
   * Decides a request: a ticket to sign (and, if approvals were used, the record to consume
   * once signed), or throws POLICY_DENIED / APPROVAL_REQUIRED / APPROVAL_*.
   */
  authorize(req: { op: string; keyId: string | null; request: unknown; intent: Intent; principal: string }): { ticket: Ticket; approval?: ApprovalRecord };
  /** After the signature exists; `answer` is what it answered (fleet scope keeps it: `replayable`). */
  consumed(approval: ApprovalRecord, answer?: UsedAnswer): void;
  /**
   * Fleet scope: the answer this enclave gave under an approval it used, when the identical
   * request (op, key, request, requester) comes again and no record taken over since shows that
   * use. A take-over keeps a use (ApprovalBook.merge: the host may have released it), so the
   * identical request would otherwise need approvers again whenever the parent lost the store's
   * race and decides it again. Giving the same answer again signs nothing new and uses nothing
   * again. Not for rules with a window: the answer was decided on counters that the record taken
   * over has since added to, so it is decided again (and asks for approval).
   */
  replayable(req: { op: string; keyId: string | null; request: unknown; principal: string }): UsedAnswer | undefined;
  /** The signature never came: the approval stays approved for the next identical request. */
  released(approval: ApprovalRecord): void;
  /** The policy's principals, built once: the request verifier uses the same registry. */
  readonly principals: PrincipalRegistry;
  view(approvalId: string): ApprovalView & { intent: unknown };
  list(): (ApprovalView & { intent: unknown })[];
  approve(p: { approvalId: string; approver: string; signature: string; webauthn?: { authenticatorData: string; clientDataJSON: string } }, decision: 'approve' | 'reject'): ApprovalView & { intent: unknown };
}

export function createApprovalsGate(gate: PolicyGate): ApprovalsGate {
  const principals = new PrincipalRegistry(gate.policy.principals);
  let book = new ApprovalBook({ principals, now: gate.now });
  /** The decoded intent per approval (what approvers are shown); dropped with the record. */
  const intents = new Map<string, unknown>();
  const withIntent = (v: ApprovalView) => ({ ...v, intent: intents.get(v.approvalId) ?? null });
  /** Approved records a signature is under way for: one approval signs once, even when resubmitted concurrently. */
  const inFlight = new Set<string>();
  const guardPolicy = gate.policy.restartGuard;
  let guardState: RestartGuardState | undefined;
  const fleet = gate.policy.stateScope === 'fleet';
  /** Fleet scope: approval id → what its use answered, while no record taken over shows the use. */
  const used = new Map<string, UsedAnswer>();

  return {
    principals,
    get restartGuard() {
      return guardState;
    },
    set restartGuard(g) {
      guardState = g;
    },
    get book() {
      return book;
    },
    restore(state, restoredIntents) {
      book = new ApprovalBook({ principals, now: gate.now }, state);
      intents.clear();
      used.clear();
      for (const r of book.list()) if (Object.hasOwn(restoredIntents, r.approvalId)) intents.set(r.approvalId, restoredIntents[r.approvalId]);
    },
    merge(state, takenIntents) {
      const { added, dropped } = book.merge(state);
      for (const id of dropped) intents.delete(id);
      // A record that shows a use is durable somewhere: its request is answered as any used approval's.
      for (const r of state.records) if (r.consumedAt !== null) used.delete(r.approvalId);
      for (const id of added) if (Object.hasOwn(takenIntents, id)) intents.set(id, takenIntents[id]);
    },
    // What is sealed: the records without their requests and no decoded intents. Requests can be
    // up to the signers' limits (a 512 KiB PSBT), and the sealed state travels with every
    // window-limited or approval answer under the bridge's 1 MiB frame: a few large pending
    // requests would otherwise block them all (test/faults/approval-book.test.ts). After a
    // restart the requester's identical resubmission brings request and intent back.
    //
    // Fleet scope (`shared`): an approver may reach any instance, which can only show what the
    // shared record holds, so requests (and their intents) up to SHARED_REQUEST_BYTES travel with
    // it; a larger one is shown on the instance it was made on, or after the identical resubmission.
    export(shared = false) {
      const approvals = book.export();
      if (!shared) return { approvals: { ...approvals, records: approvals.records.map((r) => ({ ...r, request: null })) }, intents: {} };
      const kept: Record<string, unknown> = {};
      const records = approvals.records.map((r) => {
        if (r.request === null || JSON.stringify(r.request).length > SHARED_REQUEST_BYTES) return { ...r, request: null };
        if (intents.has(r.approvalId)) kept[r.approvalId] = intents.get(r.approvalId);
        return r;
      });
      return { approvals: { ...approvals, records }, intents: kept };
    },
    authorize({ op, keyId, request, intent, principal }) {
      const d = gate.evaluate(intent, principal);
      // After a restart the guard holds the first request a guarded rule would sign (docs/principals.md).
      const guarded = d.outcome === 'signed' && d.rule !== null && guardPolicy !== undefined && guardPolicy.rules.has(d.rule) && guardState?.pending() === true;
      if (!guarded && (d.outcome !== 'pending' || !d.approvals || d.rule === null)) return { ticket: gate.authorize(intent, principal) };
      const need = guarded
        ? { rule: RESTART_GUARD_RULE, threshold: guardPolicy!.approvals.threshold, approvers: guardPolicy!.approvals.from, ttlSeconds: guardPolicy!.approvals.ttlSeconds }
        : { rule: d.rule!, threshold: d.approvals!.threshold, approvers: d.approvals!.approvers, ttlSeconds: d.approvals!.ttlSeconds };
      const params = keyId === null ? { request } : { keyId, request };
      const digest = requestDigest(gate.hash, op, params);
      let record: ApprovalRecord;
      try {
        record = book.authorize({ requestDigest: digest, rule: need.rule, threshold: need.threshold, approvers: need.approvers, requester: principal, ttlSeconds: need.ttlSeconds, request: { method: op, params } });
      } catch (e) {
        throw withWireData(e);
      }
      if (!intents.has(record.approvalId)) intents.set(record.approvalId, intentJson(intent));
      if (record.approvedBy.length < record.threshold) throw new ApprovalRequiredError(record);
      if (inFlight.has(record.approvalId)) throw withWireData(new ApprovalError('APPROVAL_CLOSED', `approval ${record.approvalId} is being used to sign right now`, { approvalId: record.approvalId }));
      // Approved: the engine decides again with the verified approvals (windows, deny rules still apply).
      // The guard's approvals are not the rule's: a guarded rule needs none, so it decides without them.
      const ticket = guarded ? gate.authorize(intent, principal) : gate.authorize(intent, principal, { approvedBy: record.approvedBy, rejectedBy: record.rejectedBy === null ? [] : [record.rejectedBy] });
      inFlight.add(record.approvalId);
      return { ticket, approval: record };
    },
    released(approval) {
      inFlight.delete(approval.approvalId);
    },
    consumed(approval, answer) {
      inFlight.delete(approval.approvalId);
      if (fleet && answer !== undefined) {
        used.set(approval.approvalId, answer);
        if (used.size > MAX_USED_ANSWERS) used.delete(used.keys().next().value as string);
      }
      // An approved request of a guarded rule (or held by the guard) was signed: the guard is satisfied.
      if (approval.rule === RESTART_GUARD_RULE || guardPolicy?.rules.has(approval.rule)) guardState?.clear();
      try {
        book.consume(approval.approvalId, { requestDigest: approval.requestDigest, rule: approval.rule, requester: approval.requester });
      } catch {
        // consumed concurrently or expired meanwhile: the signature already exists; nothing to undo
      }
    },
    replayable({ op, keyId, request, principal }) {
      if (used.size === 0) return undefined;
      // The digest (canonical JSON and a hash) only for a request on a key and by a principal that used an approval here.
      let candidate = false;
      for (const a of used.values()) if (a.keyId === keyId && a.principal === principal) candidate = true;
      if (!candidate) return undefined;
      const digest = requestDigest(gate.hash, op, keyId === null ? { request } : { keyId, request });
      const now = gate.now();
      for (const [id, answer] of used) {
        let r: ApprovalRecord;
        try {
          r = book.get(id);
        } catch {
          used.delete(id); // pruned: expired
          continue;
        }
        if (r.requestDigest !== digest || r.requester !== principal || approvalStatus(r, now) !== 'consumed' || now >= r.expiresAt) continue;
        if (r.rule === RESTART_GUARD_RULE || ruleById(gate.policy, r.rule)?.window !== undefined) return undefined;
        return answer;
      }
      return undefined;
    },
    view(approvalId) {
      try {
        return withIntent(approvalView(book.get(approvalId), gate.now()));
      } catch (e) {
        throw withWireData(e);
      }
    },
    list() {
      const now = gate.now();
      return book.list().map((r) => withIntent(approvalView(r, now)));
    },
    approve(p, decision) {
      try {
        const r = decision === 'approve' ? book.approve(p.approvalId, p.approver, p.signature, p.webauthn) : book.reject(p.approvalId, p.approver, p.signature, p.webauthn);
        return withIntent(approvalView(r, gate.now()));
      } catch (e) {
        throw withWireData(e);
      }
    },
  };
}
