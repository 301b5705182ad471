/**
 * The secp256k1 primitive of the hot path: @noble/secp256k1 v3 (audited, pure
 * JS, the package the project was specified with). On this machine it signs
 * RFC 6979 ECDSA and derives public keys about twice as fast as
 * @noble/curves v2 with byte-identical output (primitive.test.ts proves the
 * identity; bench/primitives.ts measures the rates).
 *
 * v3 ships without hash functions: they are set here, once, from
 * @noble/hashes (the same audited SHA-256 @noble/curves uses). Every signer
 * imports the curve from this module so the configuration cannot be missed.
 * @noble/curves stays where secp256k1 v3 has no API (DER is encoded in
 * ecdsa.ts; BIP32 and PSBT go through @scure, which uses @noble/curves).
 */
import * as secp from '@noble/secp256k1';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';

secp.hashes.hmacSha256 = (key: Uint8Array, msg: Uint8Array) => hmac(sha256, key, msg);
secp.hashes.sha256 = sha256;

export { secp };
