/**
 * The signing step of a job decided ahead (worker-pool.ts, "Decided ahead"):
 * the main thread decided on facts it learnt earlier and on its own parse of
 * the request, so the signer signs only if the key it unwrapped (or found in
 * its cache) has exactly those facts and the request parses to exactly that
 * intent. Without these checks the two would be believed, and each case below
 * would sign. The last case sends the same `sign` message to a real worker
 * thread.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { HDKey } from '@scure/bip32';
import { recoverAddress } from 'viem';
import { afterEach, describe, expect, it } from 'vitest';
import { arenaKeyCopies, createJobSigner, type Decision, type JobSigner, type SignJob, signerArenaBytes } from './job-signer.js';
import { DEFAULT_KEY_CACHE } from './key-cache.js';
import { wrapKey } from './kms/wrapped-key.js';
import { secpIntent } from './operations.js';
import { arenaBytes, SecretArena } from './secret-arena.js';
import { addressFromPrivateKey } from './signers/index.js';
import type { WorkerIn, WorkerOut } from './worker.js';
import { secpJob } from './worker-test-helpers.js';

const RING = randomUUID();
const secret = new Uint8Array(32).fill(11);
const other = new Uint8Array(32).fill(12);
const DIGEST = `0x${'ab'.repeat(32)}`;

let signers: JobSigner[] = [];
afterEach(() => {
  for (const s of signers) s.close();
  signers = [];
});

function setup(): { signer: JobSigner; job: SignJob; ringKey: Uint8Array } {
  const ringKey = new Uint8Array(randomBytes(32));
  const job = secpJob(ringKey, RING, secret, 'signer_signDigest', { digest: DIGEST });
  const signer = createJobSigner();
  signer.setKeyring(RING, ringKey.slice());
  signers.push(signer);
  return { signer, job, ringKey };
}

/** The decision the main thread would make for `job` on this key: the facts a first prepare learnt, its own parse. */
function honestDecision(signer: JobSigner, job: SignJob): Decision {
  const { facts } = signer.prepare(0, job, Date.now() + 10_000);
  signer.abort(0);
  return { facts, intent: secpIntent(job.op, job.keyId, job.request) };
}

const signatureOf = (r: unknown) => (r as { signature: `0x${string}` }).signature;

describe('a job decided ahead signs only what was decided', () => {
  it('the honest decision signs, with the key it names', async () => {
    const { signer, job } = setup();
    const decided = honestDecision(signer, job);
    signer.prepare(1, job, Date.now() + 10_000, decided);
    const sig = signatureOf(signer.sign(1));
    expect(await recoverAddress({ hash: DIGEST as `0x${string}`, signature: sig })).toBe(addressFromPrivateKey(secret));
  });

  it('facts of another key (any one field) are refused before anything is prepared', () => {
    const { signer, job } = setup();
    const decided = honestDecision(signer, job);
    const otherAddress = addressFromPrivateKey(other);
    const wrongs: Decision['facts'][] = [
      { ...decided.facts, address: otherAddress },
      { ...decided.facts, publicKey: `03${decided.facts.publicKey.slice(2)}` },
      { ...decided.facts, keyId: randomUUID() },
      { ...decided.facts, keyringId: randomUUID() },
      { ...decided.facts, xpub: 'xpub' },
      { ...decided.facts, child: { path: 'm/0', publicKey: decided.facts.publicKey, address: decided.facts.address! } },
    ];
    for (const facts of wrongs) {
      expect(() => signer.prepare(2, job, Date.now() + 10_000, { facts, intent: decided.intent })).toThrow(expect.objectContaining({ code: 'KEY_FACTS_MISMATCH' }));
      // nothing kept under the id: signing it is an error, not a signature
      expect(() => signer.sign(2)).toThrow(/no prepared job/);
    }
  });

  it('an intent other than the request parses to is refused', () => {
    const { signer, job } = setup();
    const decided = honestDecision(signer, job);
    const wrongs = [
      secpIntent(job.op, job.keyId, { digest: `0x${'cd'.repeat(32)}` }),
      { ...decided.intent, keyId: randomUUID() },
      { ...decided.intent, path: "m/0'" },
      secpIntent('signer_signSchnorr', job.keyId, { message: DIGEST }),
    ];
    for (const intent of wrongs) {
      expect(() => signer.prepare(3, job, Date.now() + 10_000, { facts: decided.facts, intent })).toThrow(expect.objectContaining({ code: 'INTENT_MISMATCH' }));
      expect(() => signer.sign(3)).toThrow(/no prepared job/);
    }
  });

  it('a real signing worker answers a `sign` message on wrong facts with a refusal, and the honest one with a signature', async () => {
    const { signer, job, ringKey } = setup();
    const decided = honestDecision(signer, job);
    const worker = new Worker(new URL('../dist/enclave/worker.js', import.meta.url));
    try {
      const answers: WorkerOut[] = [];
      // The worker answers in batches (worker.ts); each job here is alone in its batch.
      const next = () => new Promise<WorkerOut>((r) => worker.once('message', (m: WorkerOut[]) => r(m[0]!)));
      worker.postMessage({ t: 'keyring', keyringId: RING, key: ringKey } satisfies WorkerIn);
      const deadline = Date.now() + 10_000;
      worker.postMessage({ ...job, t: 'sign', id: 1, deadline, cheap: true, decided: { ...decided, facts: { ...decided.facts, address: addressFromPrivateKey(other) } } } satisfies WorkerIn);
      answers.push(await next());
      worker.postMessage({ ...job, t: 'sign', id: 2, deadline, cheap: true, decided } satisfies WorkerIn);
      answers.push(await next());
      expect(answers[0]).toMatchObject({ t: 'fail', id: 1, error: { code: 'KEY_FACTS_MISMATCH' } });
      expect(answers[1]).toMatchObject({ t: 'done', id: 2 });
      const sig = signatureOf((answers[1] as Extract<WorkerOut, { t: 'done' }>).result);
      expect(await recoverAddress({ hash: DIGEST as `0x${string}`, signature: sig })).toBe(addressFromPrivateKey(secret));
    } finally {
      await worker.terminate();
    }
  });
});

