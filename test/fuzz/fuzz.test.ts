/**
 * The CI fuzz run (docs/fuzzing.md): every target of fuzz/targets/ gets its
 * regression corpus (fuzz/corpus/<target>/) replayed and 100,000 coverage-
 * guided mutated inputs, in a child process running the built harness
 * (dist/fuzz/run.js; `npm test` builds first), so V8 block coverage is
 * started before the code under test loads and the inspector never sees
 * vitest's own scripts. No timing assertions: the numbers are printed.
 *
 * The targets' children run two at a time (one per core of the 2-vCPU CI
 * machine), the slowest first: each is single-threaded and the vitest worker
 * only waits for them, so the file takes about as long as psbt alone instead
 * of the sum of all seven. Every target still gets its full input budget.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const RUN = join(REPO, 'dist', 'fuzz', 'run.js');
const INPUTS = Number(process.env.FUZZ_CI_INPUTS ?? 100_000);
/** Slowest first (CPU-seconds per 100k inputs: psbt ~100, bridge ~25, the rest 6–14), so the longest run starts at once. */
const TARGETS = ['psbt', 'bridge', 'attestation', 'typed-data', 'json-rpc', 'cms', 'cbor'] as const;
const PARALLEL = Math.max(1, Math.min(2, availableParallelism()));
const tmp = mkdtempSync(join(tmpdir(), 'fuzz-ci-'));

interface Result {
  target: string;
  inputs: number;
  inputsPerSecond: number;
  ms: number;
  blocks: number;
  seedBlocks: number;
  replayed: number;
  coverageGuided: boolean;
  findings: Array<{ kind: string; message: string; input: string }>;
}

function fuzz(target: string): Promise<Result> {
  const out = join(tmp, `${target}.json`);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [RUN, '--target', target, '--inputs', String(INPUTS), '--json', out], { cwd: REPO, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      process.stdout.write(stdout);
      if (!existsSync(out)) return reject(new Error(`fuzz run of ${target} wrote no results: ${err?.message}\n${stderr}`));
      resolve((JSON.parse(readFileSync(out, 'utf8')) as { results: Result[] }).results[0]!);
    });
  });
}

/** Starts every target's run, at most `parallel` at once, in the given order; each test awaits its own. */
function schedule(targets: readonly string[], parallel: number): Map<string, Promise<Result>> {
  const settle = new Map<string, { resolve: (r: Result) => void; reject: (e: unknown) => void }>();
  const runs = new Map<string, Promise<Result>>();
  for (const t of targets) {
    const run = new Promise<Result>((resolve, reject) => settle.set(t, { resolve, reject }));
    run.catch(() => {}); // reported by the target's own test, not as an unhandled rejection
    runs.set(t, run);
  }
  const queue = [...targets];
  const lane = async () => {
    for (let t = queue.shift(); t !== undefined; t = queue.shift()) {
      const { resolve, reject } = settle.get(t)!;
      await fuzz(t).then(resolve, reject);
    }
  };
  for (let i = 0; i < parallel; i++) void lane();
  return runs;
}

describe('coverage-guided fuzzing (CI budget)', () => {
  it('the harness is built', () => {
    expect(existsSync(RUN), 'dist/fuzz/run.js is missing: run `npm run build` first (npm test does)').toBe(true);
  });

  let runs: Map<string, Promise<Result>> | undefined;
  beforeAll(() => {
    if (existsSync(RUN)) runs = schedule(TARGETS, PARALLEL);
  });
  // A test that failed early leaves runs going: their results are written into tmp, so it goes last.
  afterAll(async () => {
    await Promise.allSettled(runs?.values() ?? []);
    rmSync(tmp, { recursive: true, force: true });
  }, 600_000);

  for (const target of TARGETS) {
    it(`${target}: regression corpus replayed, ${INPUTS} mutated inputs, no finding`, { timeout: 600_000 }, async () => {
      expect(runs, 'the harness is not built').toBeDefined();
      const r = await runs!.get(target)!;
      expect(r.findings, JSON.stringify(r.findings, null, 2)).toEqual([]);
      expect(r.inputs).toBe(INPUTS);
      expect(r.coverageGuided).toBe(true);
      // Guidance works: the mutants reached blocks the seeds did not.
      expect(r.blocks).toBeGreaterThan(r.seedBlocks);
    });
  }
});
