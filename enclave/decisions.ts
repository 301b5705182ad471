/**
 * What every deciding method of the enclave service shares (docs/policy.md, docs/principals.md,
 * docs/audit.md): the policy gate, the approval book, the durable (sealed) state, the audit
 * trail and the request verifier, with the few rules that tie them together — a decision needs
 * the durable state, a refusal is a record on the chain, a decision that changed the state
 * carries its sealed record, and fleet scope's take-overs make a decision stale.
 */
import type { JsonLike } from '../common/cbor-json.js';
import { SignerError } from '../common/errors.js';
import { asRecord, asString, onlyKeys } from '../common/protocol/enclave-api.js';
import { isSignMethod } from '../common/rpc/sign-call.js';
import { withAuditRecord, type AuditTrail } from './audit/trail.js';
import type { ApprovalRecord } from './auth/approvals.js';
import { SealedStateError } from './auth/errors.js';
import type { AuthenticatedRequest, RequestVerifier } from './auth/verify-request.js';
import type { KeyringSlot } from './keyring-slot.js';
import type { ApprovalsGate } from './policy/approvals-gate.js';
import type { DurableState } from './policy/durable.js';
import { ruleById } from './policy/evaluate.js';
import type { PolicyGate, Ticket } from './policy/gate.js';

/** Who decided, on what: the fields a refusal's audit record carries. */
export interface DecisionFacts {
  principal: string;
  op: string;
  keyId: string | null;
  requestDigest: Uint8Array;
}

/** The `rule` an audit record gives a refusal that no policy rule decided: `error:<CODE>`. */
export function errorRule(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  return `error:${typeof code === 'string' ? code : 'INTERNAL'}`;
}

export class Decisions {
  constructor(
    readonly policy: PolicyGate,
    readonly approvals: ApprovalsGate,
    readonly durable: DurableState,
    readonly trail: AuditTrail,
    readonly verifier: RequestVerifier,
    readonly slot: KeyringSlot,
  ) {}

  /**
   * Verifies a signed request (docs/principals.md): `auth` is { method, params, signerAuth } — the
   * JSON-RPC method and params exactly as the client sent them, and its signer_auth member.
   * `expect` is the enclave method it arrived on: `sign` takes the signing methods only.
   */
  authenticate(auth: unknown, expect: 'sign' | 'signer_createKey'): { method: string; params: unknown; request: AuthenticatedRequest } {
    const a = asRecord(auth, 'auth');
    onlyKeys(a, ['method', 'params', 'signerAuth'], 'auth');
    const method = asString(a.method, 'auth.method', 64);
    if (expect === 'sign' ? !isSignMethod(method) : method !== expect) {
      throw new SignerError('INVALID_PARAMS', `auth.method: ${JSON.stringify(method)} is not a method this enclave call signs`);
    }
    return { method, params: a.params, request: this.verifier.verify(method, a.params, a.signerAuth) };
  }

  /**
   * Decisions need the durable state: a refused record stops everything until an operator resolves
   * it, and an enclave holding a keyring decides only once the parent has handed back the keyring's
   * sealed state — a host that skipped `state.restore` would otherwise get fresh window counters
   * and no restart guard. Reads only (approval.get/list) and the approvals themselves call this; a
   * request that asks for a decision calls `readyToDecide`, which records the refusal.
   */
  stateReady(handed?: unknown): void {
    this.#stateUsable();
    // Fleet scope: the store's record, when the parent saw that it is not this enclave's latest.
    if (handed !== undefined) this.durable.handIn(handed);
  }

  /**
   * `stateReady` for a request that asks for a signature or a key: the audit log first (no log, no
   * decision), and a refusal for the state — a refused sealed record, or a host that asks before it
   * handed back the sealed state — is a denial on the chain like any other, so an auditor sees the
   * host's attempt (found in review: `sign` and `key.create` refused these with no record). `asked`
   * names the host as the principal: a signed request is not verified yet, so its id is not spent
   * and the principal can send it again once the state is back. A handed-in fleet record that is
   * stale or malformed (`durable.handIn`) is not a decision on the request: the parent reads the
   * store again and retries, as after a lost compare-and-swap.
   */
  readyToDecide(handed: unknown, asked: DecisionFacts): void {
    this.trail.log();
    try {
      this.#stateUsable();
    } catch (e) {
      throw this.refusalRecorded(e, asked);
    }
    if (handed !== undefined) this.durable.handIn(handed);
  }

