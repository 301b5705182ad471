/**
 * Alternated pairs: two or more builds of the appliance (each a checkout with its own `dist/`,
 * e.g. a `git worktree` of the base commit), or one build under different environments, side by
 * side on this machine, measured in rounds that rotate their order (A B C, B C A, … and reversed) so drift in
 * the box's speed falls on both. What docs/performance.md's "alternated" numbers come from.
 *
 * Each variant runs the dev stack of its own tree (its `dist/bench/e2e-harness.js`), enclave on
 * the image's pinned Node 22 when installed (as bench/e2e.ts does), parent on this node. Every
 * round gives each variant `--seconds` of `signer_signDigest` load after a warm-up; the report is
 * per metric the median over rounds and, against the first variant, the median of the per-round
 * ratios and in how many rounds the variant was ahead. A change is worth believing when it is
 * ahead in most rounds, not when its median moved.
 *
 * Every round starts a fresh stack per variant, in the round's order, and stops it after; each
 * gets `--warmup-seconds` of the same load right before its turn (not counted). A stack keeps its
 * own speed for its whole life: an A/A run of one build, two stacks kept for 6 rounds, put one
 * 5.6 % behind the other in all 6 (memory layout, JIT decisions, where the scheduler put its
 * threads), which "ahead in 6 of 6" would have called a result. Fresh stacks turn that into noise
 * between rounds — on the shared dev box A/A pairs still differ by up to 4 % over 8 rounds, so
 * run an A/A pair beside a small change, or many rounds. `--keep-stacks` keeps one stack per
 * variant for the whole run (faster; what sessions 16–17 measured with).
 *
 *   npm run build && node dist/bench/ab.js --variant base=/tmp/base --variant now=. \
 *     [--env now:GLIBC_TUNABLES=glibc.malloc.mxfast=0] [--rounds 8] [--clients 64] \
 *     [--transport ipc|http] [--seconds 4] [--warmup-seconds 3] [--keep-stacks] \
 *     [--enclave-node PATH (default: the image's pinned Node 22, else this node)] \
 *     [--enclave-allocator pinned|none|PATH (default pinned: the image's tcmalloc, build/debs.lock)] \
 *     [--out bench/results/ab.json]
 *
 * Timing lives here, written to a file, never in a test (the developers' guide).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { allocatorFlag, pinnedRuntimeNode } from '../build/pinned-runtime.js';
import { repoRoot } from '../dev/stack.js';
import type * as Harness from './e2e-harness.js';
import { median } from './rounds.js';

/** A pause before each measurement: the stack measured before it finishes what its load left (GC, WAL). */
const settleMs = 1000;

interface Variant {
  name: string;
  root: string;
  env: Record<string, string>;
}

/** One round of one variant: the load's numbers, CPU in ms per request. */
interface Sample {
  rps: number;
  p50Ms: number;
  enclaveMs: number;
  parentMs: number;
  totalMs: number;
  errors: number;
}

/** A metric over the rounds: its median and, for every variant but the first, how it compares. */
interface Compared {
  median: number;
  /** Median of the per-round ratios to the first variant, minus 1. */
  vsFirst?: number;
  /** Rounds in which this variant was better than the first. */
  roundsAhead?: number;
}

const METRICS: { key: keyof Omit<Sample, 'errors'>; higherIsBetter: boolean }[] = [
  { key: 'rps', higherIsBetter: true },
  { key: 'p50Ms', higherIsBetter: false },
  { key: 'enclaveMs', higherIsBetter: false },
  { key: 'parentMs', higherIsBetter: false },
  { key: 'totalMs', higherIsBetter: false },
];

