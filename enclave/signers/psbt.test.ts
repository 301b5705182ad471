import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { tapLeafHash } from '@scure/btc-signer/payment.js';
import { describe, expect, it } from 'vitest';
import { SigningError } from './errors.js';
import { createDerivationCache } from './bip32.js';
import { SIGNER_LIMITS } from './limits.js';
import { signPsbt } from './psbt.js';
import { bytes, testEntropy } from './test-helpers.js';

const SEED = bytes('5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4');
const OTHER_SEED = bytes('00'.repeat(31) + '01');
const root = HDKey.fromMasterSeed(SEED);
const other = HDKey.fromMasterSeed(OTHER_SEED);

const WPKH_PATH = "m/84'/0'/0'/0/0";
const TR_PATH = "m/86'/0'/0'/0/0";
const wpkhKey = root.derive(WPKH_PATH);
const trKey = root.derive(TR_PATH);
const foreignKey = other.derive(WPKH_PATH);
const xonly = (k: HDKey) => k.publicKey!.subarray(1);

const wpkh = btc.p2wpkh(wpkhKey.publicKey!);
const tr = btc.p2tr(xonly(trKey));
const foreign = btc.p2wpkh(foreignKey.publicKey!);
const dest = btc.p2wpkh(other.derive('m/0').publicKey!);

const txid = (n: number) => bytes(n.toString(16).padStart(2, '0').repeat(32));

type InputPatch = Partial<Parameters<btc.Transaction['addInput']>[0]>;

/** A 3-input PSBT: ours P2WPKH, ours P2TR, and a foreign P2WPKH (other fingerprint). */
function buildPsbt(patch: { wpkh?: InputPatch; tr?: InputPatch; foreign?: InputPatch | null } = {}): { psbt: Uint8Array; tx: btc.Transaction } {
  const tx = new btc.Transaction();
  tx.addInput({
    txid: txid(1),
    index: 0,
    witnessUtxo: { script: wpkh.script, amount: 100_000n },
    bip32Derivation: [[wpkhKey.publicKey!, { fingerprint: root.fingerprint, path: btc.bip32Path(WPKH_PATH) }]],
    ...patch.wpkh,
  });
  tx.addInput({
    txid: txid(2),
    index: 1,
    witnessUtxo: { script: tr.script, amount: 50_000n },
    tapInternalKey: xonly(trKey),
    tapBip32Derivation: [[xonly(trKey), { hashes: [], der: { fingerprint: root.fingerprint, path: btc.bip32Path(TR_PATH) } }]],
    ...patch.tr,
  });
  if (patch.foreign !== null) {
    tx.addInput({
      txid: txid(3),
      index: 2,
      witnessUtxo: { script: foreign.script, amount: 20_000n },
      bip32Derivation: [[foreignKey.publicKey!, { fingerprint: other.fingerprint, path: btc.bip32Path(WPKH_PATH) }]],
      ...patch.foreign,
    });
  }
  let total = 0n;
  for (let i = 0; i < tx.inputsLength; i++) total += tx.getInput(i).witnessUtxo!.amount;
  tx.addOutput({ script: dest.script, amount: total - 1_000n });
  return { psbt: tx.toPSBT(), tx };
}

function b64(b: Uint8Array): string {
  return Buffer.from(b).toString('base64');
}

