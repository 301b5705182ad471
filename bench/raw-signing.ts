/**
 * The raw primitive the benchmarks compare against: @noble/secp256k1 v3 `sign` of a 32-byte
 * digest in a loop, one thread, as the signing workers call it. bench/e2e.ts (the targets'
 * reference) and bench/allocators.ts (one run per malloc) measure it through `rawSigningOn`,
 * which runs the loop in a child process on another node or under another malloc: this module
 * is that child's entry too (`node raw-signing.js SECONDS MAX_OPS` prints one JSON line).
 *
 * Timing lives here, written to a file by its callers, never in a test (the developers' guide).
 */
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { secp } from '../enclave/signers/secp.js';
import { stats, type Stats } from './e2e-harness.js';

export type RawRun = Stats & { cpuMsPerOp: number };

/** Raw in-process signing (@noble/secp256k1 v3, the hot path's primitive) of the same kind of digest, one thread. */
export function rawSigning(seconds: number, maxOps: number): RawRun {
  const key = secp.utils.randomSecretKey();
  const digest = (i: number) => {
    const d = new Uint8Array(32);
    new DataView(d.buffer).setUint32(28, i);
    return d;
  };
  // Warm-up: 1 s, so that a fresh process (a child on another node or malloc) is measured optimized, as the workers are.
  for (let i = 0, t = performance.now(); i < 20_000 && performance.now() - t < 1000; i++) secp.sign(digest(i), key, { prehash: false, format: 'recovered' });
  const lat: number[] = [];
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  for (let i = 0; i < maxOps && performance.now() < until; i++) {
    const a = performance.now();
    secp.sign(digest(i), key, { prehash: false, format: 'recovered' });
    lat.push(performance.now() - a);
  }
  const c1 = process.cpuUsage(c0);
  key.fill(0);
  return { ...stats(lat, (performance.now() - t0) / 1000), cpuMsPerOp: +((c1.user + c1.system) / 1000 / Math.max(1, lat.length)).toFixed(4) };
}

/**
 * rawSigning on `node`, in a child process of this module when it is not this node or when
 * `preload` names a malloc library (`''`: none, whatever LD_PRELOAD the caller has).
 */
export function rawSigningOn(node: string, seconds: number, maxOps: number, preload?: string): RawRun {
  if (node === process.execPath && preload === undefined) return rawSigning(seconds, maxOps);
  const env = preload === undefined ? process.env : { ...process.env, LD_PRELOAD: preload };
  const out = execFileSync(node, [fileURLToPath(import.meta.url), String(seconds), String(maxOps)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env });
  return JSON.parse(out) as RawRun;
}

/** The run with the median CPU per signature (the upper one of an even count); undefined when there is none. */
export function medianRun(runs: RawRun[]): RawRun | undefined {
  return [...runs].sort((a, b) => a.cpuMsPerOp - b.cpuMsPerOp)[Math.floor(runs.length / 2)];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [seconds, maxOps] = process.argv.slice(2).map(Number);
  if (!(seconds! > 0) || !(maxOps! > 0)) throw new Error('usage: raw-signing.js SECONDS MAX_OPS');
  process.stdout.write(`${JSON.stringify(rawSigning(seconds!, maxOps!))}\n`);
}
