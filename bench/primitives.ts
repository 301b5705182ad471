/**
 * Raw per-core signing rate of every secp256k1 candidate, in the same run,
 * alternating short loops so load from other processes hits them alike:
 *
 *   @noble/curves v2     secp256k1.sign(digest, key, { prehash: false })  (the old hot path)
 *   @noble/secp256k1 v3  secp.sign(digest, key, { prehash: false }) with its hashes from
 *                        node:crypto (the hot path now, enclave/signers/secp.ts) and, as
 *                        noble's README sets them and the hot wallet uses them, from
 *                        @noble/hashes
 *   node:crypto          OpenSSL ECDSA on secp256k1, native, random k    (reference only)
 *
 * The native libsecp256k1 binding (npm `secp256k1`) is not installed on the
 * development machine; OpenSSL stands in as "how far is pure JS from native".
 * Also BIP340 and getPublicKey for both pure-JS libraries.
 *
 * Usage: node dist/bench/primitives.js [--seconds 4]  (writes bench/results/primitives.json)
 */
import { createPrivateKey, generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { schnorr as curvesSchnorr, secp256k1 as curves } from '@noble/curves/secp256k1.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { secp } from '../enclave/signers/secp.js';

export interface Rate {
  name: string;
  opsPerSec: number;
  /** CPU ms per op (this thread's user+system over the loops / ops). */
  cpuMsPerOp: number;
  n: number;
}

/** `enter` runs before each of the candidate's loops (the secp256k1 v3 variants swap its hash functions). */
type Candidate = { name: string; op: (i: number) => void; enter?: () => void };

/** The enclave's hash functions (node:crypto), as enclave/signers/secp.ts set them on import. */
const enclaveHashes = { hmacSha256: secp.hashes.hmacSha256, sha256: secp.hashes.sha256 };
/** The hash functions noble's README sets (@noble/hashes), as the hot wallet does. */
const readmeHashes = { hmacSha256: (k: Uint8Array, m: Uint8Array) => hmac(sha256, k, m), sha256 };
const useHashes = (h: typeof enclaveHashes) => () => Object.assign(secp.hashes, h);

function candidates(): Candidate[] {
  const key = curves.utils.randomSecretKey();
  const d = new Uint8Array(32);
  const digest = (i: number) => {
    new DataView(d.buffer).setUint32(28, i);
    return d;
  };
  const { privateKey }: { privateKey: KeyObject } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  const pk = createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' }));
  return [
    { name: '@noble/curves v2 ECDSA sign', op: (i) => curves.sign(digest(i), key, { prehash: false, format: 'recovered' }) },
    { name: '@noble/secp256k1 v3 ECDSA sign', op: (i) => secp.sign(digest(i), key, { prehash: false, format: 'recovered' }), enter: useHashes(enclaveHashes) },
    {
      name: '@noble/secp256k1 v3 ECDSA sign, @noble/hashes HMAC (its README, the hot wallet)',
      op: (i) => secp.sign(digest(i), key, { prehash: false, format: 'recovered' }),
      enter: useHashes(readmeHashes),
    },
    { name: 'node:crypto (OpenSSL, native) ECDSA sign', op: (i) => nodeSign(null, digest(i), { key: pk, dsaEncoding: 'ieee-p1363' }) },
    { name: '@noble/curves v2 getPublicKey', op: () => curves.getPublicKey(key, true) },
    { name: '@noble/secp256k1 v3 getPublicKey', op: () => secp.getPublicKey(key, true) },
    { name: '@noble/curves v2 BIP340 sign', op: (i) => curvesSchnorr.sign(digest(i), key, d) },
    { name: '@noble/secp256k1 v3 BIP340 sign', op: (i) => secp.schnorr.sign(digest(i), key, d), enter: useHashes(enclaveHashes) },
  ];
}

/** Alternates 100 ms loops of every candidate for `seconds` in total. */
export function measurePrimitives(seconds: number, only?: (name: string) => boolean): Rate[] {
  const cs = candidates().filter((c) => !only || only(c.name));
  const acc = cs.map(() => ({ n: 0, ms: 0, cpu: 0 }));
  try {
    return loops(cs, acc, seconds);
  } finally {
    useHashes(enclaveHashes)();
  }
}

function loops(cs: Candidate[], acc: { n: number; ms: number; cpu: number }[], seconds: number): Rate[] {
  for (const c of cs) {
    c.enter?.();
    for (let i = 0; i < 20; i++) c.op(i); // warm-up
  }
  const until = performance.now() + seconds * 1000;
  let i = 0;
  while (performance.now() < until) {
    for (const [k, c] of cs.entries()) {
      const a = acc[k]!;
      c.enter?.();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const stop = t0 + 100;
      do c.op(i++), a.n++;
      while (performance.now() < stop);
      a.ms += performance.now() - t0;
      const c1 = process.cpuUsage(c0);
      a.cpu += (c1.user + c1.system) / 1000;
    }
  }
  return cs.map((c, k) => {
    const a = acc[k]!;
    return { name: c.name, n: a.n, opsPerSec: +((a.n * 1000) / a.ms).toFixed(1), cpuMsPerOp: +(a.cpu / a.n).toFixed(4) };
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '4' } } });
  const rates = measurePrimitives(Math.min(60, Math.max(1, Number(values.seconds))));
  const out = join(fileURLToPath(import.meta.url), '..', '..', '..', 'bench', 'results', 'primitives.json');
  mkdirSync(join(out, '..'), { recursive: true });
  const result = { benchmark: 'secp256k1-primitives', date: new Date().toISOString(), machine: { cpus: cpus().length, model: cpus()[0]?.model.trim() ?? 'unknown', node: process.version, loadavg1m: +loadavg()[0]!.toFixed(2) }, note: 'per core, one thread, alternating 100 ms loops; npm secp256k1 (libsecp256k1) not installed, OpenSSL via node:crypto stands in as the native reference', rates };
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  for (const r of rates) process.stderr.write(`${r.name}: ${r.opsPerSec} ops/s, ${r.cpuMsPerOp} CPU ms/op\n`);
  process.stderr.write(`wrote ${out}\n`);
}
