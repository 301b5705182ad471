/**
 * Ethereum addresses: keccak256 of the uncompressed public key's X‖Y, last 20 bytes,
 * spelled with the EIP-55 mixed-case checksum.
 */
import { keccak_256 } from '@noble/hashes/sha3.js';
import { toHex } from '../../common/bytes.js';
import { invalidParams } from './errors.js';
import { secp } from './secp.js';
import { readBytes, readPrivateKey, readString, type Hex } from './validate.js';

/** EIP-55: uppercase a hex letter when the matching nibble of keccak256(lowercase hex) is ≥ 8. */
export function checksumAddress(lowerHex40: string): Hex {
  const hash = keccak_256(new TextEncoder().encode(lowerHex40));
  let out = '0x';
  for (let i = 0; i < 40; i++) {
    const c = lowerHex40[i]!;
    const nibble = (hash[i >> 1]! >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    out += nibble >= 8 ? c.toUpperCase() : c;
  }
  return out as Hex;
}

/** Address of a public key: 33-byte compressed, or 65-byte uncompressed (0x04 prefix); must be on the curve. */
export function addressFromPublicKey(publicKey: Uint8Array | string): Hex {
  const bytes = readBytes(publicKey, 'publicKey');
  if (bytes.length !== 33 && bytes.length !== 65) {
    throw invalidParams('publicKey', `expected a 33-byte compressed or 65-byte uncompressed key, got ${bytes.length} bytes`);
  }
  let uncompressed: Uint8Array;
  try {
    uncompressed = secp.Point.fromBytes(bytes).toBytes(false);
  } catch (e) {
    throw invalidParams('publicKey', 'not a valid secp256k1 point', { cause: e });
  }
  return checksumAddress(toHex(keccak_256(uncompressed.subarray(1)).subarray(12)));
}

export function addressFromPrivateKey(privateKey: Uint8Array): Hex {
  return addressFromPublicKey(secp.getPublicKey(readPrivateKey(privateKey), false));
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/**
 * A 20-byte address as 0x hex. All-lowercase and all-uppercase spellings carry no checksum;
 * a mixed-case spelling must be a correct EIP-55 checksum (a wrong one is most likely a typo).
 * Returns the lowercase form.
 */
export function readAddress(v: unknown, field: string): Hex {
  const s = readString(v, field);
  if (!ADDRESS.test(s)) throw invalidParams(field, 'expected a 0x-prefixed 20-byte hex address');
  const body = s.slice(2);
  const lower = body.toLowerCase();
  if (body !== lower && body !== body.toUpperCase() && checksumAddress(lower) !== s) {
    throw invalidParams(field, 'mixed-case address with a wrong EIP-55 checksum');
  }
  return `0x${lower}`;
}