describe('signer_signPsbt', () => {
  it('signs our P2WPKH and P2TR inputs, leaves the foreign one alone, does not finalize', () => {
    const { psbt } = buildPsbt();
    const entropy = testEntropy('psbt');
    const res = signPsbt(SEED, b64(psbt), { entropy });
    expect(res.signedInputs).toEqual([0, 1]);
    expect(res.masterFingerprint).toBe(root.fingerprint.toString(16).padStart(8, '0'));
    expect(res.inputs).toEqual([
      { index: 0, status: 'signed', kind: 'p2wpkh', path: WPKH_PATH, publicKey: `0x${Buffer.from(wpkhKey.publicKey!).toString('hex')}` },
      { index: 1, status: 'signed', kind: 'p2tr', path: TR_PATH, publicKey: `0x${Buffer.from(trKey.publicKey!).toString('hex')}` },
      { index: 2, status: 'not-ours' },
    ]);
    expect(entropy.calls).toBe(1); // aux randomness only for the taproot input
    expect(entropy.last!.every((b) => b === 0)).toBe(true); // and wiped after use

    const signed = btc.Transaction.fromPSBT(Buffer.from(res.psbt, 'base64'));
    expect(signed.getInput(0).partialSig?.length).toBe(1);
    expect(signed.getInput(1).tapKeySig?.length).toBe(64);
    expect(signed.getInput(2).partialSig).toBeUndefined();
    for (let i = 0; i < 3; i++) expect(signed.getInput(i).finalScriptWitness).toBeUndefined();
  });

  it('is byte-identical to @scure/btc-signer signing with the same HD key and aux randomness', () => {
    const { psbt } = buildPsbt();
    const ours = signPsbt(SEED, psbt, { entropy: testEntropy('same') });
    const ref = btc.Transaction.fromPSBT(psbt);
    ref.signIdx(root as never, 0); // HDKey satisfies btc-signer's structural HDKey at runtime
    ref.signIdx(root as never, 1, undefined, testEntropy('same')(32));
    expect(ours.psbt).toBe(b64(ref.toPSBT()));
  });

  it('finalizes and extracts with @scure/btc-signer; signatures verify against the sighashes', () => {
    const { psbt } = buildPsbt();
    const res = signPsbt(SEED, psbt, { entropy: testEntropy() });
    const tx = btc.Transaction.fromPSBT(Buffer.from(res.psbt, 'base64'));
    tx.signIdx(foreignKey.privateKey!, 2); // the other party signs its input
    tx.finalize();
    const raw = tx.extract();
    const final = btc.Transaction.fromRaw(raw, { allowUnknownOutputs: true });
    expect(final.isFinal).toBe(true);

    // P2WPKH: witness = [DER sig ‖ sighash byte, pubkey]; check against the BIP143 sighash.
    const w0 = tx.getInput(0).finalScriptWitness!;
    expect(w0.length).toBe(2);
    expect(w0[1]).toEqual(wpkhKey.publicKey);
    const sig0 = w0[0]!;
    expect(sig0[sig0.length - 1]).toBe(btc.SigHash.ALL);
    const scriptCode = btc.OutScript.encode({ type: 'pkh', hash: wpkh.hash! });
    const sighash0 = tx.preimageWitnessV0(0, scriptCode, btc.SigHash.ALL, 100_000n);
    expect(secp256k1.verify(sig0.subarray(0, -1), sighash0, wpkhKey.publicKey!, { prehash: false, format: 'der' })).toBe(true);
    // low-s, as policy requires
    const parsed = secp256k1.Signature.fromBytes(sig0.subarray(0, -1), 'der');
    expect(parsed.s <= secp256k1.Point.Fn.ORDER / 2n).toBe(true);

    // P2TR key path: witness = [64-byte schnorr sig] (SIGHASH_DEFAULT), valid under the tweaked output key.
    const w1 = tx.getInput(1).finalScriptWitness!;
    expect(w1.length).toBe(1);
    expect(w1[0]!.length).toBe(64);
    const sighash1 = tx.preimageWitnessV1(1, [wpkh.script, tr.script, foreign.script], btc.SigHash.DEFAULT, [100_000n, 50_000n, 20_000n]);
    expect(schnorr.verify(w1[0]!, sighash1, tr.tweakedPubkey)).toBe(true);
    // ...and not under the untweaked internal key.
    expect(schnorr.verify(w1[0]!, sighash1, xonly(trKey))).toBe(false);
  });

  it('taproot key path with a script tree (tapMerkleRoot) is tweaked correctly', () => {
    const leafKey = other.derive('m/5').publicKey!.subarray(1);
    const withTree = btc.p2tr(xonly(trKey), { script: btc.p2tr_pk(leafKey).script });
    const { psbt } = buildPsbt({
      tr: { witnessUtxo: { script: withTree.script, amount: 50_000n }, tapMerkleRoot: withTree.tapMerkleRoot },
      foreign: null,
    });
    const res = signPsbt(SEED, psbt, { entropy: testEntropy() });
    expect(res.signedInputs).toEqual([0, 1]);
    const tx = btc.Transaction.fromPSBT(Buffer.from(res.psbt, 'base64'));
    tx.finalize();
    const sighash = tx.preimageWitnessV1(1, [wpkh.script, withTree.script], btc.SigHash.DEFAULT, [100_000n, 50_000n]);
    expect(schnorr.verify(tx.getInput(1).finalScriptWitness![0]!, sighash, withTree.tweakedPubkey)).toBe(true);
  });

  it('PSBT version 2 in, version 2 out; bytes and base64 inputs agree', () => {
    const { tx } = buildPsbt();
    const v2 = tx.toPSBT(2);
    const a = signPsbt(SEED, v2, { entropy: testEntropy('v2') });
    const b = signPsbt(SEED, b64(v2), { entropy: testEntropy('v2') });
    expect(a).toEqual(b);
    const out = Buffer.from(a.psbt, 'base64');
    // PSBT_GLOBAL_VERSION (0xfb) = 2 is present only in v2 encodings.
    expect(out.includes(Buffer.from([0x01, 0xfb, 0x04, 0x02, 0x00, 0x00, 0x00]))).toBe(true);
    expect(a.signedInputs).toEqual([0, 1]);
  });

  it('an input we already finalized no longer names us (finalizing drops derivations)', () => {
    const { psbt } = buildPsbt({ foreign: null });
    const once = btc.Transaction.fromPSBT(Buffer.from(signPsbt(SEED, psbt, { entropy: testEntropy() }).psbt, 'base64'));
    once.finalize();
    expect(() => signPsbt(SEED, once.toPSBT(), { entropy: testEntropy() })).toThrow(expect.objectContaining({ code: 'SIGN_PSBT_NOT_OURS' }));
  });

  it('sighash policy: non-default sighash refused unless allowed', () => {
    const { psbt } = buildPsbt({ wpkh: { sighashType: btc.SigHash.NONE }, foreign: null });
    expect(() => signPsbt(SEED, psbt, { entropy: testEntropy() })).toThrow(
      expect.objectContaining({ code: 'SIGN_PSBT_SIGN_FAILED', field: 'inputs[0]' }),
    );
    const res = signPsbt(SEED, psbt, { entropy: testEntropy(), allowedSighash: [btc.SigHash.NONE, btc.SigHash.DEFAULT] });
    expect(res.signedInputs).toEqual([0, 1]);
  });
});

