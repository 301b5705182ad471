/**
 * The audit record: one per decision the enclave makes, hash-chained and
 * signed by the enclave's audit key. Format (docs/audit.md has it byte by
 * byte and a test vector):
 *
 *   payload = canonical CBOR map, unsigned-integer keys 0…16 in ascending
 *             order, every key always present (absent values are null):
 *     0 v             1 (uint)              version; others are refused
 *     1 type          "record"
 *     2 seq           uint                  0 for the first record of a chain
 *     3 prev          bstr 32               SHA-256 of the previous payload; 32 zero bytes at seq 0
 *     4 time          uint                  enclave clock, ms since the epoch
 *     5 auditKey      bstr 32               Ed25519 public key that signed this record
 *     6 kind          tstr                  AUDIT_KINDS
 *     7 decision      tstr                  AUDIT_DECISIONS
 *     8 principal     tstr / null           who asked ("host" for the unauthenticated socket)
 *     9 op            tstr / null           e.g. "personal_sign"
 *    10 keyId         tstr / null           key id (keyring id for keyring records)
 *    11 requestDigest bstr 32 / null        SHA-256 of the request as the enclave received it
 *    12 rule          tstr / null           id of the deciding policy rule
 *    13 policyHash    bstr 32 / null        hash of the policy in force
 *    14 resultDigest  bstr 32 / null        SHA-256 of the result bytes (signatures); of a new key's public data (key.create)
 *    15 prevAuditKey  bstr 32 / null        hand-over only: the audit key of the head it continues
 *    16 attestation   bstr / null           hand-over only: attestation document binding auditKey
 *
 *   record hash = SHA-256(payload)          (what the next record's prev names)
 *   record      = COSE_Sign1 envelope of payload (envelope.ts)
 *
 * Only digests, ids and public keys go in: no field can carry key material.
 */
import { hash } from 'node:crypto';
import { asciiOrUtf8, bytesEqual, writeAscii } from '../bytes.js';
import { decodeCbor, encodeCbor, type CborKey, type CborValue } from '../cbor.js';
import { AuditError } from './errors.js';
import { ED25519_PUBLIC_KEY_BYTES, parseEnvelope, verifyEnvelope } from './envelope.js';

export const AUDIT_RECORD_VERSION = 1;
export const DIGEST_BYTES = 32;
export const ZERO_HASH = new Uint8Array(DIGEST_BYTES);
/** Longest text field, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 256;
/** Largest attestation document a hand-over may carry (attestation/verify.ts MAX_DOCUMENT_BYTES). */
export const MAX_ATTESTATION_BYTES = 16 * 1024;

export const AUDIT_KINDS = ['handover', 'key.create', 'sign', 'approval', 'keyring.create', 'keyring.unlock', 'keyring.rotate', 'policy.load', 'session.open'] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];
export const AUDIT_DECISIONS = ['allowed', 'denied', 'pending', 'approved', 'rejected', 'done'] as const;
export type AuditDecision = (typeof AUDIT_DECISIONS)[number];

/** Which decisions each kind may carry. */
const DECISIONS_OF: Record<AuditKind, readonly AuditDecision[]> = {
  handover: ['done'],
  'key.create': ['done', 'denied'],
  sign: ['allowed', 'denied', 'pending'],
  approval: ['approved', 'rejected'],
  'keyring.create': ['done', 'denied'],
  'keyring.unlock': ['done', 'denied'],
  'keyring.rotate': ['done', 'denied'],
  'policy.load': ['done', 'denied'],
  // A principal's signer_openSession: requestDigest is the open request's; the session key is never recorded.
  'session.open': ['done', 'denied'],
};

/** What a decision says; the chain fields (seq, prev, time, auditKey) are added by the log. */
export interface AuditEntry {
  kind: AuditKind;
  decision: AuditDecision;
  principal?: string | null;
  op?: string | null;
  keyId?: string | null;
  requestDigest?: Uint8Array | null;
  rule?: string | null;
  policyHash?: Uint8Array | null;
  resultDigest?: Uint8Array | null;
}

export interface AuditRecordBody {
  version: 1;
  seq: number;
  prev: Uint8Array;
  time: number;
  auditKey: Uint8Array;
  kind: AuditKind;
  decision: AuditDecision;
  principal: string | null;
  op: string | null;
  keyId: string | null;
  requestDigest: Uint8Array | null;
  rule: string | null;
  policyHash: Uint8Array | null;
  resultDigest: Uint8Array | null;
  prevAuditKey: Uint8Array | null;
  attestation: Uint8Array | null;
}

