/**
 * EIP-712 typed data, `eth_signTypedData_v4` flavour (arrays and recursive structs allowed).
 *
 * Implementations disagree at the edges (missing fields, extra fields, how a string becomes
 * `bytes`, an implicit EIP712Domain), so the request is held to the intersection on which
 * MetaMask's eth-sig-util, viem and ethers agree, and everything else is refused:
 * - `types.EIP712Domain` is required; its fields are a subset of name/version/chainId/
 *   verifyingContract/salt with their standard types, and `domain` has exactly those keys;
 * - every struct value has exactly the fields of its type (none missing, none extra);
 * - integers are bigint, safe-integer numbers, decimal strings or 0x hex (non-negative),
 *   range-checked for their width; bytes/bytesN are 0x hex (bytesN of exactly N bytes);
 *   addresses 0x hex (a mixed-case spelling must be a valid EIP-55 checksum); bool is a
 *   JSON boolean; strings are well-formed Unicode.
 * The normalised value is hashed by viem's `hashTypedData` (keccak256(0x1901 ‖
 * domainSeparator ‖ hashStruct(message))) and the digest signed with ECDSA.
 */
import type { TypedDataDomain } from 'viem';
import { hashStruct, hashTypedData } from 'viem/utils';
import { encodeSignature, signDigestRaw } from './ecdsa.js';
import { addressFromPrivateKey, readAddress } from './eth-address.js';
import type { EthMessageSignature } from './eth-message.js';
import { guarded, invalidParams } from './errors.js';
import {
  describe,
  isPlainObject,
  isWellFormed,
  readArray,
  readHexData,
  readObject,
  readPrivateKey,
  readString,
  type Hex,
} from './validate.js';

export interface TypedDataField {
  name: string;
  type: string;
}

/** A validated, normalised typed-data request (integers as bigint, addresses lowercase, bytes as 0x hex). */
export interface TypedDataV4 {
  types: Record<string, TypedDataField[]>;
  primaryType: string;
  domain: Record<string, unknown>;
  message: Record<string, unknown>;
}

export interface TypedDataSignature extends EthMessageSignature {
  /** hashStruct(EIP712Domain, domain). */
  domainSeparator: Hex;
  primaryType: string;
}

const DOMAIN_FIELD_TYPES: Record<string, string> = {
  name: 'string',
  version: 'string',
  chainId: 'uint256',
  verifyingContract: 'address',
  salt: 'bytes32',
};

/** Nesting of structs/arrays in a value; deeper requests are refused before they can exhaust the stack. */
const MAX_DEPTH = 32;
/** Array dimensions in one field type (`uint256[][]` is 2). */
const MAX_DIMENSIONS = 8;

const STRUCT_NAME = /^[A-Za-z0-9_$:]+$/;
const FIELD_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const FIELD_TYPE = /^([A-Za-z0-9_$:]+)((?:\[(?:[1-9][0-9]*)?\])*)$/;
const INT_TYPE = /^(u?)int([1-9][0-9]{0,2})$/;
const BYTES_N = /^bytes([1-9][0-9]?)$/;

type Atomic =
  | { kind: 'bool' }
  | { kind: 'address' }
  | { kind: 'string' }
  | { kind: 'bytes' }
  | { kind: 'bytesN'; size: number }
  | { kind: 'int'; signed: boolean; bits: number };

/** EIP-712 atomic/dynamic types: bool, address, string, bytes, bytes1..32, (u)int8..256 by 8. */
function atomicType(t: string): Atomic | undefined {
  if (t === 'bool' || t === 'address' || t === 'string' || t === 'bytes') return { kind: t };
  const b = BYTES_N.exec(t);
  if (b) {
    const size = Number(b[1]);
    return size >= 1 && size <= 32 ? { kind: 'bytesN', size } : undefined;
  }
  const i = INT_TYPE.exec(t);
  if (i) {
    const bits = Number(i[2]);
    return bits % 8 === 0 && bits <= 256 ? { kind: 'int', signed: i[1] === '', bits } : undefined;
  }
  return undefined;
}

/** Names other implementations would parse as a Solidity type (viem's rule). */
function looksSolidity(name: string): boolean {
  return name === 'address' || name === 'bool' || name === 'string' || /^(u?int|bytes)[0-9]*$/.test(name);
}

