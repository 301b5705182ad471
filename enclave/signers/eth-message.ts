/**
 * EIP-191 version 0x45 ("Ethereum Signed Message") signatures: `personal_sign` and geth's
 * `eth_sign`. Both sign keccak256("\x19Ethereum Signed Message:\n" ‖ decimal byte length ‖
 * message bytes) and answer with the 65-byte r‖s‖v, v = 27 + yParity, as geth and MetaMask do.
 * The legacy `eth_sign` that signs an arbitrary 32-byte hash does not exist here: that is
 * `signer_signDigest`, which is deliberately a separate, explicit operation.
 */
import { keccak_256 } from '@noble/hashes/sha3.js';
import { concatBytes } from '../../common/bytes.js';
import { encodeSignature, signDigestRaw, type EcdsaSignature } from './ecdsa.js';
import { addressFromPrivateKey } from './eth-address.js';
import { invalidParams } from './errors.js';
import { describe, hexOf, isWellFormed, readBytes, readPrivateKey, type Hex } from './validate.js';

export interface EthMessageSignature {
  /** 65 bytes r‖s‖v, v ∈ {27, 28}: the JSON-RPC result. */
  signature: Hex;
  r: Hex;
  s: Hex;
  v: 27 | 28;
  yParity: 0 | 1;
  /** The 32-byte digest that was signed. */
  digest: Hex;
  /** Checksummed signer address. */
  address: Hex;
}

/** keccak256("\x19Ethereum Signed Message:\n" + len(message) + message). */
export function personalMessageDigest(message: Uint8Array): Uint8Array {
  const prefix = new TextEncoder().encode(`\x19Ethereum Signed Message:\n${message.length}`);
  return keccak_256(concatBytes(prefix, message));
}

/**
 * `personal_sign` payload rules (MetaMask's, which viem and ethers rely on: both send hex):
 * a Uint8Array is the message; a string beginning with 0x must be whole-byte hex and is
 * decoded; any other string is UTF-8 text. A 0x string that is not valid hex is refused
 * rather than silently signed as text.
 */
export function readPersonalMessage(v: unknown, field = 'message'): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v !== 'string') throw invalidParams(field, `expected bytes, 0x hex or a UTF-8 string, got ${describe(v)}`);
  if (v.startsWith('0x')) return readBytes(v, field);
  if (!isWellFormed(v)) throw invalidParams(field, 'string is not well-formed Unicode (lone surrogate)');
  return new TextEncoder().encode(v);
}

function finish(key: Uint8Array, digest: Uint8Array): EthMessageSignature {
  const sig: EcdsaSignature = encodeSignature(signDigestRaw(key, digest));
  return {
    signature: sig.signature,
    r: sig.r,
    s: sig.s,
    v: sig.v,
    yParity: sig.yParity,
    digest: hexOf(digest),
    address: addressFromPrivateKey(key),
  };
}

/** `personal_sign`: EIP-191 over the message bytes (see readPersonalMessage for the accepted forms). */
export function signPersonalMessage(privateKey: Uint8Array, message: unknown): EthMessageSignature {
  const key = readPrivateKey(privateKey);
  return finish(key, personalMessageDigest(readPersonalMessage(message)));
}

/** EIP-191 over message bytes already read (personal_sign and eth_sign: the enclave decides on these same bytes). */
export function signMessageBytes(privateKey: Uint8Array, message: Uint8Array): EthMessageSignature {
  return finish(readPrivateKey(privateKey), personalMessageDigest(message));
}

/**
 * `eth_sign` as geth implements it: the data is bytes (Uint8Array or 0x hex, never text) and
 * gets the same EIP-191 prefix as personal_sign.
 */
export function signEthSign(privateKey: Uint8Array, data: unknown): EthMessageSignature {
  const key = readPrivateKey(privateKey);
  return finish(key, personalMessageDigest(readBytes(data, 'data')));
}
