/**
 * Offline receipt verification (docs/audit.md, "Receipts"): proves that a
 * result was produced (or a key, with the public data given, made) by an
 * enclave whose audit key an attestation document binds (against the root,
 * and the signed manifest when given), and under the policy hash in its record. Throws AuditError (typed, naming the seq) on any
 * failure.
 */
import { bytesEqual, toHex } from '../../common/bytes.js';
import { parseCheckpoint } from '../../common/audit/checkpoint.js';
import { AuditError } from '../../common/audit/errors.js';
import { recordSignatureValid, sha256 } from '../../common/audit/record.js';
import { keyPublicDigest, releasedResultDigest } from '../../common/audit/result.js';
import type { Receipt } from '../../common/audit/receipt.js';
import { verifyAuditKeyBinding, type AttestedEnclave, type AuditTrustOptions } from './binding-check.js';

export interface ReceiptVerified {
  valid: true;
  /** `sign`: a released result; `key.create`: a key the enclave made, with the public data checked. */
  kind: 'sign' | 'key.create';
  seq: number;
  hash: string;
  time: string;
  auditKey: string;
  principal: string | null;
  op: string | null;
  keyId: string | null;
  rule: string | null;
  policyHash: string | null;
  requestDigest: string | null;
  resultDigest: string;
  enclave: AttestedEnclave;
  checkpoint?: { seq: number; head: string };
}

/**
 * What a receipt is checked against: the released bytes (a signature, a raw transaction), a
 * result object (common/audit/result.ts), or for a key.create record the key's public data as
 * signer_createKey, signer_getKey or signer_listKeys returned it.
 */
export type ReceiptResult = Uint8Array | Readonly<Record<string, unknown>>;

function madeKeyDigest(result: ReceiptResult, fail: (code: 'AUDIT_RECEIPT', m: string, cause?: unknown) => AuditError): Uint8Array {
  if (result instanceof Uint8Array) throw fail('AUDIT_RECEIPT', "the record is a made key: check it against the key's public data (a JSON object with keyId, kind, keyringId, publicKey …), not bytes");
  try {
    return keyPublicDigest(result);
  } catch (e) {
    throw fail('AUDIT_RECEIPT', (e as Error).message, e);
  }
}

export function verifyReceipt(receipt: Receipt, result: ReceiptResult, opts: AuditTrustOptions = {}): ReceiptVerified {
  const { record } = receipt;
  const b = record.body;
  const seq = b.seq;
  const fail = (code: ConstructorParameters<typeof AuditError>[0], m: string, cause?: unknown): AuditError =>
    new AuditError(code, `seq ${seq}: ${m}`, { seq, ...(cause ? { cause } : {}) });
  if (!recordSignatureValid(record)) throw fail('AUDIT_SIGNATURE', `record signature does not verify under audit key ${toHex(b.auditKey)}`);
  const made = b.kind === 'key.create' && b.decision === 'done';
  if (!made && (b.kind !== 'sign' || b.decision !== 'allowed')) throw fail('AUDIT_RECEIPT', `record is a ${b.kind}/${b.decision} decision, not a released result or a made key`);
  if (b.resultDigest === null) throw fail('AUDIT_RECEIPT', `record is a key.create written before the enclave recorded a key's public data: it proves no address`);
  const digest = made ? madeKeyDigest(result, fail) : result instanceof Uint8Array ? sha256(result) : releasedResultDigest(result);
  if (!bytesEqual(digest, b.resultDigest)) {
    const what = made ? "the key's public data" : result instanceof Uint8Array ? "the result's SHA-256" : "the result object's digest";
    throw fail('AUDIT_RECEIPT', `${what} ${toHex(digest)} is not the record's result digest ${toHex(b.resultDigest)}`);
  }

  const { binding, enclave } = verifyAuditKeyBinding(receipt.attestation, b.auditKey, opts, {
    seq,
    at: 'document',
    say: {
      unverified: (detail) => `seq ${seq}: the receipt's attestation document does not verify: ${detail}`,
      otherKey: (bound) => `seq ${seq}: the attestation document binds audit key ${bound}, but the record is signed by ${toHex(b.auditKey)}`,
    },
  });
  if (binding.policyHash !== null && (b.policyHash === null || !bytesEqual(binding.policyHash, b.policyHash))) {
    throw fail('AUDIT_POLICY', `the record's policy hash ${b.policyHash ? toHex(b.policyHash) : 'null'} is not the attested ${toHex(binding.policyHash)}`);
  }

  let checkpoint: ReceiptVerified['checkpoint'];
  if (receipt.checkpoint) {
    const cp = parseCheckpoint(receipt.checkpoint);
    if (!bytesEqual(cp.body.auditKey, b.auditKey)) throw fail('AUDIT_RECEIPT', 'the checkpoint is signed by another audit key');
    if (cp.body.seq < seq || (cp.body.seq === seq && !bytesEqual(cp.body.head, record.hash))) throw fail('AUDIT_RECEIPT', `the checkpoint (seq ${cp.body.seq}) does not come after this record`);
    checkpoint = { seq: cp.body.seq, head: toHex(cp.body.head) };
  }
  return {
    valid: true,
    kind: made ? 'key.create' : 'sign',
    seq,
    hash: toHex(record.hash),
    time: new Date(b.time).toISOString(),
    auditKey: toHex(b.auditKey),
    principal: b.principal,
    op: b.op,
    keyId: b.keyId,
    rule: b.rule,
    policyHash: b.policyHash ? toHex(b.policyHash) : null,
    requestDigest: b.requestDigest ? toHex(b.requestDigest) : null,
    resultDigest: toHex(b.resultDigest),
    enclave,
    ...(checkpoint ? { checkpoint } : {}),
  };
}
