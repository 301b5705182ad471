/**
 * `enclave-signer/bitcoin`: spend P2WPKH and P2TR (key path) outputs of an
 * enclave BIP32 seed.
 *
 *   const client = createSignerClient({ socket });
 *   const account = await bitcoinAccount(client, keyId, "m/84'/1'/0'");   // one read: the account xpub
 *   const psbt = buildPsbt({ utxos: [{ txid, vout, amount, type: 'p2wpkh', account, path: '0/0' }],
 *                            outputs: [{ address, amount }], network: REGTEST });
 *   const { hex, txid } = await signAndExtract(client, keyId, psbt);
 *
 * buildPsbt derives each input's public key from the account xpub (public
 * derivation only: the path below the account is non-hardened) and writes
 * the fields the enclave checks before it signs (enclave/signers/psbt.ts):
 * bip32Derivation (P2WPKH) or tapInternalKey + tapBip32Derivation (P2TR),
 * with the seed's master fingerprint and the full path, and the witnessUtxo.
 * The enclave re-derives every path and refuses a PSBT whose key or script
 * does not match. Finalizing and extracting is @scure/btc-signer's.
 */
import { HDKey } from '@scure/bip32';
import * as btc from '@scure/btc-signer';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { hash160 } from '@scure/btc-signer/utils.js';
import { bytesEqual } from '../common/bytes.js';
import type { SignerClient } from './client.js';
import { EnclaveSignerRpcError } from './errors.js';

/** An account-level extended public key, as signer_deriveKey returns it. */
export interface BitcoinAccount {
  /** The account's xpub (e.g. at m/84'/0'/0'). */
  xpub: string;
  /** Its full path from the master key. */
  path: string;
  /** The seed's master fingerprint, 8 hex. */
  masterFingerprint: string;
}

export interface Utxo {
  /** The funding transaction's id, hex as block explorers show it. */
  txid: string;
  vout: number;
  /** In satoshis. */
  amount: bigint;
  type: 'p2wpkh' | 'p2tr';
  account: BitcoinAccount;
  /** Below the account, non-hardened: "0/5" (receive 5), "1/2" (change 2). */
  path: string;
  /** The output script it pays to, hex; when given it must be the one derived (a check against a wrong path). */
  script?: string;
}

export type Output = { address: string; amount: bigint } | { script: string | Uint8Array; amount: bigint };

/** Bitcoin mainnet, testnet and regtest address parameters (@scure/btc-signer's shape). */
export const MAINNET = btc.NETWORK;
export const TESTNET = btc.TEST_NETWORK;
export const REGTEST = { ...btc.TEST_NETWORK, bech32: 'bcrt' };

/** The account xpub for `path` (a read: one signer_deriveKey call). */
export async function bitcoinAccount(client: SignerClient, keyId: string, path: string): Promise<BitcoinAccount> {
  const r = await client.request<{ xpub?: unknown; path?: unknown; masterFingerprint?: unknown }>('signer_deriveKey', { keyId, path });
  if (typeof r.xpub !== 'string' || typeof r.masterFingerprint !== 'string' || !/^[0-9a-f]{8}$/.test(r.masterFingerprint)) {
    throw new Error('signer_deriveKey answered without an xpub and master fingerprint');
  }
  return { xpub: r.xpub, path: typeof r.path === 'string' ? r.path : path, masterFingerprint: r.masterFingerprint };
}

