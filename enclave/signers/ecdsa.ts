/**
 * secp256k1 ECDSA over a caller-supplied 32-byte digest. Deterministic (RFC 6979), low-s,
 * recoverable. Every Ethereum operation funnels through `signDigestRaw`; `signDigest` is the
 * `signer_signDigest` operation with all the encodings a client may want.
 */
import { toHex } from '../../common/bytes.js';
import { der } from '../../common/der.js';
import { SigningError } from './errors.js';
import { secp } from './secp.js';
import { bigintToBytes, hexOf, readBytes32, readPrivateKey, type Hex } from './validate.js';

export interface RawEcdsaSignature {
  r: bigint;
  s: bigint;
  /** Parity of R.y — Ethereum's yParity, the recovery id of r‖s‖v forms. Always 0 or 1. */
  yParity: 0 | 1;
}

export interface EcdsaSignature {
  /** 32-byte big-endian r. */
  r: Hex;
  /** 32-byte big-endian s, always ≤ n/2 (low-s). */
  s: Hex;
  /** Recovery id / yParity, 0 or 1. */
  yParity: 0 | 1;
  /** 27 + yParity: the `v` of the 65-byte form. */
  v: 27 | 28;
  /** 65 bytes r‖s‖v with v = 27 + yParity (what eth_sign / ecrecover style clients expect). */
  signature: Hex;
  /** 64 bytes r‖s. */
  compact: Hex;
  /** ASN.1 DER ECDSA-Sig-Value (Bitcoin / X9.62 verifiers). */
  der: Hex;
}

/**
 * The core primitive: `digest` is signed as is (no hashing). Validated inputs only.
 * ECDSA from noble never touches the key array beyond reading it.
 */
export function signDigestRaw(privateKey: Uint8Array, digest: Uint8Array): RawEcdsaSignature {
  // prehash:false — noble would otherwise sha256 the "message" first. The recovered form is
  // recovery ‖ r ‖ s (32 bytes each, big-endian), read here directly: noble's Signature.fromBytes
  // would check again the ranges its own sign just produced (~2 µs a signature).
  const b = secp.sign(digest, privateKey, { prehash: false, lowS: true, format: 'recovered' });
  if (b.length !== 65) throw new SigningError('SIGN_INTERNAL', `the primitive returned ${b.length} bytes, not a 65-byte recovered signature`);
  const rec = b[0];
  // recovery 2/3 needs R.x ≥ n: probability ~2^-128, and Ethereum cannot encode it.
  if (rec !== 0 && rec !== 1) throw new SigningError('SIGN_INTERNAL', 'signature has an unencodable recovery id');
  const hex = toHex(b);
  return { r: BigInt(`0x${hex.slice(2, 66)}`), s: BigInt(`0x${hex.slice(66, 130)}`), yParity: rec };
}

/**
 * Every encoding from the two scalars' hex, once each: this runs on every signature beside the
 * primitive, and building bytes per form (bigint → bytes → concatenation → hex) cost ~7 µs of it.
 */
export function encodeSignature(raw: RawEcdsaSignature): EcdsaSignature {
  const r = bigintToBytes(raw.r, 32);
  const s = bigintToBytes(raw.s, 32);
  const rHex = toHex(r);
  const sHex = toHex(s);
  const v = (27 + raw.yParity) as 27 | 28;
  // ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (secp256k1 v3 has no DER; identical to @noble/curves' by test)
  const derSig = der.seq(der.int(r), der.int(s));
  const rs = rHex + sHex;
  return {
    r: `0x${rHex}`,
    s: `0x${sHex}`,
    yParity: raw.yParity,
    v,
    signature: `0x${rs}${v === 27 ? '1b' : '1c'}`,
    compact: `0x${rs}`,
    der: hexOf(derSig),
  };
}

/** `signer_signDigest`: ECDSA over exactly 32 bytes (Uint8Array or 0x hex). */
export function signDigest(privateKey: Uint8Array, digest: Uint8Array | string): EcdsaSignature {
  const key = readPrivateKey(privateKey);
  const d = readBytes32(digest, 'digest');
  return encodeSignature(signDigestRaw(key, d));
}

/** Compressed (33-byte) or uncompressed (65-byte) public key of a validated private key. */
export function publicKeyOf(privateKey: Uint8Array, compressed = true): Uint8Array {
  return secp.getPublicKey(readPrivateKey(privateKey), compressed);
}
