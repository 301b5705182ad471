/**
 * The boot sequence, run on every attested connection:
 *
 *   1. hand the enclave AWS credentials (`credentials.set`), if a provider is configured;
 *   2. the keystore has an active keyring → `keyring.unlock` (attested KMS Decrypt in the enclave);
 *      none, but the enclave holds one    → store its public record (`keyring.current`): the answer
 *                                           to an earlier `keyring.create` was lost (connection
 *                                           dropped, store failed) — asking again would fail forever
 *                                           with KEYRING_ALREADY_UNLOCKED;
 *      none, but a CMK is configured     → `keyring.create`, then store the new record;
 *      neither                           → no keyring (not ready; say how to fix it).
 *
 * Any failure leaves the parent not ready with the reason (fail closed): a KMS
 * that refuses the enclave (wrong PCRs in the key policy, disabled key) is a
 * reason to stop, never to fall back.
 */
import { asKeyringRecord, asRecord, type EnclaveMethod, type KeyringRecordWire } from '../common/protocol/enclave-api.js';
import type { JsonLike } from '../common/cbor-json.js';
import { parseRecord } from '../common/audit/record.js';
import type { AuditPersister } from './audit-persist.js';
import type { CredentialsProvider, AwsCredentialsWire } from './credentials.js';
import { ParentError } from './errors.js';
import type { Keystore } from './keystore.js';

export type EnclaveCall = (method: EnclaveMethod, params: Record<string, unknown>) => Promise<JsonLike>;

export type BootOutcome =
  | { kind: 'unlocked'; keyringId: string; created: boolean }
  | { kind: 'absent'; reason: string };

export interface BootDeps {
  call: EnclaveCall;
  keystore: Keystore;
  kmsKeyId: string | undefined;
  log: (line: string) => void;
  /** Where the keyring decisions' audit records go (docs/audit.md). */
  audit: AuditPersister;
}

/** The signed records an enclave answer carries (`audit`), or PARENT_BAD_ENCLAVE_RESPONSE. */
export function auditRecordsOf(res: Record<string, unknown>, what: string, field = 'audit'): Uint8Array[] {
  const a = res[field];
  if (!Array.isArray(a) || a.length > 4096 || !a.every((x) => x instanceof Uint8Array)) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `${what}: the answer carries no audit records (nothing is accepted unrecorded)`);
  }
  return a as Uint8Array[];
}

/**
 * Shows the enclave the stored audit head (`audit.open`) and stores what it
 * answers: the hand-over of a new audit key, or — for an enclave that was
 * already open (the parent restarted or reconnected) — the records after the
 * stored head that never reached the keystore. Those are decisions whose
 * results this parent never released (it was killed, or lost the answer,
 * between sign and persist): they are reported here and stored now. Records
 * the enclave no longer holds are reported as a gap.
 */
export async function openAudit(d: Pick<BootDeps, 'call' | 'keystore' | 'log' | 'audit'>): Promise<void> {
  const head = await d.keystore.auditHead();
  const headSeq = head === undefined ? -1 : parseRecord(head).body.seq;
  const res = asRecord(await d.call('audit.open', head === undefined ? {} : { head }), 'audit.open result');
  const records = auditRecordsOf(res, 'audit.open', 'records');
  const opened = res.opened === true;
  const seqs = records.map((r) => parseRecord(r).body.seq);
  if (opened) {
    d.log(`audit: new audit key; hand-over at seq ${seqs[0]} continues ${headSeq < 0 ? 'nothing (a new chain)' : `the stored head seq ${headSeq}`}`);
  } else if (records.length > 0) {
    d.log(`audit: ${records.length} unfinished record(s) seq ${seqs[0]}..${seqs.at(-1)} were decided by this enclave but never stored (a parent killed or an answer lost between sign and persist; their results were never released by this parent); storing them now`);
  }
  const enclaveHead = typeof res.headSeq === 'number' ? res.headSeq : undefined;
  if (!opened && (seqs.length > 0 ? seqs[0]! > headSeq + 1 : enclaveHead !== undefined && enclaveHead > headSeq)) {
    const to = seqs.length > 0 ? seqs[0]! - 1 : enclaveHead!;
    d.log(`audit: GAP: records seq ${headSeq + 1}..${to} were decided by the enclave but are neither stored nor held by it any more; audit verify will report this gap`);
  }
  if (records.length > 0) {
    // At boot nothing else is in flight: written directly, durable before any keyring or key decision.
    try {
      await d.keystore.appendAuditRecords(records);
    } catch (e) {
      throw new ParentError('PARENT_AUDIT_UNAVAILABLE', `the audit hand-over could not be stored: ${(e as Error).message}`, {
        cause: e,
        hint: 'fix the keystore (read-only? disk full?): nothing is signed until the audit chain can be written',
      });
    }
  }
  await d.audit.resync(opened && res.auditKey instanceof Uint8Array ? res.auditKey : undefined);
  // The inline receipt (built synchronously as a result is released) needs this enclave's hand-over in memory.
  const last = records.at(-1) ?? head;
  if (last !== undefined) await d.keystore.auditKeyFirstRecord(parseRecord(last).body.auditKey);
}

