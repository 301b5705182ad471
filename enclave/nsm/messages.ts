/**
 * The NSM's request/response messages, byte-compatible with
 * aws-nitro-enclaves-nsm-api (src/api/mod.rs), which serializes Rust enums
 * with serde's default *externally tagged* representation into CBOR:
 *
 *   unit variant    Request::DescribeNSM          → "DescribeNSM"
 *   struct variant  Request::DescribePCR{index}    → {"DescribePCR": {"index": 3}}
 *   newtype variant Response::Error(InvalidIndex)  → {"Error": "InvalidIndex"}
 *
 * Struct fields keep declaration order, `Option::None` is CBOR null, byte
 * fields (serde_bytes / ByteBuf) are byte strings, BTreeSet is an array.
 *
 * The hardware transport sends `encodeRequest` bytes through the /dev/nsm
 * ioctl and hands back what the device wrote for `decodeResponse`; the
 * simulated device decodes requests and encodes responses with the same
 * definitions, so both directions are exercised in every dev run.
 */
import { decodeCbor, encodeCbor, type CborKey, type CborValue } from '../../common/cbor.js';
import { NSM_WIRE_ERROR_CODES, NsmError, type NsmErrorCode, type NsmWireErrorCode } from './nsm.js';

export type NsmDigest = 'SHA256' | 'SHA384' | 'SHA512';

export type NsmRequest =
  | { type: 'DescribePCR'; index: number }
  | { type: 'ExtendPCR'; index: number; data: Uint8Array }
  | { type: 'LockPCR'; index: number }
  | { type: 'LockPCRs'; range: number }
  | { type: 'DescribeNSM' }
  | { type: 'Attestation'; userData: Uint8Array | null; nonce: Uint8Array | null; publicKey: Uint8Array | null }
  | { type: 'GetRandom' };

export type NsmResponse =
  | { type: 'DescribePCR'; lock: boolean; data: Uint8Array }
  | { type: 'ExtendPCR'; data: Uint8Array }
  | { type: 'LockPCR' }
  | { type: 'LockPCRs' }
  | {
      type: 'DescribeNSM';
      versionMajor: number;
      versionMinor: number;
      versionPatch: number;
      moduleId: string;
      maxPcrs: number;
      lockedPcrs: number[];
      digest: NsmDigest;
    }
  | { type: 'Attestation'; document: Uint8Array }
  | { type: 'GetRandom'; random: Uint8Array }
  | { type: 'Error'; error: NsmWireErrorCode };

const DIGESTS: readonly NsmDigest[] = ['SHA256', 'SHA384', 'SHA512'];

function u16(v: number, what: string, code: NsmErrorCode = 'NSM_INVALID_ARGUMENT'): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new NsmError(code, `${what} must be an integer 0..65535`);
  return v;
}

function fields(entries: [string, CborValue][]): Map<CborKey, CborValue> {
  return new Map(entries);
}

function variant(name: string, body: Map<CborKey, CborValue> | string): Map<CborKey, CborValue> {
  return new Map([[name, body]]);
}

function requestValue(r: NsmRequest): CborValue {
  switch (r.type) {
    case 'DescribePCR':
      return variant('DescribePCR', fields([['index', u16(r.index, 'PCR index')]]));
    case 'ExtendPCR':
      return variant('ExtendPCR', fields([['index', u16(r.index, 'PCR index')], ['data', r.data]]));
    case 'LockPCR':
      return variant('LockPCR', fields([['index', u16(r.index, 'PCR index')]]));
    case 'LockPCRs':
      return variant('LockPCRs', fields([['range', u16(r.range, 'PCR range')]]));
    case 'DescribeNSM':
    case 'GetRandom':
      return r.type;
    case 'Attestation':
      return variant(
        'Attestation',
        fields([
          ['user_data', r.userData],
          ['nonce', r.nonce],
          ['public_key', r.publicKey],
        ]),
      );
  }
}

export function encodeRequest(r: NsmRequest): Uint8Array {
  return encodeCbor(requestValue(r));
}

