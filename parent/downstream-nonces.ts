/**
 * Per-key nonces for proxy mode's eth_sendTransaction. Two sends from one key
 * that both ask the node for the `pending` count at the same moment would get
 * the same nonce, and one of them would never mine. So sends from one key run
 * one at a time (a lock per address, held from choosing the nonce to the
 * node's answer to eth_sendRawTransaction), and the next nonce is the larger
 * of the node's `pending` count and what this proxy last sent + 1 — a node
 * whose pending pool lags does not make us reuse a nonce.
 *
 * When a send's outcome is unknown or refused (the node timed out, or said
 * no), the local count is forgotten and the node's count rules again: a nonce
 * is never skipped on our say-so, so a refused transaction leaves no gap.
 * Sends from different keys do not wait for each other.
 */

export interface NonceTracker {
  /** Runs `f` holding the lock of `address`; f gets the local floor (what we sent last + 1, or 0n). */
  withKey<T>(address: string, f: (floor: bigint) => Promise<T>): Promise<T>;
  /** `nonce` went to the node and was accepted: the next send uses at least nonce + 1. */
  sent(address: string, nonce: bigint): void;
  /** The last send's fate is unknown or it was refused: trust the node's count again. */
  forget(address: string): void;
}

export function createNonceTracker(): NonceTracker {
  const next = new Map<string, bigint>();
  const tails = new Map<string, Promise<unknown>>();
  return {
    async withKey(address, f) {
      const k = address.toLowerCase();
      const prev = tails.get(k) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((r) => (release = r));
      const tail = prev.then(() => mine);
      tails.set(k, tail);
      try {
        await prev;
        return await f(next.get(k) ?? 0n);
      } finally {
        release();
        if (tails.get(k) === tail) tails.delete(k);
      }
    },
    sent(address, nonce) {
      next.set(address.toLowerCase(), nonce + 1n);
    },
    forget(address) {
      next.delete(address.toLowerCase());
    },
  };
}