/** Sends credentials when the provider has some; returns them (for the refresh timer). */
export async function handOverCredentials(call: EnclaveCall, provider: CredentialsProvider): Promise<AwsCredentialsWire | undefined> {
  const creds = await provider.get();
  if (creds === undefined) return undefined;
  const res = await call('credentials.set', { ...creds });
  if (asRecord(res, 'credentials.set result').ok !== true) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', 'credentials.set did not answer { ok: true }');
  }
  return creds;
}

export async function unlockOrCreateKeyring(d: BootDeps): Promise<BootOutcome> {
  const record = await d.keystore.activeKeyring();
  if (record) return unlock(d, record);
  // No keyring yet. Instances of a fleet starting together each see none: the one that gets the
  // store's lock first makes and stores it, the others find it under the lock and unlock it.
  return d.keystore.exclusively(async () => {
    const made = await d.keystore.activeKeyring();
    return made ? unlock(d, made) : createKeyring(d);
  });
}

async function unlock(d: BootDeps, record: KeyringRecordWire): Promise<BootOutcome> {
  const res = asRecord(await d.call('keyring.unlock', { record }), 'keyring.unlock result');
  if (res.keyringId !== record.keyringId) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', `keyring.unlock answered keyring ${JSON.stringify(String(res.keyringId).slice(0, 64))}, expected ${record.keyringId}`);
  }
  const audit = auditRecordsOf(res, 'keyring.unlock');
  // An enclave that already held this keyring (a reconnect) made no new decision: no record.
  if (audit.length > 0) await d.audit.persist(audit);
  return { kind: 'unlocked', keyringId: record.keyringId, created: false };
}

async function createKeyring(d: BootDeps): Promise<BootOutcome> {
  const held = await currentKeyring(d.call);
  if (held) {
    await store(d, held);
    d.log(`keyring ${held.keyringId} (under ${held.kmsKeyId}) was already unlocked in the enclave and is now stored: the answer to an earlier keyring.create was lost`);
    return { kind: 'unlocked', keyringId: held.keyringId, created: true };
  }
  if (d.kmsKeyId === undefined) {
    return { kind: 'absent', reason: 'the keystore has no keyring and no KMS key is configured to create one (--kms-key-id)' };
  }
  const res = asRecord(await d.call('keyring.create', { kmsKeyId: d.kmsKeyId }), 'keyring.create result');
  let created;
  try {
    created = asKeyringRecord(res.record, 'keyring.create result.record');
  } catch (e) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', (e as Error).message, { cause: e });
  }
  const audit = auditRecordsOf(res, 'keyring.create');
  await d.audit.persist(audit, (recs) => store(d, created, recs));
  d.log(`keyring ${created.keyringId} created under ${created.kmsKeyId} and stored`);
  return { kind: 'unlocked', keyringId: created.keyringId, created: true };
}

/**
 * Stored before we report ready: a keyring the keystore does not hold would
 * make every key created under it unrecoverable after the enclave restarts.
 */
async function store(d: BootDeps, record: KeyringRecordWire, audit?: readonly Uint8Array[]): Promise<void> {
  try {
    await d.keystore.putKeyring(record, audit);
  } catch (e) {
    throw new ParentError('PARENT_KEYRING_LOCKED', `the new keyring ${record.keyringId} could not be stored: ${(e as Error).message}`, {
      cause: e,
      hint: 'fix the keystore (disk full? read-only?); the parent retries storing it, and no key is created under this keyring until then',
    });
  }
}

/** The keyring the enclave already holds, if any (null from an enclave without `keyring.current`). */
async function currentKeyring(call: EnclaveCall): Promise<KeyringRecordWire | null> {
  let res;
  try {
    res = asRecord(await call('keyring.current', {}), 'keyring.current result');
  } catch (e) {
    if ((e as { code?: unknown }).code === 'METHOD_NOT_FOUND') return null;
    throw e;
  }
  if (res.record === null) return null;
  try {
    return asKeyringRecord(res.record, 'keyring.current result.record');
  } catch (e) {
    throw new ParentError('PARENT_BAD_ENCLAVE_RESPONSE', (e as Error).message, { cause: e });
  }
}
