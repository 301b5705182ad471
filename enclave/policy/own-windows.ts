/**
 * Fleet scope: what this enclave life signed itself, kept so that no take-over can make it forget.
 *
 * Every enclave of a fleet seals its window counters into one shared record, and takes over the
 * store's record when its parent hands in a newer one (./fleet-lineage.ts, ./durable.ts). A
 * take-over used to REPLACE the enclave's counters with the record's. The enclave cannot tell a
 * record it loses nothing by from one that misses its own latest signatures: the parent stores
 * records and releases results, and a hostile parent can release a signature, drop its record,
 * and hand in an older record (another enclave's, or this one's from before) — after which the
 * window was empty again, as often as the host liked, with no restart (docs/scale-out.md, "Own
 * signatures survive a take-over").
 *
 * So every enclave life keeps:
 *   - its signature counter: how many windowed signatures it committed (`count`);
 *   - its own window entries, each stamped with the counter at its newest signature (`s`);
 * and every sealed record says, per enclave life, how many of that life's signatures its totals
 * include (`lives`: life id → count). Taking over a record R, the enclave's totals become
 *   R's totals + its own entries newer than R.lives[this life]
 * so everything it signed stays counted, whatever record the host hands in. A record that counts
 * part of a same-second or compacted entry counts that whole entry again (the entry's `s` is its
 * newest signature's): more, never less. Signatures the enclave committed but whose record its
 * parent honestly failed to store (a lost compare-and-swap: the result was withheld) stay counted
 * too; the enclave cannot tell them from released ones. That costs allowance, not safety.
 *
 * The worst a host can now do is keep each enclave from seeing the others' signatures: each still
 * counts its own, so N enclaves sign at most N windows — what instance scope allows, never more.
 */
import { recordWindow, type WindowEntry, type WindowState } from './windows.js';

/** The sealed record's map of enclave lives to how many of their signatures its totals count. */
export type LifeCounts = Record<string, number>;

/** Lives a record keeps counts for; beyond it the smallest counts go (a life then counts its own again: more, never less). */
export const MAX_LIVES = 256;

const LIFE_ID = /^[0-9a-f]{32}$/;

/** Checks the `lives` member of a sealed record (null or absent: a record from before lives were sealed). */
export function checkLifeCounts(v: unknown): LifeCounts {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error('lives: not an object');
  const out: LifeCounts = {};
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_LIVES) throw new Error(`lives: more than ${MAX_LIVES} enclave lives`);
  for (const [id, n] of entries) {
    if (!LIFE_ID.test(id) || typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new Error('lives: malformed entry');
    out[id] = n;
  }
  return out;
}

/** This enclave life's own windowed signatures (memory only: it is never sealed as such). */
export class OwnWindows {
  #count = 0;
  #state: WindowState = { version: 1, rules: {} };

  /** Windowed signatures committed by this life. */
  get count(): number {
    return this.#count;
  }

  /** Counts one committed signature (the same entry the shared totals got). */
  record(ruleId: string, key: string, entry: WindowEntry, keepSeconds: number): void {
    this.#count += 1;
    this.#state = recordWindow(this.#state, ruleId, key, { ...entry, s: this.#count }, keepSeconds);
  }

  /**
   * The totals to continue from after taking over a record whose totals are `taken` and count
   * `included` of this life's signatures: `taken` plus this life's entries it does not count.
   * `keep(ruleId)` is the rule's window length (entries older than it no longer count anyway).
   */
  onto(taken: WindowState, included: number, keep: (ruleId: string) => number): WindowState {
    let out = taken;
    for (const [ruleId, keys] of Object.entries(this.#state.rules)) {
      const seconds = keep(ruleId);
      for (const [key, list] of Object.entries(keys)) {
        for (const e of list) {
          if (e.s === undefined || e.s <= included) continue;
          out = recordWindow(out, ruleId, key, e.n === undefined ? { t: e.t, value: e.value, amount: e.amount } : { t: e.t, value: e.value, amount: e.amount, n: e.n }, seconds);
        }
      }
    }
    return out;
  }
}

/** The `lives` to seal: the record's counts carried over, this life's own count set. */
export function livesToSeal(carried: LifeCounts, lifeId: string, count: number): LifeCounts {
  const out: LifeCounts = { ...carried, [lifeId]: count };
  const ids = Object.keys(out);
  if (ids.length <= MAX_LIVES) return out;
  // Too many lives: forget the smallest counts (never this life's). A life forgotten here counts
  // its own signatures again when it takes this record over: more, never less.
  ids.sort((a, b) => (out[a] as number) - (out[b] as number));
  for (const id of ids) {
    if (Object.keys(out).length <= MAX_LIVES) break;
    if (id !== lifeId) delete out[id];
  }
  return out;
}
