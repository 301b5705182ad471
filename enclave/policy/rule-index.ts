/**
 * Which rules the signing path scans for one request: an exact pre-filter, so a policy of
 * thousands of rules costs a request only the rules that could apply to it.
 *
 * A rule cannot match — allow or deny alike (evaluate.ts allowMismatch / denyMismatch) — when
 *   - its `ops` exclude the op (an allow rule without `ops` also never matches a raw op),
 *   - its `principals` exclude the verified caller, or
 *   - its `keys` exclude the request's key (or the request names no key).
 * Those checks come first in both matchers and have no side effect (no window is read, no
 * "near miss" is remembered), so skipping such a rule changes neither the decision nor its
 * reason. Everything else is still checked rule by rule, in document order.
 *
 * The index is built lazily per compiled policy, per op and per caller (principals are the
 * policy's own names plus `host`, so the set is small and fixed by the policy), and within that
 * by key id. `explain` does not use it: its trace lists every rule.
 */
import type { CompiledPolicy, CompiledRule } from './document.js';
import { RAW_OPS, type PolicyOp } from './intent.js';

/** Rules of one effect for one (op, caller), split by whether they name keys. */
interface ByKey {
  /** Rules without `keys`, in document order (they apply to every key). */
  readonly anyKey: readonly CompiledRule[];
  /** For each key id a rule names: its position among all of this (op, caller)'s rules … */
  readonly named: ReadonlyMap<string, readonly number[]>;
  /** … and, for merging, the positions of the rules without `keys`. */
  readonly anyKeyAt: readonly number[];
  readonly all: readonly CompiledRule[];
}

interface ForCaller {
  readonly deny: ByKey;
  readonly allow: ByKey;
}

interface ForOp {
  readonly deny: readonly CompiledRule[];
  readonly allow: readonly CompiledRule[];
  readonly callers: Map<string, ForCaller>;
}

/** Callers indexed per op at most (the policy's principals and `host`; a bound in case of many). */
const MAX_CALLERS = 1024;

const INDEX = new WeakMap<CompiledPolicy, Map<PolicyOp, ForOp>>();

function byKey(rules: readonly CompiledRule[]): ByKey {
  const anyKey: CompiledRule[] = [];
  const anyKeyAt: number[] = [];
  const named = new Map<string, number[]>();
  rules.forEach((r, at) => {
    if (!r.keys) {
      anyKey.push(r);
      anyKeyAt.push(at);
      return;
    }
    for (const k of r.keys) {
      let list = named.get(k);
      if (!list) named.set(k, (list = []));
      list.push(at);
    }
  });
  return { anyKey, anyKeyAt, named, all: rules };
}

function forCaller(op: ForOp, principal: string): ForCaller {
  const hit = op.callers.get(principal);
  if (hit) return hit;
  const mine = (r: CompiledRule) => !r.principals || r.principals.has(principal);
  const made: ForCaller = { deny: byKey(op.deny.filter(mine)), allow: byKey(op.allow.filter(mine)) };
  if (op.callers.size < MAX_CALLERS) op.callers.set(principal, made);
  return made;
}

/** The rules without keys and those naming `keyId`, merged back into document order. */
function withKey(b: ByKey, keyId: string | undefined): readonly CompiledRule[] {
  const named = keyId === undefined ? undefined : b.named.get(keyId);
  if (!named) return b.anyKey;
  const out: CompiledRule[] = [];
  let i = 0;
  let j = 0;
  while (i < b.anyKeyAt.length || j < named.length) {
    const a = i < b.anyKeyAt.length ? b.anyKeyAt[i]! : Infinity;
    const n = j < named.length ? named[j]! : Infinity;
    // A rule appears in `named` once per key it lists, and never also in `anyKey`.
    if (a < n) out.push(b.all[b.anyKeyAt[i++]!]!);
    else out.push(b.all[named[j++]!]!);
  }
  return out;
}

/**
 * The deny and allow rules that can apply to a request for `op` by `principal` on `keyId`
 * (lower-case, as rules store key ids; undefined when the request names no key), each in
 * document order.
 */
export function candidateRules(policy: CompiledPolicy, op: PolicyOp, principal: string, keyId: string | undefined): { deny: readonly CompiledRule[]; allow: readonly CompiledRule[] } {
  let byOp = INDEX.get(policy);
  if (!byOp) INDEX.set(policy, (byOp = new Map()));
  let forOp = byOp.get(op);
  if (!forOp) {
    forOp = {
      deny: policy.rules.filter((r) => r.effect === 'deny' && (!r.ops || r.ops.has(op))),
      allow: policy.rules.filter((r) => r.effect === 'allow' && (r.ops ? r.ops.has(op) : !RAW_OPS.includes(op))),
      callers: new Map(),
    };
    byOp.set(op, forOp);
  }
  const c = forCaller(forOp, principal);
  return { deny: withKey(c.deny, keyId), allow: withKey(c.allow, keyId) };
}
