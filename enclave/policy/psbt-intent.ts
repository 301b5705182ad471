/**
 * The intent of `signer_signPsbt`, built from `parsePsbt` — the same decoded transaction
 * `signPsbt` signs. Each output's script, address and amount; the fee; and which outputs are
 * change back to us.
 *
 * An output is change only when it is *verified* ours, exactly as signPsbt verifies inputs:
 * its bip32Derivation (P2WPKH) or tapBip32Derivation (P2TR key path) names our master
 * fingerprint, the path derives (inside the enclave, from the unwrapped seed) to the listed
 * key, and the script pays to that key. A PSBT that merely claims our fingerprint for a
 * foreign output gets that output counted as external — the host cannot launder a payment
 * as "change". Without a derivation function (e.g. `policy explain` on the operator's
 * laptop), no output is change.
 */
import { OutScript } from '@scure/btc-signer';
import { hash160, taprootTweakPubkey } from '@scure/btc-signer/utils.js';
import { bytesEqual } from '../../common/bytes.js';
import { formatDerivationPath } from '../signers/bip32.js';
import { parsePsbt } from '../signers/psbt.js';
import type { PsbtIntent, PsbtOutputIntent } from './intent.js';
import { scriptToAddress, type BtcNetworkName } from './btc-network.js';

export interface PsbtKeyFacts {
  /** Our master fingerprint, 8 hex digits (public data derived from the unwrapped seed). */
  masterFingerprint?: string;
  /** Compressed public key at `path` from our seed (33 bytes). */
  derivePublicKey?: (path: readonly number[]) => Uint8Array;
  /** Network addresses are shown for (default bitcoin). */
  network?: BtcNetworkName;
}

const MAX_CHANGE_DEPTH = 16;
/**
 * Distinct change paths derived per PSBT. Deriving costs CPU inside the enclave; a PSBT that
 * labels thousands of outputs with our fingerprint gets the rest counted as external payments
 * (fail closed), not minutes of work.
 */
export const MAX_CHANGE_DERIVATIONS = 64;

/** Memoised, bounded derivation: a repeated path costs nothing, more than the cap throws (caught: not change). */
function boundedDerive(derive: (path: readonly number[]) => Uint8Array): (path: readonly number[]) => Uint8Array {
  const cache = new Map<string, Uint8Array>();
  return (path) => {
    const k = path.join('/');
    let pub = cache.get(k);
    if (pub === undefined) {
      if (cache.size >= MAX_CHANGE_DERIVATIONS) throw new Error('too many change derivations');
      pub = derive(path);
      cache.set(k, pub);
    }
    return pub;
  };
}

function verifiedChange(
  script: Uint8Array,
  out: ReturnType<ReturnType<typeof parsePsbt>['getOutput']>,
  fp: number,
  derive: (path: readonly number[]) => Uint8Array,
): string | undefined {
  const decoded = OutScript.decode(script);
  if (decoded.type === 'wpkh') {
    for (const [pub, d] of out.bip32Derivation ?? []) {
      if (d.fingerprint !== fp || d.path.length > MAX_CHANGE_DEPTH) continue;
      if (bytesEqual(derive(d.path), pub) && bytesEqual(hash160(pub), decoded.hash)) return formatDerivationPath(d.path);
    }
  } else if (decoded.type === 'tr') {
    const internal = out.tapInternalKey;
    if (internal === undefined) return undefined;
    for (const [xonly, d] of out.tapBip32Derivation ?? []) {
      if (d.der.fingerprint !== fp || d.hashes.length > 0 || d.der.path.length > MAX_CHANGE_DEPTH) continue;
      if (!bytesEqual(xonly, internal) || !bytesEqual(derive(d.der.path).subarray(1), xonly)) continue;
      const [tweaked] = taprootTweakPubkey(internal, new Uint8Array(0));
      if (bytesEqual(tweaked, decoded.pubkey)) return formatDerivationPath(d.der.path);
    }
  }
  return undefined;
}

export function psbtIntent(psbt: unknown, facts: PsbtKeyFacts = {}): PsbtIntent {
  return psbtIntentOf(parsePsbt(psbt), facts);
}

