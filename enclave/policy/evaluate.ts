/**
 * The evaluator. Order (docs/policy.md):
 *   1. any matching deny → refused;
 *   2. else the first matching allow whose approvals are satisfied (or that needs none) → signed;
 *   3. else the first matching allow that needs approvals → pending;
 *   4. else refused (deny by default).
 *
 * Allow rules are read narrowly (fail closed): a matcher that does not apply to the intent does
 * not match; raw digests and eth_sign need a rule that names the op; contract creation needs
 * `contractCreation: true`; a rule with `to` and no `erc20`/`calls` matches only empty calldata;
 * token rights (permits, Permit2, Seaport offers) need `typedData.permitSpenders`; EIP-7702
 * delegations need `delegates`; a window that would overflow makes its rule not match.
 * Deny rules are read broadly: `to` matches any counterparty (recipient, spender, delegate).
 *
 * Pure: the caller passes the verified principal, the verified approvals, the clock and the
 * window state; `recordSigned` returns the next window state once a signature was produced.
 */
import { callSelector } from './calldata.js';
import type { CompiledPolicy, CompiledRule, Erc20Function } from './document.js';
import {
  intentChainId,
  intentCounterparties,
  intentDelegates,
  intentValueWei,
  RAW_OPS,
  type DecodedCall,
  type Intent,
  type TransactionIntent,
} from './intent.js';
import { candidateRules } from './rule-index.js';
import { recordWindow, windowUsage, type WindowState } from './windows.js';

export interface EvaluationContext {
  /** The verified caller: a declared principal, or "host" for the unauthenticated socket. */
  principal: string;
  /** Principals whose approval signatures over this request's digest were verified. */
  approvals?: readonly string[];
  /** Principals who rejected this request (one listed approver's rejection vetoes). */
  rejections?: readonly string[];
  /** Unix seconds. */
  now: number;
  windows?: WindowState;
  /**
   * Signatures already allowed under a window rule and still in flight (./gate.ts): they count
   * against the window as if committed, so concurrent requests cannot overrun it together.
   */
  reserved?: (ruleId: string, key: string) => Iterable<WindowReservation> | undefined;
  /** Collect a per-rule trace (policy explain); off on the signing path. */
  explain?: boolean;
}

export type Outcome = 'signed' | 'pending' | 'refused';

export interface RuleTrace {
  rule: string;
  effect: 'allow' | 'deny';
  matched: boolean;
  reason: string;
}

export interface Decision {
  outcome: Outcome;
  /** The deciding rule's id (null when nothing matched: deny by default). */
  rule: string | null;
  reason: string;
  /** For pending (and signed-with-approvals) decisions. */
  approvals?: { threshold: number; approvers: readonly string[]; approvedBy: string[]; ttlSeconds: number };
  trace?: RuleTrace[];
}

const NO = (r: string): string => r;
/** A reason with amounts in it: formatting bigints costs more than the check, so only when explaining. */
const CAP = (ctx: EvaluationContext, short: string, long: () => string): string => (ctx.explain ? long() : short);

function txOf(i: Intent): TransactionIntent | undefined {
  return i.op === 'eth_signTransaction' ? i.tx : undefined;
}

