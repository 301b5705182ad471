/**
 * A receipt: what a client keeps to prove, offline and without trusting the
 * host, that a result came from an attested enclave under a given policy.
 * JSON, so it can travel in a header, a ticket or an email:
 *
 *   { "format": "enclave-signer/audit-receipt", "version": 1,
 *     "record":      hex  — the signed audit record (envelope bytes),
 *     "attestation": base64 — an attestation document whose user_data binds record.auditKey,
 *     "position":    { "seq": n, "hash": hex } — the record's place in the chain
 *                    (hash = SHA-256 of its payload; must match the record),
 *     "checkpoint":  hex (optional) — a later signed head, from the same audit key }
 */
import { parseHex, toHex } from '../bytes.js';
import { AuditError } from './errors.js';
import { parseRecord, type ParsedRecord } from './record.js';

export const RECEIPT_FORMAT = 'enclave-signer/audit-receipt';
export const RECEIPT_VERSION = 1;
export const MAX_RECEIPT_BYTES = 128 * 1024;

export interface Receipt {
  record: ParsedRecord;
  attestation: Uint8Array;
  checkpoint: Uint8Array | null;
}

export interface ReceiptJson {
  format: typeof RECEIPT_FORMAT;
  version: 1;
  record: string;
  attestation: string;
  position: { seq: number; hash: string };
  checkpoint?: string;
}

export function buildReceipt(record: Uint8Array, attestation: Uint8Array, checkpoint?: Uint8Array): ReceiptJson {
  const r = parseRecord(record);
  return {
    format: RECEIPT_FORMAT,
    version: RECEIPT_VERSION,
    record: toHex(record),
    attestation: Buffer.from(attestation).toString('base64'),
    position: { seq: r.body.seq, hash: toHex(r.hash) },
    ...(checkpoint ? { checkpoint: toHex(checkpoint) } : {}),
  };
}

function bad(m: string, cause?: unknown): AuditError {
  return new AuditError('AUDIT_RECEIPT', `receipt: ${m}`, cause === undefined ? {} : { cause });
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Parses receipt JSON text; checks its shape and that the position matches the record. */
export function parseReceipt(text: string): Receipt {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw bad(`not JSON: ${(e as Error).message}`, e);
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw bad('must be a JSON object');
  const o = j as Record<string, unknown>;
  if (o.format !== RECEIPT_FORMAT) throw bad(`format must be "${RECEIPT_FORMAT}"`);
  if (o.version !== RECEIPT_VERSION) throw new AuditError('AUDIT_VERSION', `receipt version ${JSON.stringify(o.version)} is not supported (this build reads ${RECEIPT_VERSION})`);
  for (const k of Object.keys(o)) if (!['format', 'version', 'record', 'attestation', 'position', 'checkpoint'].includes(k)) throw bad(`unknown member "${k}"`);
  const recordBytes = typeof o.record === 'string' ? parseHex(o.record) : undefined;
  if (!recordBytes || recordBytes.length === 0) throw bad('record must be non-empty hex');
  if (typeof o.attestation !== 'string' || o.attestation.length === 0 || !B64.test(o.attestation)) throw bad('attestation must be base64');
  const attestation = new Uint8Array(Buffer.from(o.attestation, 'base64'));
  let checkpoint: Uint8Array | null = null;
  if (o.checkpoint !== undefined) {
    const c = typeof o.checkpoint === 'string' ? parseHex(o.checkpoint) : undefined;
    if (!c || c.length === 0) throw bad('checkpoint must be non-empty hex');
    checkpoint = c;
  }
  const record = parseRecord(recordBytes);
  const pos = o.position as { seq?: unknown; hash?: unknown } | undefined;
  if (!pos || typeof pos !== 'object' || pos.seq !== record.body.seq || typeof pos.hash !== 'string' || pos.hash.toLowerCase() !== toHex(record.hash)) {
    throw new AuditError('AUDIT_RECEIPT', `receipt: position does not match the record (seq ${record.body.seq}, hash ${toHex(record.hash)})`, { seq: record.body.seq });
  }
  return { record, attestation, checkpoint };
}