describe('signer_signPsbt refusals', () => {
  const ours = root.fingerprint;
  const table: { name: string; psbt: () => unknown; code: string; field?: string; seed?: Uint8Array; opts?: object }[] = [
    {
      name: 'P2WPKH entry whose path derives to another key',
      psbt: () => buildPsbt({ wpkh: { bip32Derivation: [[wpkhKey.publicKey!, { fingerprint: ours, path: btc.bip32Path("m/84'/0'/0'/0/1") }]] } }).psbt,
      code: 'SIGN_PSBT_DERIVATION_MISMATCH',
      field: 'inputs[0].bip32Derivation',
    },
    {
      name: 'P2TR entry whose path derives to another key',
      psbt: () =>
        buildPsbt({
          tr: { tapBip32Derivation: [[xonly(trKey), { hashes: [], der: { fingerprint: ours, path: btc.bip32Path("m/86'/0'/0'/0/9") } }]] },
        }).psbt,
      code: 'SIGN_PSBT_DERIVATION_MISMATCH',
      field: 'inputs[1].tapBip32Derivation',
    },
    {
      name: 'our (correct) key listed on an input that pays someone else',
      psbt: () => buildPsbt({ wpkh: { witnessUtxo: { script: foreign.script, amount: 1n } } }).psbt,
      code: 'SIGN_PSBT_DERIVATION_MISMATCH',
      field: 'inputs[0].bip32Derivation',
    },
    {
      name: 'P2TR where our key is listed but is not the internal key',
      psbt: () => {
        const t = btc.p2tr(xonly(foreignKey));
        return buildPsbt({ tr: { witnessUtxo: { script: t.script, amount: 1000n }, tapInternalKey: xonly(foreignKey) } }).psbt;
      },
      code: 'SIGN_PSBT_DERIVATION_MISMATCH',
      field: 'inputs[1].tapBip32Derivation',
    },
    {
      name: 'P2TR input naming us only in (non-taproot) bip32Derivation',
      psbt: () =>
        buildPsbt({
          tr: { tapBip32Derivation: [], bip32Derivation: [[trKey.publicKey!, { fingerprint: ours, path: btc.bip32Path(TR_PATH) }]] },
        }).psbt,
      code: 'SIGN_PSBT_DERIVATION_MISMATCH',
      field: 'inputs[1].tapBip32Derivation',
    },
    {
      name: 'no input names our fingerprint',
      psbt: () => buildPsbt({ wpkh: { bip32Derivation: [] }, tr: { tapBip32Derivation: [] } }).psbt,
      code: 'SIGN_PSBT_NOT_OURS',
      field: 'psbt',
    },
    {
      name: 'a PSBT for another seed',
      psbt: () => buildPsbt().psbt,
      seed: bytes('42'.repeat(32)),
      code: 'SIGN_PSBT_NOT_OURS',
    },
    {
      name: 'our key on a P2SH-P2WPKH input',
      psbt: () => {
        const sh = btc.p2sh(btc.p2wpkh(wpkhKey.publicKey!));
        return buildPsbt({ wpkh: { witnessUtxo: { script: sh.script, amount: 1000n }, redeemScript: sh.redeemScript } }).psbt;
      },
      code: 'SIGN_PSBT_UNSUPPORTED_INPUT',
      field: 'inputs[0]',
    },
    {
      name: 'our key on a legacy P2PKH input',
      psbt: () => buildPsbt({ wpkh: { witnessUtxo: { script: btc.p2pkh(wpkhKey.publicKey!).script, amount: 1000n } } }).psbt,
      code: 'SIGN_PSBT_UNSUPPORTED_INPUT',
      field: 'inputs[0]',
    },
    {
      name: 'our key only in a taproot script leaf',
      psbt: () => {
        const leaf = btc.p2tr_pk(xonly(trKey));
        const t = btc.p2tr(xonly(foreignKey), { script: leaf.script });
        return buildPsbt({
          tr: {
            witnessUtxo: { script: t.script, amount: 1000n },
            tapInternalKey: xonly(foreignKey),
            tapMerkleRoot: t.tapMerkleRoot,
            tapLeafScript: t.tapLeafScript,
            tapBip32Derivation: [[xonly(trKey), { hashes: [tapLeafHash(leaf.script)], der: { fingerprint: ours, path: btc.bip32Path(TR_PATH) } }]],
          },
        }).psbt;
      },
      code: 'SIGN_PSBT_UNSUPPORTED_INPUT',
      field: 'inputs[1]',
    },
    { name: 'not base64', psbt: () => 'cHNidP8B!!!', code: 'SIGN_INVALID_PARAMS', field: 'psbt' },
    { name: 'empty string', psbt: () => '', code: 'SIGN_INVALID_PARAMS', field: 'psbt' },
    { name: 'a number', psbt: () => 7, code: 'SIGN_INVALID_PARAMS', field: 'psbt' },
    { name: 'base64 that is not a PSBT', psbt: () => b64(new TextEncoder().encode('hello world!')), code: 'SIGN_PSBT_INVALID', field: 'psbt' },
    { name: 'truncated PSBT', psbt: () => buildPsbt().psbt.subarray(0, 60), code: 'SIGN_PSBT_INVALID', field: 'psbt' },
    { name: 'seed too short', psbt: () => buildPsbt().psbt, seed: new Uint8Array(8), code: 'SIGN_INVALID_KEY' },
    { name: 'bad allowedSighash', psbt: () => buildPsbt().psbt, opts: { allowedSighash: [4] }, code: 'SIGN_INVALID_PARAMS', field: 'allowedSighash[0]' },
    { name: 'entropy source returning 16 bytes', psbt: () => buildPsbt().psbt, opts: { entropy: () => new Uint8Array(16) }, code: 'SIGN_ENTROPY' },
    {
      name: 'strictPrevouts without previous transactions',
      psbt: () => buildPsbt().psbt,
      opts: { strictPrevouts: true },
      code: 'SIGN_PSBT_SIGN_FAILED',
    },
  ];
  for (const t of table) {
    it(t.name, () => {
      let err: unknown;
      try {
        signPsbt(t.seed ?? SEED, t.psbt(), { entropy: testEntropy(), ...t.opts });
      } catch (e) {
        err = e;
      }
      expect(err, 'should have thrown').toBeInstanceOf(SigningError);
      expect((err as SigningError).code).toBe(t.code);
      if (t.field !== undefined) expect((err as SigningError).field).toBe(t.field);
    });
  }
});

