/**
 * The fuzz loop: corpus-seeded mutation, guided by V8 block coverage
 * (fuzz/coverage.ts). In batches of `batch` inputs: pick a corpus entry,
 * apply stacked mutations (generic and the target's structure-aware ones) or
 * take a freshly generated structured input, run it, check the target's
 * invariants. After each batch one coverage take says whether any block was
 * hit for the first time; if so the batch is replayed one input at a time and
 * every input that reaches a new block joins the corpus. Batching keeps the
 * cost of reading coverage (one inspector call) off the per-input path.
 *
 * A target's run() throws `Invariant` when an invariant fails; any other
 * exception escaping run() is a crash (the module threw something that is
 * not its own typed error). Both are findings, with the input that caused
 * them, ready to be saved in the regression corpus (fuzz/corpus.ts).
 */
import { performance } from 'node:perf_hooks';
import { CoverageMap, coverageStarted } from './coverage.js';
import { GENERIC, havoc, type MutationContext, type Mutator } from './mutate.js';
import { Rng } from './rng.js';

/** A broken invariant: the target's own judgement that an input exposed a bug. */
export class Invariant extends Error {
  override readonly name = 'Invariant';
}

export interface FuzzTarget {
  name: string;
  /** What is fed to what, and which invariants are checked (printed by `npm run fuzz -- --list`). */
  description: string;
  /** Substrings of the script URLs whose block coverage guides this target. */
  cover: readonly string[];
  /** Largest input the mutator produces. */
  maxLen: number;
  /** Initial corpus: real fixtures and well-formed inputs built from the code's own encoders. */
  seeds(): Uint8Array[];
  /** Tokens the dictionary mutation inserts. */
  dict?: readonly Uint8Array[];
  /** Structure-aware mutators used besides the generic ones. */
  mutators?: readonly Mutator[];
  /** A fresh structured input (fast-check arbitraries), mixed in with mutants. */
  generate?(rng: Rng): Uint8Array;
  /** Runs one input. Returns normally, or throws Invariant; anything else thrown is a crash. */
  run(input: Uint8Array): void;
}

export interface Finding {
  target: string;
  kind: 'crash' | 'invariant' | 'slow';
  message: string;
  stack?: string;
  input: Uint8Array;
}

export interface FuzzOptions {
  /** Inputs to run (seeds and replays not counted). */
  inputs: number;
  seed?: number;
  /** Use coverage guidance (default: when coverage was started). */
  coverage?: boolean;
  /** Inputs per coverage take at the start (doubles after 8 batches without news, up to 1024). Default 64. */
  batch?: number;
  maxCorpus?: number;
  /** An input taking longer than this is a finding ("never hangs"). Default 1000 ms. */
  slowMs?: number;
  /** Stop at the first finding. Default false (collect up to 20 distinct ones). */
  stopOnFinding?: boolean;
  /** Extra inputs to run first (the regression corpus). */
  replay?: readonly Uint8Array[];
}

export interface FuzzResult {
  target: string;
  inputs: number;
  /** Wall time of the mutation loop (seeds excluded). */
  ms: number;
  inputsPerSecond: number;
  /** CPU time of this process over the loop: the number that does not depend on how loaded the machine is. */
  cpuMs: number;
  inputsPerCpuSecond: number;
  coverageGuided: boolean;
  /** Blocks of the covered scripts hit at least once. */
  blocks: number;
  /** Blocks hit after running only the seeds. */
  seedBlocks: number;
  corpus: number;
  seeds: number;
  /** Inputs kept because they reached new blocks. */
  discovered: number;
  findings: Finding[];
}

const MAX_FINDINGS = 20;

function signature(kind: string, e: unknown): string {
  const err = e instanceof Error ? e : new Error(String(e));
  const at = (err.stack ?? '').split('\n').find((l) => l.trim().startsWith('at ')) ?? '';
  return `${kind}|${err.name}|${err.message.slice(0, 60).replace(/[0-9]+/g, 'N')}|${at.trim()}`;
}

