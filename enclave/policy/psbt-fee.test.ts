/**
 * Review finding (PSBT fee): the fee the policy caps (`btc.maxFeeSats`) was computed from input
 * amounts the host writes into the PSBT (`witnessUtxo`). A segwit v0 (P2WPKH) signature commits
 * only to its *own* input's amount (BIP143), so a host can ask twice for the same transaction,
 * each time understating the *other* input's amount: each request shows a tiny fee and passes
 * the cap, each yields one valid signature, and together they spend both inputs with a fee of
 * the host's choosing (the 2020 "segwit fee" attack). `strictPrevouts` is not reachable from
 * any request, so the enclave had no defence.
 *
 * Fix (psbt-intent.ts): an input's amount counts toward the fee only when it is *verified*:
 * it comes with its full previous transaction (scure checks the txid at decode), or every
 * signature the enclave makes on this PSBT commits to it (all of them taproot — BIP341 commits
 * to every input's amount — or the only one is that input's own). Otherwise the fee is unknown,
 * and no `maxFeeSats` rule matches.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { describe, expect, it } from 'vitest';
import { prepareOperation } from '../operations.js';
import { evaluate } from './evaluate.js';
import { HOT_RULES } from './policy-fixtures.js';
import { PAYEE_1, policy, SEED } from './test-fixtures.js';

const HOT = policy(HOT_RULES);
const NOW = 1_800_000_000;
const meta = { keyId: '0b9a8c4e-1f2d-4c3b-9a8e-7d6c5b4a3f21', keyringId: 'r', kind: 'bip32-seed' as const };
const ROOT = HDKey.fromMasterSeed(SEED);
const BTC = 100_000_000n;

const k0 = ROOT.derive("m/84'/0'/0'/0/0");
const k1 = ROOT.derive("m/84'/0'/0'/0/1");
const t0 = ROOT.derive("m/86'/0'/0'/0/0");
const t1 = ROOT.derive("m/86'/0'/0'/0/1");
const change = ROOT.derive("m/84'/0'/0'/1/0");
const x = (k: HDKey) => k.publicKey!.subarray(1);

/** A funding transaction paying `amount` to `script` (so a nonWitnessUtxo can be given whose txid is right). */
function funding(script: Uint8Array, amount: bigint, salt: number): btc.Transaction {
  const f = new btc.Transaction({ allowUnknownInputs: true });
  f.addInput({ txid: new Uint8Array(32).fill(salt), index: 0, finalScriptSig: new Uint8Array(0) });
  f.addOutput({ script, amount });
  return f;
}

type In = { key: HDKey; kind: 'wpkh' | 'tr'; trueAmount: bigint; claimed?: bigint; full?: boolean; ours?: boolean };

/** The same spend every time: inputs worth `trueAmount`, 0.5 BTC to payee 1, 0.5 BTC change to us. */
function spend(inputs: In[]): string {
  const t = new btc.Transaction();
  inputs.forEach((i, n) => {
    const pay = i.kind === 'wpkh' ? btc.p2wpkh(i.key.publicKey!) : btc.p2tr(x(i.key));
    const f = funding(pay.script, i.trueAmount, n + 1);
    const der = i.ours === false ? {} : i.kind === 'wpkh'
      ? { bip32Derivation: [[i.key.publicKey!, { fingerprint: ROOT.fingerprint, path: btc.bip32Path(pathOf(i.key)) }]] as never }
      : { tapInternalKey: x(i.key), tapBip32Derivation: [[x(i.key), { hashes: [], der: { fingerprint: ROOT.fingerprint, path: btc.bip32Path(pathOf(i.key)) } }]] as never };
    t.addInput({
      txid: f.id,
      index: 0,
      witnessUtxo: { script: pay.script, amount: i.claimed ?? i.trueAmount },
      ...(i.full ? { nonWitnessUtxo: f.toBytes(true, false) } : {}),
      ...der,
    });
  });
  t.addOutputAddress(PAYEE_1, BTC / 2n);
  t.addOutput({
    script: btc.p2wpkh(change.publicKey!).script,
    amount: BTC / 2n,
    bip32Derivation: [[change.publicKey!, { fingerprint: ROOT.fingerprint, path: btc.bip32Path("m/84'/0'/0'/1/0") }]],
  });
  return Buffer.from(t.toPSBT()).toString('base64');
}

function pathOf(k: HDKey): string {
  return k === k0 ? "m/84'/0'/0'/0/0" : k === k1 ? "m/84'/0'/0'/0/1" : k === t0 ? "m/86'/0'/0'/0/0" : "m/86'/0'/0'/0/1";
}

