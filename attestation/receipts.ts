/**
 * `enclave-signer/verify`: receipt checks for custody code, in process. The client library
 * (`enclave-signer/client`) only talks to the signing socket, through the host; what the host says
 * proves nothing until a receipt for it verifies here, offline, against the release you run:
 *
 *   import { verifyKeyReceipt } from 'enclave-signer/verify';
 *   const key = await signer.createKey();                       // public data, from the host
 *   verifyKeyReceipt(await signer.getReceipt(key), key, trust); // throws unless the enclave made it
 *   publish(key.address);
 *
 * The same checks as `enclave-signer receipt verify` (attestation/audit/receipt.ts), with one
 * difference that fails closed: a signed PCR manifest and the keys trusted to sign it are
 * required. Without one, a document from ANY Nitro enclave image would be accepted, including an
 * image the host built (the CLI allows that with a warning; a library call has no one to warn).
 */
import type { KeyObject } from 'node:crypto';
import { AuditError } from '../common/audit/errors.js';
import { parseReceipt, type ReceiptJson } from '../common/audit/receipt.js';
import { parseHex } from '../common/bytes.js';
import { verifyReceipt, type ReceiptVerified } from './audit/receipt.js';
import type { AuditTrustOptions } from './audit/binding-check.js';
import { trustRoot } from './roots.js';

export type { ReceiptVerified } from './audit/receipt.js';

export interface ReceiptTrust {
  /** The signed PCR manifest of the release you run: its JSON text, bytes, or parsed object. */
  manifest: string | Uint8Array | object;
  /** Keys trusted to sign manifests: PEM text, KeyObjects, or key ids (64 hex). At least one. */
  manifestKeys: readonly (string | KeyObject)[];
  /** Another attestation root (PEM), for dev and tests only. Default: the AWS Nitro Enclaves root. */
  root?: string;
  /** Accept debug-mode enclaves (their PCRs are zeros). Default false. */
  allowDebug?: boolean;
}

function trustOf(t: ReceiptTrust): AuditTrustOptions {
  if (t === null || typeof t !== 'object' || t.manifest === undefined || t.manifest === null) {
    throw new AuditError('AUDIT_RECEIPT', 'receipt trust: a signed PCR manifest is required (without one any Nitro image, the host\'s own included, would be accepted)');
  }
  if (!Array.isArray(t.manifestKeys) || t.manifestKeys.length === 0) {
    throw new AuditError('AUDIT_RECEIPT', 'receipt trust: at least one manifest key is required (a manifest is only as good as the key trusted to sign it)');
  }
  return {
    manifest: { signed: t.manifest, trustedKeys: t.manifestKeys },
    ...(t.root !== undefined ? { root: trustRoot(t.root, 'root') } : {}),
    allowDebug: t.allowDebug === true,
  };
}

function receiptOf(receipt: string | ReceiptJson | object) {
  return parseReceipt(typeof receipt === 'string' ? receipt : JSON.stringify(receipt));
}

/**
 * Proves that `key` (as signer_createKey, signer_getKey or signer_listKeys returned it) is a key
 * the attested enclave made: its id, kind, keyring, public key and address or xpub. Throws an
 * AuditError (AUDIT_RECEIPT, AUDIT_ATTESTATION, AUDIT_SIGNATURE …) when it is not, including for
 * a receipt of anything but a made key.
 */
export function verifyKeyReceipt(receipt: string | ReceiptJson | object, key: object, trust: ReceiptTrust): ReceiptVerified {
  if (key === null || typeof key !== 'object' || Array.isArray(key)) throw new AuditError('AUDIT_RECEIPT', 'verifyKeyReceipt: the key must be the object signer_getKey returned');
  const out = verifyReceipt(receiptOf(receipt), key as Readonly<Record<string, unknown>>, trustOf(trust));
  // verifyReceipt checks a sign record's result against the object too: only a key.create record proves a key.
  if (out.kind !== 'key.create') throw new AuditError('AUDIT_RECEIPT', `seq ${out.seq}: the receipt is for a released result, not a made key`, { seq: out.seq });
  return out;
}

/**
 * Proves that `result` (a 0x-hex signature or raw transaction, its bytes, or a signer_* result
 * object) was released by the attested enclave, under the policy hash in its record.
 */
export function verifyResultReceipt(receipt: string | ReceiptJson | object, result: string | Uint8Array | object, trust: ReceiptTrust): ReceiptVerified {
  let r: Uint8Array | Readonly<Record<string, unknown>>;
  if (typeof result === 'string') {
    const b = parseHex(result);
    if (!b || b.length === 0) throw new AuditError('AUDIT_RECEIPT', 'verifyResultReceipt: a string result must be 0x hex');
    r = b;
  } else if (result instanceof Uint8Array) r = result;
  else if (result !== null && typeof result === 'object' && !Array.isArray(result)) r = result as Readonly<Record<string, unknown>>;
  else throw new AuditError('AUDIT_RECEIPT', 'verifyResultReceipt: the result must be 0x hex, bytes, or the result object');
  const out = verifyReceipt(receiptOf(receipt), r, trustOf(trust));
  if (out.kind !== 'sign') throw new AuditError('AUDIT_RECEIPT', `seq ${out.seq}: the receipt is for a made key, not a released result (verifyKeyReceipt)`, { seq: out.seq });
  return out;
}