  #stateUsable(): void {
    this.durable.check();
    if (this.slot.keyring && !this.durable.restored) {
      throw new SealedStateError('SEALED_STATE_NOT_RESTORED', 'the sealed state of the keyring has not been handed back (state.restore): nothing is signed until it is', {
        hint: 'the parent restores it right after unlocking the keyring; restart the parent',
      });
    }
  }

  /**
   * Every refusal is a decision on the chain: pending (approval required) or denied, naming the
   * deciding rule or `error:<CODE>`. `decidedIn` is the durable epoch the decision was taken in,
   * when the refusal may reach here after other requests ran (the signing path awaits the pool).
   */
  refusalRecorded(e: unknown, d: DecisionFacts, decidedIn = this.durable.epoch): Error {
    const code = (e as { code?: unknown }).code;
    const rule = (e as { wireData?: { rule?: unknown } }).wireData?.rule;
    if (code === 'APPROVAL_REQUIRED' && typeof rule === 'string') {
      // Fleet scope: decided on a state taken over since (durable.handIn). The book keeps the entry
      // through the take-over (it merges), but the decision was made on the counters and book
      // before it: refused as stale and decided again, like a reservation (docs/scale-out.md "In flight").
      if (this.durable.epoch !== decidedIn) return this.refusalRecorded(staleUnderRequest(), d);
      return this.#withPendingState(withAuditRecord(e as Error, this.trail.pending({ ...d, rule })));
    }
    return withAuditRecord(e as Error, this.trail.denied({ ...d, rule: typeof rule === 'string' ? rule : errorRule(e) }));
  }

  /** Whether a decision changes the durable state once counted: it used an approval, or its rule has a window. */
  changesState(ticket: Ticket | undefined, approval: ApprovalRecord | undefined): boolean {
    const rule = ticket?.decision.rule;
    return approval !== undefined || (typeof rule === 'string' && ruleById(this.policy.policy, rule)?.window !== undefined);
  }

  /** A result with the sealed record of the state it changed (the parent stores it before answering). */
  withSealed<T extends object>(result: T): T & { sealed?: unknown } {
    const sealed = this.durable.seal();
    return sealed ? { ...result, ...this.sealedMembers(sealed) } : result;
  }

  /** `sealed`, and in fleet scope `sealedLineage` (what the parent's compare-and-swap needs). */
  sealedMembers(sealed: unknown): { sealed: JsonLike; sealedLineage?: JsonLike } {
    const lineage = this.durable.lineage;
    return { sealed: sealed as JsonLike, ...(lineage ? { sealedLineage: lineage as unknown as JsonLike } : {}) };
  }

  /**
   * A request that now waits for approvals opened (or re-attached) an entry in the approval book.
   * The refusal carries the sealed record (`sealedState`, not shown to clients); the parent stores
   * it before it relays the -32010, so the approval id the requester hands its approvers names an
   * entry every later life of this enclave knows (and, in fleet scope, every other instance).
   * Per instance it once waited for the next state change: an enclave killed before one lost the
   * entry its audit chain had recorded as pending, and approvers got APPROVAL_UNKNOWN
   * (test/faults/approval-restart.test.ts; the CI soak found it).
   */
  #withPendingState<E extends Error>(e: E): E {
    const sealed = this.durable.seal();
    if (sealed) Object.defineProperty(e, 'sealedState', { value: this.sealedMembers(sealed), enumerable: false });
    return e;
  }
}

/** Fleet scope: the state was taken over while this request held a reservation (docs/scale-out.md). */
export function staleUnderRequest(): SealedStateError {
  return new SealedStateError('SEALED_STATE_STALE', 'the fleet state changed while this request was decided: it was not counted and nothing is released', {
    hint: "retry: the request is decided again on the fleet's current counters",
  });
}
