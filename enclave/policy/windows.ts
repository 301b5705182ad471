/**
 * Rolling windows (`window: {seconds, maxValueWei, maxAmount, maxCount}`), per rule and key,
 * counting only what was actually signed. The state is a plain JSON value passed in and out
 * (pure functions): the enclave keeps it and persists it sealed through the parent (later
 * work); nothing here reads a clock or does I/O.
 *
 * A window is sliding, not calendar-aligned: a request fits when the signed entries of the
 * last `seconds` plus this one stay within every limit.
 *
 * Bounded: signatures in the same second share one entry (exact: times are whole seconds), and
 * a (rule, key) list longer than MAX_WINDOW_ENTRIES is compacted into at most
 * WINDOW_BUCKETS buckets of seconds/WINDOW_BUCKETS each. A bucket sums its entries (count, value,
 * amount exactly) and carries the time of its NEWEST entry, so it leaves the window only when
 * its last signature does: older signatures in it count a little longer than their window
 * (at most one bucket's span) — never shorter. Without this the state grew by one entry per
 * signature, and the whole state is sealed and shipped under the bridge's 1 MiB frame with every
 * windowed signature (docs/performance.md).
 */
import { PolicyDocumentError } from './errors.js';

export interface WindowEntry {
  /** Unix seconds the signature was produced. */
  t: number;
  /** Native value (wei), decimal. */
  value: string;
  /** Rule unit: token base units (erc20) or satoshis (btc), decimal. */
  amount: string;
  /** Signatures this entry stands for (a compacted bucket); absent: 1. */
  n?: number;
  /**
   * Only in an enclave's record of its OWN signatures (./own-windows.ts): the enclave's signature
   * counter at the newest signature in this entry, so that a fleet take-over can tell which of them
   * the record it takes over already counts. Absent in the shared totals.
   */
  s?: number;
}

/** A (rule, key) list longer than this is compacted. */
export const MAX_WINDOW_ENTRIES = 256;
/** Buckets per window after compaction. */
export const WINDOW_BUCKETS = 64;

export interface WindowState {
  version: 1;
  /** ruleId → keyId → entries, oldest first. */
  rules: Record<string, Record<string, WindowEntry[]>>;
}

export function emptyWindowState(): WindowState {
  return { version: 1, rules: {} };
}

export interface WindowUsage {
  count: number;
  value: bigint;
  amount: bigint;
}

const DEC = /^(0|[1-9][0-9]{0,79})$/;

/**
 * Sums kept in the state saturate here. Every limit a policy can state is at most 2^256-1
 * (document.ts), so a sum of 2^256 or more refuses exactly what the true sum would: no decision
 * changes. Without it a count-only window let each signature add up to 2^256-1 of value (or an
 * erc20 rule's amount): 863 of them in one entry (same second) or one compacted bucket passed the
 * 80 digits checkWindowState accepts, and the enclave sealed a record it refused to restore —
 * after a restart it decided nothing until the host handed back an older record or none (fresh
 * counters), and in fleet scope no other instance could take the record over (review finding).
 */
export const WINDOW_SUM_CAP = 1n << 256n;
const cap = (v: bigint): bigint => (v > WINDOW_SUM_CAP ? WINDOW_SUM_CAP : v);
const capped = (d: string): string => (d.length < 78 ? d : cap(BigInt(d)).toString());

/** Validates a state handed back in (it travels through the untrusted host once persisted). */
export function checkWindowState(v: unknown): WindowState {
  const bad = (m: string) => new PolicyDocumentError('POLICY_STATE_INVALID', 'windows', m);
  if (typeof v !== 'object' || v === null || (v as WindowState).version !== 1) throw bad('not a version 1 window state');
  const rules = (v as WindowState).rules;
  if (typeof rules !== 'object' || rules === null) throw bad('missing rules');
  for (const keys of Object.values(rules)) {
    if (typeof keys !== 'object' || keys === null) throw bad('malformed rule entry');
    for (const list of Object.values(keys)) {
      if (!Array.isArray(list)) throw bad('malformed key entry');
      for (const e of list) {
        if (typeof e !== 'object' || e === null || !Number.isSafeInteger(e.t) || !DEC.test(e.value) || !DEC.test(e.amount)) throw bad('malformed entry');
        if (e.n !== undefined && (!Number.isSafeInteger(e.n) || e.n < 1)) throw bad('malformed entry count');
        if (e.s !== undefined) throw bad('a signature counter in a shared window entry');
      }
    }
  }
  return v as WindowState;
}

