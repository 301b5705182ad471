/**
 * A request's cancellation as the signing hot path consumes it: whether and why it was
 * cancelled, and callbacks that run once when it is. An AbortSignal means the same thing; this
 * exists because of what an AbortSignal costs per request on Node 20. Creating one per request,
 * or adding a listener per request to a long-lived one, makes V8 keep the request's objects past
 * the young generation: they are promoted and collected only by the next full collection.
 * Measured in isolation (a loop of 400,000 short async requests, 64 at a time), creating one
 * AbortSignal per request raised the bytes promoted per scavenge from ~30 KB to ~1.7 MB and the
 * collector's pauses fourfold; the in-process enclave service signed 8–10 % more per second
 * without them (docs/performance.md, "Session 11").
 *
 * So the bridge gives each request a CancellationSource, which holds no EventTarget, and makes
 * a real AbortSignal (`signal`) only for code that asks for one (fetch, the downstream node).
 * cancellationOf() wraps an AbortSignal for callers that have one (tests, tools).
 */

export interface Cancellation {
  readonly aborted: boolean;
  /** Why it was cancelled (undefined until it is). */
  readonly reason: unknown;
  /**
   * Runs `fn` once when the request is cancelled; returns the function that unregisters it.
   * Nothing runs for a request that is already cancelled, as with an AbortSignal's listeners:
   * check `aborted` first.
   */
  onAbort(fn: () => void): () => void;
  /** The same as an AbortSignal, for code that needs one (fetch); made on first use. */
  readonly signal: AbortSignal;
}

const nothing = (): void => {};

export class CancellationSource implements Cancellation {
  #aborted = false;
  #reason: unknown;
  /** Usually none or one (the signing pool's): an array, not a Set. */
  #fns: (() => void)[] | undefined;
  #controller: AbortController | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  onAbort(fn: () => void): () => void {
    if (this.#aborted) return nothing;
    const fns = (this.#fns ??= []);
    fns.push(fn);
    return () => {
      // Once cancelled the list is being run (or was): a callback that unregisters itself (the
      // signing pool's do) must not shift the callbacks after it out of the loop.
      if (this.#fns !== fns) return;
      const at = fns.indexOf(fn);
      if (at >= 0) fns.splice(at, 1);
    };
  }

  /** Cancels once: every callback runs (one that throws does not stop the others; its error is rethrown afterwards, asynchronously, like an AbortSignal listener's). */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    const fns = this.#fns ?? [];
    this.#fns = undefined;
    for (const fn of fns) {
      try {
        fn();
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
    this.#controller?.abort(reason);
  }

  /** A real AbortSignal that follows this source, made on first use (aborted already if the source is). */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }
}

/** An AbortSignal seen as a Cancellation (one listener per onAbort, removed by the returned function). */
export function cancellationOf(signal: AbortSignal): Cancellation {
  return {
    get aborted() {
      return signal.aborted;
    },
    get reason() {
      return signal.reason;
    },
    onAbort(fn) {
      if (signal.aborted) return nothing;
      const listener = () => fn();
      signal.addEventListener('abort', listener, { once: true });
      return () => signal.removeEventListener('abort', listener);
    },
    signal,
  };
}
