/**
 * Boundary parsers. Requests arrive as JSON (strings, numbers, plain objects) or as typed
 * values from in-process callers (Uint8Array, bigint); each reader accepts exactly the
 * spellings documented in docs/signers.md and returns one canonical typed value, or throws
 * SIGN_INVALID_PARAMS naming the field. Nothing past this layer re-checks shapes.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { toHex } from '../../common/bytes.js';
import { invalidParams, SigningError } from './errors.js';

/** 0x-prefixed lowercase hex, the wire form of every byte string we return. */
export type Hex = `0x${string}`;

export const SECP256K1_N = secp256k1.Point.Fn.ORDER;
export const MAX_UINT64 = (1n << 64n) - 1n;
export const MAX_UINT256 = (1n << 256n) - 1n;

export function hexOf(b: Uint8Array): Hex {
  return `0x${toHex(b)}`;
}

/**
 * Big-endian fixed-width encoding of 0 ≤ n < 2^(8·length); anything else is a bug of the caller
 * and throws rather than wrap. Through one hex string: a byte-per-step bigint loop was ~3 µs of
 * every signature's encoding.
 */
export function bigintToBytes(n: bigint, length: number): Uint8Array {
  const hex = n.toString(16);
  if (n < 0n || hex.length > 2 * length) throw new RangeError(`bigintToBytes: ${n < 0n ? 'negative' : 'too large'} for ${length} bytes`);
  const out = new Uint8Array(length);
  // Written into `out` itself (a view, not a pooled Buffer): the result owns its ArrayBuffer.
  Buffer.from(out.buffer, out.byteOffset, length).write(hex.padStart(2 * length, '0'), 'hex');
  return out;
}

export function quantityHex(n: bigint | number): Hex {
  return `0x${n.toString(16)}`;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A plain object whose keys are all in `allowed` (unknown keys are refused, not ignored). */
export function readObject(v: unknown, field: string, allowed: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(v)) throw invalidParams(field, `expected an object, got ${describe(v)}`);
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) {
      throw invalidParams(field === '' ? k : `${field}.${k}`, 'unknown field', {
        hint: `allowed fields: ${allowed.join(', ')}`,
      });
    }
  }
  return v;
}

export function readArray(v: unknown, field: string, opts: { min?: number; max?: number } = {}): unknown[] {
  if (!Array.isArray(v)) throw invalidParams(field, `expected an array, got ${describe(v)}`);
  if (opts.min !== undefined && v.length < opts.min) throw invalidParams(field, `expected at least ${opts.min} item(s)`);
  if (opts.max !== undefined && v.length > opts.max) throw invalidParams(field, `expected at most ${opts.max} item(s)`);
  return v;
}

export function readString(v: unknown, field: string): string {
  if (typeof v !== 'string') throw invalidParams(field, `expected a string, got ${describe(v)}`);
  return v;
}

/**
 * False when the string holds a lone surrogate: UTF-8 encoding would replace it with U+FFFD,
 * so the bytes signed would differ from the text shown.
 */
export function isWellFormed(s: string): boolean {
  return !/\p{Surrogate}/u.test(s);
}

const HEX_BODY = /^(?:[0-9a-fA-F]{2})*$/;

/**
 * Bytes given as a Uint8Array or a 0x-prefixed, whole-byte hex string.
 * `length` demands an exact size. The result never aliases a caller's string; a Uint8Array
 * argument is returned as is (callers that keep it copy it).
 */
export function readBytes(v: unknown, field: string, opts: { length?: number; maxLength?: number } = {}): Uint8Array {
  let out: Uint8Array;
  if (v instanceof Uint8Array) {
    out = v;
  } else if (typeof v === 'string') {
    if (!v.startsWith('0x')) throw invalidParams(field, 'expected 0x-prefixed hex');
    const body = v.slice(2);
    if (!HEX_BODY.test(body)) throw invalidParams(field, 'expected whole-byte hex (even number of 0-9a-f digits)');
    out = new Uint8Array(Buffer.from(body, 'hex'));
  } else {
    throw invalidParams(field, `expected bytes or 0x-prefixed hex, got ${describe(v)}`);
  }
  if (opts.length !== undefined && out.length !== opts.length) {
    throw invalidParams(field, `expected ${opts.length} bytes, got ${out.length}`);
  }
  if (opts.maxLength !== undefined && out.length > opts.maxLength) {
    throw invalidParams(field, `expected at most ${opts.maxLength} bytes, got ${out.length}`);
  }
  return out;
}

/** Same as readBytes, returned in canonical lowercase 0x form (for handing to viem). */
export function readHexData(v: unknown, field: string, opts: { length?: number; maxLength?: number } = {}): Hex {
  return hexOf(readBytes(v, field, opts));
}

export function readBytes32(v: unknown, field: string): Uint8Array {
  return readBytes(v, field, { length: 32 });
}

const QUANTITY = /^0x[0-9a-fA-F]+$/;

/**
 * A non-negative integer: bigint, a safe-integer number, or a 0x hex quantity (JSON-RPC
 * form; leading zeros tolerated). Decimal strings are refused here because "10" is
 * ambiguous on the Ethereum wire.
 */
export function readQuantity(v: unknown, field: string, max: bigint = MAX_UINT256): bigint {
  let n: bigint;
  if (typeof v === 'bigint') {
    n = v;
  } else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw invalidParams(field, 'expected an integer within the safe range');
    n = BigInt(v);
  } else if (typeof v === 'string') {
    if (!QUANTITY.test(v) || v.length > 2 + 80) throw invalidParams(field, 'expected a 0x hex quantity');
    n = BigInt(v);
  } else {
    throw invalidParams(field, `expected a 0x hex quantity, got ${describe(v)}`);
  }
  if (n < 0n) throw invalidParams(field, 'must not be negative');
  if (n > max) throw invalidParams(field, `must be at most ${max === MAX_UINT256 ? '2^256-1' : max === MAX_UINT64 ? '2^64-1' : max.toString()}`);
  return n;
}

/** A quantity that must fit a JS number (chain ids, nonces): viem models those as numbers. */
export function readSafeQuantity(v: unknown, field: string, max: number = Number.MAX_SAFE_INTEGER): number {
  return Number(readQuantity(v, field, BigInt(max)));
}

/**
 * The vault hands keys over as bytes only. A key is 32 bytes with 0 < k < n. The array is
 * neither copied nor retained; its content never appears in an error.
 */
export function readPrivateKey(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new SigningError('SIGN_INVALID_KEY', 'private key must be a Uint8Array');
  if (v.length !== 32) throw new SigningError('SIGN_INVALID_KEY', `private key must be 32 bytes, got ${v.length}`);
  if (!secp256k1.utils.isValidSecretKey(v)) {
    throw new SigningError('SIGN_INVALID_KEY', 'private key is not a valid secp256k1 scalar (0 < k < n)');
  }
  return v;
}

/** A BIP32 seed: 16 to 64 bytes (BIP32's 128–512 bits). Not copied, not retained. */
export function readSeed(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new SigningError('SIGN_INVALID_KEY', 'seed must be a Uint8Array');
  if (v.length < 16 || v.length > 64) {
    throw new SigningError('SIGN_INVALID_KEY', `seed must be 16 to 64 bytes, got ${v.length}`);
  }
  return v;
}
