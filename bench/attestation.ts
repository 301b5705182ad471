/**
 * Attestation verification throughput: our verifier vs
 * @evervault/attestation-bindings (Rust: webpki + aws-nitro-enclaves-cose) on
 * the same real document, in the same process.
 *
 * The peer verifies certificate validity against the wall clock and offers no
 * way to pass a time, so the whole benchmark re-executes itself under
 * libfaketime (Debian `faketime`) at the document's own timestamp; monotonic
 * clocks stay real (FAKETIME_DONT_FAKE_MONOTONIC=1) so timings are honest.
 * The peer's only entry point also requires a TLS certificate whose SPKI equals
 * the document's user_data; of the real fixtures only evervault_ga_debug has
 * that shape, so the head-to-head runs on it. Ours runs on every fixture too.
 *
 * It runs under this node and again under the pinned Node 22 the enclave image
 * ships (build/runtime, when installed): their OpenSSL differs (3.0 and 3.5),
 * and with it the cost of importing a certificate's key (~0.13 ms against
 * ~0.03 ms), which a cold verification does four times.
 *
 * Usage: npm run bench:attest   (writes bench/results/attestation.json)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, platform, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { clearChainCache } from '../attestation/chain.js';
import { verifyAttestation } from '../attestation/verify.js';
import { der } from '../common/der.js';
import { pinnedRuntimeNode } from '../build/pinned-runtime.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PEER_DOC = 'evervault_ga_debug_2023-09-18';

function fixturesDir(): string {
  for (const c of [process.env.ENCLAVE_SIGNER_FIXTURES, join(REPO, '..', 'shared', 'fixtures'), '/work/shared/fixtures']) {
    if (c && existsSync(join(c, 'attestation'))) return join(c, 'attestation');
  }
  throw new Error('shared fixtures not found; set ENCLAVE_SIGNER_FIXTURES');
}

/** A certificate carrying `spki`, signed by a throwaway key: the peer only compares SPKIs. */
function certWithSpki(spki: Uint8Array): Buffer {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const alg = der.seq(der.oid('1.2.840.10045.4.3.2'));
  const name = der.seq(der.set(der.seq(der.oid('2.5.4.3'), der.utf8('enclave-signer bench'))));
  const validity = der.seq(der.time(new Date('2020-01-01T00:00:00Z')), der.time(new Date('2040-01-01T00:00:00Z')));
  const tbs = der.seq(der.explicit(0, der.int(2)), der.int(1), alg, name, validity, name, spki);
  return Buffer.from(der.seq(tbs, alg, der.bits(new Uint8Array(sign('sha256', tbs, privateKey)))));
}

/** Runs fn repeatedly for ~ms milliseconds (after a warm-up) and returns operations per second. */
function rate(fn: () => void, ms = 2000): { opsPerSec: number; iterations: number; meanUs: number } {
  for (let i = 0; i < 50; i++) fn();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
    t = performance.now();
  }
  const secs = (t - t0) / 1000;
  return { opsPerSec: Math.round(n / secs), iterations: n, meanUs: Math.round(((t - t0) * 1000) / n) };
}

function main(): void {
  const dir = fixturesDir();
  const sidecar = JSON.parse(readFileSync(join(dir, `${PEER_DOC}.json`), 'utf8')) as { timestamp_raw: number; user_data: { hex: string } };
  if (!process.env.ENCLAVE_SIGNER_BENCH_CHILD) {
    const at = new Date(sidecar.timestamp_raw + 60_000).toISOString().replace('T', ' ').slice(0, 19);
    const faketime = spawnSync('sh', ['-c', 'command -v faketime'], { encoding: 'utf8' }).stdout.trim();
    if (!faketime) {
      console.error('faketime is not installed (apt-get install faketime); the Rust peer cannot be driven at the document time without it');
      process.exitCode = 1;
      return;
    }
    const date = new Date().toISOString();
    const runs: Array<Record<string, unknown>> = [];
    for (const node of runtimes()) {
      const out = join(mkdtempSync(join(tmpdir(), 'es-bench-attest-')), 'result.json');
      execFileSync(faketime, ['-f', `@${at}`, node, fileURLToPath(import.meta.url)], {
        stdio: 'inherit',
        env: { ...process.env, TZ: 'UTC', ENCLAVE_SIGNER_BENCH_CHILD: date, ENCLAVE_SIGNER_BENCH_OUT: out, FAKETIME_DONT_FAKE_MONOTONIC: '1' },
      });
      runs.push(JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>);
      rmSync(dirname(out), { recursive: true, force: true });
    }
    const [first, ...others] = runs;
    const outDir = join(REPO, 'bench', 'results');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'attestation.json'), `${JSON.stringify({ ...first, otherRuntimes: others }, null, 2)}\n`);
    for (const r of runs) console.error(`node ${(r.machine as { node: string }).node}: cold ${(r.ratio as { oursColdOverPeer: number }).oursColdOverPeer}× the Rust peer, cached intermediates ${(r.ratio as { oursCachedOverPeer: number }).oursCachedOverPeer}×`);
    return;
  }

  const require = createRequire(import.meta.url);
  const peer = require('@evervault/attestation-bindings') as { attestEnclave(cert: Buffer, pcrs: object[], doc: Buffer): boolean };
  const doc = readFileSync(join(dir, `${PEER_DOC}.cbor`));
  const cert = certWithSpki(Buffer.from(sidecar.user_data.hex, 'hex'));

  // Both must accept the document before we time anything.
  if (!peer.attestEnclave(cert, [{}], doc)) throw new Error('peer rejected the document (is faketime active?)');
  const opts = { at: 'document' as const, allowDebug: true, expectedUserData: new Uint8Array(Buffer.from(sidecar.user_data.hex, 'hex')) };
  verifyAttestation(doc, opts);

  const ms = Number(process.env.BENCH_MS ?? 2000);
  const ours = rate(() => verifyAttestation(doc, opts), ms);
  const oursCold = rate(() => {
    clearChainCache();
    verifyAttestation(doc, opts);
  }, ms);
  const theirs = rate(() => {
    if (!peer.attestEnclave(cert, [{}], doc)) throw new Error('peer failed');
  }, ms);

  const all: Record<string, number> = {};
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.cbor') && !x.includes('KNOWN_BAD'))) {
    const bytes = readFileSync(join(dir, f));
    all[f] = rate(() => verifyAttestation(bytes, { at: 'document', allowDebug: true }), ms / 4).opsPerSec;
  }

  const result = {
    benchmark: 'attestation-verify',
    date: process.env.ENCLAVE_SIGNER_BENCH_CHILD,
    note: 'measured under libfaketime at the document timestamp (the peer reads only the wall clock); durations use the real monotonic clock',
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, platform: `${platform()} ${release()}` },
    document: PEER_DOC,
    ours: { cachedIntermediates: ours, cold: oursCold },
    peer: { package: '@evervault/attestation-bindings@1.0.0', ...theirs },
    ratio: {
      oursCachedOverPeer: +(ours.opsPerSec / theirs.opsPerSec).toFixed(2),
      oursColdOverPeer: +(oursCold.opsPerSec / theirs.opsPerSec).toFixed(2),
    },
    oursPerFixtureOpsPerSec: all,
  };
  writeFileSync(process.env.ENCLAVE_SIGNER_BENCH_OUT!, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
}

/** This node, then the pinned Node 22 of build/runtime if it is installed and another version. */
function runtimes(): string[] {
  const pinned = pinnedRuntimeNode(REPO);
  return pinned === undefined || pinned.version === process.version ? [process.execPath] : [process.execPath, pinned.path];
}

main();