/** Why an allow rule does not match (null = it matches, before windows and approvals). */
function allowMismatch(r: CompiledRule, i: Intent, ctx: EvaluationContext): string | null {
  if (r.ops ? !r.ops.has(i.op) : RAW_OPS.includes(i.op)) {
    return r.ops ? NO(`op ${i.op} not in ops`) : NO(`${i.op} signs opaque bytes and needs a rule that names it in ops`);
  }
  if (r.principals && !r.principals.has(ctx.principal)) return NO(`caller ${ctx.principal} not in principals`);
  if (r.keys && (i.keyId === undefined || !r.keys.has(i.keyId.toLowerCase()))) return NO('key not in keys');
  if (r.chainIds) {
    const c = intentChainId(i);
    if (c === undefined || !r.chainIds.has(c)) return NO(`chain ${c ?? 'none'} not in chainIds`);
  }
  const tx = txOf(i);
  if (tx) {
    if (tx.contractCreation !== r.contractCreation) {
      return tx.contractCreation ? NO('contract creation needs a rule with contractCreation: true') : NO('rule allows only contract creation');
    }
    if (r.to && (tx.to === null || !r.to.has(tx.to))) return NO('to not in the rule\'s to list');
    if (r.to && !r.erc20 && !r.calls && tx.call.kind !== 'none') return NO('a rule with `to` and no erc20/calls matches only plain value transfers (empty calldata)');
    if (r.maxValueWei !== undefined && tx.value > r.maxValueWei) return CAP(ctx, 'value above maxValueWei', () => `value ${tx.value} wei above maxValueWei ${r.maxValueWei}`);
    if (r.maxFeeWei !== undefined && tx.fees.maxFeeWei > r.maxFeeWei) return CAP(ctx, 'max fee above maxFeeWei', () => `max fee ${tx.fees.maxFeeWei} wei above maxFeeWei ${r.maxFeeWei}`);
    if (r.erc20) {
      const c = tx.call;
      const fn = erc20Function(c);
      if (fn === undefined || !isErc20Call(c)) return NO('calldata is not an exact ERC-20 transfer/approve/transferFrom/mint/burn');
      if (!r.erc20.functions.has(fn)) return NO(`ERC-20 ${fn} not in erc20.functions`);
      if (tx.to === null || !r.erc20.tokens.has(tx.to)) return NO('token not in erc20.tokens');
      if (tx.value !== 0n) return NO('an ERC-20 call that also sends ether');
      if (c.kind === 'erc20-approve') {
        if (!r.erc20.spenders?.has(c.spender)) return NO('approve spender not in erc20.spenders');
      } else if (c.kind === 'erc20-burn') {
        if (r.erc20.recipients) return NO('a burn has no recipient: a rule with erc20.recipients does not match it');
      } else if (r.erc20.recipients && !r.erc20.recipients.has(c.to)) return NO('token recipient not in erc20.recipients');
      if (r.erc20.maxAmount !== undefined && c.amount > r.erc20.maxAmount) return CAP(ctx, 'token amount above erc20.maxAmount', () => `token amount ${c.amount} above erc20.maxAmount ${r.erc20!.maxAmount}`);
    }
    if (r.calls) {
      const sel = callSelector(tx.call);
      if (tx.to === null || !r.calls.contracts.has(tx.to)) return NO('contract not in calls.contracts');
      if (sel === null || !r.calls.selectors.has(sel)) return NO('selector not in calls.selectors');
    }
  } else if (r.to || r.erc20 || r.calls || r.maxFeeWei !== undefined || r.contractCreation) {
    return NO('transaction matchers (to/erc20/calls/maxFeeWei/contractCreation) match only eth_signTransaction');
  }
  const delegates = intentDelegates(i);
  // Like erc20/calls, `delegates` describes what the request does: it matches delegations only.
  if (r.delegates !== undefined && delegates.length === 0) return NO('the rule lists delegates, so it matches only EIP-7702 delegations');
  if (delegates.length > 0) {
    if (r.delegates === undefined) return NO('an EIP-7702 delegation needs a rule that lists its delegates');
    if (r.delegates !== 'any' && !delegates.every((d) => (r.delegates as ReadonlySet<string>).has(d))) return NO('delegate not in delegates');
  }
  if (i.op === 'eth_signTypedData_v4') {
    const td = i.typedData;
    const rt = r.typedData;
    if (rt?.domains && !rt.domains.some((d) =>
      (d.name === undefined || d.name === td.domain.name) &&
      (d.version === undefined || d.version === td.domain.version) &&
      (d.chainId === undefined || d.chainId === td.domain.chainId) &&
      (d.verifyingContract === undefined || d.verifyingContract === td.domain.verifyingContract))) return NO('domain not in typedData.domains');
    if (rt?.primaryTypes && !rt.primaryTypes.has(td.primaryType)) return NO(`primaryType ${td.primaryType} not in typedData.primaryTypes`);
    if (td.grants.length > 0) {
      const spenders = rt?.permitSpenders;
      if (spenders === undefined) return NO('the message grants token rights (permit); it needs a rule with typedData.permitSpenders');
      for (const g of td.grants) {
        if (spenders !== 'any' && (g.spender === null || !spenders.has(g.spender))) return NO(`permit spender ${g.spender ?? 'unknown'} not in typedData.permitSpenders`);
        if (rt!.permitTokens && (g.token === null || !rt!.permitTokens.has(g.token))) return NO('permit token not in typedData.permitTokens');
        if (rt!.permitMaxAmount !== undefined && g.amount > rt!.permitMaxAmount) return CAP(ctx, 'permit amount above typedData.permitMaxAmount', () => `permit amount ${g.unlimited ? 'unlimited' : g.amount} above typedData.permitMaxAmount`);
      }
    }
  } else if (r.typedData) return NO('typedData matches only eth_signTypedData_v4');
  if (i.op === 'signer_signPsbt') {
    const b = r.btc;
    if (b) {
      const p = i.psbt;
      for (const o of p.outputs) {
        if (o.change) continue;
        if (b.outputScripts && !b.outputScripts.has(o.script)) return NO(`output ${o.index} (${o.address ?? 'no address'}) not in btc.outputs`);
        if (b.maxOutputSats !== undefined && o.amount > b.maxOutputSats) return CAP(ctx, 'an output above btc.maxOutputSats', () => `output ${o.index} amount ${o.amount} above btc.maxOutputSats`);
      }
      if (b.maxTotalSats !== undefined && p.externalAmount > b.maxTotalSats) return CAP(ctx, 'outgoing above btc.maxTotalSats', () => `outgoing ${p.externalAmount} sats above btc.maxTotalSats`);
      if (b.maxFeeSats !== undefined && (p.fee === null || p.fee > b.maxFeeSats)) return p.fee === null ? NO('fee unknown (an input amount is missing)') : CAP(ctx, 'fee above btc.maxFeeSats', () => `fee ${p.fee} sats above btc.maxFeeSats ${b.maxFeeSats}`);
    }
  } else if (r.btc) return NO('btc matches only signer_signPsbt');
  return null;
}

