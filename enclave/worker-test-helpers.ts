/**
 * Test helper: watches a pool's worker threads from the outside, with no hook in production
 * code. Every worker the pool uses gets a postMessage (its keyring, its jobs), and a job handed
 * to a worker starts with a `job` message, or a `sign` message when it was decided ahead
 * (worker.ts); a job run inline posts nothing.
 */
import { Worker } from 'node:worker_threads';

export interface WorkerWatch {
  /** Every Worker posted to while watching. */
  readonly workers: Set<Worker>;
  /** Jobs handed to a worker while watching (decided ahead or not). */
  readonly jobs: number;
  /** Of those, the jobs decided ahead (one `sign` message each). */
  readonly decidedAhead: number;
  /** Puts postMessage back as it was before this watch (stop watches in the reverse order). */
  stop(): void;
}

export function watchWorkers(): WorkerWatch {
  const post = Worker.prototype.postMessage;
  const workers = new Set<Worker>();
  let jobs = 0;
  let decidedAhead = 0;
  Worker.prototype.postMessage = function (this: Worker, ...args: Parameters<Worker['postMessage']>) {
    workers.add(this);
    const t = (args[0] as { t?: string } | null)?.t;
    if (t === 'job' || t === 'sign') jobs++;
    if (t === 'sign') decidedAhead++;
    return post.apply(this, args);
  };
  return {
    workers,
    get jobs() {
      return jobs;
    },
    get decidedAhead() {
      return decidedAhead;
    },
    stop: () => {
      Worker.prototype.postMessage = post;
    },
  };
}

/** Runs `fn` while watching, and stops watching however it ends. */
export async function watching<T>(fn: (w: WorkerWatch) => Promise<T>): Promise<T> {
  const w = watchWorkers();
  try {
    return await fn(w);
  } finally {
    w.stop();
  }
}