/** A record as read back: the decoded body, the exact bytes, and its hash. */
export interface ParsedRecord {
  body: AuditRecordBody;
  /** The whole signed record (what the keystore stores). */
  bytes: Uint8Array;
  payload: Uint8Array;
  signature: Uint8Array;
  /** SHA-256(payload). */
  hash: Uint8Array;
}

const FIELDS = [
  'version',
  'type',
  'seq',
  'prev',
  'time',
  'auditKey',
  'kind',
  'decision',
  'principal',
  'op',
  'keyId',
  'requestDigest',
  'rule',
  'policyHash',
  'resultDigest',
  'prevAuditKey',
  'attestation',
] as const;

/**
 * SHA-256 with node's one-shot `crypto.hash` (no Hash object: ~0.85 against ~1.3 µs for a
 * record, and a record takes three to four of them on the signing path). Copied out of the
 * Buffer: a small Buffer may be a view of a shared pool, which a structured clone of the view
 * would carry whole.
 */
export function sha256(b: Uint8Array): Uint8Array {
  return new Uint8Array(hash('sha256', b, 'buffer'));
}

interface Where {
  seq?: number;
  index?: number;
}

function malformed(msg: string, where: Where): AuditError {
  return new AuditError('AUDIT_MALFORMED', where.seq === undefined ? msg : `seq ${where.seq}: ${msg}`, where);
}

const te = new TextEncoder();

function checkText(name: string, v: unknown, nullable: boolean, where: Where): void {
  if (v === null && nullable) return;
  if (typeof v !== 'string') throw malformed(`${name} must be a text string${nullable ? ' or null' : ''}`, where);
  if (v.length === 0) throw malformed(`${name} must not be empty`, where);
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short strings (all of them in practice) need no encoding.
  if (v.length * 3 > MAX_TEXT_BYTES && te.encode(v).length > MAX_TEXT_BYTES) throw malformed(`${name} is longer than ${MAX_TEXT_BYTES} bytes`, where);
}

function checkDigest(name: string, v: unknown, required: boolean, where: Where, len = DIGEST_BYTES): void {
  if (v === null) {
    if (required) throw malformed(`${name} is required here`, where);
    return;
  }
  if (!(v instanceof Uint8Array) || v.length !== len) throw malformed(`${name} must be ${len} bytes${required ? '' : ' or null'}`, where);
}

function checkUint(name: string, v: unknown, where: Where): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw malformed(`${name} must be an unsigned integer below 2^53`, where);
}

function mustBeNull(name: string, v: unknown, why: string, where: Where): void {
  if (v !== null) throw malformed(`${name} must be null ${why}`, where);
}