/** The intent of an already decoded PSBT: the enclave passes the very value it will sign. */
export function psbtIntentOf(tx: ReturnType<typeof parsePsbt>, facts: PsbtKeyFacts = {}): PsbtIntent {
  const network = facts.network ?? 'bitcoin';
  const fp = facts.masterFingerprint !== undefined ? Number.parseInt(facts.masterFingerprint, 16) : undefined;
  const derive = facts.derivePublicKey ? boundedDerive(facts.derivePublicKey) : undefined;
  const outputs: PsbtOutputIntent[] = [];
  let externalAmount = 0n;
  for (let i = 0; i < tx.outputsLength; i++) {
    const out = tx.getOutput(i);
    const script = out.script ?? new Uint8Array(0);
    const amount = out.amount ?? 0n;
    const claimsOurs =
      fp !== undefined &&
      ((out.bip32Derivation ?? []).some(([, d]) => d.fingerprint === fp) || (out.tapBip32Derivation ?? []).some(([, d]) => d.der.fingerprint === fp));
    let changePath: string | undefined;
    if (claimsOurs && derive) {
      try {
        changePath = verifiedChange(script, out, fp!, derive);
      } catch {
        changePath = undefined; // a path we cannot derive is not our change
      }
    }
    const o: PsbtOutputIntent = {
      index: i,
      script: Buffer.from(script).toString('hex'),
      address: scriptToAddress(script, network),
      amount,
      change: changePath !== undefined,
      claimsOurs,
    };
    if (changePath !== undefined) o.changePath = changePath;
    else externalAmount += amount;
    outputs.push(o);
  }
  let fee: bigint | null;
  try {
    fee = amountsCommitted(tx, fp) ? tx.fee : null;
  } catch {
    fee = null;
  }
  return { masterFingerprint: facts.masterFingerprint ?? null, outputs, fee, externalAmount };
}

/**
 * Whether every input amount the fee is computed from is one the host cannot lie about. The
 * amounts are the host's words (witnessUtxo). A P2WPKH (segwit v0) signature commits only to its
 * own input's amount (BIP143), so with a fee computed from the others' a host can ask twice for
 * one transaction, understating a different input each time: each request shows a small fee and
 * passes `maxFeeSats`, each gives one valid signature, and together they pay any fee (review
 * finding, enclave/policy/psbt-fee.test.ts). Which inputs count as "ours" is the host's labelling
 * too, so an unlabelled input is no safer. An input's amount is trusted when
 *   - it comes with its full previous transaction (scure checks its txid against the outpoint,
 *     and a witnessUtxo beside it against it, at decode), or
 *   - every signature we make on this PSBT commits to it: all of them are taproot (BIP341 commits
 *     to every input's amount), or the only one is this input's own.
 * Otherwise the fee is unknown (null) and no maxFeeSats rule matches (fail closed).
 */
function amountsCommitted(tx: ReturnType<typeof parsePsbt>, fp: number | undefined): boolean {
  // The inputs signPsbt signs: those naming our fingerprint (it refuses the PSBT if any of them does not verify).
  const signed: { index: number; taproot: boolean }[] = [];
  for (let i = 0; i < tx.inputsLength; i++) {
    const input = tx.getInput(i);
    const ours =
      fp === undefined || // without our fingerprint (policy explain) any input may be signed: assume the worst
      (input.bip32Derivation ?? []).some(([, d]) => d.fingerprint === fp) ||
      (input.tapBip32Derivation ?? []).some(([, d]) => d.der.fingerprint === fp);
    if (!ours) continue;
    const prev = input.witnessUtxo?.script ?? (input.nonWitnessUtxo && input.index !== undefined ? input.nonWitnessUtxo.outputs[input.index]?.script : undefined);
    let taproot = false;
    try {
      taproot = fp !== undefined && prev !== undefined && OutScript.decode(prev).type === 'tr';
    } catch {
      taproot = false;
    }
    signed.push({ index: i, taproot });
  }
  for (let i = 0; i < tx.inputsLength; i++) {
    if (tx.getInput(i).nonWitnessUtxo !== undefined) continue;
    if (signed.every((s) => s.taproot || (s.index === i && signed.length === 1))) continue;
    return false;
  }
  return true;
}
