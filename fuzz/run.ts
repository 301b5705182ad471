/**
 * `npm run fuzz` — the long-running form of the fuzz tests (docs/fuzzing.md).
 *
 *   npm run fuzz                                   every target, 100k inputs each
 *   npm run fuzz -- --target cbor --inputs 5000000 one target, longer
 *   npm run fuzz -- --seed 7 --save                another seed; crashers → fuzz/corpus/<target>/
 *   npm run fuzz -- --no-coverage                  plain corpus-seeded mutation (for comparison)
 *   npm run fuzz -- --json out.json                the numbers as JSON
 *   npm run fuzz -- --list                         targets and their invariants
 *
 * Exit status 1 when any finding was made.
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { startCoverage } from './coverage.js';

const { values } = parseArgs({
  options: {
    target: { type: 'string', multiple: true },
    inputs: { type: 'string', default: '100000' },
    seed: { type: 'string', default: '1' },
    batch: { type: 'string' },
    save: { type: 'boolean', default: false },
    'no-coverage': { type: 'boolean', default: false },
    json: { type: 'string' },
    list: { type: 'boolean', default: false },
  },
});

const coverage = !values['no-coverage'];
// Every refused input builds a typed error; capturing stack traces was a quarter of the cost. A crasher
// keeps its throw site and is saved as its input; replaying it (a test, or node -e) shows the whole stack.
Error.stackTraceLimit = 1;
// Before the code under test is loaded, so V8 compiles it with block counters.
if (coverage) startCoverage();
const { runFuzzTarget } = await import('./session.js');
const { TARGET_NAMES, loadTarget } = await import('./targets/index.js');

if (values.list) {
  for (const n of TARGET_NAMES) console.log(`${n}\n  ${(await loadTarget(n))!.description}\n`);
  process.exit(0);
}
const names = values.target ?? [...TARGET_NAMES];
const inputs = Number(values.inputs);
if (!Number.isSafeInteger(inputs) || inputs < 1) throw new Error(`--inputs must be a positive integer, got ${values.inputs}`);
const results = [];
let findings = 0;
for (const name of names) {
  const t = await loadTarget(name);
  if (!t) throw new Error(`unknown target ${name}; one of ${TARGET_NAMES.join(', ')}`);
  const r = runFuzzTarget(t, { inputs, seed: Number(values.seed), coverage, ...(values.batch ? { batch: Number(values.batch) } : {}) }, values.save);
  results.push(r);
  findings += r.findings.length;
  console.log(
    `${r.target.padEnd(12)} ${String(r.inputs).padStart(9)} inputs  ${String(r.inputsPerSecond).padStart(7)}/s  ${(r.ms / 1000).toFixed(1).padStart(6)} s  ` +
      `cpu ${(r.cpuMs / 1000).toFixed(1).padStart(6)} s (${r.inputsPerCpuSecond}/cpu-s)  ` +
      `blocks ${r.seedBlocks}→${r.blocks}  corpus ${r.seeds}+${r.discovered}  replayed ${r.replayed}  findings ${r.findings.length}`,
  );
  for (const f of r.findings) console.log(`  ${f.kind}: ${f.message.split('\n')[0]}${f.saved ? `\n    saved ${f.saved}` : ''}\n    input ${Buffer.from(f.input).toString('hex').slice(0, 200)}`);
}
if (values.json) writeFileSync(values.json, `${JSON.stringify({ node: process.version, date: new Date().toISOString(), loadAverage: loadavg(), cpus: cpus().length, seed: Number(values.seed), coverageGuided: coverage, results: results.map(({ findings: fs, ...r }) => ({ ...r, findings: fs.map((f) => ({ kind: f.kind, message: f.message.split('\n')[0], input: Buffer.from(f.input).toString('hex') })) })) }, null, 2)}\n`);
process.exit(findings > 0 ? 1 : 0);