/** Checks every field and the per-kind rules. Shared by the writer and the reader. */
export function validateBody(b: AuditRecordBody, where: Where = {}): void {
  if (b.version !== AUDIT_RECORD_VERSION) throw new AuditError('AUDIT_VERSION', `record version ${String(b.version)} is not supported (this build reads ${AUDIT_RECORD_VERSION})`, where);
  checkUint('seq', b.seq, where);
  checkDigest('prev', b.prev, true, where);
  checkUint('time', b.time, where);
  checkDigest('auditKey', b.auditKey, true, where, ED25519_PUBLIC_KEY_BYTES);
  if (!(AUDIT_KINDS as readonly unknown[]).includes(b.kind)) throw malformed(`kind ${JSON.stringify(b.kind)} is not one of ${AUDIT_KINDS.join(', ')}`, where);
  if (!DECISIONS_OF[b.kind].includes(b.decision)) throw malformed(`decision ${JSON.stringify(b.decision)} is not valid for kind ${b.kind} (${DECISIONS_OF[b.kind].join(', ')})`, where);
  checkText('principal', b.principal, true, where);
  checkText('op', b.op, true, where);
  checkText('keyId', b.keyId, true, where);
  checkDigest('requestDigest', b.requestDigest, false, where);
  checkText('rule', b.rule, true, where);
  checkDigest('policyHash', b.policyHash, false, where);
  checkDigest('resultDigest', b.resultDigest, false, where);
  checkDigest('prevAuditKey', b.prevAuditKey, false, where, ED25519_PUBLIC_KEY_BYTES);
  if (b.attestation !== null && (!(b.attestation instanceof Uint8Array) || b.attestation.length === 0 || b.attestation.length > MAX_ATTESTATION_BYTES)) {
    throw malformed(`attestation must be 1–${MAX_ATTESTATION_BYTES} bytes or null`, where);
  }
  if (b.seq === 0 && !bytesEqual(b.prev, ZERO_HASH)) throw malformed('the first record (seq 0) must have prev = 32 zero bytes', where);

  if (b.kind === 'handover') {
    if (b.attestation === null) throw new AuditError('AUDIT_ATTESTATION', `seq ${b.seq}: hand-over record carries no attestation document for its audit key`, where);
    for (const f of ['principal', 'op', 'keyId', 'requestDigest', 'rule', 'resultDigest'] as const) mustBeNull(f, b[f], 'in a hand-over', where);
    if (b.seq === 0 && b.prevAuditKey !== null) throw malformed('the first hand-over (seq 0) has no previous audit key', where);
    if (b.seq > 0 && b.prevAuditKey === null) throw malformed('a hand-over after seq 0 must name the previous audit key', where);
    if (b.prevAuditKey !== null && bytesEqual(b.prevAuditKey, b.auditKey)) throw malformed('a hand-over must introduce a new audit key', where);
    return;
  }
  mustBeNull('prevAuditKey', b.prevAuditKey, 'outside a hand-over', where);
  mustBeNull('attestation', b.attestation, 'outside a hand-over', where);
  if (b.seq === 0) throw malformed('a chain starts with a hand-over record', where);
  if (b.kind === 'sign' || b.kind === 'approval' || b.kind === 'session.open') checkDigest('requestDigest', b.requestDigest, true, where);
  if (b.kind === 'sign' && b.decision === 'allowed') checkDigest('resultDigest', b.resultDigest, true, where);
  // A made key's public data (result.ts keyPublicDigest). Optional to the reader: records written
  // before the enclave recorded it carry null; this build's writer always sets it (enclave/key-create-method.ts).
  else if (b.kind === 'key.create' && b.decision === 'done') checkDigest('resultDigest', b.resultDigest, false, where);
  else mustBeNull('resultDigest', b.resultDigest, `unless a result was released (kind sign, decision allowed; or kind key.create, decision done)`, where);
  if (b.kind === 'policy.load') checkDigest('policyHash', b.policyHash, true, where);
  if (b.kind === 'key.create' || b.kind.startsWith('keyring.')) checkText('keyId', b.keyId, false, where);
}

/** The canonical payload bytes. Validates first: the writer can never emit what the reader refuses. */
export function encodeRecordBody(b: AuditRecordBody): Uint8Array {
  validateBody(b, { seq: b.seq });
  return encodeValidated(b);
}

const RECORD_TYPE = te.encode('record');

/** The encoding alone, for a body validateBody has just accepted. */
function encodeValidated(b: AuditRecordBody): Uint8Array {
  // The same bytes as encodeCbor of the map {0: version, 1: "record", 2…16: fields} (a test holds
  // the two together), written in place: the enclave encodes one per decision. ASCII text (ids,
  // kinds, principals) is written char by char instead of through a TextEncoder allocation.
  const values: Array<number | string | Uint8Array | null> = [b.version, RECORD_TYPE];
  let size = 1;
  for (let i = 0; i < FIELDS.length; i++) {
    if (i > 1) {
      const v = b[FIELDS[i] as Exclude<(typeof FIELDS)[number], 'type'>];
      values.push(typeof v === 'string' ? asciiOrUtf8(v) : v);
    }
    const v = values[i]!;
    size += 1 + (v === null ? 1 : typeof v === 'number' ? headSize(v) : headSize(v.length) + v.length);
  }
  const out = new Uint8Array(size);
  out[0] = 0xa0 + FIELDS.length;
  let at = 1;
  for (let i = 0; i < FIELDS.length; i++) {
    out[at++] = i;
    const v = values[i]!;
    if (v === null) out[at++] = 0xf6;
    else if (typeof v === 'number') at = writeHead(out, at, 0, v);
    else {
      // Text fields are strings in the body, bytes fields Uint8Array: the major type follows the field.
      at = writeHead(out, at, TEXT_FIELDS.has(i) ? 3 : 2, v.length);
      if (typeof v === 'string') writeAscii(out, at, v);
      else out.set(v, at);
      at += v.length;
    }
  }
  return out;
}

/**
 * The same encoding through the general CBOR encoder: the generic decoding path's canonical check,
 * and the reference encodeValidated is tested against.
 */
