/**
 * The enclave's audit lines on stderr, batched: every event of one event-loop
 * turn goes out in one write instead of one write per signature (a syscall,
 * and on the dev stack a line for the supervisor to relay, per request).
 *
 * A line counts as recorded only once its batch is written. The signing
 * path waits for `flushed()` before it releases a signature (service.ts), so
 * batching never lets a signature out ahead of its audit line; a failed
 * write withholds every signature of that batch.
 */
export interface AuditLines {
  push(line: string): void;
  /** Resolves when every line pushed so far is written; rejects if that write failed. */
  flushed(): Promise<void>;
}

export function batchedLines(write: (chunk: string) => void, schedule: (fn: () => void) => void = setImmediate): AuditLines {
  let lines: string[] = [];
  let pending: Promise<void> | undefined;
  let last: Promise<void> = Promise.resolve();
  return {
    push(line) {
      lines.push(`${line}\n`);
      if (pending) return;
      pending = new Promise<void>((resolve, reject) => {
        schedule(() => {
          const chunk = lines.join('');
          lines = [];
          pending = undefined;
          try {
            write(chunk);
            resolve();
          } catch (e) {
            reject(e);
          }
        });
      });
      last = pending;
      // The rejection is observed by whoever awaits flushed(); not an unhandled rejection otherwise.
      last.catch(() => {});
    },
    flushed() {
      return pending ?? last;
    },
  };
}
