/**
 * BIP340 Schnorr over a 32-byte message, with BIP340's auxiliary randomness drawn from the
 * caller's entropy source (hedges against fault and side-channel attacks on the nonce).
 */
import { schnorr } from '@noble/curves/secp256k1.js';
import { wipe } from '../../common/bytes.js';
import { drawEntropy, type EntropySource } from './entropy.js';
import { guarded } from './errors.js';
import { hexOf, readBytes32, readPrivateKey, type Hex } from './validate.js';

export interface SchnorrSignature {
  /** 64 bytes R.x‖s. */
  signature: Hex;
  /** 32-byte x-only public key the signature verifies under (BIP340). */
  publicKey: Hex;
}

/** Validated inputs only; `auxRand` is 32 bytes. noble verifies the signature before returning it. */
export function signSchnorrRaw(privateKey: Uint8Array, message: Uint8Array, auxRand: Uint8Array): Uint8Array {
  return guarded('schnorr sign', () => schnorr.sign(message, privateKey, auxRand));
}

/** BIP340 signature over exactly 32 bytes (Uint8Array or 0x hex). */
export function signSchnorr(
  privateKey: Uint8Array,
  message: Uint8Array | string,
  entropy: EntropySource,
): SchnorrSignature {
  const key = readPrivateKey(privateKey);
  const msg = readBytes32(message, 'message');
  const aux = drawEntropy(entropy, 32);
  try {
    const sig = signSchnorrRaw(key, msg, aux);
    return { signature: hexOf(sig), publicKey: hexOf(schnorr.getPublicKey(key)) };
  } finally {
    wipe(aux);
  }
}