function variantsOf(specs: string[], envs: string[]): Variant[] {
  const out = specs.map((s) => {
    const eq = s.indexOf('=');
    if (eq < 1) throw new Error(`--variant ${s}: expected NAME=DIR`);
    return { name: s.slice(0, eq), root: resolve(s.slice(eq + 1)), env: {} as Record<string, string> };
  });
  if (out.length === 0) throw new Error('at least one --variant NAME=DIR');
  for (const e of envs) {
    const m = /^([^:]+):([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(e);
    const v = m ? out.find((x) => x.name === m[1]) : undefined;
    if (!m || !v) throw new Error(`--env ${e}: expected VARIANT:NAME=VALUE for a variant given with --variant`);
    v.env[m[2]!] = m[3]!;
  }
  return out;
}

interface Side {
  v: Variant;
  h: typeof Harness;
  samples: Sample[];
}

/** One running dev stack of a variant, with the key it signs with. */
interface Live {
  side: Side;
  stack: Harness.Stack;
  keyId: string;
}

function measure(l: Live, clients: number, transport: 'ipc' | 'http', seconds: number, warmupMs: number) {
  const { h } = l.side;
  return h.load({ transport, socket: l.stack.socket, pids: l.stack.pids, warmup: warmupMs, concurrency: clients, method: 'signer_signDigest', params: (i) => ({ keyId: l.keyId, digest: h.digestHex(i) }), seconds, maxRequests: 1e9 });
}

/** Starts one stack per variant, in the order given, each in a data directory of its own. */
async function startAll(sides: Side[], dir: string, round: number, enclave: { enclaveNode?: string; enclaveAllocator?: string }): Promise<Live[]> {
  const live: Live[] = [];
  try {
    for (const side of sides) {
      // The variant's environment reaches the dev process and, through it, the enclave.
      const saved = { ...process.env };
      Object.assign(process.env, side.v.env);
      let stack: Harness.Stack;
      try {
        // A base tree older than --enclave-allocator ignores it: it runs as it shipped, on glibc's malloc.
        stack = await side.h.startStack(join(dir, `${side.v.name}-${round}`), enclave);
      } finally {
        process.env = saved;
      }
      // In the list before its key is made, so a failure there stops it too.
      const l: Live = { side, stack, keyId: '' };
      live.push(l);
      l.keyId = (await side.h.rpc(stack.socket, 'signer_createKey', { label: 'ab' })).keyId as string;
    }
    return live;
  } catch (e) {
    await stopAll(live);
    throw e;
  }
}

/**
 * Round r's order: rotated by r, and reversed every other pass, so that over n rounds (n
 * variants) each variant is measured once in each position, and what comes before a position
 * (another stack's load, the start of all stacks) falls on every variant alike.
 */
function orderOf<T>(items: readonly T[], r: number): T[] {
  const n = items.length;
  const rotated = items.map((_, i) => items[(i + r) % n]!);
  return Math.floor(r / n) % 2 ? rotated.reverse() : rotated;
}

async function stopAll(live: Live[]): Promise<void> {
  for (const l of live) await l.stack.stop();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      variant: { type: 'string', multiple: true, default: [] },
      env: { type: 'string', multiple: true, default: [] },
      rounds: { type: 'string', default: '8' },
      clients: { type: 'string', default: '64' },
      transport: { type: 'string', default: 'ipc' },
      seconds: { type: 'string', default: '4' },
      'warmup-seconds': { type: 'string', default: '3' },
      'keep-stacks': { type: 'boolean', default: false },
      'enclave-node': { type: 'string' },
      'enclave-allocator': { type: 'string', default: 'pinned' },
      out: { type: 'string' },
    },
  });
  const variants = variantsOf(values.variant, values.env);
  const rounds = Number(values.rounds);
  const clients = Number(values.clients);
  const seconds = Number(values.seconds);
  const transport = values.transport;
  const warmupSeconds = Number(values['warmup-seconds']);
  const fresh = !values['keep-stacks'];
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(clients) || clients < 1 || !(seconds > 0) || !(warmupSeconds >= 0) || (transport !== 'ipc' && transport !== 'http')) {
    throw new Error('--rounds and --clients are positive integers, --seconds a positive number, --warmup-seconds a number ≥ 0, --transport ipc or http');
  }
  const enclaveNode = values['enclave-node'] !== undefined ? resolve(values['enclave-node']) : pinnedRuntimeNode(repoRoot())?.path;
  const allocator = allocatorFlag(repoRoot(), values['enclave-allocator'], '--enclave-allocator');
  const enclaveAllocator = allocator.path;
  process.stderr.write(`enclave malloc: ${enclaveAllocator ?? 'glibc'} (${allocator.why})\n`);
  const enclave = { ...(enclaveNode ? { enclaveNode } : {}), ...(enclaveAllocator ? { enclaveAllocator } : {}) };
  const dir = mkdtempSync(join(tmpdir(), 'es-bench-ab-'));
  const sides: Side[] = [];
  for (const v of variants) {
    sides.push({ v, h: (await import(pathToFileURL(join(v.root, 'dist', 'bench', 'e2e-harness.js')).href)) as typeof Harness, samples: [] });
  }
  let live: Live[] = [];
  try {
    if (!fresh) live = await startAll(sides, dir, 0, enclave);
    for (let r = 0; r < rounds; r++) {
      if (fresh) live = await startAll(orderOf(sides, r), dir, r, enclave);
      for (const l of fresh ? live : orderOf(live, r)) {
        await sleep(settleMs);
        // Warmed right before it counts, so no variant idles longer between its warm-up and its turn.
        if (fresh && warmupSeconds > 0) await measure(l, clients, transport, warmupSeconds, 0);
        const res = await measure(l, clients, transport, seconds, 500);
        const c = res.cpuMsPerOp;
        const enclaveMs = (c.enclaveMain ?? 0) + (c.enclaveOthers ?? 0);
        const parentMs = (c.parentMain ?? 0) + (c.parentOthers ?? 0);
        l.side.samples.push({ rps: res.opsPerSec, p50Ms: res.p50Ms, enclaveMs, parentMs, totalMs: enclaveMs + parentMs + (c.client ?? 0), errors: res.errors });
      }
      process.stderr.write(`round ${r + 1}/${rounds}: ${sides.map((s) => `${s.v.name} ${s.samples.at(-1)!.rps.toFixed(0)}/s`).join(', ')}\n`);
      if (fresh) await stopAll(live.splice(0));
    }
  } finally {
    await stopAll(live);
    rmSync(dir, { recursive: true, force: true });
  }

  const base = sides[0]!;
  const report = sides.map((s) => ({
    name: s.v.name,
    root: s.v.root,
    env: s.v.env,
    errors: s.samples.reduce((a, x) => a + x.errors, 0),
    metrics: Object.fromEntries(
      METRICS.map(({ key, higherIsBetter }): [string, Compared] => {
        const med = median(s.samples.map((x) => x[key]));
        if (s === base) return [key, { median: med }];
        const ratios = s.samples.map((x, i) => x[key] / base.samples[i]![key]);
        const ahead = ratios.filter((q) => (higherIsBetter ? q > 1 : q < 1)).length;
        return [key, { median: med, vsFirst: +(median(ratios) - 1).toFixed(4), roundsAhead: ahead }];
      }),
    ),
    rounds: s.samples,
  }));
  for (const v of report) {
    const line = Object.entries(v.metrics).map(([k, m]) => {
      const vs = m.vsFirst !== undefined ? ` (${m.vsFirst >= 0 ? '+' : ''}${(m.vsFirst * 100).toFixed(1)} %, ahead ${m.roundsAhead}/${rounds})` : '';
      return `${k} ${m.median}${vs}`;
    });
    console.log(`${v.name}: ${line.join('; ')}; errors ${v.errors}`);
  }
  if (values.out) {
    writeFileSync(values.out, `${JSON.stringify({ bench: 'ab', startedAt: new Date().toISOString(), config: { rounds, clients, transport, seconds, warmupSeconds, freshStacks: fresh, enclaveNode: enclaveNode ?? process.execPath, enclaveAllocator: enclaveAllocator ?? 'glibc' }, variants: report }, null, 2)}\n`);
    console.log(`wrote ${values.out}`);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
