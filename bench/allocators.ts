/**
 * The raw signing primitive (@noble/secp256k1 v3 sign, one thread, the loop of bench/e2e.ts's
 * `raw`, bench/raw-signing.ts) on the image's Node 22 under each malloc: glibc's, the image's tcmalloc (the .deb
 * build/debs.lock pins; enclave/node-flags.ts), and mimalloc and jemalloc when this machine has
 * them installed (Debian's libmimalloc2.0, libjemalloc2: measured for comparison only).
 * Each round runs every allocator once, in a child process of its own (bench/raw-signing.ts),
 * in an order that rotates.
 *
 *   npm run build && node dist/bench/allocators.js [--rounds 6] [--seconds 2] [--out bench/results/allocators.json]
 *
 * Timing lives here, written to a file, never in a test (the developers' guide).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { pinnedAllocator, pinnedRuntimeNode } from '../build/pinned-runtime.js';
import { repoRoot } from '../dev/stack.js';
import { rawSigningOn } from './raw-signing.js';
import { median } from './rounds.js';

interface Candidate {
  name: string;
  preload: string | undefined;
}

function candidates(root: string): Candidate[] {
  const out: Candidate[] = [{ name: 'glibc', preload: undefined }];
  const pinned = pinnedAllocator(root);
  if (pinned) out.push({ name: `tcmalloc (${pinned.debPackage}, the image's)`, preload: pinned.path });
  for (const [name, path] of [
    ['mimalloc (libmimalloc2.0, installed)', '/usr/lib/x86_64-linux-gnu/libmimalloc.so.2'],
    ['jemalloc (libjemalloc2, installed)', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'],
  ] as const) {
    if (existsSync(path)) out.push({ name, preload: path });
  }
  return out;
}

function main(): void {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '6' }, seconds: { type: 'string', default: '2' }, out: { type: 'string' } } });
  const rounds = Number(values.rounds);
  const seconds = Number(values.seconds);
  if (!Number.isInteger(rounds) || rounds < 1 || !(seconds > 0)) throw new Error('--rounds is a positive integer, --seconds a positive number');
  const root = repoRoot();
  const node = pinnedRuntimeNode(root) ?? { path: process.execPath, version: process.version };
  const all = candidates(root);
  const samples = new Map<string, number[]>(all.map((c) => [c.name, []]));
  const load0 = loadavg();
  for (let r = 0; r < rounds; r++) {
    const order = all.map((_, i) => all[(i + r) % all.length]!);
    for (const c of r % 2 === 0 ? order : order.reverse()) {
      // Always a child process; glibc's run with LD_PRELOAD cleared.
      samples.get(c.name)!.push(rawSigningOn(node.path, seconds, 1_000_000, c.preload ?? '').cpuMsPerOp);
    }
    process.stderr.write(`round ${r + 1}/${rounds}: ${all.map((c) => `${c.name.split(' ')[0]} ${samples.get(c.name)!.at(-1)} ms`).join(', ')}\n`);
  }
  const base = samples.get('glibc')!;
  const rates = all.map((c) => {
    const s = samples.get(c.name)!;
    const perRound = s.map((v, i) => v / base[i]!);
    return {
      name: c.name,
      preload: c.preload ?? null,
      cpuMsPerSignature: +median(s).toFixed(4),
      overGlibc: +median(perRound).toFixed(3),
      lowerThanGlibcInRounds: `${perRound.filter((x) => x < 1).length}/${rounds}`,
      samples: s,
    };
  });
  for (const x of rates) process.stderr.write(`${x.name}: ${x.cpuMsPerSignature} ms CPU per signature, ×${x.overGlibc} glibc's (lower in ${x.lowerThanGlibcInRounds})\n`);
  const result = {
    benchmark: 'raw secp256k1 sign per malloc',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model.trim() ?? 'unknown', node: node.version, loadavgBefore: load0.map((x) => +x.toFixed(2)), loadavgAfter: loadavg().map((x) => +x.toFixed(2)) },
    method: `@noble/secp256k1 v3 sign(digest, key, { prehash: false, format: 'recovered' }), one thread, ${seconds} s per run after a 1 s warm-up (bench/raw-signing.ts), each run a fresh process with LD_PRELOAD; ${rounds} rounds in rotating order; medians`,
    rates,
  };
  const outPath = values.out ?? join(root, 'bench', 'results', 'allocators.json');
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`);
  process.stderr.write(`wrote ${outPath}\n`);
}

main();
