/**
 * The secp256k1 primitive of the hot path: @noble/secp256k1 v3 (audited, pure
 * JS, the package the project was specified with). On this machine it signs
 * RFC 6979 ECDSA and derives public keys about twice as fast as
 * @noble/curves v2 with byte-identical output (primitive.test.ts proves the
 * identity; bench/primitives.ts measures the rates).
 *
 * v3 ships without hash functions: they are set here, once, and every signer
 * imports the curve from this module so the configuration cannot be missed.
 * They are OpenSSL's, through node:crypto, not @noble/hashes (what noble's
 * README sets): RFC 6979's HMAC-DRBG calls HMAC-SHA256 four times per
 * signature, and OpenSSL's one-shot HMAC takes half the time of the JS one,
 * 2–10 µs (1–4 %) of every ECDSA signature on this machine (docs/performance.md,
 * "Session 11"). The output cannot differ — SHA-256 is SHA-256 — and
 * secp.test.ts checks both functions against @noble/hashes and the RFC 4231
 * vectors, and primitive.test.ts every signature against @noble/curves.
 * Secret hygiene is unchanged: noble treats the DRBG's state the same
 * whichever functions compute it (it zeroes the final key and value in place,
 * so each call returns a fresh array), and OpenSSL clears its HMAC context
 * when Node frees it.
 *
 * @noble/curves stays where secp256k1 v3 has no API (DER is encoded in
 * ecdsa.ts; BIP32 and PSBT go through @scure, which uses @noble/curves).
 */
import { createHmac, hash } from 'node:crypto';
import * as secp from '@noble/secp256k1';

/** HMAC-SHA256(key, msg) by OpenSSL: 32 bytes, a fresh array the caller owns. */
export function hmacSha256(key: Uint8Array, msg: Uint8Array): Uint8Array<ArrayBuffer> {
  return createHmac('sha256', key).update(msg).digest();
}

/** SHA-256(msg) by OpenSSL: 32 bytes, a fresh array the caller owns. */
export function sha256(msg: Uint8Array): Uint8Array<ArrayBuffer> {
  return hash('sha256', msg, 'buffer');
}

secp.hashes.hmacSha256 = hmacSha256;
secp.hashes.sha256 = sha256;

export { secp };
