/**
 * Bitcoin PSBT signing (`signer_signPsbt`) for P2WPKH (segwit v0) and P2TR key-path inputs,
 * with keys from one BIP32 seed.
 *
 * An input is *ours* when its bip32Derivation (P2WPKH) or tapBip32Derivation (P2TR) names our
 * master fingerprint. Before anything is signed, each such entry's path is derived and must
 * give exactly the public key the entry lists, and that key must be the one the input's
 * script pays to (P2WPKH: hash160(pubkey); P2TR: the internal key, tweaked with the input's
 * merkle root, is the output key). A PSBT that claims our fingerprint for a key we do not
 * derive is refused as a whole. Inputs that do not name us are left untouched; a PSBT with no
 * input of ours is an error. Inputs are signed with @scure/btc-signer and not finalized.
 */
import { Transaction, getInputType } from '@scure/btc-signer';
import { hash160, taprootTweakPubkey } from '@scure/btc-signer/utils.js';
import type { HDKey } from '@scure/bip32';
import { bytesEqual, wipe } from '../../common/bytes.js';
import { createDerivationCache, fingerprintHex, formatDerivationPath, withMasterKey, type DerivationCache } from './bip32.js';
import { drawEntropy, type EntropySource } from './entropy.js';
import { guarded, invalidParams, SigningError } from './errors.js';
import { overLimit, SIGNER_LIMITS } from './limits.js';
import { describe, hexOf, readArray, type Hex } from './validate.js';

export interface SignPsbtOptions {
  /** Source of BIP340 auxiliary randomness for taproot signatures. */
  entropy: EntropySource;
  /**
   * Sighash types an input may request. Default: only each input type's default
   * (SIGHASH_ALL for P2WPKH, SIGHASH_DEFAULT for P2TR). Values from
   * {0, 1, 2, 3, 0x81, 0x82, 0x83}.
   */
  allowedSighash?: number[];
  /**
   * Require every input to carry its full previous transaction (nonWitnessUtxo) matching the
   * outpoint, so a forged witnessUtxo amount cannot hide a fee (segwit v0 signatures commit
   * only to their own input's amount). Default false.
   */
  strictPrevouts?: boolean;
}

export type PsbtInputKind = 'p2wpkh' | 'p2tr';

export type PsbtInputReport =
  | { index: number; status: 'signed'; kind: PsbtInputKind; path: string; publicKey: Hex }
  | { index: number; status: 'not-ours' };

export interface SignedPsbt {
  /** The PSBT with our partial signatures added, base64, same PSBT version as the input. */
  psbt: string;
  /** Indices of inputs we signed, ascending. */
  signedInputs: number[];
  inputs: PsbtInputReport[];
  masterFingerprint: string;
}

const SIGHASHES = new Set([0, 1, 2, 3, 0x81, 0x82, 0x83]);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A PSBT as raw bytes or as standard (padded) base64. */
export function readPsbt(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v !== 'string') throw invalidParams('psbt', `expected base64 or bytes, got ${describe(v)}`);
  const s = v.trim();
  if (s.length === 0 || !BASE64.test(s)) throw invalidParams('psbt', 'expected standard base64');
  return new Uint8Array(Buffer.from(s, 'base64'));
}

function readSighashes(v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  return readArray(v, 'allowedSighash', { min: 1, max: 7 }).map((x, i) => {
    if (typeof x !== 'number' || !SIGHASHES.has(x)) {
      throw invalidParams(`allowedSighash[${i}]`, 'expected one of 0, 1, 2, 3, 0x81, 0x82, 0x83');
    }
    return x;
  });
}

interface OurKey {
  path: readonly number[];
  /** What the PSBT says the key is: 33-byte compressed (segwit) or 32-byte x-only (taproot). */
  listed: Uint8Array;
  /** Taproot leaf hashes the key is used in (empty for the internal key). */
  leafHashes: readonly Uint8Array[];
}

function mismatch(index: number, field: string, message: string): SigningError {
  return new SigningError('SIGN_PSBT_DERIVATION_MISMATCH', `input ${index}: ${message}`, {
    field: `inputs[${index}].${field}`,
    hint: 'the PSBT names our master fingerprint for a key this seed does not derive; check the wallet descriptor',
  });
}

function unsupported(index: number, message: string): SigningError {
  return new SigningError('SIGN_PSBT_UNSUPPORTED_INPUT', `input ${index}: ${message}`, {
    field: `inputs[${index}]`,
    hint: 'only P2WPKH and P2TR key-path inputs are signed',
  });
}

/** Derives `path` (through the request's cache) and checks it gives `listed`; the node belongs to the cache. */
function deriveChecked(cache: DerivationCache, index: number, field: string, key: OurKey, xonly: boolean): HDKey {
  const node = cache.derive(key.path, `inputs[${index}].${field}`);
  const pub = node.publicKey!;
  const derived = xonly ? pub.subarray(1) : pub;
  if (!bytesEqual(derived, key.listed)) {
    throw mismatch(index, field, `path ${formatDerivationPath(key.path)} does not derive to the listed public key`);
  }
  return node;
}

