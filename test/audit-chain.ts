/**
 * Test helpers for the audit chain: real enclave audit logs over the
 * simulated NSM and the dev CA, so every hand-over carries a real attestation
 * document that binds its audit key.
 */
import { createHash } from 'node:crypto';
import { createDevCa, type DevCa } from '../dev/ca/dev-ca.js';
import { AuditLog } from '../enclave/audit/log.js';
import { createSimulatedNsm } from '../enclave/nsm/simulated.js';
import Database from 'better-sqlite3';
import { parseRecord, type AuditEntry, type AuditRecordBody } from '../common/audit/record.js';

export const auditCa: DevCa = createDevCa();

export const digest = (s: string): Uint8Array => new Uint8Array(createHash('sha256').update(s).digest());

export async function openEnclaveLog(opts: { lastRecord?: Uint8Array; ca?: DevCa; imageId?: string; policyHash?: Uint8Array | null; now?: () => number } = {}): Promise<AuditLog> {
  const nsm = createSimulatedNsm({ ca: opts.ca ?? auditCa, ...(opts.imageId ? { imageId: opts.imageId } : {}) });
  return AuditLog.open({ nsm, ...(opts.lastRecord ? { lastRecord: opts.lastRecord } : {}), ...(opts.policyHash !== undefined ? { policyHash: opts.policyHash } : {}), ...(opts.now ? { now: opts.now } : {}) });
}

/** The i-th of a varied mix of decisions (every kind but hand-over and policy load). */
export function decision(i: number): AuditEntry {
  const req = digest(`request ${i}`);
  switch (i % 6) {
    case 0:
      return { kind: 'key.create', decision: 'done', principal: 'host', op: 'key.create', keyId: `key-${i}` };
    case 1:
      return { kind: 'sign', decision: 'allowed', principal: 'backend', op: 'personal_sign', keyId: 'key-0', requestDigest: req, rule: 'backend-messages', resultDigest: digest(`result ${i}`) };
    case 2:
      return { kind: 'sign', decision: 'denied', principal: 'host', op: 'eth_signTransaction', keyId: 'key-0', requestDigest: req, rule: 'blocklist' };
    case 3:
      return { kind: 'sign', decision: 'pending', principal: 'backend', op: 'eth_signTransaction', keyId: 'key-0', requestDigest: req, rule: 'eth-large' };
    case 4:
      return { kind: 'approval', decision: i % 12 === 4 ? 'approved' : 'rejected', principal: 'alice', op: 'approve', keyId: 'key-0', requestDigest: req, rule: 'eth-large' };
    default:
      return { kind: 'keyring.unlock', decision: 'done', principal: 'host', op: 'keyring.unlock', keyId: 'keyring-1' };
  }
}

/** Opens a log and appends n decisions; returns all records (hand-over first). */
export async function buildChain(n: number, opts: Parameters<typeof openEnclaveLog>[0] = {}): Promise<{ log: AuditLog; records: Uint8Array[] }> {
  const log = await openEnclaveLog(opts);
  const records = [log.handover.bytes];
  for (let i = 0; i < n; i++) records.push(log.append(decision(i)).bytes);
  return { log, records };
}

/**
 * The decision records a SQLite keystore holds, every instance, each in seq order: what an auditor
 * reads (the tests that once read the enclave's console audit line read these instead).
 */
export function storedRecords(keystorePath: string): AuditRecordBody[] {
  const db = new Database(keystorePath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT record FROM audit_records ORDER BY instance_id, seq').all() as { record: Buffer }[]).map((r) => parseRecord(new Uint8Array(r.record)).body);
  } finally {
    db.close();
  }
}
