/**
 * Offline receipt verification (docs/audit.md, "Receipts"): proves that a
 * result was produced by an enclave whose audit key an attestation document
 * binds (against the root, and the signed manifest when given), and under the
 * policy hash in its record. Throws AuditError (typed, naming the seq) on any
 * failure.
 */
import { bytesEqual, toHex } from '../../common/bytes.js';
import { parseAuditBinding } from '../../common/audit/binding.js';
import { parseCheckpoint } from '../../common/audit/checkpoint.js';
import { AuditError } from '../../common/audit/errors.js';
import { recordSignatureValid, sha256 } from '../../common/audit/record.js';
import type { Receipt } from '../../common/audit/receipt.js';
import { verifyAttestationAgainstManifest } from '../manifest-attest.js';
import type { AuditVerifyOptions } from './verify.js';
import type { VerifiedAttestation } from '../types.js';
import { verifyAttestation } from '../verify.js';

export interface ReceiptVerified {
  valid: true;
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
  enclave: { moduleId: string; attestedAt: string; pcrs: Record<string, string>; debug: boolean; root: string; manifest?: { name: string; version: string; keyId: string } };
  checkpoint?: { seq: number; head: string };
}

export function verifyReceipt(receipt: Receipt, result: Uint8Array, opts: Omit<AuditVerifyOptions, 'anchors' | 'maxProblems'> = {}): ReceiptVerified {
  const { record } = receipt;
  const b = record.body;
  const seq = b.seq;
  const fail = (code: ConstructorParameters<typeof AuditError>[0], m: string, cause?: unknown): AuditError =>
    new AuditError(code, `seq ${seq}: ${m}`, { seq, ...(cause ? { cause } : {}) });
  if (!recordSignatureValid(record)) throw fail('AUDIT_SIGNATURE', `record signature does not verify under audit key ${toHex(b.auditKey)}`);
  if (b.kind !== 'sign' || b.decision !== 'allowed' || b.resultDigest === null) throw fail('AUDIT_RECEIPT', `record is a ${b.kind}/${b.decision} decision, not a released signature`);
  if (!bytesEqual(sha256(result), b.resultDigest)) throw fail('AUDIT_RECEIPT', `the result's SHA-256 ${toHex(sha256(result))} is not the record's result digest ${toHex(b.resultDigest)}`);

  let v: VerifiedAttestation;
  try {
    const common = { at: 'document' as const, allowDebug: opts.allowDebug === true, ...(opts.root ? { root: opts.root } : {}) };
    v = opts.manifest
      ? verifyAttestationAgainstManifest(receipt.attestation, opts.manifest.signed, { ...common, trustedKeys: opts.manifest.trustedKeys })
      : verifyAttestation(receipt.attestation, common);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    throw fail('AUDIT_ATTESTATION', `the receipt's attestation document does not verify: ${err.code ?? ''} ${err.message ?? String(e)}`, e);
  }
  const binding = parseAuditBinding(v.document.userData, { seq });
  if (!bytesEqual(binding.auditKey, b.auditKey)) throw fail('AUDIT_ATTESTATION', `the attestation document binds audit key ${toHex(binding.auditKey)}, but the record is signed by ${toHex(b.auditKey)}`);
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
  const m = 'manifest' in v ? (v as unknown as { manifest: { image: { name: string; version: string } }; manifestKeyId: string }) : undefined;
  return {
    valid: true,
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
    enclave: {
      moduleId: v.document.moduleId,
      attestedAt: new Date(v.document.timestamp).toISOString(),
      pcrs: Object.fromEntries([0, 1, 2, 8].filter((i) => v.document.pcrs.has(i)).map((i) => [String(i), toHex(v.document.pcrs.get(i)!)])),
      debug: v.debug,
      root: `${v.root.name} (SHA-256 ${v.root.fingerprint})`,
      ...(m ? { manifest: { name: m.manifest.image.name, version: m.manifest.image.version, keyId: m.manifestKeyId } } : {}),
    },
    ...(checkpoint ? { checkpoint } : {}),
  };
}