export function encodeViaMap(b: AuditRecordBody): Uint8Array {
  const m = new Map<CborKey, CborValue>();
  m.set(0, b.version);
  m.set(1, 'record');
  for (let i = 2; i < FIELDS.length; i++) m.set(i, b[FIELDS[i] as Exclude<(typeof FIELDS)[number], 'type'>]);
  return encodeCbor(m);
}

/** Keys whose values are text strings (the others are unsigned integers or byte strings). */
const TEXT_FIELDS = new Set([1, 6, 7, 8, 9, 10, 12]);

function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
}

/** A CBOR head with the minimal argument (n is a safe unsigned integer). */
function writeHead(out: Uint8Array, at: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) {
    out[at] = m | n;
    return at + 1;
  }
  const width = n < 0x100 ? 1 : n < 0x10000 ? 2 : n < 0x100000000 ? 4 : 8;
  out[at] = m | (width === 1 ? 24 : width === 2 ? 25 : width === 4 ? 26 : 27);
  for (let i = width; i >= 1; i--) {
    out[at + i] = n % 256;
    n = Math.floor(n / 256);
  }
  return at + 1 + width;
}

/** Decodes and validates a payload; refuses non-canonical bytes. */
export function decodeRecordBody(payload: Uint8Array, where: Where = {}): AuditRecordBody {
  const fast = readCanonicalBody(payload);
  if (fast !== undefined) {
    validateBody(fast, withSeq(where, fast.seq));
    return fast;
  }
  return decodeRecordBodyGeneric(payload, where);
}

/** Error context: the record's seq once it reads as one. */
function withSeq(where: Where, seq: unknown): Where {
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? { ...where, seq } : where;
}

// --- The fast path -------------------------------------------------------------------------
//
// Every record on the release path is parsed by the parent (persister, keystore, receipt), and
// every record of a chain by the verifier. The generic path decodes any CBOR into a Map, then
// re-encodes the body to prove the bytes canonical: two general codecs per record. This reader
// is scoped to exactly one shape — the map header for 17 entries, keys 0…16 as single bytes in
// order, and values that are only a minimal unsigned integer, a byte or text string with a
// minimal definite length, or null — and to the end of the payload. Bytes in that shape are
// canonical by construction, so they need no re-encoding. On the first byte outside it, it gives
// up (undefined) and the generic path decides, with its own error messages: the fast path never
// accepts what the generic path refuses, and never refuses anything itself.

const MAP_OF_17 = 0xa0 + 17;
const NULL = 0xf6;
/** Text decoding as common/cbor.ts does it (fatal, BOM kept), so both paths read the same string. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** The fast path gives up on this (any CBOR value outside its shape, or bytes it cannot read). */
const OUT_OF_SHAPE = Symbol('out of shape');

/** Head argument of major types 0/2/3: minimal, definite, at most 2^53 − 1; else OUT_OF_SHAPE. */
function readArgument(b: Uint8Array, at: number, ai: number): { v: number; next: number } | typeof OUT_OF_SHAPE {
  if (ai < 24) return { v: ai, next: at };
  const n = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : 0;
  if (n === 0 || at + n > b.length) return OUT_OF_SHAPE;
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + b[at + i]!;
  // Minimal: each width only for values the next smaller one cannot hold.
  const min = n === 1 ? 24 : n === 2 ? 0x100 : n === 4 ? 0x10000 : 0x100000000;
  if (v < min || !Number.isSafeInteger(v)) return OUT_OF_SHAPE;
  return { v, next: at + n };
}

function readCanonicalBody(b: Uint8Array): AuditRecordBody | undefined {
  if (b.length === 0 || b[0] !== MAP_OF_17) return undefined;
  const values: Array<number | string | Uint8Array | null> = [];
  let at = 1;
  for (let key = 0; key < FIELDS.length; key++) {
    if (b[at] !== key) return undefined;
    at++;
    if (at >= b.length) return undefined;
    const ib = b[at++]!;
    if (ib === NULL) {
      values.push(null);
      continue;
    }
    const major = ib >> 5;
    if (major !== 0 && major !== 2 && major !== 3) return undefined;
    const arg = readArgument(b, at, ib & 0x1f);
    if (arg === OUT_OF_SHAPE) return undefined;
    at = arg.next;
    if (major === 0) {
      values.push(arg.v);
      continue;
    }
    if (at + arg.v > b.length) return undefined;
    const bytes = b.subarray(at, at + arg.v);
    at += arg.v;
    if (major === 2) values.push(bytes.slice()); // a copy: values never alias the input
    else {
      try {
        values.push(utf8.decode(bytes));
      } catch {
        return undefined;
      }
    }
  }
  if (at !== b.length || values[0] !== AUDIT_RECORD_VERSION || values[1] !== 'record') return undefined;
  const body = {} as Record<string, unknown>;
  for (let i = 0; i < FIELDS.length; i++) if (i !== 1) body[FIELDS[i]!] = values[i];
  return body as unknown as AuditRecordBody;
}