describe('finding 5: PSBT work limits', () => {
  it('a PSBT with more inputs than maxPsbtInputs is refused, naming the limit, before anything is derived', () => {
    const tx = new btc.Transaction();
    for (let i = 0; i < SIGNER_LIMITS.maxPsbtInputs + 1; i++) {
      tx.addInput({ txid: bytes(((i % 250) + 1).toString(16).padStart(2, '0').repeat(31) + (i >> 8).toString(16).padStart(2, '0')), index: i, witnessUtxo: { script: wpkh.script, amount: 1_000n } });
    }
    tx.addOutput({ script: dest.script, amount: 1_000n });
    const e = (() => {
      try {
        signPsbt(SEED, tx.toPSBT(), { entropy: testEntropy() });
      } catch (x) {
        return x as SigningError;
      }
      throw new Error('signed');
    })();
    expect(e).toMatchObject({ code: 'SIGN_INVALID_PARAMS', field: 'psbt' });
    expect(e.message).toBe(`psbt: ${SIGNER_LIMITS.maxPsbtInputs + 1} inputs is over the limit of ${SIGNER_LIMITS.maxPsbtInputs} (maxPsbtInputs)`);
  });

  it('a listed path deeper than maxPathDepth is refused naming the limit', () => {
    const deep = [...btc.bip32Path(WPKH_PATH), ...Array.from({ length: 12 }, () => 0x80000000)];
    const { psbt } = buildPsbt({ wpkh: { bip32Derivation: [[wpkhKey.publicKey!, { fingerprint: root.fingerprint, path: deep }]] }, foreign: null });
    expect(() => signPsbt(SEED, psbt, { entropy: testEntropy() })).toThrow(/inputs\[0\]\.bip32Derivation: a path of 17 levels is over the limit of 16 \(maxPathDepth\)/);
  });

  it('each distinct path prefix is derived once per request, within maxDerivationSteps', () => {
    const master = HDKey.fromMasterSeed(SEED);
    const cache = createDerivationCache(master, 10);
    for (let i = 0; i < 5; i++) cache.derive([...btc.bip32Path("m/84'/0'/0'/0"), i], 'p');
    expect(cache.steps).toBe(4 + 5);
    cache.derive(btc.bip32Path("m/84'/0'/0'/0/3"), 'p'); // cached: no new step
    expect(cache.steps).toBe(9);
    expect(cache.derive(btc.bip32Path("m/84'/0'/0'/0/3"), 'p').publicKey).toEqual(root.derive("m/84'/0'/0'/0/3").publicKey);
    expect(() => cache.derive(btc.bip32Path("m/86'/0'"), 'p')).toThrow(/p: 11 BIP32 derivations in one request is over the limit of 10 \(maxDerivationSteps\)/);
    cache.wipe();
  });
});
