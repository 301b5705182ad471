/**
 * Test helpers for the signing pool and its workers: jobs on a fresh key id (secpJob, and
 * largePsbtJob for an expensive one), and watchWorkers, which watches a pool's worker threads
 * from the outside, with no hook in production code. Every worker the pool uses gets a
 * postMessage (its keyring, its jobs), and a job handed to a worker starts with a `job`
 * message, or a `sign` message when it was decided ahead (worker.ts); a job run inline posts
 * nothing.
 */
import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import type { JsonLike } from '../common/cbor-json.js';
import type { SignOp } from '../common/protocol/enclave-api.js';
import type { SignJob } from './job-signer.js';
import { wrapKey } from './kms/wrapped-key.js';
import { SIGNER_LIMITS } from './signers/limits.js';

export interface WorkerWatch {
  /** Every Worker posted to while watching. */
  readonly workers: Set<Worker>;
  /** Jobs handed to a worker while watching (decided ahead or not). */
  readonly jobs: number;
  /** Of those, the jobs decided ahead (one `sign` message each). */
  readonly decidedAhead: number;
  /** Puts postMessage back as it was before this watch (stop watches in the reverse order). */
  stop(): void;
}

export function watchWorkers(): WorkerWatch {
  const post = Worker.prototype.postMessage;
  const workers = new Set<Worker>();
  let jobs = 0;
  let decidedAhead = 0;
  Worker.prototype.postMessage = function (this: Worker, ...args: Parameters<Worker['postMessage']>) {
    workers.add(this);
    const t = (args[0] as { t?: string } | null)?.t;
    if (t === 'job' || t === 'sign') jobs++;
    if (t === 'sign') decidedAhead++;
    return post.apply(this, args);
  };
  return {
    workers,
    get jobs() {
      return jobs;
    },
    get decidedAhead() {
      return decidedAhead;
    },
    stop: () => {
      Worker.prototype.postMessage = post;
    },
  };
}

/** Runs `fn` while watching, and stops watching however it ends. */
export async function watching<T>(fn: (w: WorkerWatch) => Promise<T>): Promise<T> {
  const w = watchWorkers();
  try {
    return await fn(w);
  } finally {
    w.stop();
  }
}

/** A job on a secp256k1 key (`secret`, a new key id), wrapped under `ringKey` for `keyringId`. */
export function secpJob(ringKey: Uint8Array, keyringId: string, secret: Uint8Array, op: SignOp, request: Record<string, JsonLike>): SignJob {
  const keyId = randomUUID();
  return { op, keyId, kind: 'secp256k1', keyringId, blob: wrapKey(ringKey, { keyringId, keyId, kind: 'secp256k1' }, secret), request };
}

/**
 * An expensive job: a PSBT at the input limit on a seed key (`seed`, a new key id), every input
 * ours, wrapped under `ringKey` for `keyringId` — milliseconds to prepare and more to sign.
 */
export function largePsbtJob(ringKey: Uint8Array, keyringId: string, seed: Uint8Array): SignJob {
  const keyId = randomUUID();
  const master = HDKey.fromMasterSeed(seed);
  const child = master.derive('m/0/0');
  const script = btc.p2wpkh(child.publicKey!).script;
  const tx = new btc.Transaction();
  for (let i = 0; i < SIGNER_LIMITS.maxPsbtInputs; i++) {
    tx.addInput({
      txid: new Uint8Array(32).fill(2).map((x, j) => (j === 0 ? i & 0xff : j === 1 ? i >> 8 : x)),
      index: 0,
      witnessUtxo: { script, amount: 10_000n },
      bip32Derivation: [[child.publicKey!, { fingerprint: master.fingerprint, path: [0, 0] }]],
    });
  }
  tx.addOutput({ script, amount: 1000n });
  return {
    op: 'signer_signPsbt',
    keyId,
    kind: 'bip32-seed',
    keyringId,
    blob: wrapKey(ringKey, { keyringId, keyId, kind: 'bip32-seed' }, seed),
    request: { psbt: Buffer.from(tx.toPSBT()).toString('base64') },
  };
}