export function runTarget(target: FuzzTarget, opts: FuzzOptions): FuzzResult {
  const rng = new Rng(opts.seed ?? 1);
  const guided = (opts.coverage ?? true) && coverageStarted();
  let batch = opts.batch ?? 64;
  const maxBatch = Math.max(batch, 1024);
  let quiet = 0;
  const maxCorpus = opts.maxCorpus ?? 4096;
  const slowMs = opts.slowMs ?? 1000;
  const cov = guided ? new CoverageMap(target.cover) : undefined;
  const findings: Finding[] = [];
  const seen = new Set<string>();
  const mutators = [...GENERIC, ...(target.mutators ?? []), ...(target.mutators ?? [])];

  const record = (kind: Finding['kind'], e: unknown, input: Uint8Array): void => {
    const sig = signature(kind, e);
    if (seen.has(sig) || findings.length >= MAX_FINDINGS) return;
    seen.add(sig);
    const err = e instanceof Error ? e : new Error(String(e));
    findings.push({ target: target.name, kind, message: `${err.name}: ${err.message}`, stack: err.stack, input: Uint8Array.from(input) });
  };
  const exec = (input: Uint8Array): void => {
    const t0 = performance.now();
    try {
      target.run(input);
    } catch (e) {
      record(e instanceof Invariant ? 'invariant' : 'crash', e, input);
    }
    const dt = performance.now() - t0;
    if (dt > slowMs) record('slow', new Error(`one input took ${dt.toFixed(0)} ms (bound ${slowMs} ms)`), input);
  };
  const stop = () => opts.stopOnFinding === true && findings.length > 0;

  cov?.reset();
  const corpus: Uint8Array[] = [];
  for (const s of [...(opts.replay ?? []), ...target.seeds()]) {
    exec(s);
    corpus.push(s.length > target.maxLen ? s.subarray(0, target.maxLen) : s);
  }
  const seeds = corpus.length;
  cov?.observe(true);
  const seedBlocks = cov?.size ?? 0;
  if (corpus.length === 0) corpus.push(new Uint8Array(0));

  const ctx: MutationContext = { other: () => rng.pick(corpus), dict: target.dict ?? [], maxLen: target.maxLen };
  let discovered = 0;
  let done = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const pending: Uint8Array[] = [];
  while (done < opts.inputs && !stop()) {
    pending.length = 0;
    const n = Math.min(batch, opts.inputs - done);
    for (let i = 0; i < n; i++) {
      const input = target.generate && rng.oneIn(16) ? target.generate(rng) : havoc(rng.pick(corpus), rng, ctx, mutators);
      pending.push(input);
      exec(input);
    }
    done += n;
    if (cov && cov.observe(false).length > 0) {
      quiet = 0;
      // Something new was reached: bisect the batch to find which inputs did it (one coverage take per half, not per input).
      const find = (xs: Uint8Array[]): void => {
        if (xs.length === 0) return;
        for (const x of xs) exec(x);
        if (xs.length === 1) {
          if (cov.observe(true).length > 0) {
            discovered++;
            if (corpus.length < maxCorpus) corpus.push(xs[0]!);
            else corpus[seeds + rng.below(maxCorpus - seeds)] = xs[0]!;
          }
          return;
        }
        if (cov.observe(false).length === 0) return;
        const mid = xs.length >> 1;
        find(xs.slice(0, mid));
        find(xs.slice(mid));
      };
      const mid = pending.length >> 1;
      find(pending.slice(0, mid));
      find(pending.slice(mid));
    } else if (++quiet >= 8 && batch < maxBatch) {
      // Discoveries are getting rare: take coverage less often.
      batch *= 2;
      quiet = 0;
    }
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    target: target.name,
    inputs: done,
    ms: Math.round(ms),
    inputsPerSecond: Math.round((done / ms) * 1000),
    cpuMs: Math.round(cpuMs),
    inputsPerCpuSecond: Math.round((done / cpuMs) * 1000),
    coverageGuided: guided,
    blocks: cov?.size ?? 0,
    seedBlocks,
    corpus: corpus.length,
    seeds,
    discovered,
    findings,
  };
}
