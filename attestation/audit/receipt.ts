/**
 * Offline receipt verification (docs/audit.md, "Receipts"): proves that a
 * result was produced (or a key, with the public data given, made) by an
 * enclave whose audit key an attestation document binds (against the root,
 * and the signed manifest when given), and under the policy hash in its
 * record. Throws AuditError (typed, naming the seq) on any failure.
 */
import { bytesEqual, toHex } from '../../common/bytes.js';
import { parseCheckpoint } from '../../common/audit/checkpoint.js';
import { AuditError } from '../../common/audit/errors.js';
import { recordSignatureValid, sha256 } from '../../common/audit/record.js';
import { KEY_PUBLIC_FIELDS, keyPublicDigest, releasedResultDigest } from '../../common/audit/result.js';
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

/**
 * The members of a key as signer_createKey, getKey and listKeys answer it: the public fields the
 * key.create record covers, and the parent's own label and time. Review finding (session 26): a
 * key object is checked on KEY_PUBLIC_FIELDS only, so any other member passed unproven — a host
 * could hand a backend a signer_deriveKey-looking answer with its own `ethereumAddress` (and any
 * `path`) next to the seed key's fields, and the seed's key.create receipt "verified" it. Only
 * the members of a key answer are accepted; a key receipt proves nothing else.
 */
const KEY_ANSWER_MEMBERS: ReadonlySet<string> = new Set([...KEY_PUBLIC_FIELDS, 'label', 'createdAt']);

/**
 * The members of a signing result whose digest is its `signature` or `raw` bytes alone
 * (common/audit/result.ts; the results of enclave/signers). Review finding (session 26): such an
 * object was checked on those bytes only, so a host could add a genuine signature (or raw
 * transaction) the enclave released to a key or derived-key object of its own — its own address —
 * and that signature's receipt "verified" the object (kind 'sign', exit 0 from `receipt verify`).
 * Members outside this list are refused: the record does not cover them.
 */
const SIGNED_RESULT_MEMBERS: ReadonlySet<string> = new Set([
  'signature', 'raw', 'r', 's', 'v', 'yParity', 'compact', 'der', 'digest', 'address', 'domainSeparator', 'primaryType', 'publicKey', 'hash', 'signingHash', 'type', 'from',
]);

/** Why a result object cannot be checked against a sign record, or undefined when it can. */
function notAReleasedResult(o: Readonly<Record<string, unknown>>): string | undefined {
  // A key's identity: no released result carries it, and a key's public data is proven only by its
  // key.create record (a sign record's canonical-JSON digest shares its form with keyPublicDigest).
  if (Object.hasOwn(o, 'keyId') || Object.hasOwn(o, 'keyringId')) return "the object is a key's public data (keyId, keyringId): only the key's key.create record proves it, not a sign record";
  const bytes = Object.hasOwn(o, 'signature') || Object.hasOwn(o, 'raw');
  if (!bytes) return undefined;
  const extra = Object.keys(o).filter((k) => !SIGNED_RESULT_MEMBERS.has(k));
  if (extra.length > 0) return `the record covers only the object's signature/raw bytes, and it has members no signing result has: ${extra.slice(0, 5).map((k) => JSON.stringify(k.slice(0, 32))).join(', ')}`;
  return undefined;
}

function madeKeyDigest(result: ReceiptResult, fail: (code: 'AUDIT_RECEIPT', m: string, cause?: unknown) => AuditError): Uint8Array {
  if (result instanceof Uint8Array) throw fail('AUDIT_RECEIPT', "the record is a made key: check it against the key's public data (a JSON object with keyId, kind, keyringId, publicKey …), not bytes");
  if (result === null || typeof result !== 'object' || Array.isArray(result)) throw fail('AUDIT_RECEIPT', "the record is a made key: check it against the key's public data, a JSON object");
  const extra = Object.keys(result).filter((k) => !KEY_ANSWER_MEMBERS.has(k));
  if (extra.length > 0) {
    throw fail('AUDIT_RECEIPT', `the record is a made key, and the object has members a key's answer does not (the record does not cover them): ${extra.slice(0, 5).map((k) => JSON.stringify(k.slice(0, 32))).join(', ')}`);
  }
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
  if (!made && result !== null && typeof result === 'object' && !(result instanceof Uint8Array)) {
    const why = notAReleasedResult(result);
    if (why !== undefined) throw fail('AUDIT_RECEIPT', `record is a ${b.kind}/${b.decision} decision: ${why}`);
  }
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
