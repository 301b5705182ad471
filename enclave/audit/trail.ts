/**
 * The running enclave's audit trail: opens the AuditLog when the parent shows
 * the stored head (`audit.open`), turns each decision into a signed record,
 * and keeps the most recent records so a parent that lost an answer (a killed
 * parent, a dropped connection, a cancelled request) can fetch the record
 * instead of leaving a gap (`audit.records`).
 *
 * Fail closed: until the log is open, and after it is closed, no decision
 * that needs a record is made (AUDIT_NOT_OPEN / AUDIT_KEY_CLOSED).
 */
import { SignerError } from '../../common/errors.js';
import { releasedResultDigest } from '../../common/audit/result.js';
import type { AuditEntry } from '../../common/audit/record.js';
import { AuditLog, type SignedRecord } from './log.js';

/** What a decision record says about the request: who asked, for what, on which key. */
export interface Decision {
  principal: string;
  op: string;
  keyId: string | null;
  requestDigest: Uint8Array;
  rule?: string | null;
}
import type { AttestRequest } from '../nsm/nsm.js';

/** How many recent records the enclave keeps for a parent to fetch again (bounded memory). */
export const RECENT_RECORDS = 4096;

export interface AuditTrailOptions {
  nsm: { attest(req: AttestRequest): Promise<Uint8Array> };
  /** Hash of the policy in force at boot (null: the builtin policy has no document to hash). */
  policyHash?: Uint8Array | null;
  now?: () => number;
}

/** A refusal that carries its own signed record: the parent persists it before relaying the error. */
export function withAuditRecord<E extends Error>(e: E, rec: SignedRecord | undefined): E {
  if (rec) Object.defineProperty(e, 'auditRecord', { value: rec.bytes, enumerable: false });
  return e;
}

export class AuditTrail {
  #log: AuditLog | undefined;
  #opening: Promise<AuditLog> | undefined;
  readonly #recent: SignedRecord[] = [];
  readonly #opts: AuditTrailOptions;

  constructor(opts: AuditTrailOptions) {
    this.#opts = opts;
  }

  get isOpen(): boolean {
    return this.#log !== undefined;
  }

  /** The log, or AUDIT_NOT_OPEN: nothing is decided without one. */
  log(): AuditLog {
    if (!this.#log) {
      throw new SignerError('AUDIT_NOT_OPEN', 'denied: the audit log is not open yet (the parent has not shown the enclave its audit head)', {
        hint: 'the parent opens it at boot (audit.open); retry once the parent is ready',
      });
    }
    return this.#log;
  }

  /**
   * Opens the log once per enclave life, continuing `head`. A second call (a
   * reconnecting or restarted parent) opens nothing: it answers the records
   * after the head that parent shows, so they can be stored late instead of
   * leaving a gap.
   */
  async open(head: Uint8Array | undefined, shownSeq: number | undefined): Promise<{ records: SignedRecord[]; auditKey: Uint8Array; opened: boolean; headSeq: number }> {
    if (this.#log) {
      const from = shownSeq === undefined ? 0 : shownSeq + 1;
      return { records: this.since(from), auditKey: this.#log.auditKey, opened: false, headSeq: this.#log.head().seq };
    }
    this.#opening ??= AuditLog.open({
      nsm: this.#opts.nsm,
      ...(head ? { lastRecord: head } : {}),
      policyHash: this.#opts.policyHash ?? null,
      ...(this.#opts.now ? { now: this.#opts.now } : {}),
    });
    let log: AuditLog;
    try {
      log = await this.#opening;
    } catch (e) {
      this.#opening = undefined;
      throw e;
    }
    // Two concurrent opens share one log: the first to get here keeps the hand-over.
    const first = this.#log === undefined;
    if (first) {
      this.#log = log;
      this.#keep(log.handover);
      // The policy in force is a decision of this enclave life too: recorded right after the hand-over.
      const policyHash = log.policyHash;
      const load = policyHash ? this.append({ kind: 'policy.load', decision: 'done', principal: null, policyHash }) : undefined;
      if (!load) return { records: [log.handover], auditKey: log.auditKey, opened: true, headSeq: log.handover.seq };
      return { records: [log.handover, load], auditKey: log.auditKey, opened: true, headSeq: load.seq };
    }
    return { records: this.since(shownSeq === undefined ? 0 : shownSeq + 1), auditKey: log.auditKey, opened: false, headSeq: log.head().seq };
  }

