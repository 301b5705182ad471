/**
 * Zeroing in PSBT signing: every BIP32 node a request derives (or copies) holds a private key,
 * and each one must be wiped before signPsbt returns, whether its key signed, was only checked
 * against the listed public key, or the request was refused. The empty path (an entry naming
 * the master key itself) used to hand out a copy of the master that the derivation cache never
 * wiped: the master private key stayed in the worker heap once per such entry.
 *
 * Nodes are found by watching HDKey's publicKey/privateKey getters: psbt.ts reads the public
 * key of every node it checks and the private key of every node that signs, so no node it uses
 * can escape the watch, however it was created (deriveChild, fromMasterSeed or `new HDKey`).
 */
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { afterEach, describe, expect, it } from 'vitest';
import { signPsbt } from './psbt.js';
import { bytes, testEntropy } from './test-helpers.js';

const SEED = bytes('5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4');
const root = HDKey.fromMasterSeed(SEED);
const WPKH_PATH = "m/84'/0'/0'/0/0";
const child = root.derive(WPKH_PATH);
const xonly = (k: HDKey) => k.publicKey!.subarray(1);
const dest = btc.p2wpkh(root.derive('m/1').publicKey!);
const txid = (n: number) => bytes(n.toString(16).padStart(2, '0').repeat(32));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

/** A bip32Derivation entry naming our master fingerprint with the empty path: the master key itself. */
const masterEntry = (): [Uint8Array, { fingerprint: number; path: number[] }] => [root.publicKey!, { fingerprint: root.fingerprint, path: [] }];

function wpkhToMaster(n: number): Parameters<btc.Transaction['addInput']>[0] {
  return { txid: txid(n), index: 0, witnessUtxo: { script: btc.p2wpkh(root.publicKey!).script, amount: 100_000n }, bip32Derivation: [masterEntry()] };
}

function finish(tx: btc.Transaction): Uint8Array {
  let total = 0n;
  for (let i = 0; i < tx.inputsLength; i++) total += tx.getInput(i).witnessUtxo!.amount;
  tx.addOutput({ script: dest.script, amount: total - 1_000n });
  return tx.toPSBT();
}

const privDesc = Object.getOwnPropertyDescriptor(HDKey.prototype, 'privateKey')!;
const pubDesc = Object.getOwnPropertyDescriptor(HDKey.prototype, 'publicKey')!;
function unwatch(): void {
  Object.defineProperty(HDKey.prototype, 'privateKey', privDesc);
  Object.defineProperty(HDKey.prototype, 'publicKey', pubDesc);
}
afterEach(unwatch);

interface Seen {
  publicKey: string;
  /** The node's own private-key buffer at first sight (what wipePrivateData zero-fills). */
  keyBytes: Uint8Array | undefined;
}

/** Runs `fn`, recording every HDKey whose public or private key it reads. */
function watchNodes<T>(fn: () => T): { result: T | undefined; error: unknown; nodes: Map<HDKey, Seen> } {
  const nodes = new Map<HDKey, Seen>();
  const note = (k: HDKey) => {
    if (!nodes.has(k)) nodes.set(k, { publicKey: hex(pubDesc.get!.call(k) as Uint8Array), keyBytes: (k as unknown as { _privateKey?: Uint8Array })._privateKey });
  };
  for (const [name, desc] of [['privateKey', privDesc], ['publicKey', pubDesc]] as const) {
    Object.defineProperty(HDKey.prototype, name, {
      configurable: true,
      get(this: HDKey) {
        note(this);
        return desc.get!.call(this);
      },
    });
  }
  try {
    return { result: fn(), error: undefined, nodes };
  } catch (e) {
    return { result: undefined, error: e, nodes };
  } finally {
    unwatch();
  }
}

/** Every watched node holds no private key any more, and the buffer it held is all zeros. */
function expectAllWiped(nodes: Map<HDKey, Seen>): void {
  const live = [...nodes].filter(([k, s]) => privDesc.get!.call(k) !== null || (s.keyBytes !== undefined && s.keyBytes.some((b) => b !== 0)));
  expect(live.map(([, s]) => s.publicKey), 'nodes whose private key was left un-zeroed (by public key)').toEqual([]);
}

/** The test really reached a node for the master key (not only the request's own master, which withMasterKey wipes). */
function expectSawMasterCopy(nodes: Map<HDKey, Seen>): void {
  expect([...nodes.values()].some((s) => s.publicKey === hex(root.publicKey!))).toBe(true);
}

