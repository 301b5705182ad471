/**
 * The replay cache: every (principal, requestId) the enclave accepted, kept
 * until its expiry passes. A request can only be accepted while it has not
 * expired, and it is remembered until then, so within its lifetime it is
 * accepted once. The verifier refuses expiries more than a fixed maximum
 * ahead of the enclave's clock, which bounds how long an entry lives and
 * therefore how many can be live at once (rate × max lifetime).
 *
 * When the cache is full of live entries it refuses new requests
 * (AUTH_REPLAY_CACHE_FULL) instead of evicting one: evicting a live entry
 * would make that request replayable.
 */
import { AuthError } from '../../common/auth/errors.js';

export const DEFAULT_REPLAY_CACHE_ENTRIES = 65_536;

/** Sealed form: [principal, requestId, expiresAt] triples of live entries. */
export type ReplayCacheState = Array<[string, string, number]>;

export class ReplayCache {
  readonly #entries = new Map<string, { principal: string; requestId: string; expiresAt: number }>();
  readonly #max: number;

  constructor(opts: { maxEntries?: number } = {}) {
    this.#max = opts.maxEntries ?? DEFAULT_REPLAY_CACHE_ENTRIES;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Drops entries whose expiry has passed: those requests are refused as expired anyway. */
  prune(now: number): void {
    for (const [k, e] of this.#entries) if (e.expiresAt <= now) this.#entries.delete(k);
  }

  /** Records the request, or throws AUTH_REPLAYED if this principal already used this id. */
  admit(principal: string, requestId: string, expiresAt: number, now: number): void {
    const k = `${principal}\u0000${requestId}`;
    const seen = this.#entries.get(k);
    if (seen && seen.expiresAt > now) {
      throw new AuthError('AUTH_REPLAYED', `request ${requestId} of ${principal} was already accepted`, { hint: 'each signed request needs a fresh requestId; the host may be replaying it' });
    }
    if (this.#entries.size >= this.#max) this.prune(now);
    if (this.#entries.size >= this.#max) {
      throw new AuthError('AUTH_REPLAY_CACHE_FULL', `too many signed requests in flight (${this.#max}); refusing rather than forgetting one`, { hint: 'retry shortly, with a shorter expiry' });
    }
    this.#entries.set(k, { principal, requestId, expiresAt });
  }

  export(now: number): ReplayCacheState {
    this.prune(now);
    return [...this.#entries.values()].map((e) => [e.principal, e.requestId, e.expiresAt]);
  }

  /** Rebuilds from sealed state (already authenticated by the seal); entries past expiry are dropped. */
  static restore(state: ReplayCacheState, now: number, opts: { maxEntries?: number } = {}): ReplayCache {
    const c = new ReplayCache(opts);
    for (const [principal, requestId, expiresAt] of state) {
      if (expiresAt > now) c.#entries.set(`${principal}\u0000${requestId}`, { principal, requestId, expiresAt });
    }
    return c;
  }
}