function responseValue(r: NsmResponse): CborValue {
  switch (r.type) {
    case 'DescribePCR':
      return variant('DescribePCR', fields([['lock', r.lock], ['data', r.data]]));
    case 'ExtendPCR':
      return variant('ExtendPCR', fields([['data', r.data]]));
    case 'LockPCR':
    case 'LockPCRs':
      return r.type;
    case 'DescribeNSM':
      return variant(
        'DescribeNSM',
        fields([
          ['version_major', u16(r.versionMajor, 'version_major', 'NSM_INTERNAL_ERROR')],
          ['version_minor', u16(r.versionMinor, 'version_minor', 'NSM_INTERNAL_ERROR')],
          ['version_patch', u16(r.versionPatch, 'version_patch', 'NSM_INTERNAL_ERROR')],
          ['module_id', r.moduleId],
          ['max_pcrs', u16(r.maxPcrs, 'max_pcrs', 'NSM_INTERNAL_ERROR')],
          // BTreeSet<u16>: ascending, no duplicates.
          ['locked_pcrs', [...new Set(r.lockedPcrs)].sort((a, b) => a - b).map((i) => u16(i, 'locked PCR', 'NSM_INTERNAL_ERROR'))],
          ['digest', r.digest],
        ]),
      );
    case 'Attestation':
      return variant('Attestation', fields([['document', r.document]]));
    case 'GetRandom':
      return variant('GetRandom', fields([['random', r.random]]));
    case 'Error':
      return variant('Error', r.error);
  }
}

export function encodeResponse(r: NsmResponse): Uint8Array {
  return encodeCbor(responseValue(r));
}

// ---------------------------------------------------------------- decoding

/** Reads an externally tagged enum value: a bare string (unit variant) or a one-entry map. */
function splitVariant(v: CborValue, bad: (msg: string) => never): { name: string; body: CborValue | undefined } {
  if (typeof v === 'string') return { name: v, body: undefined };
  if (v instanceof Map && v.size === 1) {
    const [k, body] = v.entries().next().value as [CborKey, CborValue];
    if (typeof k !== 'string') bad('enum variant name must be a text string');
    return { name: k as string, body };
  }
  return bad('expected an enum variant (a text string or a one-entry map)');
}

/** Struct fields by name; every expected field must be present and nothing else (serde denies nothing, we do). */
function struct(body: CborValue | undefined, names: readonly string[], what: string, bad: (msg: string) => never): Map<CborKey, CborValue> {
  if (!(body instanceof Map)) bad(`${what} must carry a map of fields`);
  const m = body as Map<CborKey, CborValue>;
  for (const k of m.keys()) if (typeof k !== 'string' || !names.includes(k)) bad(`${what} has unexpected field ${JSON.stringify(String(k))}`);
  for (const n of names) if (!m.has(n)) bad(`${what} lacks field ${n}`);
  return m;
}

function unit(body: CborValue | undefined, what: string, bad: (msg: string) => never): void {
  if (body !== undefined) bad(`${what} is a unit variant and carries no fields`);
}

function getU16(m: Map<CborKey, CborValue>, k: string, bad: (msg: string) => never): number {
  const v = m.get(k);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff) bad(`${k} must be an unsigned 16-bit integer`);
  return v as number;
}

function getBytes(m: Map<CborKey, CborValue>, k: string, bad: (msg: string) => never): Uint8Array {
  const v = m.get(k);
  if (!(v instanceof Uint8Array)) bad(`${k} must be a byte string`);
  return v as Uint8Array;
}

function getOptBytes(m: Map<CborKey, CborValue>, k: string, bad: (msg: string) => never): Uint8Array | null {
  const v = m.get(k);
  if (v === null) return null;
  if (!(v instanceof Uint8Array)) bad(`${k} must be a byte string or null`);
  return v as Uint8Array;
}

function decodeTop(bytes: Uint8Array, bad: (msg: string, cause?: unknown) => never): CborValue {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) bad('message is empty');
  try {
    // Messages are small and flat; refuse anything deep or indefinite (serde never writes those here).
    return decodeCbor(bytes, { maxDepth: 4, allowIndefinite: false });
  } catch (e) {
    return bad(`not a CBOR item: ${(e as Error).message}`, e);
  }
}

/**
 * Decodes a request (the simulated device's side). Malformed input throws
 * NsmError NSM_INVALID_ARGUMENT, which the device reports as
 * Response::Error(InvalidArgument).
 */
