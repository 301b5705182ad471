/**
 * key.create's key generation: the new secret is SHA-256(0x01 ‖ 32 NSM bytes ‖ 32 OS bytes)
 * (retried until it is a valid secp256k1 scalar for that kind). What the tests pin:
 *  - that derivation, byte for byte (existing keys and vectors depend on it);
 *  - every buffer that held NSM or OS randomness on its way into the hash is zeroed once the
 *    key is made (regression: the 0x01 ‖ NSM ‖ OS concatenation, whose hash IS the key, was
 *    left in the heap, and so was the Buffer randomBytes returned, which was only copied);
 *  - the candidate secret never becomes a hex string (regression: the secp256k1 range check
 *    went through BigInt('0x' + hex), a string nothing can zero);
 *  - a candidate outside [1, n) is wiped and another drawn.
 * node:crypto is wrapped, not replaced: every hash, digest and random buffer is the real one,
 * recorded by reference (to see whether it was zeroed) and by a snapshot (to know what it held).
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { afterEach, describe, expect, it, vi } from 'vitest';

interface Rec {
  ref: Uint8Array;
  /** Its bytes when it was produced or handed in. */
  was: Uint8Array;
}
interface HashRec {
  algorithm: string;
  updates: Rec[];
  digest?: Rec;
}

const seen = vi.hoisted(() => ({
  hashes: [] as HashRec[],
  random: [] as Rec[],
  hexed: [] as Uint8Array[],
  /** Digests to return instead of the real ones (in order), to force a candidate out of range. */
  forcedDigests: [] as Uint8Array[],
}));

vi.mock('node:crypto', async (importOriginal) => {
  const m = await importOriginal<typeof import('node:crypto')>();
  const snap = (b: NodeJS.ArrayBufferView): Rec => {
    const ref = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    return { ref, was: ref.slice() };
  };
  return {
    ...m,
    createHash(algorithm: string, ...rest: unknown[]) {
      const h = (m.createHash as (...a: unknown[]) => import('node:crypto').Hash)(algorithm, ...rest);
      const rec: HashRec = { algorithm, updates: [] };
      seen.hashes.push(rec);
      const update = h.update.bind(h) as (...a: unknown[]) => unknown;
      const digest = h.digest.bind(h) as (...a: unknown[]) => unknown;
      Object.assign(h, {
        update(data: unknown, ...a: unknown[]) {
          if (data instanceof Uint8Array) rec.updates.push({ ref: data, was: data.slice() });
          update(data, ...a);
          return h;
        },
        digest(...a: unknown[]) {
          let out = digest(...a);
          const forced = seen.forcedDigests.shift();
          if (forced && Buffer.isBuffer(out)) out = Buffer.from(forced);
          if (out instanceof Uint8Array) rec.digest = snap(out);
          return out;
        },
      });
      return h;
    },
    randomBytes(...a: unknown[]) {
      const out = (m.randomBytes as (...x: unknown[]) => unknown)(...a);
      if (out instanceof Uint8Array) seen.random.push(snap(out));
      return out;
    },
    randomFillSync(buf: NodeJS.ArrayBufferView, ...a: unknown[]) {
      const out = (m.randomFillSync as (...x: unknown[]) => NodeJS.ArrayBufferView)(buf, ...a);
      seen.random.push(snap(ArrayBuffer.isView(buf) ? buf : new Uint8Array(buf as ArrayBuffer)));
      return out;
    },
  };
});

vi.mock('../common/bytes.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../common/bytes.js')>();
  return { ...m, toHex: (b: Uint8Array) => (seen.hexed.push(b.slice()), m.toHex(b)) };
});

import { createHash } from 'node:crypto';
import { createKeyDecided, isSecp256k1SecretKey } from './key-create-method.js';
import type { Decisions } from './decisions.js';
import { wrapKey } from './kms/wrapped-key.js';
import type { Nsm } from './nsm/nsm.js';
import { addressFromPrivateKey } from './signers/eth-address.js';
import { deriveBip32PublicKey } from './signers/bip32.js';

