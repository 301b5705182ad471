/**
 * Parameter readers for the JSON-RPC methods. Each returns a typed value or
 * throws InvalidParamError naming the field (`params[1]`, `keyId`,
 * `chainId`…). They check shapes (hex, addresses, key ids, paths), not
 * meaning: what a request means is decided in the enclave's signers and
 * policy. Both sides run them — the parent to route a request, the enclave
 * to re-read a principal's signed request from the params it signed
 * (./sign-call.ts) — so one mistake gets one message wherever it is caught.
 */
import { isAddress } from 'viem';
import { isKeyId, type KeyKind } from '../protocol/enclave-api.js';
import { invalidParam } from './errors.js';

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Positional params: an array of `min`..`max` items (absent params count as []). */
export function positional(params: unknown, min: number, max: number, shape: string): unknown[] {
  const list = params === undefined ? [] : params;
  if (!Array.isArray(list)) throw invalidParam('params', `expected an array ${shape}, got ${describe(params)}`);
  if (list.length < min || list.length > max) {
    throw invalidParam('params', `expected ${min === max ? min : `${min} to ${max}`} item${max === 1 ? '' : 's'} ${shape}, got ${list.length}`);
  }
  return list;
}

/**
 * Named params: `{...}` or `[{...}]` (both spellings are common). Unknown
 * fields are refused, so a typo never silently changes what gets signed.
 */
export function named(params: unknown, allowed: readonly string[]): Record<string, unknown> {
  let o: unknown = params === undefined ? {} : params;
  if (Array.isArray(o)) {
    if (o.length === 0) o = {};
    else if (o.length === 1) o = o[0];
    else throw invalidParam('params', `expected one object { ${allowed.join(', ')} }, got ${o.length} items`);
  }
  if (!isPlainObject(o)) throw invalidParam('params', `expected an object { ${allowed.join(', ')} }, got ${describe(o)}`);
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw invalidParam(k.slice(0, 64), 'unknown field', `allowed: ${allowed.join(', ') || '(none)'}`);
  }
  return o;
}

export function readAddress(v: unknown, field: string): `0x${string}` {
  if (typeof v !== 'string') throw invalidParam(field, `expected a 0x-prefixed 20-byte address, got ${describe(v)}`);
  if (!/^0x[0-9a-fA-F]{40}$/.test(v)) throw invalidParam(field, 'expected a 0x-prefixed 20-byte address (40 hex digits)');
  if (!isAddress(v, { strict: true })) throw invalidParam(field, 'mixed-case address with a wrong EIP-55 checksum');
  return v as `0x${string}`;
}

/** 0x-prefixed hex bytes (even length), with an optional exact or maximum byte length. */
export function readHexBytes(v: unknown, field: string, opts: { length?: number; min?: number; max?: number } = {}): string {
  if (typeof v !== 'string') throw invalidParam(field, `expected 0x-prefixed hex, got ${describe(v)}`);
  if (!/^0x(?:[0-9a-fA-F]{2})*$/.test(v)) throw invalidParam(field, 'expected 0x-prefixed hex with an even number of digits');
  const n = (v.length - 2) / 2;
  if (opts.length !== undefined && n !== opts.length) throw invalidParam(field, `expected ${opts.length} bytes, got ${n}`);
  if (opts.min !== undefined && n < opts.min) throw invalidParam(field, `expected at least ${opts.min} bytes, got ${n}`);
  if (opts.max !== undefined && n > opts.max) throw invalidParam(field, `expected at most ${opts.max} bytes, got ${n}`);
  return v;
}

/** Key ids are lowercase UUIDs as the enclave makes them (the enclave refuses anything else too). */
export function readKeyId(v: unknown, field = 'keyId'): string {
  if (typeof v !== 'string') throw invalidParam(field, `expected a key id string, got ${describe(v)}`);
  if (!isKeyId(v)) throw invalidParam(field, 'not a key id (a lowercase UUID as returned by signer_createKey)', 'signer_listKeys lists the keys');
  return v;
}

/** The enclave's BIP32 depth limit (SIGNER_LIMITS.maxPathDepth). */
export const MAX_PATH_DEPTH = 16;

/** A BIP32 path like m/44'/60'/0'/0/0; its steps are checked in the enclave. */
export function readPath(v: unknown, field = 'path'): string {
  if (typeof v !== 'string') throw invalidParam(field, `expected a derivation path string like "m/44'/60'/0'/0/0", got ${describe(v)}`);
  if (v.length > 4096) throw invalidParam(field, 'path too long (more than 4096 characters)');
  if (!/^m(?:\/[0-9]{1,10}['h]?)*$/.test(v)) throw invalidParam(field, 'expected a derivation path like "m/44\'/60\'/0\'/0/0"');
  // The enclave's limit (enclave/signers/limits.ts, docs/signers.md): refused here so it costs the enclave nothing.
  const depth = v.split('/').length - 1;
  if (depth > MAX_PATH_DEPTH) throw invalidParam(field, `a path of ${depth} levels is over the limit of ${MAX_PATH_DEPTH} (maxPathDepth)`);
  return v;
}

export function readLabel(v: unknown, field = 'label'): string {
  if (typeof v !== 'string') throw invalidParam(field, `expected a string, got ${describe(v)}`);
  if (v.length === 0 || v.length > 128) throw invalidParam(field, 'must be 1..128 characters');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]|\p{Cs}/u.test(v)) throw invalidParam(field, 'contains control characters or invalid Unicode');
  return v;
}

/** A chain id or nonce: a safe non-negative integer, or its 0x hex quantity. */
export function readQuantity(v: unknown, field: string): number | string {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw invalidParam(field, 'expected a non-negative safe integer or a 0x hex quantity');
    return v;
  }
  if (typeof v === 'string' && /^0x(?:0|[1-9a-fA-F][0-9a-fA-F]{0,15})$/.test(v)) return v;
  throw invalidParam(field, `expected a non-negative integer or a 0x hex quantity, got ${typeof v === 'string' ? 'a malformed string' : describe(v)}`);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function readBase64(v: unknown, field: string, maxBytes: number): string {
  if (typeof v !== 'string') throw invalidParam(field, `expected base64, got ${describe(v)}`);
  if (v.length === 0 || !BASE64.test(v)) throw invalidParam(field, 'expected standard base64 with padding');
  if ((v.length / 4) * 3 > maxBytes + 2) throw invalidParam(field, `larger than ${maxBytes} bytes`);
  return v;
}

/** `kind` of signer_createKey / signer_listKeys: absent means secp256k1. */
export function readKeyKind(v: unknown, field = 'kind'): KeyKind {
  if (v === undefined) return 'secp256k1';
  if (v !== 'secp256k1' && v !== 'bip32-seed') throw invalidParam(field, 'must be "secp256k1" or "bip32-seed"');
  return v;
}