/** Why a deny rule does not match (null = it matches). Deny matchers read broadly. */
function denyMismatch(r: CompiledRule, i: Intent, ctx: EvaluationContext, counterparties: () => string[]): string | null {
  if (r.ops && !r.ops.has(i.op)) return NO(`op ${i.op} not in ops`);
  if (r.principals && !r.principals.has(ctx.principal)) return NO(`caller ${ctx.principal} not in principals`);
  if (r.keys && (i.keyId === undefined || !r.keys.has(i.keyId.toLowerCase()))) return NO('key not in keys');
  if (r.chainIds) {
    const c = intentChainId(i);
    if (c === undefined || !r.chainIds.has(c)) return NO('chain not in chainIds');
  }
  if (r.to && !counterparties().some((a) => r.to!.has(a))) return NO('no counterparty in to');
  const tx = txOf(i);
  if (r.contractCreation && !tx?.contractCreation) return NO('not a contract creation');
  if (r.erc20) {
    const c = tx?.call;
    const fn = c === undefined ? undefined : erc20Function(c);
    if (!tx || !c || fn === undefined || !isErc20Call(c)) return NO('not an ERC-20 call');
    if (!r.erc20.functions.has(fn)) return NO('ERC-20 function not in erc20.functions');
    if (tx.to === null || !r.erc20.tokens.has(tx.to)) return NO('token not in erc20.tokens');
    if (r.erc20.recipients || r.erc20.spenders) {
      const hit = c.kind === 'erc20-approve' ? r.erc20.spenders?.has(c.spender) : c.kind === 'erc20-burn' ? false : r.erc20.recipients?.has(c.to);
      if (hit !== true) return NO('recipient/spender not listed');
    }
  }
  if (r.calls) {
    const sel = tx ? callSelector(tx.call) : null;
    if (!tx || tx.to === null || !r.calls.contracts.has(tx.to) || sel === null || !r.calls.selectors.has(sel)) return NO('not a listed call');
  }
  if (r.delegates) {
    const d = intentDelegates(i);
    if (d.length === 0 || (r.delegates !== 'any' && !d.some((x) => (r.delegates as ReadonlySet<string>).has(x)))) return NO('no listed delegate');
  }
  if (r.typedData) {
    if (i.op !== 'eth_signTypedData_v4') return NO('not typed data');
    const td = i.typedData;
    const rt = r.typedData;
    if (rt.domains && !rt.domains.some((d) =>
      (d.name === undefined || d.name === td.domain.name) &&
      (d.version === undefined || d.version === td.domain.version) &&
      (d.chainId === undefined || d.chainId === td.domain.chainId) &&
      (d.verifyingContract === undefined || d.verifyingContract === td.domain.verifyingContract))) return NO('domain not listed');
    if (rt.primaryTypes && !rt.primaryTypes.has(td.primaryType)) return NO('primaryType not listed');
    if (rt.permitSpenders && !td.grants.some((g) => rt.permitSpenders === 'any' || (g.spender !== null && (rt.permitSpenders as ReadonlySet<string>).has(g.spender)))) return NO('no listed permit spender');
    if (rt.permitTokens && !td.grants.some((g) => g.token !== null && rt.permitTokens!.has(g.token))) return NO('no listed permit token');
  }
  if (r.btc) {
    if (i.op !== 'signer_signPsbt') return NO('not a PSBT');
    if (r.btc.outputScripts && !i.psbt.outputs.some((o) => !o.change && r.btc!.outputScripts!.has(o.script))) return NO('no listed output');
  }
  return null;
}