export function windowUsage(state: WindowState | undefined, ruleId: string, keyId: string, seconds: number, now: number): WindowUsage {
  const list = state?.rules[ruleId]?.[keyId];
  const u: WindowUsage = { count: 0, value: 0n, amount: 0n };
  if (!list) return u;
  const since = now - seconds;
  // A full scan, not a break at the first old entry: a clock that stepped back must not hide entries.
  for (const e of list) {
    if (e.t <= since) continue;
    u.count += e.n ?? 1;
    u.value += BigInt(e.value);
    u.amount += BigInt(e.amount);
  }
  return u;
}

/** A new state with this signature recorded; entries older than `keepSeconds` are dropped. */
export function recordWindow(
  state: WindowState,
  ruleId: string,
  keyId: string,
  entry: WindowEntry,
  keepSeconds: number,
): WindowState {
  const old = state.rules[ruleId]?.[keyId] ?? [];
  let list = old.filter((e) => e.t > entry.t - keepSeconds);
  const last = list.at(-1);
  if (last !== undefined && last.t === entry.t) {
    // Same second as the newest entry: summed into it. Exact, since times are whole seconds and
    // windowUsage only sums what is newer than a second boundary: a busy key keeps at most one
    // entry per second of its window instead of one per signature, and the sealed state with it.
    const sum: WindowEntry = { t: last.t, value: cap(BigInt(last.value) + BigInt(entry.value)).toString(), amount: cap(BigInt(last.amount) + BigInt(entry.amount)).toString(), n: (last.n ?? 1) + (entry.n ?? 1) };
    if (last.s !== undefined || entry.s !== undefined) sum.s = Math.max(last.s ?? 0, entry.s ?? 0);
    list[list.length - 1] = sum;
  } else list.push({ ...entry, value: capped(entry.value), amount: capped(entry.amount) });
  if (list.length > MAX_WINDOW_ENTRIES) list = compact(list, keepSeconds);
  return { version: 1, rules: { ...state.rules, [ruleId]: { ...state.rules[ruleId], [keyId]: list } } };
}

/** Sums entries into buckets of keepSeconds / WINDOW_BUCKETS, each timed by its newest entry (see the header). */
export function compact(list: readonly WindowEntry[], keepSeconds: number): WindowEntry[] {
  const span = Math.max(1, Math.ceil(keepSeconds / WINDOW_BUCKETS));
  // A bucket's signature counter is its newest signature's (s: the largest), so a take-over that
  // already counts part of a bucket counts the whole bucket again: more, never less (./own-windows.ts).
  const buckets = new Map<number, { t: number; value: bigint; amount: bigint; n: number; s: number | undefined }>();
  for (const e of list) {
    const k = Math.floor(e.t / span);
    const b = buckets.get(k);
    if (b) {
      b.t = Math.max(b.t, e.t);
      b.value += BigInt(e.value);
      b.amount += BigInt(e.amount);
      b.n += e.n ?? 1;
      if (e.s !== undefined) b.s = Math.max(b.s ?? 0, e.s);
    } else buckets.set(k, { t: e.t, value: BigInt(e.value), amount: BigInt(e.amount), n: e.n ?? 1, s: e.s });
  }
  return [...buckets.values()]
    .sort((a, b) => a.t - b.t)
    .map((b) => (b.s === undefined ? { t: b.t, value: cap(b.value).toString(), amount: cap(b.amount).toString(), n: b.n } : { t: b.t, value: cap(b.value).toString(), amount: cap(b.amount).toString(), n: b.n, s: b.s }));
}
