/**
 * enclave/signers/psbt.ts and enclave/policy/psbt-intent.ts: the PSBT decode
 * both the signer and the policy's intent use, the intent itself (outputs,
 * verified change, fee), and preparation/signing with a fixed test seed.
 */
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { createHash } from 'node:crypto';
import { psbtIntentOf } from '../../enclave/policy/psbt-intent.js';
import { SigningError } from '../../enclave/signers/errors.js';
import { parsePsbt, preparePsbt, readPsbt, signPreparedPsbt } from '../../enclave/signers/psbt.js';
import { invariant, typed, utf8 } from '../check.js';
import type { FuzzTarget } from '../engine.js';

/** A throwaway BIP32 seed (the signer tests' one); never funded. */
const SEED = new Uint8Array(Buffer.from('5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4', 'hex'));
const root = HDKey.fromMasterSeed(SEED);
const other = HDKey.fromMasterSeed(new Uint8Array(32).fill(1));
const FP = root.fingerprint;
const derived = new Map<string, Uint8Array>();
const facts = {
  masterFingerprint: FP.toString(16).padStart(8, '0'),
  // Memoised: the same few paths recur in every mutant, and deriving is the slow part.
  derivePublicKey: (path: readonly number[]) => {
    const key = path.join('/');
    let pub = derived.get(key);
    if (!pub) {
      let k = root;
      for (const i of path) k = k.deriveChild(i);
      pub = k.publicKey!;
      if (derived.size > 10_000) derived.clear();
      derived.set(key, pub);
    }
    return pub;
  },
};
/** Re-serialising and preparing decode the PSBT again: every RESAMPLE_EVERY-th decoded input. */
const RESAMPLE_EVERY = 8;
let decodedCount = 0;
/** Signing costs derivations and signatures: every SIGN_EVERY-th prepared input. */
const SIGN_EVERY = 4;
let prepared = 0;
export const psbtStats = { decoded: 0, signed: 0 };

function entropy(n: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`fuzz:${n}`).digest()).subarray(0, n);
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x));

function build(variant: number): Uint8Array {
  const wpkhKey = root.derive("m/84'/0'/0'/0/0");
  const trKey = root.derive("m/86'/0'/0'/0/0");
  const changeKey = root.derive("m/84'/0'/0'/1/0");
  const xonly = (k: HDKey) => k.publicKey!.subarray(1);
  const tx = new btc.Transaction({ allowUnknownOutputs: true });
  const txid = (n: number) => new Uint8Array(32).fill(n);
  tx.addInput({
    txid: txid(1),
    index: 0,
    witnessUtxo: { script: btc.p2wpkh(wpkhKey.publicKey!).script, amount: 100_000n },
    bip32Derivation: [[wpkhKey.publicKey!, { fingerprint: FP, path: btc.bip32Path("m/84'/0'/0'/0/0") }]],
  });
  if (variant > 0) {
    tx.addInput({
      txid: txid(2),
      index: 1,
      witnessUtxo: { script: btc.p2tr(xonly(trKey)).script, amount: 50_000n },
      tapInternalKey: xonly(trKey),
      tapBip32Derivation: [[xonly(trKey), { hashes: [], der: { fingerprint: FP, path: btc.bip32Path("m/86'/0'/0'/0/0") } }]],
    });
  }
  tx.addOutput({ script: btc.p2wpkh(other.derive('m/0').publicKey!).script, amount: 60_000n });
  tx.addOutput({
    script: btc.p2wpkh(changeKey.publicKey!).script,
    amount: 30_000n,
    bip32Derivation: [[changeKey.publicKey!, { fingerprint: FP, path: btc.bip32Path("m/84'/0'/0'/1/0") }]],
  });
  if (variant > 1) {
    const trChange = root.derive("m/86'/0'/0'/1/0");
    tx.addOutput({
      script: btc.p2tr(xonly(trChange)).script,
      amount: 10_000n,
      tapInternalKey: xonly(trChange),
      tapBip32Derivation: [[xonly(trChange), { hashes: [], der: { fingerprint: FP, path: btc.bip32Path("m/86'/0'/0'/1/0") } }]],
    });
    tx.addOutput({ script: btc.Script.encode(['RETURN', utf8('fuzz')]), amount: 0n });
  }
  return variant > 2 ? tx.toPSBT(2) : tx.toPSBT();
}

/** A PSBT with no keys at all: cheap to decode, so mutants of it explore the format quickly. */
function bare(): Uint8Array {
  const tx = new btc.Transaction({ allowUnknownOutputs: true });
  tx.addInput({ txid: new Uint8Array(32).fill(9), index: 3, witnessUtxo: { script: new Uint8Array([0x00, 0x14, ...new Uint8Array(20).fill(4)]), amount: 5000n } });
  tx.addOutput({ script: new Uint8Array([0x00, 0x14, ...new Uint8Array(20).fill(5)]), amount: 4000n });
  return tx.toPSBT();
}

export const psbtTarget: FuzzTarget = {
  name: 'psbt',
  description:
    'parsePsbt (bytes, and the input as a string through readPsbt) and psbtIntentOf with our fingerprint and a deriving key on every input; on every 8th decoded one the library re-serialisation and preparePsbt, and every 4th of those signed with a test seed (decoding costs ~2 ms: keys are validated on the curve). ' +
    'parsePsbt/preparePsbt/signPreparedPsbt throw only SigningError; psbtIntentOf never throws on a PSBT parsePsbt accepted; ' +
    'a decoded PSBT re-serialised by the library decodes to the same intent.',
  cover: ['/enclave/signers/psbt.', '/enclave/policy/psbt-intent.', '/enclave/policy/btc-network.', '@scure/btc-signer/'],
  maxLen: 4096,
  seeds() {
    return [bare(), bare(), ...[0, 1, 2, 3].map(build)];
  },
  dict: [Uint8Array.of(0x70, 0x73, 0x62, 0x74, 0xff), Uint8Array.of(0x00), Uint8Array.of(0x01, 0x00), Uint8Array.of(0x06), Uint8Array.of(0x16), Uint8Array.of(0x17), Uint8Array.of(0xfb, 0x04, 0x02, 0, 0, 0), Uint8Array.of(0xfd, 0xff, 0xff), Uint8Array.of(0xfe, 0xff, 0xff, 0xff, 0xff)],
  run(x) {
    typed(() => readPsbt(Buffer.from(x).toString('latin1')), SigningError);
    const tx = typed(() => parsePsbt(x), SigningError);
    if (!tx) return;
    psbtStats.decoded++;
    const intent = psbtIntentOf(tx, facts);
    // Decoding costs ~2 ms (public keys are validated on the curve): the checks that decode again are sampled.
    if (++decodedCount % RESAMPLE_EVERY !== 0) return;
    const again = typed(() => parsePsbt(tx.toPSBT()), SigningError, Error);
    if (again) invariant(json(psbtIntentOf(again, facts)) === json(intent), 'a re-serialised PSBT has a different intent');
    const p = typed(() => preparePsbt(x, {}, FP), SigningError);
    if (!p || ++prepared % SIGN_EVERY !== 0) return;
    psbtStats.signed++;
    typed(() => signPreparedPsbt(SEED, p, { entropy }), SigningError);
  },
};