/** Decodes PSBT bytes and applies the input/output limits: the one decode both the signer and the policy's intent use. */
function decodeBounded(bytes: Uint8Array, strictPrevouts: boolean): Transaction {
  const tx = guarded(
    'PSBT decoding',
    () => Transaction.fromPSBT(bytes, { unknown: 'ignore', strictPrevoutValidation: strictPrevouts }),
    { code: 'SIGN_PSBT_INVALID', field: 'psbt', expose: true },
  );
  if (tx.inputsLength > SIGNER_LIMITS.maxPsbtInputs) throw invalidParams('psbt', overLimit(`${tx.inputsLength} inputs`, 'maxPsbtInputs'));
  if (tx.outputsLength > SIGNER_LIMITS.maxPsbtOutputs) throw invalidParams('psbt', overLimit(`${tx.outputsLength} outputs`, 'maxPsbtOutputs'));
  return tx;
}

/**
 * Decodes a PSBT exactly as `signPsbt` does, within the same limits, without signing: the
 * policy engine builds its intent from this same value, so what is decided on is what gets signed.
 */
export function parsePsbt(psbt: unknown, opts: { strictPrevouts?: boolean } = {}): Transaction {
  const bytes = readPsbt(psbt);
  if (bytes.length > SIGNER_LIMITS.maxPsbtBytes) throw invalidParams('psbt', overLimit(`a PSBT of ${bytes.length} bytes`, 'maxPsbtBytes'));
  return decodeBounded(bytes, opts.strictPrevouts === true);
}

/** A decoded PSBT within the limits, ready to sign (see preparePsbt). */
export interface PreparedPsbt {
  readonly tx: Transaction;
  readonly allowedSighash: number[] | undefined;
}

/**
 * Decodes and bounds a PSBT before anything is derived or signed: bytes,
 * inputs, outputs, and (given our master fingerprint) the derivation entries
 * naming us. Every refusal names the limit (SIGN_INVALID_PARAMS, field psbt).
 */
export function preparePsbt(psbt: unknown, opts: Omit<SignPsbtOptions, 'entropy'>, fingerprint?: number): PreparedPsbt {
  const bytes = readPsbt(psbt);
  if (bytes.length > SIGNER_LIMITS.maxPsbtBytes) throw invalidParams('psbt', overLimit(`a PSBT of ${bytes.length} bytes`, 'maxPsbtBytes'));
  const allowedSighash = readSighashes(opts.allowedSighash);
  if (opts.strictPrevouts !== undefined && typeof opts.strictPrevouts !== 'boolean') {
    throw invalidParams('strictPrevouts', 'expected a boolean');
  }
  const tx = decodeBounded(bytes, opts.strictPrevouts === true);
  if (fingerprint !== undefined) {
    let ours = 0;
    for (let i = 0; i < tx.inputsLength; i++) {
      const input = tx.getInput(i);
      ours += (input.bip32Derivation ?? []).filter(([, d]) => d.fingerprint === fingerprint).length;
      ours += (input.tapBip32Derivation ?? []).filter(([, d]) => d.der.fingerprint === fingerprint).length;
    }
    if (ours > SIGNER_LIMITS.maxPsbtOwnDerivations) {
      throw invalidParams('psbt', overLimit(`${ours} derivation entries naming our fingerprint`, 'maxPsbtOwnDerivations'));
    }
  }
  return { tx, allowedSighash };
}

/** `signer_signPsbt`. */
export function signPsbt(seed: Uint8Array, psbt: unknown, opts: SignPsbtOptions): SignedPsbt {
  return signPreparedPsbt(seed, preparePsbt(psbt, opts), opts);
}

/** Signs a PSBT that preparePsbt decoded and bounded. */
export function signPreparedPsbt(seed: Uint8Array, prepared: PreparedPsbt, opts: Pick<SignPsbtOptions, 'entropy'>): SignedPsbt {
  const { tx, allowedSighash } = prepared;
  return withMasterKey(seed, 'mainnet', (master) => {
    const fp = master.fingerprint;
    const cache = createDerivationCache(master);
    try {
      let ours = 0;
      for (let i = 0; i < tx.inputsLength; i++) {
        const input = tx.getInput(i);
        ours += (input.bip32Derivation ?? []).filter(([, d]) => d.fingerprint === fp).length;
        ours += (input.tapBip32Derivation ?? []).filter(([, d]) => d.der.fingerprint === fp).length;
      }
      if (ours > SIGNER_LIMITS.maxPsbtOwnDerivations) {
        throw invalidParams('psbt', overLimit(`${ours} derivation entries naming our fingerprint`, 'maxPsbtOwnDerivations'));
      }
      return signInputs(tx, fp, cache, allowedSighash, opts);
    } finally {
      cache.wipe();
    }
  });
}