describe('PSBT signing wipes every node derived for the request, the empty path (the master key) included', () => {
  it('control: a child path — the signing node is wiped', () => {
    const tx = new btc.Transaction();
    tx.addInput({ txid: txid(1), index: 0, witnessUtxo: { script: btc.p2wpkh(child.publicKey!).script, amount: 100_000n },
      bip32Derivation: [[child.publicKey!, { fingerprint: root.fingerprint, path: btc.bip32Path(WPKH_PATH) }]] });
    const { result, nodes } = watchNodes(() => signPsbt(SEED, finish(tx), { entropy: testEntropy() }));
    expect(result?.signedInputs).toEqual([0]);
    expect(nodes.size).toBeGreaterThan(0);
    expectAllWiped(nodes);
  });

  it('a P2WPKH input paying to the master key (empty path): the master copy that signed is wiped; signature unchanged', () => {
    const tx = new btc.Transaction();
    tx.addInput(wpkhToMaster(1));
    const psbt = finish(tx);
    const { result, nodes } = watchNodes(() => signPsbt(SEED, psbt, { entropy: testEntropy() }));
    expect(result?.signedInputs).toEqual([0]);
    expect(result?.inputs).toEqual([{ index: 0, status: 'signed', kind: 'p2wpkh', path: 'm', publicKey: `0x${hex(root.publicKey!)}` }]);
    expectSawMasterCopy(nodes);
    expectAllWiped(nodes);
    // Byte-identical to @scure/btc-signer signing with the master private key (RFC 6979: deterministic).
    const ref = btc.Transaction.fromPSBT(psbt);
    ref.signIdx(root.privateKey!, 0);
    expect(result?.psbt).toBe(b64(ref.toPSBT()));
  });

  it('a P2TR key-path input whose internal key is the master key (empty path): wiped; signature unchanged', () => {
    const tx = new btc.Transaction();
    tx.addInput({ txid: txid(1), index: 0, witnessUtxo: { script: btc.p2tr(xonly(root)).script, amount: 100_000n }, tapInternalKey: xonly(root),
      tapBip32Derivation: [[xonly(root), { hashes: [], der: { fingerprint: root.fingerprint, path: [] } }]] });
    const psbt = finish(tx);
    const { result, nodes } = watchNodes(() => signPsbt(SEED, psbt, { entropy: testEntropy('aux') }));
    expect(result?.signedInputs).toEqual([0]);
    expectSawMasterCopy(nodes);
    expectAllWiped(nodes);
    const ref = btc.Transaction.fromPSBT(psbt);
    ref.signIdx(root.privateKey!, 0, undefined, testEntropy('aux')(32));
    expect(result?.psbt).toBe(b64(ref.toPSBT()));
  });

  it('an entry naming the master key that is only checked (another key signs) is wiped too; signature unchanged', () => {
    const tx = new btc.Transaction();
    tx.addInput({ txid: txid(1), index: 0, witnessUtxo: { script: btc.p2wpkh(child.publicKey!).script, amount: 100_000n },
      bip32Derivation: [masterEntry(), [child.publicKey!, { fingerprint: root.fingerprint, path: btc.bip32Path(WPKH_PATH) }]] });
    const psbt = finish(tx);
    const { result, nodes } = watchNodes(() => signPsbt(SEED, psbt, { entropy: testEntropy() }));
    expect(result?.inputs).toEqual([{ index: 0, status: 'signed', kind: 'p2wpkh', path: WPKH_PATH, publicKey: `0x${hex(child.publicKey!)}` }]);
    expectSawMasterCopy(nodes);
    expectAllWiped(nodes);
    const ref = btc.Transaction.fromPSBT(psbt);
    ref.signIdx(child.privateKey!, 0);
    expect(result?.psbt).toBe(b64(ref.toPSBT()));
  });

  it('several inputs naming the master key: none leaves a copy behind', () => {
    const tx = new btc.Transaction();
    for (let i = 1; i <= 3; i++) tx.addInput(wpkhToMaster(i));
    const { result, nodes } = watchNodes(() => signPsbt(SEED, finish(tx), { entropy: testEntropy() }));
    expect(result?.signedInputs).toEqual([0, 1, 2]);
    expectSawMasterCopy(nodes);
    expectAllWiped(nodes);
  });

  it('a refused request that had already derived the master key still wipes it', () => {
    const tx = new btc.Transaction();
    // Names the master key (derived and checked), but the input pays to another key.
    tx.addInput({ ...wpkhToMaster(1), witnessUtxo: { script: btc.p2wpkh(child.publicKey!).script, amount: 100_000n } });
    const { error, nodes } = watchNodes(() => signPsbt(SEED, finish(tx), { entropy: testEntropy() }));
    expect(error).toMatchObject({ code: 'SIGN_PSBT_DERIVATION_MISMATCH' });
    expectSawMasterCopy(nodes);
    expectAllWiped(nodes);
  });
});
