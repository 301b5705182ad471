/**
 * The CI fuzz run (docs/fuzzing.md): every target of fuzz/targets/ gets its
 * regression corpus (fuzz/corpus/<target>/) replayed and 100,000 coverage-
 * guided mutated inputs, in a child process running the built harness
 * (dist/fuzz/run.js; `npm test` builds first), so V8 block coverage is
 * started before the code under test loads and the inspector never sees
 * vitest's own scripts. No timing assertions: the numbers are printed.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const RUN = join(REPO, 'dist', 'fuzz', 'run.js');
const INPUTS = Number(process.env.FUZZ_CI_INPUTS ?? 100_000);
const tmp = mkdtempSync(join(tmpdir(), 'fuzz-ci-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

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

describe('coverage-guided fuzzing (CI budget)', () => {
  it('the harness is built', () => {
    expect(existsSync(RUN), 'dist/fuzz/run.js is missing: run `npm run build` first (npm test does)').toBe(true);
  });

  for (const target of ['cbor', 'bridge', 'attestation', 'cms', 'psbt', 'typed-data', 'json-rpc']) {
    it(`${target}: regression corpus replayed, ${INPUTS} mutated inputs, no finding`, { timeout: 600_000 }, async () => {
      const r = await fuzz(target);
      expect(r.findings, JSON.stringify(r.findings, null, 2)).toEqual([]);
      expect(r.inputs).toBe(INPUTS);
      expect(r.coverageGuided).toBe(true);
      // Guidance works: the mutants reached blocks the seeds did not.
      expect(r.blocks).toBeGreaterThan(r.seedBlocks);
    });
  }
});
