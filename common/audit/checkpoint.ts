/**
 * A checkpoint: the enclave's signed statement "my chain's head is (seq,
 * hash) at time T", to publish or anchor outside the host's reach. Any
 * later checkpoint (or receipt) proves the chain reached at least that far:
 * a host that truncates the tail is caught against it.
 *
 *   payload = canonical CBOR map, keys 0…6 ascending, all present:
 *     0 v 1 · 1 type "checkpoint" · 2 seq uint · 3 head bstr 32 (SHA-256 of
 *     that record's payload) · 4 time uint (ms) · 5 auditKey bstr 32 ·
 *     6 nonce bstr (1–64) / null (a caller's challenge, for freshness)
 *   envelope = the same COSE_Sign1 / Ed25519 envelope as records.
 *
 * The type field keeps a checkpoint from ever reading as a record.
 */
import { bytesEqual } from '../bytes.js';
import { decodeCbor, encodeCbor, type CborKey, type CborValue } from '../cbor.js';
import { AuditError } from './errors.js';
import { ED25519_PUBLIC_KEY_BYTES, parseEnvelope, verifyEnvelope } from './envelope.js';
import { AUDIT_RECORD_VERSION, DIGEST_BYTES, sha256 } from './record.js';

export const MAX_CHECKPOINT_NONCE = 64;

export interface CheckpointBody {
  version: 1;
  seq: number;
  head: Uint8Array;
  time: number;
  auditKey: Uint8Array;
  nonce: Uint8Array | null;
}

export interface ParsedCheckpoint {
  body: CheckpointBody;
  bytes: Uint8Array;
  payload: Uint8Array;
  signature: Uint8Array;
}

function bad(m: string): AuditError {
  return new AuditError('AUDIT_MALFORMED', `checkpoint: ${m}`);
}

function check(b: CheckpointBody): void {
  if (b.version !== AUDIT_RECORD_VERSION) throw new AuditError('AUDIT_VERSION', `checkpoint version ${String(b.version)} is not supported`);
  if (!Number.isSafeInteger(b.seq) || b.seq < 0) throw bad('seq must be an unsigned integer');
  if (!(b.head instanceof Uint8Array) || b.head.length !== DIGEST_BYTES) throw bad('head must be 32 bytes');
  if (!Number.isSafeInteger(b.time) || b.time < 0) throw bad('time must be an unsigned integer');
  if (!(b.auditKey instanceof Uint8Array) || b.auditKey.length !== ED25519_PUBLIC_KEY_BYTES) throw bad('auditKey must be 32 bytes');
  if (b.nonce !== null && (!(b.nonce instanceof Uint8Array) || b.nonce.length === 0 || b.nonce.length > MAX_CHECKPOINT_NONCE)) throw bad(`nonce must be 1–${MAX_CHECKPOINT_NONCE} bytes or null`);
}

export function encodeCheckpointBody(b: CheckpointBody): Uint8Array {
  check(b);
  return encodeCbor(
    new Map<CborKey, CborValue>([
      [0, b.version],
      [1, 'checkpoint'],
      [2, b.seq],
      [3, b.head],
      [4, b.time],
      [5, b.auditKey],
      [6, b.nonce],
    ]),
  );
}

/** Parses and checks the signature under the key the checkpoint names (binding that key is the caller's job). */
export function parseCheckpoint(bytes: Uint8Array): ParsedCheckpoint {
  const env = parseEnvelope(bytes);
  let v: CborValue;
  try {
    v = decodeCbor(env.payload, { allowIndefinite: false, maxDepth: 2 });
  } catch (e) {
    throw new AuditError('AUDIT_MALFORMED', `checkpoint payload is not canonical CBOR: ${(e as Error).message}`, { cause: e });
  }
  if (!(v instanceof Map)) throw bad('payload must be a map');
  if (v.get(0) !== AUDIT_RECORD_VERSION) throw new AuditError('AUDIT_VERSION', `checkpoint version ${String(v.get(0))} is not supported`);
  if (v.get(1) !== 'checkpoint') throw bad(`payload type is ${JSON.stringify(String(v.get(1)))}, not "checkpoint"`);
  const body = { version: 1, seq: v.get(2), head: v.get(3), time: v.get(4), auditKey: v.get(5), nonce: v.get(6) } as CheckpointBody;
  check(body);
  if (!bytesEqual(encodeCheckpointBody(body), env.payload)) throw bad('payload is not in canonical form');
  if (!verifyEnvelope(env, body.auditKey)) throw new AuditError('AUDIT_SIGNATURE', `checkpoint at seq ${body.seq}: signature does not verify`, { seq: body.seq });
  return { body, bytes, payload: env.payload, signature: env.signature };
}

export { sha256 };