function signInputs(tx: Transaction, fp: number, cache: DerivationCache, allowedSighash: number[] | undefined, opts: Pick<SignPsbtOptions, 'entropy'>): SignedPsbt {
  const inputs: PsbtInputReport[] = [];
  const signedInputs: number[] = [];

  for (let i = 0; i < tx.inputsLength; i++) {
    const input = tx.getInput(i);
    const segwitKeys: OurKey[] = (input.bip32Derivation ?? [])
      .filter(([, d]) => d.fingerprint === fp)
      .map(([pub, d]) => ({ path: d.path, listed: pub, leafHashes: [] }));
    const tapKeys: OurKey[] = (input.tapBip32Derivation ?? [])
      .filter(([, d]) => d.der.fingerprint === fp)
      .map(([pub, d]) => ({ path: d.der.path, listed: pub, leafHashes: d.hashes }));
    if (segwitKeys.length === 0 && tapKeys.length === 0) {
      inputs.push({ index: i, status: 'not-ours' });
      continue;
    }

    // Every entry naming our fingerprint must derive to the key it lists, whatever the input type.
    const nodes: HDKey[] = [];
    let chosen: { node: HDKey; key: OurKey; kind: PsbtInputKind } | undefined;
    for (const k of segwitKeys) nodes.push(deriveChecked(cache, i, 'bip32Derivation', k, false));
    for (const k of tapKeys) nodes.push(deriveChecked(cache, i, 'tapBip32Derivation', k, true));

    const type = guarded(`input ${i} classification`, () => getInputType(input), {
      code: 'SIGN_PSBT_UNSUPPORTED_INPUT',
      field: `inputs[${i}]`,
      expose: true,
    });
    if (type.type === 'wpkh' && type.last.type === 'wpkh') {
      if (segwitKeys.length === 0) throw mismatch(i, 'bip32Derivation', 'P2WPKH input names our fingerprint only in tapBip32Derivation');
      const pkh = type.last.hash;
      const at = segwitKeys.findIndex((k) => bytesEqual(hash160(k.listed), pkh));
      if (at < 0) throw mismatch(i, 'bip32Derivation', 'our key is listed but the input does not pay to it');
      chosen = { node: nodes[at]!, key: segwitKeys[at]!, kind: 'p2wpkh' };
    } else if (type.type === 'tr' && type.last.type === 'tr') {
      if (tapKeys.length === 0) {
        throw mismatch(i, 'tapBip32Derivation', 'P2TR input names our fingerprint only in bip32Derivation (BIP371 uses tapBip32Derivation)');
      }
      const outputKey = type.last.pubkey;
      const internal = input.tapInternalKey;
      const at = tapKeys.findIndex((k) => k.leafHashes.length === 0 && internal !== undefined && bytesEqual(k.listed, internal));
      if (at < 0) {
        if (tapKeys.some((k) => k.leafHashes.length > 0)) throw unsupported(i, 'our key is only in taproot script leaves (script path is not signed)');
        throw mismatch(i, 'tapBip32Derivation', 'our key is listed but it is not the input\'s tapInternalKey');
      }
      const [tweaked] = taprootTweakPubkey(internal!, input.tapMerkleRoot ?? new Uint8Array(0));
      if (!bytesEqual(tweaked, outputKey)) {
        throw mismatch(i, 'tapInternalKey', 'the internal key tweaked with tapMerkleRoot is not the output key');
      }
      const ourX = tapKeys[at]!.listed;
      for (const [, leaf] of input.tapLeafScript ?? []) {
        if (containsBytes(leaf, ourX)) throw unsupported(i, 'our key also appears in a taproot script leaf (script path is not signed)');
      }
      chosen = { node: nodes[at + segwitKeys.length]!, key: tapKeys[at]!, kind: 'p2tr' };
    } else {
      throw unsupported(i, `input type ${type.type} is not P2WPKH or P2TR`);
    }

    const priv = chosen.node.privateKey!;
    let aux: Uint8Array | undefined;
    try {
      if (chosen.kind === 'p2tr') aux = drawEntropy(opts.entropy, 32);
      const ok = guarded(
        `signing input ${i}`,
        () => tx.signIdx(priv, i, allowedSighash, aux),
        { code: 'SIGN_PSBT_SIGN_FAILED', field: `inputs[${i}]`, expose: true },
      );
      if (!ok) throw new SigningError('SIGN_PSBT_SIGN_FAILED', `input ${i}: nothing was signed`, { field: `inputs[${i}]` });
    } finally {
      wipe(priv, aux);
    }
    inputs.push({
      index: i,
      status: 'signed',
      kind: chosen.kind,
      path: formatDerivationPath(chosen.key.path),
      publicKey: hexOf(chosen.node.publicKey!),
    });
    signedInputs.push(i);
  }

  if (signedInputs.length === 0) {
    throw new SigningError('SIGN_PSBT_NOT_OURS', `no input names master fingerprint ${fingerprintHex(fp)}`, {
      field: 'psbt',
      hint: 'each input to sign needs a bip32Derivation / tapBip32Derivation entry with our fingerprint',
    });
  }
  const out = guarded('PSBT encoding', () => tx.toPSBT());
  return {
    psbt: Buffer.from(out).toString('base64'),
    signedInputs,
    inputs,
    masterFingerprint: fingerprintHex(fp),
  };
}

function containsBytes(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}