/** The rule-unit amount a window's maxAmount counts: ERC-20 base units or outgoing satoshis. */
function ruleAmount(r: CompiledRule, i: Intent): bigint {
  if (r.erc20 && i.op === 'eth_signTransaction') {
    const c = i.tx.call;
    return erc20Function(c) === undefined ? 0n : (c as { amount: bigint }).amount;
  }
  if (r.btc && i.op === 'signer_signPsbt') return i.psbt.externalAmount;
  return 0n;
}

function windowKey(i: Intent): string {
  return i.keyId?.toLowerCase() ?? '*';
}

function windowMismatch(r: CompiledRule, i: Intent, ctx: EvaluationContext): string | null {
  const w = r.window;
  if (!w) return null;
  const key = windowKey(i);
  const u = windowUsage(ctx.windows, r.id, key, w.seconds, ctx.now);
  // In-flight reservations, counted exactly as recordSigned would commit them (same cut-off as windowUsage).
  const inFlight = ctx.reserved?.(r.id, key);
  if (inFlight) {
    for (const e of inFlight) {
      if (e.t <= ctx.now - w.seconds) continue;
      u.count += 1;
      u.value += e.value;
      u.amount += e.amount;
    }
  }
  if (w.maxCount !== undefined && u.count + 1 > w.maxCount) return `window: ${u.count} of ${w.maxCount} signatures used in ${w.seconds}s`;
  const v = intentValueWei(i);
  if (w.maxValueWei !== undefined && u.value + v > w.maxValueWei) return `window: ${u.value} + ${v} wei exceeds ${w.maxValueWei} per ${w.seconds}s`;
  const a = ruleAmount(r, i);
  if (w.maxAmount !== undefined && u.amount + a > w.maxAmount) return `window: ${u.amount} + ${a} exceeds maxAmount ${w.maxAmount} per ${w.seconds}s`;
  return null;
}

export function evaluate(policy: CompiledPolicy, intent: Intent, ctx: EvaluationContext): Decision {
  const trace: RuleTrace[] | undefined = ctx.explain ? [] : undefined;
  let cp: string[] | undefined;
  const counterparties = (): string[] => (cp ??= intentCounterparties(intent));
  // The signing path scans only the rules that can apply to this op, caller and key (rule-index.ts).
  const scan = ctx.explain ? { deny: policy.rules, allow: policy.rules } : candidateRules(policy, intent.op, ctx.principal, intent.keyId?.toLowerCase());
  for (const r of scan.deny) {
    if (r.effect !== 'deny') continue;
    const why = denyMismatch(r, intent, ctx, counterparties);
    trace?.push({ rule: r.id, effect: 'deny', matched: why === null, reason: why ?? 'matches' });
    if (why === null) return withTrace({ outcome: 'refused', rule: r.id, reason: `denied by rule ${r.id}${r.description ? ` (${r.description})` : ''}` }, trace);
  }
  let pending: Decision | undefined;
  let lastNear: { rule: string; reason: string } | undefined;
  for (const r of scan.allow) {
    if (r.effect !== 'allow') continue;
    const why = allowMismatch(r, intent, ctx) ?? windowMismatch(r, intent, ctx);
    if (why !== null) {
      if (why.startsWith('window:')) lastNear ??= { rule: r.id, reason: why };
      trace?.push({ rule: r.id, effect: 'allow', matched: false, reason: why });
      continue;
    }
    const a = r.approvals;
    if (!a) {
      trace?.push({ rule: r.id, effect: 'allow', matched: true, reason: 'matches; needs no approvals' });
      return withTrace({ outcome: 'signed', rule: r.id, reason: `allowed by rule ${r.id}` }, trace);
    }
    const veto = (ctx.rejections ?? []).find((p) => a.from.includes(p) && p !== ctx.principal);
    if (veto !== undefined) {
      const reason = `rejected by ${veto}`;
      lastNear ??= { rule: r.id, reason };
      trace?.push({ rule: r.id, effect: 'allow', matched: false, reason });
      continue;
    }
    // Separation of duties: the requester's own approval never counts.
    const approvedBy = [...new Set(ctx.approvals ?? [])].filter((p) => a.from.includes(p) && p !== ctx.principal);
    const info = { threshold: a.threshold, approvers: a.from, approvedBy, ttlSeconds: a.ttlSeconds };
    if (approvedBy.length >= a.threshold) {
      trace?.push({ rule: r.id, effect: 'allow', matched: true, reason: `matches; ${approvedBy.length} of ${a.threshold} approvals` });
      return withTrace({ outcome: 'signed', rule: r.id, reason: `allowed by rule ${r.id} with approvals of ${approvedBy.join(', ')}`, approvals: info }, trace);
    }
    trace?.push({ rule: r.id, effect: 'allow', matched: true, reason: `matches; ${approvedBy.length} of ${a.threshold} approvals` });
    pending ??= { outcome: 'pending', rule: r.id, reason: `approval required by rule ${r.id}: ${approvedBy.length} of ${a.threshold} from ${a.from.join(', ')}`, approvals: info };
  }
  if (pending) return withTrace(pending, trace);
  if (lastNear) return withTrace({ outcome: 'refused', rule: lastNear.rule, reason: `refused: rule ${lastNear.rule} matches but ${lastNear.reason}` }, trace);
  return withTrace({ outcome: 'refused', rule: null, reason: 'refused: no rule allows this request (deny by default)' }, trace);
}

