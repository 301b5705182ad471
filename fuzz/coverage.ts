/**
 * Block coverage from V8 itself, through node:inspector: the signal that
 * makes the fuzz loop coverage-guided without a native fuzzer.
 *
 * Profiler.startPreciseCoverage({callCount, detailed}) makes V8 count every
 * basic block; takePreciseCoverage returns the counts since the last take and
 * resets them. V8 reports a block only where its count differs from the
 * enclosing range's, so "was block B hit?" is answered by the innermost
 * reported range that contains B — every range ever reported is remembered
 * and re-evaluated that way on each take.
 *
 * The inspector session is same-thread, so post() completes synchronously:
 * the fuzz loop stays a plain synchronous loop. Start coverage before the
 * code under test is loaded (see fuzz/run.ts), so its functions are compiled
 * with block counters.
 */
import { Session } from 'node:inspector';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface FunctionCoverage {
  functionName: string;
  ranges: Range[];
}
interface ScriptCoverage {
  url: string;
  functions: FunctionCoverage[];
}

let session: Session | undefined;

function post<T>(method: string, params?: object): T {
  let out: T | undefined;
  let err: Error | null = null;
  session!.post(method, params ?? {}, (e, r) => {
    err = e;
    out = r as T;
  });
  if (err) throw err;
  if (out === undefined) throw new Error(`inspector ${method} did not answer synchronously`);
  return out;
}

/** Starts block coverage for the whole isolate (idempotent). */
export function startCoverage(): void {
  if (session) return;
  session = new Session();
  session.connect();
  post('Profiler.enable');
  post('Profiler.startPreciseCoverage', { callCount: true, detailed: true, allowTriggeredUpdates: false });
}

export function coverageStarted(): boolean {
  return session !== undefined;
}

/** Everything since the last take (counters reset), for scripts whose URL contains one of `filters`. */
function take(filters: readonly string[]): ScriptCoverage[] {
  const { result } = post<{ result: ScriptCoverage[] }>('Profiler.takePreciseCoverage');
  return result.filter((s) => filters.some((f) => s.url.includes(f)));
}

/**
 * The set of blocks ever hit in the scripts one target cares about. `observe`
 * takes the counts since the previous call and says which blocks were hit
 * for the first time.
 */
export class CoverageMap {
  /** Every block range seen per function: key `url#fnStart` → [start, end] pairs. */
  private known = new Map<string, Array<[number, number]>>();
  private hit = new Set<string>();

  constructor(readonly filters: readonly string[]) {}

  get size(): number {
    return this.hit.size;
  }

  /** Discards the counts accumulated so far (other targets' runs). */
  reset(): void {
    take([]);
  }

  /** Blocks hit since the last take that were never hit before; commits them when `commit`. */
  observe(commit = true): string[] {
    const fresh: string[] = [];
    for (const script of take(this.filters)) {
      for (const fn of script.functions) {
        const r0 = fn.ranges[0];
        if (!r0 || r0.count === 0) continue;
        const fkey = `${script.url}#${r0.startOffset}`;
        let ks = this.known.get(fkey);
        if (!ks) this.known.set(fkey, (ks = []));
        for (const r of fn.ranges) {
          if (!ks.some(([s, e]) => s === r.startOffset && e === r.endOffset)) ks.push([r.startOffset, r.endOffset]);
        }
        for (const [s, e] of ks) {
          const key = `${fkey}:${s}-${e}`;
          if (this.hit.has(key)) continue;
          // Innermost reported range containing [s, e) decides its count.
          let best: Range | undefined;
          for (const r of fn.ranges) {
            if (r.startOffset <= s && e <= r.endOffset && (!best || r.endOffset - r.startOffset < best.endOffset - best.startOffset)) best = r;
          }
          if (best && best.count > 0) {
            fresh.push(key);
            if (commit) this.hit.add(key);
          }
        }
      }
    }
    return fresh;
  }
}