function parseTypes(v: unknown): Record<string, TypedDataField[]> {
  if (!isPlainObject(v)) throw invalidParams('types', `expected an object, got ${describe(v)}`);
  const names = Object.keys(v);
  const out: Record<string, TypedDataField[]> = {};
  for (const name of names) {
    if (!STRUCT_NAME.test(name) || looksSolidity(name) || name === '__proto__') {
      throw invalidParams(`types.${name}`, 'struct names use letters, digits, _ $ : and must not look like a Solidity type');
    }
    const seen = new Set<string>();
    out[name] = readArray(v[name], `types.${name}`).map((f, i) => {
      const path = `types.${name}[${i}]`;
      const o = readObject(f, path, ['name', 'type']);
      const fname = readString(o.name, `${path}.name`);
      const ftype = readString(o.type, `${path}.type`);
      // __proto__ would be a prototype assignment, not a field, in every JS implementation downstream.
      if (!FIELD_NAME.test(fname) || fname === '__proto__') throw invalidParams(`${path}.name`, 'field names must be identifiers');
      if (seen.has(fname)) throw invalidParams(`${path}.name`, 'duplicate field name');
      seen.add(fname);
      const m = FIELD_TYPE.exec(ftype);
      if (!m) throw invalidParams(`${path}.type`, 'malformed type');
      const base = m[1]!;
      const dims = (m[2]!.match(/\[/g) ?? []).length;
      if (dims > MAX_DIMENSIONS) throw invalidParams(`${path}.type`, `more than ${MAX_DIMENSIONS} array dimensions`);
      if (atomicType(base) === undefined) {
        if (!Object.hasOwn(v, base)) throw invalidParams(`${path}.type`, 'unknown type (not atomic and not a struct in types)');
        if (base === 'EIP712Domain') throw invalidParams(`${path}.type`, 'EIP712Domain cannot be used as a field type');
      }
      return { name: fname, type: ftype };
    });
  }
  const domainType = out.EIP712Domain;
  if (domainType === undefined) {
    throw invalidParams('types.EIP712Domain', 'required', { hint: 'list the domain fields in types.EIP712Domain' });
  }
  domainType.forEach((f, i) => {
    const expected = DOMAIN_FIELD_TYPES[f.name];
    if (expected === undefined) {
      throw invalidParams(`types.EIP712Domain[${i}].name`, 'not an EIP-712 domain field (name, version, chainId, verifyingContract, salt)');
    }
    if (f.type !== expected) throw invalidParams(`types.EIP712Domain[${i}].type`, `${f.name} must be ${expected}`);
  });
  return out;
}

const DECIMAL = /^-?(0|[1-9][0-9]*)$/;
const HEXNUM = /^0x[0-9a-fA-F]+$/;

function readInteger(v: unknown, path: string, signed: boolean, bits: number): bigint {
  let n: bigint;
  if (typeof v === 'bigint') n = v;
  else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw invalidParams(path, 'integer numbers must be within the safe range; use a string');
    n = BigInt(v);
  } else if (typeof v === 'string') {
    if (v.length > 100) throw invalidParams(path, 'integer string too long');
    if (DECIMAL.test(v) || HEXNUM.test(v)) n = BigInt(v);
    else throw invalidParams(path, 'expected a decimal or 0x hex integer string');
  } else throw invalidParams(path, `expected an integer, got ${describe(v)}`);
  const min = signed ? -(1n << BigInt(bits - 1)) : 0n;
  const max = signed ? (1n << BigInt(bits - 1)) - 1n : (1n << BigInt(bits)) - 1n;
  if (n < min || n > max) throw invalidParams(path, `out of range for ${signed ? '' : 'u'}int${bits}`);
  return n;
}

function readAtomic(a: Atomic, v: unknown, path: string): unknown {
  switch (a.kind) {
    case 'bool':
      if (typeof v !== 'boolean') throw invalidParams(path, `expected true or false, got ${describe(v)}`);
      return v;
    case 'address':
      return readAddress(v, path);
    case 'string': {
      const s = readString(v, path);
      if (!isWellFormed(s)) throw invalidParams(path, 'string is not well-formed Unicode (lone surrogate)');
      return s;
    }
    case 'bytes':
      return readHexData(v, path);
    case 'bytesN':
      return readHexData(v, path, { length: a.size });
    case 'int':
      return readInteger(v, path, a.signed, a.bits);
  }
}