  /** Records this enclave still holds with seq ≥ from (at most `limit`): the last RECENT_RECORDS. */
  since(from: number, limit = RECENT_RECORDS): SignedRecord[] {
    return this.#recent
      .slice(-RECENT_RECORDS)
      .filter((r) => r.seq >= from)
      .slice(0, limit);
  }

  /** Appends one decision; throws (and nothing moves) when it cannot be recorded. */
  append(e: AuditEntry): SignedRecord {
    const rec = this.log().append(e);
    this.#keep(rec);
    return rec;
  }

  /**
   * A decision for a request the policy decides (a signature, or `signer_createKey`), allowed:
   * the record names the released result. `principal` is the verified caller (`host` when the
   * request was not signed); `keyId` is null for a key creation decided before the key exists.
   */
  signed(d: Decision, result: unknown): SignedRecord {
    return this.append({ kind: 'sign', decision: 'allowed', principal: d.principal, op: d.op, keyId: d.keyId, requestDigest: d.requestDigest, resultDigest: releasedResultDigest(result), rule: d.rule ?? null });
  }

  /**
   * A refused request. `rule` is the deciding policy rule, or for a refusal that is not the
   * policy's `error:<CODE>` (a blob that does not authenticate, a malformed or badly signed
   * request, a cancelled job). Never throws: a refusal stands whether or not it could be recorded.
   */
  denied(d: Decision & { rule: string }): SignedRecord | undefined {
    try {
      return this.append({ kind: 'sign', decision: 'denied', principal: d.principal, op: d.op, keyId: d.keyId, requestDigest: d.requestDigest, rule: d.rule.slice(0, 256) });
    } catch {
      return undefined;
    }
  }

  /** A request held for approvals (JSON-RPC -32010): recorded as pending, naming the rule. Never throws. */
  pending(d: Decision & { rule: string }): SignedRecord | undefined {
    try {
      return this.append({ kind: 'sign', decision: 'pending', principal: d.principal, op: d.op, keyId: d.keyId, requestDigest: d.requestDigest, rule: d.rule.slice(0, 256) });
    } catch {
      return undefined;
    }
  }

  /** A principal opened a session (kind session.open, done), or its open request was refused (denied, `error:<CODE>`; never throws). */
  sessionOpened(principal: string, requestDigest: Uint8Array): SignedRecord {
    return this.append({ kind: 'session.open', decision: 'done', principal, op: 'signer_openSession', requestDigest });
  }

  sessionRefused(principal: string, requestDigest: Uint8Array, rule: string): SignedRecord | undefined {
    try {
      return this.append({ kind: 'session.open', decision: 'denied', principal, op: 'signer_openSession', requestDigest, rule: rule.slice(0, 256) });
    } catch {
      return undefined;
    }
  }

  /** An approver's approval or veto that the enclave verified and counted. */
  approval(decision: 'approved' | 'rejected', approver: string, e: { op: string | null; keyId: string | null; requestDigest: Uint8Array | null; rule: string | null }): SignedRecord {
    return this.append({ kind: 'approval', decision, principal: approver, ...e });
  }

  #keep(r: SignedRecord): void {
    this.#recent.push(r);
    // Trimmed in one move per RECENT_RECORDS appends, not one per append (a 4,096-slot shift
    // on every decision); since() answers from the last RECENT_RECORDS only.
    if (this.#recent.length >= 2 * RECENT_RECORDS) this.#recent.splice(0, this.#recent.length - RECENT_RECORDS);
  }

  close(): void {
    this.#log?.close();
  }
}