describe('the secrets a signer keeps live in its arena (secret-arena.ts)', () => {
  const holds = (hay: Uint8Array, needle: Uint8Array) => Buffer.from(hay).includes(Buffer.from(needle));
  const zero = (u: Uint8Array) => u.every((b) => b === 0);

  it('the keyring key and the cached key are in the arena it was given, the argument wiped; lock and close zero it all', () => {
    const arena = new SharedArrayBuffer(signerArenaBytes());
    const bytes = new Uint8Array(arena);
    const signer = createJobSigner({ arena });
    signers.push(signer);
    const ringKey = new Uint8Array(randomBytes(32));
    const given = ringKey.slice();
    signer.setKeyring(RING, given);
    expect(zero(given)).toBe(true); // the only copy kept is the arena's
    expect(holds(bytes, ringKey)).toBe(true);
    const job = secpJob(ringKey, RING, secret, 'signer_signDigest', { digest: DIGEST });
    signer.prepare(1, job, Date.now() + 10_000);
    signer.sign(1);
    expect(holds(bytes, secret)).toBe(true); // cached
    signer.lock();
    expect(zero(bytes)).toBe(true);
    signer.setKeyring(RING, ringKey.slice());
    signer.prepare(2, job, Date.now() + 10_000);
    signer.abort(2);
    expect(zero(bytes)).toBe(false);
    signer.close();
    expect(zero(bytes)).toBe(true);
  });

  it('an arena too small for the cache: nothing is cached, and the key still signs (its copy wiped after the job)', () => {
    const arena = new SharedArrayBuffer(64); // the keyring key's slot only
    const bytes = new Uint8Array(arena);
    const signer = createJobSigner({ arena });
    signers.push(signer);
    const ringKey = new Uint8Array(randomBytes(32));
    signer.setKeyring(RING, ringKey.slice());
    const job = secpJob(ringKey, RING, secret, 'signer_signDigest', { digest: DIGEST });
    for (const id of [1, 2]) {
      signer.prepare(id, job, Date.now() + 10_000);
      expect(signatureOf(signer.sign(id))).toMatch(/^0x/);
    }
    expect(holds(bytes, ringKey)).toBe(true);
    expect(holds(bytes, secret)).toBe(false);
  });

  it('a keyring key that does not fit a slot is refused, and no keyring is kept', () => {
    const signer = createJobSigner();
    signers.push(signer);
    expect(() => signer.setKeyring(RING, new Uint8Array(65).fill(1))).toThrow(expect.objectContaining({ code: 'WRAPPED_KEY_BAD_KEYRING' }));
    const job = secpJob(new Uint8Array(32).fill(3), RING, secret, 'signer_signDigest', { digest: DIGEST });
    expect(() => signer.prepare(1, job, Date.now() + 10_000)).toThrow(expect.objectContaining({ code: 'KEYRING_LOCKED' }));
  });
  describe('a prepared job’s key copy (operations.ts KeyCopies)', () => {
    /** No key cache: the only copy of a key the arena can hold is a prepared job's. */
    const NO_CACHE = { maxEntries: 0, ttlMs: 60_000 };
    const ringKey = new Uint8Array(randomBytes(32));
    const seed = new Uint8Array(32).fill(13);
    const seedJob = (): SignJob => {
      const keyId = randomUUID();
      const blob = wrapKey(ringKey, { keyringId: RING, keyId, kind: 'bip32-seed' }, seed);
      return { op: 'signer_signDigest', keyId, kind: 'bip32-seed', keyringId: RING, blob, request: { digest: DIGEST, path: 'm/0/7' } };
    };
    const signerOn = (arena: SharedArrayBuffer) => {
      const signer = createJobSigner({ arena, keyCache: NO_CACHE });
      signers.push(signer);
      signer.setKeyring(RING, ringKey.slice());
      return signer;
    };

    it('the arena is sized for the keyring key, the key cache and `prepared` jobs (default 1)', () => {
      expect(signerArenaBytes()).toBe(arenaBytes(1 + DEFAULT_KEY_CACHE.maxEntries + 1 + 1));
      expect(signerArenaBytes({ prepared: 32 })).toBe(67_712);
      expect(signerArenaBytes({ keyCache: NO_CACHE, prepared: 3 })).toBe(arenaBytes(4));
    });

    it('lives in the arena (not the heap) from prepare, and is zeroed when the job is signed or aborted', async () => {
      const arena = new SharedArrayBuffer(signerArenaBytes({ keyCache: NO_CACHE, prepared: 3 }));
      const bytes = new Uint8Array(arena);
      const signer = signerOn(arena);
      const child = HDKey.fromMasterSeed(seed).derive('m/0/7').privateKey!;
      signer.prepare(1, secpJob(ringKey, RING, secret, 'signer_signDigest', { digest: DIGEST }), Date.now() + 10_000);
      signer.prepare(2, secpJob(ringKey, RING, other, 'signer_signDigest', { digest: DIGEST }), Date.now() + 10_000);
      signer.prepare(3, seedJob(), Date.now() + 10_000);
      // Waiting for their decisions, each job's key is in a slot: the secp256k1 keys, the seed's
      // derived child (the seed itself is not kept: only the child signs).
      expect([holds(bytes, secret), holds(bytes, other), holds(bytes, child), holds(bytes, seed)]).toEqual([true, true, true, false]);
      expect(await recoverAddress({ hash: DIGEST as `0x${string}`, signature: signatureOf(signer.sign(1)) })).toBe(addressFromPrivateKey(secret));
      expect([holds(bytes, secret), holds(bytes, other), holds(bytes, child)]).toEqual([false, true, true]);
      signer.abort(2);
      expect(await recoverAddress({ hash: DIGEST as `0x${string}`, signature: signatureOf(signer.sign(3)) })).toBe(addressFromPrivateKey(child));
      expect([holds(bytes, other), holds(bytes, child)]).toEqual([false, false]);
      // What is left is the keyring key's slot alone.
      expect(zero(bytes.subarray(64))).toBe(true);
      expect(holds(bytes, ringKey)).toBe(true);
    });

    it('the arena full: more jobs than it has slots for still sign, their copies on the heap and wiped', async () => {
      const arena = new SharedArrayBuffer(signerArenaBytes({ keyCache: NO_CACHE, prepared: 1 })); // the keyring key and one job
      const bytes = new Uint8Array(arena);
      const signer = signerOn(arena);
      const keys = [secret, other, new Uint8Array(32).fill(14)];
      for (const [id, k] of keys.entries()) signer.prepare(id, secpJob(ringKey, RING, k, 'signer_signDigest', { digest: DIGEST }), Date.now() + 10_000);
      expect(keys.map((k) => holds(bytes, k))).toEqual([true, false, false]);
      for (const [id, k] of keys.entries()) {
        expect(await recoverAddress({ hash: DIGEST as `0x${string}`, signature: signatureOf(signer.sign(id)) })).toBe(addressFromPrivateKey(k));
      }
      expect(zero(bytes.subarray(64))).toBe(true);

      // What the signer does with a job's key, seen directly: a slot while one is free, else the heap.
      const small = new SecretArena(new ArrayBuffer(arenaBytes(1)));
      const copies = arenaKeyCopies(small);
      const inSlot = copies.keep(secret);
      const onHeap = copies.keep(other);
      expect(inSlot.buffer).not.toBe(onHeap.buffer);
      expect([small.available, Buffer.from(onHeap).equals(Buffer.from(other)), onHeap.byteLength]).toEqual([0, true, 32]);
      copies.release(onHeap);
      copies.release(inSlot);
      expect([zero(onHeap), zero(inSlot), small.available]).toEqual([true, true, 1]);
      expect(zero(other)).toBe(false); // keep copies; the caller's array is the caller's to wipe
    });

    it('a signer with no arena given (the inline lane’s) holds more jobs than it was sized for and signs each', async () => {
      const signer = createJobSigner();
      signers.push(signer);
      signer.setKeyring(RING, ringKey.slice());
      const keys = [secret, other];
      for (const [id, k] of keys.entries()) signer.prepare(id, secpJob(ringKey, RING, k, 'signer_signDigest', { digest: DIGEST }), Date.now() + 10_000);
      for (const [id, k] of keys.entries()) {
        expect(await recoverAddress({ hash: DIGEST as `0x${string}`, signature: signatureOf(signer.sign(id)) })).toBe(addressFromPrivateKey(k));
      }
    });
  });
});
