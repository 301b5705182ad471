/**
 * Where a prepared job keeps its key (operations.ts KeyCopies): the one copy that waits from
 * prepare until sign or abort — the secp256k1 key, the seed of a PSBT job, a derived child key —
 * comes from the caller's `keep` and goes back through its `release`, once, on wipe() or on an
 * error after the copy. A worker's KeyCopies puts it in its secret arena (job-signer.ts); these
 * cases use a recording one, and check that nothing else of the key is kept.
 */
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { recoverAddress } from 'viem';
import { describe, expect, it } from 'vitest';
import { type KeyCopies, prepareOperation, runOperation } from './operations.js';
import { addressFromPrivateKey } from './signers/index.js';

const secret = new Uint8Array(32).fill(21);
const seed = new Uint8Array(32).fill(22);
const DIGEST = `0x${'ab'.repeat(32)}` as const;
const secpMeta = { keyId: 'k', keyringId: 'r', kind: 'secp256k1' as const };
const seedMeta = { keyId: 's', keyringId: 'r', kind: 'bip32-seed' as const };

const zero = (u: Uint8Array) => u.every((b) => b === 0);
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** Heap copies that remember what was kept (the caller's array and the copy) and released. */
function recording(): KeyCopies & { given: Uint8Array[]; kept: Uint8Array[]; released: Uint8Array[] } {
  const given: Uint8Array[] = [];
  const kept: Uint8Array[] = [];
  const released: Uint8Array[] = [];
  return {
    given,
    kept,
    released,
    keep(bytes) {
      given.push(bytes);
      const copy = bytes.slice();
      kept.push(copy);
      return copy;
    },
    release(copy) {
      released.push(copy);
      copy.fill(0);
    },
  };
}

/** A PSBT of one input paying to `seed`'s m/0/0. */
function smallPsbt(): string {
  const master = HDKey.fromMasterSeed(seed);
  const child = master.derive('m/0/0');
  const script = btc.p2wpkh(child.publicKey!).script;
  const tx = new btc.Transaction();
  tx.addInput({
    txid: new Uint8Array(32).fill(2),
    index: 0,
    witnessUtxo: { script, amount: 10_000n },
    bip32Derivation: [[child.publicKey!, { fingerprint: master.fingerprint, path: [0, 0] }]],
  });
  tx.addOutput({ script, amount: 1000n });
  return Buffer.from(tx.toPSBT()).toString('base64');
}

describe('a prepared job keeps one copy of its key, from its KeyCopies', () => {
  it('a secp256k1 key: one copy kept until wipe(), which releases it once; the caller’s secret untouched', async () => {
    const copies = recording();
    const given = secret.slice();
    const p = prepareOperation('signer_signDigest', secpMeta, given, { digest: DIGEST }, undefined, copies);
    expect(copies.kept).toHaveLength(1);
    expect(same(copies.kept[0]!, secret)).toBe(true);
    expect(same(given, secret)).toBe(true); // keep wipes nothing: the caller wipes its own
    expect(copies.released).toHaveLength(0);
    const { signature } = p.sign() as { signature: `0x${string}` };
    expect(await recoverAddress({ hash: DIGEST, signature })).toBe(addressFromPrivateKey(secret));
    p.wipe();
    p.wipe();
    expect(copies.released).toEqual([copies.kept[0]]);
    expect(zero(copies.kept[0]!)).toBe(true);
    // Released, the copy may be another job's key by now: signing with it is refused.
    expect(() => p.sign()).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it('a seed signing through a derived child: the child key is the one copy, the library’s array wiped at once', async () => {
    const copies = recording();
    const p = prepareOperation('signer_signDigest', seedMeta, seed.slice(), { digest: DIGEST, path: 'm/0/1' }, undefined, copies);
    const child = HDKey.fromMasterSeed(seed).derive('m/0/1').privateKey!;
    expect(copies.kept).toHaveLength(1);
    expect(same(copies.kept[0]!, child)).toBe(true);
    expect(zero(copies.given[0]!)).toBe(true); // deriveBip32PrivateKey's array, zeroed before prepare returned
    const { signature } = p.sign() as { signature: `0x${string}` };
    expect(await recoverAddress({ hash: DIGEST, signature })).toBe(addressFromPrivateKey(child));
    p.wipe();
    expect(copies.released).toEqual([copies.kept[0]]);
    expect(zero(copies.kept[0]!)).toBe(true);
  });

  it('a PSBT: the seed is the one copy; a derivation keeps nothing', () => {
    const copies = recording();
    const p = prepareOperation('signer_signPsbt', seedMeta, seed.slice(), { psbt: smallPsbt() }, undefined, copies);
    expect(copies.kept).toHaveLength(1);
    expect(same(copies.kept[0]!, seed)).toBe(true);
    expect((p.sign() as { signedInputs: number[] }).signedInputs).toEqual([0]);
    p.wipe();
    expect(copies.released).toEqual([copies.kept[0]]);
    expect(zero(copies.kept[0]!)).toBe(true);

    const none = recording();
    const d = prepareOperation('signer_deriveKey', seedMeta, seed.slice(), { path: 'm/0/1' }, undefined, none);
    expect(d.sign()).toMatchObject({ path: 'm/0/1' });
    d.wipe();
    expect([none.kept, none.released]).toEqual([[], []]);
  });

  it('a request refused after the copy was made releases it, with the error it had without copies', () => {
    const cases: [typeof secpMeta | typeof seedMeta, Parameters<typeof prepareOperation>[0], Record<string, string>][] = [
      [secpMeta, 'signer_signDigest', { digest: '0x12' }],
      [seedMeta, 'signer_signDigest', { digest: '0x12', path: 'm/0' }],
    ];
    for (const [meta, op, request] of cases) {
      const copies = recording();
      const key = meta.kind === 'secp256k1' ? secret : seed;
      let heapError: unknown;
      try {
        runOperation(op, meta.kind, key.slice(), request);
      } catch (e) {
        heapError = e;
      }
      expect(heapError).toBeDefined();
      expect(() => prepareOperation(op, meta, key.slice(), request, undefined, copies)).toThrow(heapError as Error);
      expect(copies.kept).toHaveLength(1);
      expect(copies.released).toEqual(copies.kept);
      expect(zero(copies.kept[0]!)).toBe(true);
    }
  });
});