function childOf(utxo: Utxo): { publicKey: Uint8Array; fullPath: string } {
  if (!/^\d{1,10}(?:\/\d{1,10})*$/.test(utxo.path)) throw new Error(`utxo ${utxo.txid}:${utxo.vout}: path ${JSON.stringify(utxo.path)} must be non-hardened steps below the account, like "0/5"`);
  const node = HDKey.fromExtendedKey(utxo.account.xpub).derive(`m/${utxo.path}`);
  if (!node.publicKey) throw new Error(`utxo ${utxo.txid}:${utxo.vout}: no public key at ${utxo.path}`);
  return { publicKey: node.publicKey, fullPath: `${utxo.account.path.replace(/\/$/, '')}/${utxo.path}` };
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** The unsigned PSBT (bytes) spending `utxos` to `outputs`; whatever is not in the outputs is the fee. */
export function buildPsbt(p: { utxos: readonly Utxo[]; outputs: readonly Output[]; network?: typeof btc.NETWORK; lockTime?: number }): Uint8Array {
  const network = p.network ?? MAINNET;
  if (p.utxos.length === 0) throw new Error('no utxos to spend');
  const tx = new btc.Transaction({ lockTime: p.lockTime ?? 0 });
  for (const u of p.utxos) {
    const { publicKey, fullPath } = childOf(u);
    const fingerprint = parseInt(u.account.masterFingerprint, 16);
    const path = btc.bip32Path(fullPath);
    const common = { txid: u.txid, index: u.vout };
    if (u.type === 'p2wpkh') {
      const pay = btc.p2wpkh(publicKey, network);
      if (u.script !== undefined && u.script.toLowerCase() !== hex(pay.script)) throw new Error(`utxo ${u.txid}:${u.vout}: its script is not the P2WPKH of ${fullPath}`);
      tx.addInput({ ...common, witnessUtxo: { script: pay.script, amount: u.amount }, bip32Derivation: [[publicKey, { fingerprint, path }]] });
    } else if (u.type === 'p2tr') {
      const xOnly = publicKey.subarray(1);
      const pay = btc.p2tr(xOnly, undefined, network);
      if (u.script !== undefined && u.script.toLowerCase() !== hex(pay.script)) throw new Error(`utxo ${u.txid}:${u.vout}: its script is not the P2TR (key path) of ${fullPath}`);
      tx.addInput({ ...common, witnessUtxo: { script: pay.script, amount: u.amount }, tapInternalKey: xOnly, tapBip32Derivation: [[xOnly, { hashes: [], der: { fingerprint, path } }]] });
    } else {
      throw new Error(`utxo type ${JSON.stringify((u as { type: unknown }).type)}: only p2wpkh and p2tr`);
    }
  }
  for (const o of p.outputs) {
    if ('address' in o) tx.addOutputAddress(o.address, o.amount, network);
    else tx.addOutput({ script: typeof o.script === 'string' ? Buffer.from(o.script, 'hex') : o.script, amount: o.amount });
  }
  return tx.toPSBT();
}

/** The signer's signed PSBT is not an answer to this request: never broadcast it. */
function psbtMismatch(what: string): EnclaveSignerRpcError {
  return new EnclaveSignerRpcError('signer_signPsbt', -32603, `the signer's answer does not match the request: ${what} (CLIENT_ANSWER_MISMATCH); do not broadcast it`, {
    code: 'CLIENT_ANSWER_MISMATCH',
    hint: 'the signing host may be compromised',
  });
}

const SIGHASH_ALL = 1;
const SIGHASH_DEFAULT = 0;

/**
 * Signs every input of the seed `keyId` in the enclave (one signer_signPsbt call); the signed PSBT, not finalized.
 *
 * The host is untrusted: the answer must be the transaction we sent (same inputs, outputs,
 * version, lock time — what the unsigned txid commits to), and what is returned is OUR PSBT
 * with only the signatures taken from the answer, each verified against the input's own key
 * (P2WPKH: a key hashing to the script's hash; P2TR key path: the script's output key), over
 * the sighash of our PSBT (our amounts and scripts) with the input's sighash type. Anything else
 * in the answer (other amounts, a host-made final witness, a signature that does not verify or
 * by another key) is refused or never used.
 */
export async function signPsbt(client: SignerClient, keyId: string, psbt: Uint8Array): Promise<Uint8Array> {
  const r = await client.signPsbt({ keyId, psbt: Buffer.from(psbt).toString('base64') });
  if (r === null || typeof r !== 'object' || typeof r.psbt !== 'string') throw psbtMismatch('no signed PSBT in the answer');
  let answer: btc.Transaction;
  try {
    answer = btc.Transaction.fromPSBT(new Uint8Array(Buffer.from(r.psbt, 'base64')));
  } catch {
    throw psbtMismatch('the signed PSBT does not parse');
  }
  const ours = btc.Transaction.fromPSBT(psbt);
  if (answer.id !== ours.id || answer.inputsLength !== ours.inputsLength) throw psbtMismatch('the signed PSBT is another transaction');
  const out = btc.Transaction.fromPSBT(psbt);
  for (let i = 0; i < ours.inputsLength; i++) {
    const mine = ours.getInput(i);
    const theirs = answer.getInput(i);
    if (!mine.witnessUtxo) continue;
    let spk;
    try {
      spk = btc.OutScript.decode(mine.witnessUtxo.script);
    } catch {
      continue;
    }
    if (spk.type === 'wpkh') {
      for (const [pub, sig] of theirs.partialSig ?? []) {
        if ((mine.partialSig ?? []).some(([p, s]) => bytesEqual(p, pub) && bytesEqual(s, sig))) continue;
        if (!bytesEqual(hash160(pub), spk.hash)) throw psbtMismatch(`input ${i}: a signature by a key the input does not pay to`);
        const hashType = sig[sig.length - 1];
        if (sig.length < 9 || hashType !== (mine.sighashType ?? SIGHASH_ALL)) throw psbtMismatch(`input ${i}: a signature with sighash type ${hashType}`);
        const digest = ours.preimageWitnessV0(i, btc.OutScript.encode({ type: 'pkh', hash: spk.hash }), hashType, mine.witnessUtxo.amount);
        if (!verifyDer(sig.subarray(0, -1), digest, pub)) throw psbtMismatch(`input ${i}: a signature that does not verify for its key and this transaction`);
        out.updateInput(i, { partialSig: [[pub, sig]] }, true);
      }
    } else if (spk.type === 'tr') {
      const sig = theirs.tapKeySig;
      if (!sig || (mine.tapKeySig && bytesEqual(mine.tapKeySig, sig))) continue;
      if (sig.length !== 64 && sig.length !== 65) throw psbtMismatch(`input ${i}: a taproot signature of ${sig.length} bytes`);
      const hashType = sig.length === 64 ? SIGHASH_DEFAULT : sig[64]!;
      if (hashType !== (mine.sighashType ?? SIGHASH_DEFAULT)) throw psbtMismatch(`input ${i}: a signature with sighash type ${hashType}`);
      const prevouts = Array.from({ length: ours.inputsLength }, (_, j) => ours.getInput(j).witnessUtxo);
      if (prevouts.some((p) => p === undefined)) throw psbtMismatch(`input ${i}: a taproot signature we cannot check (an input has no witnessUtxo)`);
      const digest = ours.preimageWitnessV1(i, prevouts.map((p) => p!.script), hashType, prevouts.map((p) => p!.amount));
      let ok = false;
      try {
        ok = schnorr.verify(sig.subarray(0, 64), digest, spk.pubkey);
      } catch {
        ok = false;
      }
      if (!ok) throw psbtMismatch(`input ${i}: a signature that does not verify for its output key and this transaction`);
      out.updateInput(i, { tapKeySig: sig }, true);
    }
  }
  return out.toPSBT();
}

function verifyDer(der: Uint8Array, digest: Uint8Array, pub: Uint8Array): boolean {
  try {
    return secp256k1.verify(der, digest, pub, { prehash: false, format: 'der' });
  } catch {
    return false;
  }
}

/** Finalizes a fully signed PSBT and extracts the network transaction. */
export function finalizeAndExtract(psbt: Uint8Array): { hex: string; txid: string; tx: btc.Transaction } {
  const tx = btc.Transaction.fromPSBT(psbt);
  tx.finalize();
  return { hex: hex(tx.extract()), txid: tx.id, tx };
}

/** signPsbt, then finalizeAndExtract. */
export async function signAndExtract(client: SignerClient, keyId: string, psbt: Uint8Array): Promise<{ hex: string; txid: string; tx: btc.Transaction }> {
  return finalizeAndExtract(await signPsbt(client, keyId, psbt));
}
