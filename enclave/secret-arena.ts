/**
 * Fixed-size slots for the secrets a signing worker holds — its copy of the
 * keyring key, the key cache's unwrapped keys and seeds, and the key each
 * prepared job signs with (job-signer.ts, key-cache.ts, operations.ts
 * KeyCopies) — in memory the pool owns.
 *
 * Why: a worker busy with a job cannot hear a message, so a job stopped
 * mid-prepare or mid-signature (past its deadline, cancelled — which the host
 * can cause at will) is stopped by terminating its worker (worker-pool.ts).
 * A terminated worker's heap is freed as it is, never zeroed: the keyring
 * key, up to `maxEntries` cached secrets and the keys of the up to `depth`
 * jobs it held prepared — which wait there across the round trip to the main
 * thread for the policy's decision, exactly when a worker gets terminated —
 * would be left in freed memory, and the pool would hand the replacement a
 * fresh copy of the keyring key. So the pool allocates each worker a
 * SharedArrayBuffer (`workerData.arena`) of a slot for each of those
 * (job-signer.ts signerArenaBytes), the worker keeps them only in slots of it
 * (views into it, no other copy), and the pool zeroes the whole buffer once
 * the worker has exited, whatever ended it. A signer on the main thread (the
 * inline lane, never terminated) uses the same code over a plain ArrayBuffer
 * of its own.
 *
 * Not here, so a terminated worker may still leave them: copies that live
 * only during one synchronous step and are wiped at its end — the AES-GCM
 * unwrap's output, which Node allocates (wiped once the job is prepared), the
 * library's array of a derived BIP32 child (copied into a slot and wiped at
 * once), the HD keys a derivation or a PSBT's signing makes (wiped as it
 * ends) — and what no JavaScript can zero: noble's bigint scalars (transient
 * too: garbage once the step returns), OpenSSL's memory, the `keyring`
 * message in transit. A prepared job that finds no slot free (more jobs than the arena
 * was sized for) keeps its key on the heap rather than fail, wiped when it
 * ends as usual.
 *
 * A slot is SLOT_BYTES (64: a BIP32 seed is 16–64 bytes, a secp256k1 key, a
 * child key and the keyring key 32). `alloc` hands out a view of exactly the
 * asked length in a free slot, or undefined when none is free (the key cache
 * then keeps nothing, a prepared job uses the heap); `free` zeroes the whole
 * slot and puts it back. Both O(1): a stack of free slot indices, the slot of
 * a view found from its byteOffset. A view must not be used after `free`:
 * its slot may hold another secret next.
 */
import { wipe } from '../common/bytes.js';

/** Bytes per slot: the largest secret a worker keeps (a 64-byte BIP32 seed). */
export const SLOT_BYTES = 64;

/** Bytes of an arena of `slots` slots. */
export function arenaBytes(slots: number): number {
  return Math.max(0, Math.floor(slots)) * SLOT_BYTES;
}

/** Zeroes a whole arena: the pool, once the worker that used it has exited. */
export function zeroArena(buffer: SharedArrayBuffer | ArrayBuffer): void {
  new Uint8Array(buffer).fill(0);
}

export class SecretArena {
  readonly #buffer: SharedArrayBuffer | ArrayBuffer;
  /** The whole arena, for zeroing a slot without a view of it. */
  readonly #bytes: Uint8Array;
  /** Free slot indices, a stack: `#free[0..#top)`. */
  readonly #free: Int32Array;
  #top: number;
  /** 1 while a slot is handed out: a second `free` of the same view does nothing. */
  readonly #used: Uint8Array;

  /** Slots over `buffer` (its length rounded down to whole slots); the buffer is expected zeroed. */
  constructor(buffer: SharedArrayBuffer | ArrayBuffer) {
    this.#buffer = buffer;
    this.#bytes = new Uint8Array(buffer);
    const n = Math.floor(buffer.byteLength / SLOT_BYTES);
    this.#free = new Int32Array(n);
    this.#used = new Uint8Array(n);
    // Highest index at the bottom: slot 0 is handed out first.
    for (let i = 0; i < n; i++) this.#free[i] = n - 1 - i;
    this.#top = n;
  }

  /** Slots in all. */
  get capacity(): number {
    return this.#free.length;
  }

  /** Slots free now. */
  get available(): number {
    return this.#top;
  }

  /** A zeroed view of `length` bytes (at most SLOT_BYTES) in a free slot; undefined when none is free or it does not fit. */
  alloc(length: number): Uint8Array | undefined {
    if (this.#top === 0 || length > SLOT_BYTES || length < 0) return undefined;
    const i = this.#free[--this.#top]!;
    this.#used[i] = 1;
    return new Uint8Array(this.#buffer, i * SLOT_BYTES, length);
  }

  /** Zeroes the slot of `view` (a view `alloc` returned) and frees it; a view of other memory is only wiped. */
  free(view: Uint8Array): void {
    const at = view.byteOffset;
    const i = at / SLOT_BYTES;
    if (view.buffer !== this.#buffer || !Number.isInteger(i) || this.#used[i] !== 1) {
      wipe(view);
      return;
    }
    this.#bytes.fill(0, at, at + SLOT_BYTES);
    this.#used[i] = 0;
    this.#free[this.#top++] = i;
  }
}