function readStruct(
  types: Record<string, TypedDataField[]>,
  typeName: string,
  v: unknown,
  path: string,
  depth: number,
): Record<string, unknown> {
  const fields = types[typeName]!;
  const o = readObject(v, path, fields.map((f) => f.name));
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    const fp = path === '' ? f.name : `${path}.${f.name}`;
    if (!Object.hasOwn(o, f.name) || o[f.name] === undefined || o[f.name] === null) {
      throw invalidParams(fp, `missing value of type ${f.type}`);
    }
    out[f.name] = readValue(types, f.type, o[f.name], fp, depth + 1);
  }
  return out;
}

function readValue(types: Record<string, TypedDataField[]>, type: string, v: unknown, path: string, depth: number): unknown {
  if (depth > MAX_DEPTH) throw invalidParams(path, `nested more than ${MAX_DEPTH} levels`);
  const arr = /^(.*)\[([0-9]*)\]$/.exec(type);
  if (arr) {
    const inner = arr[1]!;
    const items = readArray(v, path);
    if (arr[2] !== '' && items.length !== Number(arr[2])) {
      throw invalidParams(path, `expected exactly ${arr[2]} item(s), got ${items.length}`);
    }
    return items.map((x, i) => readValue(types, inner, x, `${path}[${i}]`, depth + 1));
  }
  const a = atomicType(type);
  if (a !== undefined) return readAtomic(a, v, path);
  return readStruct(types, type, v, path, depth);
}

/**
 * Validates `eth_signTypedData_v4` input — the JSON string clients send, or the parsed
 * object — and returns it normalised. See the module comment for the rules.
 */
export function parseTypedDataV4(input: unknown): TypedDataV4 {
  let v = input;
  if (typeof input === 'string') {
    try {
      v = JSON.parse(input) as unknown;
    } catch (e) {
      throw invalidParams('typedData', 'not valid JSON', { cause: e });
    }
  }
  const top = readObject(v, 'typedData', ['types', 'primaryType', 'domain', 'message']);
  const types = parseTypes(top.types);
  const primaryType = readString(top.primaryType, 'primaryType');
  if (primaryType === 'EIP712Domain') {
    throw invalidParams('primaryType', 'must be a message struct, not EIP712Domain');
  }
  if (!Object.hasOwn(types, primaryType)) throw invalidParams('primaryType', 'not defined in types');
  const domain = readStruct(types, 'EIP712Domain', top.domain ?? {}, 'domain', 0);
  if (top.message === undefined) throw invalidParams('message', 'required');
  const message = readStruct(types, primaryType, top.message, 'message', 0);
  return { types, primaryType, domain, message };
}

/** The EIP-712 digest keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message)). */
export function hashTypedDataV4(td: TypedDataV4): Hex {
  return guarded('typed data hashing', () =>
    hashTypedData({ domain: td.domain as TypedDataDomain, types: td.types, primaryType: td.primaryType, message: td.message }),
  );
}

/** `eth_signTypedData_v4`. */
export function signTypedDataV4(privateKey: Uint8Array, typedData: unknown): TypedDataSignature {
  return signParsedTypedDataV4(privateKey, parseTypedDataV4(typedData));
}

/** Signs typed data parseTypedDataV4 already produced (the enclave decides on this same value). */
export function signParsedTypedDataV4(privateKey: Uint8Array, td: TypedDataV4): TypedDataSignature {
  const key = readPrivateKey(privateKey);
  const digestHex = hashTypedDataV4(td);
  const domainSeparator = guarded('typed data hashing', () =>
    hashStruct({ data: td.domain, primaryType: 'EIP712Domain', types: td.types }),
  );
  const digest = new Uint8Array(Buffer.from(digestHex.slice(2), 'hex'));
  const sig = encodeSignature(signDigestRaw(key, digest));
  return {
    signature: sig.signature,
    r: sig.r,
    s: sig.s,
    v: sig.v,
    yParity: sig.yParity,
    digest: digestHex,
    address: addressFromPrivateKey(key),
    domainSeparator,
    primaryType: td.primaryType,
  };
}
