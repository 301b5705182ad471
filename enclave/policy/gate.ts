/**
 * The policy engine as the running enclave uses it: the compiled policy (loaded once at boot,
 * from the measured image or the dev command), its hash, and the live window state.
 *
 * `authorize` evaluates an intent for a verified principal and, when it may be signed, returns
 * a ticket that *reserves* its place in the rule's window (so two concurrent requests cannot
 * both fit into the last slot). `commit` counts the ticket once the signature exists; `release`
 * drops a reservation whose signature never came (cancelled, expired, failed). Windows thus
 * count only what was signed.
 */
import { SignerError } from '../../common/errors.js';
import type { CompiledPolicy } from './document.js';
import { evaluate, recordReservation, ruleById, windowReservation, type Decision, type WindowReservation } from './evaluate.js';
import type { Intent, PolicyOp } from './intent.js';
import { OwnWindows } from './own-windows.js';
import { policyHash } from './policy-hash.js';
import { checkWindowState, emptyWindowState, type WindowState } from './windows.js';
import { ChurnMap } from '../../common/churn-map.js';

/** Where the policy came from: reported in the log and in `signer_status`. */
export type PolicySource = 'image' | 'file' | 'dev-default';

/** A refusal of the policy engine; `rule` (the deciding rule, or null) crosses the bridge as data.rule. */
export class PolicyDeniedError extends SignerError {
  readonly wireData: { rule: string | null };
  constructor(code: 'POLICY_DENIED' | 'POLICY_UNAVAILABLE', message: string, rule: string | null, opts: { cause?: unknown; hint?: string } = {}) {
    super(code, message, opts);
    this.wireData = { rule };
  }
}

export interface Ticket {
  readonly decision: Decision;
  readonly intent: Intent;
  readonly now: number;
  readonly principal: string;
}

export interface PolicyGateOptions {
  source: PolicySource;
  /** Ops refused before the engine runs (`enclave-signer enclave --deny-op`). */
  denyOps?: readonly PolicyOp[];
  /** Unix seconds; the enclave's own clock. */
  now?: () => number;
}

export interface PolicyGate {
  readonly policy: CompiledPolicy;
  /** SHA-256 of the canonical document, hex (signer_status policy.hash, attestation user_data). */
  readonly hash: string;
  readonly source: PolicySource;
  now(): number;
  /** Evaluates without reserving (approvals need the decision before anything is signed). */
  evaluate(intent: Intent, principal: string, approvals?: { approvedBy: readonly string[]; rejectedBy: readonly string[] }): Decision;
  /** Throws PolicyDeniedError unless the decision is `signed`; reserves the window slot. */
  authorize(intent: Intent, principal: string, approvals?: { approvedBy: readonly string[]; rejectedBy: readonly string[] }): Ticket;
  commit(t: Ticket): void;
  release(t: Ticket): void;
  /** The committed window state (what is sealed). */
  windows(): WindowState;
  restoreWindows(state: unknown): void;
  /** How many windowed signatures this enclave life committed (sealed as its count in `lives`). */
  readonly ownCount: number;
  /**
   * Fleet take-over: continue from a record's window totals, which count `includedOwn` of this
   * life's signatures; the rest of this life's are added back (./own-windows.ts).
   */
  adoptWindows(state: unknown, includedOwn: number): void;
}