export function decodeRequest(bytes: Uint8Array): NsmRequest {
  const bad = (msg: string, cause?: unknown): never => {
    throw new NsmError('NSM_INVALID_ARGUMENT', `malformed NSM request: ${msg}`, cause === undefined ? {} : { cause });
  };
  const { name, body } = splitVariant(decodeTop(bytes, bad), bad);
  switch (name) {
    case 'DescribePCR':
    case 'LockPCR':
      return { type: name, index: getU16(struct(body, ['index'], name, bad), 'index', bad) };
    case 'ExtendPCR': {
      const m = struct(body, ['index', 'data'], name, bad);
      return { type: name, index: getU16(m, 'index', bad), data: getBytes(m, 'data', bad) };
    }
    case 'LockPCRs':
      return { type: name, range: getU16(struct(body, ['range'], name, bad), 'range', bad) };
    case 'DescribeNSM':
    case 'GetRandom':
      unit(body, name, bad);
      return { type: name };
    case 'Attestation': {
      const m = struct(body, ['user_data', 'nonce', 'public_key'], name, bad);
      return { type: name, userData: getOptBytes(m, 'user_data', bad), nonce: getOptBytes(m, 'nonce', bad), publicKey: getOptBytes(m, 'public_key', bad) };
    }
    default:
      return bad(`unknown request ${JSON.stringify(name)}`);
  }
}

/** Decodes a response from the device. Anything unexpected is NSM_INVALID_RESPONSE. */
export function decodeResponse(bytes: Uint8Array): NsmResponse {
  const bad = (msg: string, cause?: unknown): never => {
    throw new NsmError('NSM_INVALID_RESPONSE', `malformed NSM response: ${msg}`, cause === undefined ? {} : { cause });
  };
  const { name, body } = splitVariant(decodeTop(bytes, bad), bad);
  switch (name) {
    case 'DescribePCR': {
      const m = struct(body, ['lock', 'data'], name, bad);
      const lock = m.get('lock');
      if (typeof lock !== 'boolean') bad('lock must be a boolean');
      return { type: name, lock: lock as boolean, data: getBytes(m, 'data', bad) };
    }
    case 'ExtendPCR':
      return { type: name, data: getBytes(struct(body, ['data'], name, bad), 'data', bad) };
    case 'LockPCR':
    case 'LockPCRs':
      unit(body, name, bad);
      return { type: name };
    case 'DescribeNSM': {
      const m = struct(body, ['version_major', 'version_minor', 'version_patch', 'module_id', 'max_pcrs', 'locked_pcrs', 'digest'], name, bad);
      const moduleId = m.get('module_id');
      if (typeof moduleId !== 'string') bad('module_id must be a text string');
      const locked = m.get('locked_pcrs');
      if (!Array.isArray(locked)) bad('locked_pcrs must be an array');
      const lockedPcrs = (locked as CborValue[]).map((i) => {
        if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i > 0xffff) bad('locked_pcrs entries must be unsigned 16-bit integers');
        return i as number;
      });
      const digest = m.get('digest');
      if (typeof digest !== 'string' || !DIGESTS.includes(digest as NsmDigest)) bad(`unknown digest ${JSON.stringify(String(digest))}`);
      return {
        type: name,
        versionMajor: getU16(m, 'version_major', bad),
        versionMinor: getU16(m, 'version_minor', bad),
        versionPatch: getU16(m, 'version_patch', bad),
        moduleId: moduleId as string,
        maxPcrs: getU16(m, 'max_pcrs', bad),
        lockedPcrs,
        digest: digest as NsmDigest,
      };
    }
    case 'Attestation':
      return { type: name, document: getBytes(struct(body, ['document'], name, bad), 'document', bad) };
    case 'GetRandom':
      return { type: name, random: getBytes(struct(body, ['random'], name, bad), 'random', bad) };
    case 'Error': {
      if (typeof body !== 'string' || !NSM_WIRE_ERROR_CODES.includes(body as NsmWireErrorCode)) bad(`unknown error code ${JSON.stringify(String(body))}`);
      return { type: name, error: body as NsmWireErrorCode };
    }
    default:
      return bad(`unknown response ${JSON.stringify(name)}`);
  }
}
