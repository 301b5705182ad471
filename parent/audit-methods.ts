/**
 * The parent's audit-chain methods and helpers (docs/audit.md, docs/json-rpc.md):
 *
 *   signer_getReceipt { result }     — the receipt for a result this socket released
 *                                      (or a key it made: its key.create record):
 *                                      the signed record, the attestation document
 *                                      binding its audit key (from that key's
 *                                      hand-over), the chain position;
 *   signer_auditCheckpoint { nonce? } — an enclave-signed statement of the head,
 *                                      with a document binding the audit key.
 */
import { bytesEqual, toHex } from '../common/bytes.js';
import type { BridgeRemoteError } from '../common/bridge/index.js';
import { parseCheckpoint } from '../common/audit/checkpoint.js';
import { buildReceipt } from '../common/audit/receipt.js';
import { parseRecord } from '../common/audit/record.js';
import { isKeyInfo, keyPublicDigest, releasedResultDigest } from '../common/audit/result.js';
import { cborToJson } from '../common/cbor-json.js';
import { asRecord } from '../common/protocol/enclave-api.js';
import { parsedRecord, type AuditPersister } from './audit-persist.js';
import { ParentError, invalidParam } from './errors.js';
import type { Gate } from './gate.js';
import type { Keystore } from './keystore.js';
import type { SealedStateSync } from './sealed-state.js';
import { named, readHexBytes } from '../common/rpc/params.js';
import type { Cancellation } from '../common/cancellation.js';

/** methods.ts's Method, restated here so the two modules do not import each other. */
type Method = (params: unknown, ctx: { gate: Gate; keystore: Keystore; cancellation: Cancellation }) => Promise<unknown>;

/** Stores the record a refusal carries (data.audit). The refusal stands whatever happens here. */
export async function persistRefusal(audit: AuditPersister, e: BridgeRemoteError, sealed?: SealedStateSync, keyringId?: string): Promise<void> {
  const rec = e.data instanceof Map ? e.data.get('audit') : undefined;
  if (rec instanceof Uint8Array) {
    try {
      await audit.persist([rec]);
    } catch {
      // the client gets the refusal anyway; the persister logged why the record is not stored
    }
  }
  // Fleet scope: a pending request opened an entry in the shared approval book. Stored before the
  // -32010 is relayed, or the approvers would be sent to an approval no other instance knows
  // (a lost swap throws PARENT_STATE_CONFLICT, and the request is decided again).
  const state = e.data instanceof Map ? e.data.get('sealedState') : undefined;
  if (state !== undefined && sealed && keyringId !== undefined) {
    const v = cborToJson(state);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) await sealed.store(keyringId, v as Record<string, unknown>);
  }
}

/**
 * Remembers which record released a result, so signer_getReceipt can find it: indexed by the
 * record's own `resultDigest`. signer_getReceipt digests the result its caller holds
 * (releasedResultDigest) and finds only a record that names that digest, so the parent need not
 * digest every result it releases (a hex parse and a SHA-256 per signature).
 */
export function recordReleased(audit: AuditPersister, records: readonly Uint8Array[]): void {
  for (const r of records) {
    const p = parsedRecord(r);
    if (p.body.resultDigest) audit.noteResult(toHex(p.body.resultDigest), p.body.seq);
  }
}

const getReceipt: Method = async (params, ctx) => {
  const p = named(params, ['result']);
  if (p.result === undefined) throw invalidParam('result', 'required: the result exactly as this socket returned it (a 0x-hex signature or transaction, or the result object)');
  // A key's public data (signer_createKey, getKey, listKeys) is named by its key.create record.
  const keyId = isKeyInfo(p.result) ? (p.result.keyId as string) : undefined;
  let digest: Uint8Array;
  try {
    digest = keyId !== undefined ? keyPublicDigest(p.result as Record<string, unknown>) : releasedResultDigest(p.result);
  } catch {
    throw invalidParam('result', 'expected a 0x-hex string or a result object');
  }
  const seq = ctx.gate.audit.seqOfResult(toHex(digest));
  const record = seq !== undefined ? await ctx.keystore.getAuditRecord(seq) : keyId !== undefined ? await keyRecordNaming(ctx.keystore, keyId, digest) : undefined;
  if (record === undefined && keyId !== undefined) {
    throw invalidParam('result', "no receipt: no stored key.create record names this key's public data (its address, publicKey or xpub is not what the enclave made, or the key predates records that name it)", 'signer_getKey answers the stored key; a key made before this release has no such record');
  }
  if (record === undefined) {
    throw invalidParam('result', 'no receipt: this parent did not release that result (or has forgotten it since it restarted)', 'ask right after signing, or use the X-Enclave-Signer-Receipt header / receipt:true');
  }
  // Looked up in the store (not only the memory the inline receipt uses): an older audit key's hand-over too.
  await ctx.keystore.auditKeyFirstRecord(parseRecord(record).body.auditKey);
  return receiptFor(ctx.keystore, record);
};

/**
 * A key's key.create record from the store (keys made before this parent started, or by another
 * instance), when it names exactly this public data. A record that names other data is no receipt
 * for it: the caller learns only that nothing vouches for what it holds.
 */
async function keyRecordNaming(keystore: Keystore, keyId: string, digest: Uint8Array): Promise<Uint8Array | undefined> {
  const record = await keystore.keyCreateRecord(keyId);
  const named = record === undefined ? undefined : parseRecord(record).body.resultDigest;
  return named && bytesEqual(named, digest) ? record : undefined;
}

/**
 * The receipt for a stored record: the attestation is its audit key's hand-over document.
 * Synchronous (the dispatcher builds inline receipts as it releases a result): the hand-over
 * comes from the keystore's memory, which boot fills for the serving enclave's audit key.
 */
export function receiptFor(keystore: Pick<Keystore, 'cachedAuditKeyFirstRecord'>, record: Uint8Array): Record<string, unknown> {
  const r = parseRecord(record);
  const first = keystore.cachedAuditKeyFirstRecord(r.body.auditKey);
  const attestation = first === undefined ? null : parseRecord(first).body.attestation;
  if (!attestation) throw new ParentError('PARENT_AUDIT_UNAVAILABLE', `no stored hand-over binds audit key ${toHex(r.body.auditKey).slice(0, 16)}…: the receipt cannot be built`);
  return buildReceipt(record, attestation) as unknown as Record<string, unknown>;
}

const checkpoint: Method = async (params, ctx) => {
  const p = named(params, ['nonce']);
  const nonce = p.nonce === undefined ? undefined : Buffer.from(readHexBytes(p.nonce, 'nonce', { min: 16, max: 64 }).slice(2), 'hex');
  const res = asRecord(await ctx.gate.call('audit.checkpoint', nonce ? { nonce } : {}, { needKeyring: false, cancellation: ctx.cancellation }), 'audit.checkpoint result');
  const cp = res.checkpoint;
  const doc = res.attestation;
  if (!(cp instanceof Uint8Array) || !(doc instanceof Uint8Array)) throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'audit.checkpoint: no checkpoint or attestation');
  let seq: number;
  try {
    seq = parseCheckpoint(cp).body.seq;
  } catch (e) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `audit.checkpoint: ${(e as Error).message}`, { cause: e });
  }
  return { checkpoint: `0x${toHex(cp)}`, attestation: Buffer.from(doc).toString('base64'), seq };
};

export const AUDIT_METHODS: ReadonlyArray<[string, Method]> = [
  ['signer_getReceipt', getReceipt],
  ['signer_auditCheckpoint', checkpoint],
];