const KEYRING_ID = '11111111-1111-4111-8111-111111111111';
const N = secp256k1.Point.Fn.ORDER;
const be32 = (n: bigint) => Uint8Array.from(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'));
const zero = (b: Uint8Array) => b.every((x) => x === 0);
const eq = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;
const sha256 = (...parts: Uint8Array[]) => parts.reduce((h, p) => h.update(p), createHash('sha256')).digest();

afterEach(() => {
  seen.hashes.length = 0;
  seen.random.length = 0;
  seen.hexed.length = 0;
  seen.forcedDigests.length = 0;
});

/** Runs key.create against a fake keyring that keeps a copy of every secret it wraps. */
async function create(kind: 'secp256k1' | 'bip32-seed') {
  const kr = new Uint8Array(32).fill(9);
  const wrapped: Uint8Array[] = [];
  const keyring = {
    id: KEYRING_ID,
    record: {},
    wrap: (keyId: string, k: typeof kind, s: Uint8Array) => (wrapped.push(s.slice()), wrapKey(kr, { keyringId: KEYRING_ID, keyId, kind: k }, s)),
    unwrap: () => { throw new Error('unused'); },
    shareKey: () => kr.slice(),
    destroy() {},
  };
  const d = {
    trail: { log() {} }, durable: { epoch: 0 }, slot: { keyring },
    approvals: { authorize: () => ({ ticket: {} }), released() {}, consumed() {} },
    policy: { release() {}, commit() {} }, readyToDecide() {}, changesState: () => false,
    refusalRecorded: (e: Error) => e,
  } as unknown as Decisions;
  // A distinct NSM buffer per call, so each draw's bytes can be found again.
  const nsmOut: Uint8Array[] = [];
  const nsm = { getRandom: async (n: number) => { const b = new Uint8Array(n).fill(0xa0 + nsmOut.length); nsmOut.push(b); return b; } } as unknown as Nsm;
  const out = (await createKeyDecided(d, nsm, () => [], { kind })) as Record<string, unknown>;
  expect(wrapped).toHaveLength(1);
  return { out, secret: wrapped[0]!, nsmOut };
}

/**
 * For each candidate the key generation drew: the hash that made it, its preimage, and the
 * NSM/OS buffers it came from. Checks the derivation SHA-256(0x01 ‖ NSM ‖ OS) on the way.
 */
function draws(nsmOut: Uint8Array[]) {
  const nsmWas = nsmOut.map((b, i) => b.slice().fill(0xa0 + i)); // what getRandom returned
  const preimage = (h: HashRec) => Buffer.concat(h.updates.map((u) => u.was));
  const keyHashes = seen.hashes.filter((h) => nsmWas.some((n) => containsBytes(preimage(h), n)));
  expect(keyHashes.length).toBe(nsmOut.length); // one hash per NSM draw
  return keyHashes.map((h, i) => {
    expect(h.algorithm).toBe('sha256');
    const pre = preimage(h);
    expect(pre.length).toBe(65);
    expect(pre[0]).toBe(0x01); // domain separation byte
    expect(eq(pre.subarray(1, 33), nsmWas[i]!)).toBe(true);
    const os = pre.subarray(33);
    const osBufs = seen.random.filter((r) => r.was.length === 32 && eq(r.was, os));
    expect(osBufs.length).toBeGreaterThan(0); // the OS half came from node:crypto's CSPRNG
    return { hash: h, preimage: pre, osBufs };
  });
}

describe('key.create: the key is SHA-256(0x01 ‖ NSM ‖ OS) and its inputs are zeroed', () => {
  for (const kind of ['secp256k1', 'bip32-seed'] as const) {
    it(`${kind}: the derivation is unchanged and every buffer that held NSM or OS randomness is zeroed`, async () => {
      const { out, secret, nsmOut } = await create(kind);
      const [d] = draws(nsmOut);
      expect(eq(sha256(d!.preimage), secret)).toBe(true); // the key is exactly that hash
      if (kind === 'secp256k1') {
        expect(out.address).toBe(addressFromPrivateKey(secret));
      } else {
        expect(out.xpub).toBe(deriveBip32PublicKey(secret, 'm').xpub);
      }
      // Every buffer fed to the key's hash, except the public one-byte domain tag, is zeroed:
      // before the fix the 65-byte 0x01 ‖ NSM ‖ OS concatenation survived (its hash is the key).
      const live = d!.hash.updates.filter((u) => !(u.was.length === 1 && u.was[0] === 0x01) && !zero(u.ref));
      expect(live.map((u) => u.ref.length), 'hash inputs left un-zeroed (lengths)').toEqual([]);
      // The OS randomness as node:crypto produced it (before the fix randomBytes' Buffer was copied, the copy wiped).
      for (const r of d!.osBufs) expect(zero(r.ref), 'OS random bytes left un-zeroed').toBe(true);
      for (const n of nsmOut) expect(zero(n)).toBe(true);
      // The digest buffer is the secret itself; it is zeroed once wrapped.
      expect(zero(d!.hash.digest!.ref)).toBe(true);
    });
  }

  it('secp256k1: the candidate secret is never turned into a hex string (a string cannot be zeroed)', async () => {
    const { secret } = await create('secp256k1');
    expect(seen.hexed.some((h) => eq(h, secret))).toBe(false);
  });

  it('secp256k1: a candidate outside [1, n) is wiped and another drawn', async () => {
    seen.forcedDigests.push(be32(N)); // the first candidate is n itself: not a valid secret key
    const { out, secret, nsmOut } = await create('secp256k1');
    expect(nsmOut).toHaveLength(2);
    const [first, second] = draws(nsmOut);
    expect(eq(first!.hash.digest!.was, be32(N))).toBe(true);
    expect(zero(first!.hash.digest!.ref)).toBe(true); // the rejected candidate is wiped
    expect(eq(sha256(second!.preimage), secret)).toBe(true);
    expect(out.address).toBe(addressFromPrivateKey(secret));
  });
});

describe('isSecp256k1SecretKey: 1 ≤ s < n on 32 big-endian bytes, without a string or a bigint', () => {
  const old = (s: Uint8Array) => {
    const v = BigInt('0x' + Buffer.from(s).toString('hex'));
    return v > 0n && v < N;
  };
  it('agrees with the bigint check and with @noble/curves at the edges', () => {
    const edges = [0n, 1n, 2n, 0xffn, 0x100n, N - 2n, N - 1n, N, N + 1n, N + 0xffn, 2n ** 256n - 1n, 2n ** 255n, 2n ** 248n - 1n];
    for (let i = 0; i < 32; i++) {
      // n with one byte raised or lowered: the comparison must look at every byte.
      const byte = BigInt(31 - i) * 8n;
      const b = (N >> byte) & 0xffn;
      if (b < 0xffn) edges.push(N + (1n << byte));
      if (b > 0n) edges.push(N - (1n << byte));
    }
    for (const v of edges) {
      const s = be32(v);
      expect(isSecp256k1SecretKey(s), v.toString(16)).toBe(old(s));
      expect(isSecp256k1SecretKey(s), v.toString(16)).toBe(secp256k1.utils.isValidSecretKey(s));
    }
  });

  it('agrees with the bigint check on random values, near n and anywhere', () => {
    const nBytes = be32(N);
    for (let i = 0; i < 3000; i++) {
      const s = new Uint8Array(32);
      crypto.getRandomValues(s);
      if (i % 2 === 0) s.set(nBytes.subarray(0, i % 32)); // share a prefix of n of every length
      expect(isSecp256k1SecretKey(s)).toBe(old(s));
    }
  });

  it('refuses anything but 32 bytes', () => {
    expect(isSecp256k1SecretKey(new Uint8Array(31).fill(1))).toBe(false);
    expect(isSecp256k1SecretKey(new Uint8Array(33).fill(1))).toBe(false);
  });
});

function containsBytes(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}