export function createPolicyGate(policy: CompiledPolicy, opts: PolicyGateOptions): PolicyGate {
  const hash = policyHash(policy);
  const deny = new Set(opts.denyOps ?? []);
  // Never backwards within an enclave life. Every expiry the enclave keeps is checked on this clock
  // (signed requests and the replay cache, sessions, approvals, windows): a clock stepped back
  // (a dev/VM clock; Nitro's comes from the hypervisor) would otherwise make an expired request,
  // session or approval live again — e.g. a signed request whose replay-cache entry was pruned
  // while the clock was ahead was accepted twice (review finding, ./time-arith-review.test.ts).
  // Held at its high-water mark, time stands still instead: expiries stay expired, windows keep
  // counting; nothing that was refused becomes allowed.
  const raw = opts.now ?? (() => Math.floor(Date.now() / 1000));
  let highWater = -Infinity;
  const clock = (): number => {
    const t = raw();
    if (!Number.isFinite(t)) return t; // passed on as it is: the verifier refuses an unusable clock
    if (t > highWater) highWater = t;
    return highWater;
  };
  let committed: WindowState = emptyWindowState();
  // Only a fleet takes records over; an instance's windows are its own already.
  const own = policy.stateScope === 'fleet' ? new OwnWindows() : undefined;
  /**
   * Tickets in flight, each with the window reservation it holds (undefined: its rule has no
   * window). One in and out per signature: a ChurnMap, not a Map (common/churn-map.ts says why).
   */
  const open = new ChurnMap<Ticket, WindowReservation | undefined>();
  // In-flight window reservations by rule and key: a decision adds the ones of its own rule and
  // key to the committed usage (evaluate.ts windowMismatch) instead of replaying every
  // reservation into a copy of the state (that cost ~0.4 µs per request in flight, per decision).
  const byWindow = new Map<string, Set<WindowReservation>>();
  const slot = (ruleId: string, key: string) => `${ruleId}\u0000${key}`;
  const reservedIn = (ruleId: string, key: string) => byWindow.get(slot(ruleId, key));
  /** Ends a ticket's flight; returns its reservation, or undefined (no window, or not in flight). */
  const close = (t: Ticket): WindowReservation | undefined => {
    const r = open.get(t);
    open.delete(t);
    if (!r) return undefined;
    const set = byWindow.get(slot(r.ruleId, r.key));
    set?.delete(r);
    if (set?.size === 0) byWindow.delete(slot(r.ruleId, r.key));
    return r;
  };

  const decide = (intent: Intent, principal: string, approvals?: { approvedBy: readonly string[]; rejectedBy: readonly string[] }, now = clock()): Decision => {
    if (deny.has(intent.op)) return { outcome: 'refused', rule: '--deny-op', reason: `denied: ${intent.op} is disabled by the enclave's policy` };
    try {
      return evaluate(policy, intent, { principal, now, windows: committed, reserved: reservedIn, ...(approvals ? { approvals: approvals.approvedBy, rejections: approvals.rejectedBy } : {}) });
    } catch (e) {
      throw new PolicyDeniedError('POLICY_UNAVAILABLE', 'denied: the signing policy could not be evaluated', null, { cause: e });
    }
  };

  return {
    policy,
    hash,
    source: opts.source,
    now: clock,
    evaluate: (intent, principal, approvals) => decide(intent, principal, approvals),
    authorize(intent, principal, approvals) {
      const now = clock();
      const d = decide(intent, principal, approvals, now);
      if (d.outcome === 'signed') {
        const t: Ticket = { decision: d, intent, now, principal };
        const r = windowReservation(policy, d, intent, now);
        open.set(t, r);
        if (r) {
          const k = slot(r.ruleId, r.key);
          let set = byWindow.get(k);
          if (!set) byWindow.set(k, (set = new Set()));
          set.add(r);
        }
        return t;
      }
      if (d.outcome === 'pending') {
        throw new PolicyDeniedError('POLICY_DENIED', `denied: ${d.reason}`, d.rule, { hint: 'this request needs approvals (signer_getApproval / enclave-signer approve)' });
      }
      const msg = d.reason.startsWith('denied') ? d.reason : `denied: ${d.reason.replace(/^refused: /, '')}`;
      throw new PolicyDeniedError('POLICY_DENIED', msg, d.rule);
    },
    commit(t) {
      // The reservation made at the decision is what is counted (a ticket without one changes no
      // window; one already committed or released is no longer open and counts nothing).
      const r = close(t);
      if (r) {
        committed = recordReservation(committed, r);
        own?.record(r.ruleId, r.key, { t: r.t, value: r.value.toString(), amount: r.amount.toString() }, r.seconds);
      }
    },
    release(t) {
      close(t);
    },
    windows: () => committed,
    restoreWindows(state) {
      committed = checkWindowState(state);
    },
    get ownCount() {
      return own?.count ?? 0;
    },
    adoptWindows(state, includedOwn) {
      // A rule gone from the policy cannot be in a record sealed under its hash; 0 keeps nothing extra.
      if (!own) throw new SignerError('SEALED_STATE_SCOPE', 'this policy keeps its windows per instance; nothing is taken over');
      committed = own.onto(checkWindowState(state), includedOwn, (ruleId) => ruleById(policy, ruleId)?.window?.seconds ?? 0);
    },
  };
}