/**
 * The generic path: any CBOR, then shape, validation, and a re-encoding to prove it canonical.
 * Exported as the reference the fast path is tested against (record-fast-path.test.ts).
 */
export function decodeRecordBodyGeneric(payload: Uint8Array, where: Where = {}): AuditRecordBody {
  let v: CborValue;
  try {
    v = decodeCbor(payload, { allowIndefinite: false, maxDepth: 2, maxItems: 64 });
  } catch (e) {
    throw new AuditError('AUDIT_MALFORMED', `payload is not canonical CBOR: ${(e as Error).message}`, { ...where, cause: e });
  }
  if (!(v instanceof Map)) throw malformed('payload must be a CBOR map', where);
  // Version first, so a future format reports "unknown version", not a shape error.
  const version = v.get(0);
  if (version !== AUDIT_RECORD_VERSION) {
    throw new AuditError('AUDIT_VERSION', `record version ${typeof version === 'number' ? version : JSON.stringify(String(version))} is not supported (this build reads ${AUDIT_RECORD_VERSION})`, where);
  }
  if (v.get(1) !== 'record') throw malformed(`payload type is ${JSON.stringify(String(v.get(1)))}, not "record"`, where);
  const keys = [...v.keys()];
  if (keys.length !== FIELDS.length || keys.some((k, i) => k !== i)) throw malformed(`payload keys must be exactly 0…${FIELDS.length - 1} in ascending order`, where);
  const body = {} as Record<string, unknown>;
  FIELDS.forEach((f, i) => {
    if (f !== 'type') body[f] = v.get(i);
  });
  const w = withSeq(where, body.seq);
  const b = body as unknown as AuditRecordBody;
  validateBody(b, w);
  // Integers and lengths are minimal (decoder) and keys ordered (above); floats
  // that read as integers are the one remaining alias, caught by re-encoding.
  if (!bytesEqual(encodeViaMap(b), payload)) throw malformed('payload is not in canonical form', w);
  return b;
}

/** Parses a signed record (envelope + payload) without checking the signature. */
export function parseRecord(bytes: Uint8Array, where: Where = {}): ParsedRecord {
  const env = parseEnvelope(bytes, where);
  const body = decodeRecordBody(env.payload, where);
  return { body, bytes, payload: env.payload, signature: env.signature, hash: sha256(env.payload) };
}

/**
 * Records this process has parsed, kept on the bytes object they were parsed from, with a copy
 * of those bytes. The parent parses each record on the release path in several places (the
 * persister, the keystore, the receipt index, the inline receipt); one parse serves them all. A
 * hit needs the same object with the same content, so bytes changed in place after their parse
 * are parsed again — never answered from a stale parse. Failures are not remembered.
 *
 * A non-enumerable symbol property rather than a WeakMap: a WeakMap entry per record is an
 * ephemeron for the garbage collector, which cost ~5 µs per record, more than the parse itself.
 */
const PARSED = Symbol('enclave-signer.parsedRecord');
type Parsed = { copy: Buffer; record: ParsedRecord };

/** parseRecord, once per bytes object (see above). The result is shared: callers must not modify it. */
export function parseRecordOnce(bytes: Uint8Array): ParsedRecord {
  const hit = bytes instanceof Uint8Array ? (bytes as Uint8Array & { [PARSED]?: Parsed })[PARSED] : undefined;
  // Buffer copy and memcmp: a record is public, so no constant-time compare is needed here.
  if (hit?.copy.equals(bytes)) return hit.record;
  const record = parseRecord(bytes);
  try {
    Object.defineProperty(bytes, PARSED, { value: { copy: Buffer.from(bytes), record } satisfies Parsed, configurable: true, writable: true });
  } catch {
    // bytes that cannot take a property (not extensible): parsed again next time
  }
  return record;
}

/** True when the record's signature verifies under the key it names. */
export function recordSignatureValid(r: ParsedRecord): boolean {
  return verifyEnvelope({ payload: r.payload, signature: r.signature }, r.body.auditKey);
}