function decide(psbt: string) {
  const p = prepareOperation('signer_signPsbt', meta, SEED.slice(), { psbt });
  if (p.intent.op !== 'signer_signPsbt') throw new Error('unexpected intent');
  return { p, intent: p.intent.psbt, decision: evaluate(HOT, p.intent, { principal: 'host', now: NOW }) };
}

describe('PSBT fee: the amounts the cap is computed on must be ones our signatures commit to', () => {
  it('two requests, each understating the other P2WPKH input, cannot each pass maxFeeSats (a 1 BTC fee hidden from a 50,000 sat cap)', () => {
    // True: two inputs of 1 BTC each; outputs 1 BTC; real fee 1 BTC.
    const req1 = spend([{ key: k0, kind: 'wpkh', trueAmount: BTC }, { key: k1, kind: 'wpkh', trueAmount: BTC, claimed: 10_000n }]);
    const req2 = spend([{ key: k0, kind: 'wpkh', trueAmount: BTC, claimed: 10_000n }, { key: k1, kind: 'wpkh', trueAmount: BTC }]);
    const d1 = decide(req1);
    const d2 = decide(req2);

    // What a host gets when both are signed: input 0's signature from the first, input 1's from
    // the second, both valid for the real transaction (true amounts) — a 1 BTC fee.
    const s1 = btc.Transaction.fromPSBT(Buffer.from((d1.p.sign() as { psbt: string }).psbt, 'base64'));
    const s2 = btc.Transaction.fromPSBT(Buffer.from((d2.p.sign() as { psbt: string }).psbt, 'base64'));
    const real = btc.Transaction.fromPSBT(Buffer.from(spend([{ key: k0, kind: 'wpkh', trueAmount: BTC }, { key: k1, kind: 'wpkh', trueAmount: BTC }]), 'base64'));
    const valid = (signed: btc.Transaction, idx: number, key: HDKey) => {
      const sig = signed.getInput(idx).partialSig![0]![1];
      const code = btc.OutScript.encode({ type: 'pkh', hash: btc.p2wpkh(key.publicKey!).hash });
      const h = (real as unknown as { preimageWitnessV0(i: number, s: Uint8Array, t: number, a: bigint): Uint8Array }).preimageWitnessV0(idx, code, btc.SigHash.ALL, BTC);
      return secp256k1.verify(sig!.subarray(0, -1), h, key.publicKey!, { prehash: false, format: 'der' });
    };
    expect(valid(s1, 0, k0)).toBe(true);
    expect(valid(s2, 1, k1)).toBe(true);
    expect(real.fee).toBe(BTC);

    // So the policy must not have allowed both under a 50,000 sat fee cap.
    expect([d1.decision.outcome, d2.decision.outcome]).not.toEqual(['signed', 'signed']);
    expect(d1.intent.fee).toBeNull();
    expect(d2.intent.fee).toBeNull();
  });

  it('a lie about a foreign input (not ours, so our one P2WPKH signature does not commit to it) makes the fee unknown', () => {
    const d = decide(spend([{ key: k0, kind: 'wpkh', trueAmount: BTC }, { key: k1, kind: 'wpkh', trueAmount: BTC, claimed: 10_000n, ours: false }]));
    expect(d.intent.fee).toBeNull();
    expect(d.decision.outcome).toBe('refused');
  });

  it('full previous transactions make the fee known (their txids are checked), and a lie about them is refused at decode', () => {
    const d = decide(spend([{ key: k0, kind: 'wpkh', trueAmount: BTC / 2n, full: true }, { key: k1, kind: 'wpkh', trueAmount: BTC / 2n + 20_000n, full: true }]));
    expect(d.intent.fee).toBe(20_000n);
    expect(d.decision.outcome).toBe('signed');
    expect(() => decide(spend([{ key: k0, kind: 'wpkh', trueAmount: BTC, full: true }, { key: k1, kind: 'wpkh', trueAmount: BTC, claimed: 10_000n, full: true }]))).toThrow();
  });

  it('one P2WPKH input of ours (its signature commits to its own amount): fee known, as before', () => {
    const d = decide(spend([{ key: k0, kind: 'wpkh', trueAmount: BTC + 30_000n }]));
    expect(d.intent.fee).toBe(30_000n);
    expect(d.decision.outcome).toBe('signed');
  });

  it('taproot inputs only (BIP341 commits to every amount): fee known, even beside a foreign input', () => {
    const d = decide(spend([{ key: t0, kind: 'tr', trueAmount: BTC / 2n }, { key: t1, kind: 'tr', trueAmount: BTC / 2n }, { key: k1, kind: 'wpkh', trueAmount: 40_000n, ours: false }]));
    expect(d.intent.fee).toBe(40_000n);
    expect(d.decision.outcome).toBe('signed');
  });
});