function withTrace(d: Decision, trace: RuleTrace[] | undefined): Decision {
  if (trace) d.trace = trace;
  return d;
}

const byId = new WeakMap<CompiledPolicy, ReadonlyMap<string, CompiledRule>>();

/** A rule by id (one map per compiled policy: this runs for every reservation on every decision). */
export function ruleById(policy: CompiledPolicy, id: string): CompiledRule | undefined {
  let m = byId.get(policy);
  if (!m) byId.set(policy, (m = new Map(policy.rules.map((r) => [r.id, r]))));
  return m.get(id);
}

/** What a signature allowed under a window rule adds to that window: held while in flight (gate.ts), then committed. */
export interface WindowReservation {
  ruleId: string;
  key: string;
  /** The rule's window length: how long the entry is kept once committed. */
  seconds: number;
  t: number;
  value: bigint;
  amount: bigint;
}

/** The reservation a signed decision holds in its rule's window, or undefined (no window rule). */
export function windowReservation(policy: CompiledPolicy, decision: Decision, intent: Intent, now: number): WindowReservation | undefined {
  if (decision.outcome !== 'signed' || decision.rule === null) return undefined;
  const r = ruleById(policy, decision.rule);
  if (!r?.window) return undefined;
  return { ruleId: r.id, key: windowKey(intent), seconds: r.window.seconds, t: now, value: intentValueWei(intent), amount: ruleAmount(r, intent) };
}

/** The next window state with a reservation's signature counted in it. */
export function recordReservation(state: WindowState, r: WindowReservation): WindowState {
  return recordWindow(state, r.ruleId, r.key, { t: r.t, value: r.value.toString(), amount: r.amount.toString() }, r.seconds);
}

/** The next window state after a signature was produced under `decision` (unchanged when the rule has no window). */
export function recordSigned(policy: CompiledPolicy, state: WindowState, decision: Decision, intent: Intent, now: number): WindowState {
  const r = windowReservation(policy, decision, intent, now);
  return r ? recordReservation(state, r) : state;
}

type Erc20Call = Extract<DecodedCall, { amount: bigint }>;

function isErc20Call(c: DecodedCall): c is Erc20Call {
  return erc20Function(c) !== undefined;
}

/** The `erc20.functions` name of an exactly decoded ERC-20 call; undefined for any other calldata. */
function erc20Function(c: DecodedCall): Erc20Function | undefined {
  switch (c.kind) {
    case 'erc20-transfer':
      return 'transfer';
    case 'erc20-approve':
      return 'approve';
    case 'erc20-transferFrom':
      return 'transferFrom';
    case 'erc20-mint':
      return 'mint';
    case 'erc20-burn':
      return 'burn';
    default:
      return undefined;
  }
}
