/**
 * The keystore's audit table: records stored as the exact signed bytes, in
 * the same transaction as the key change they describe, never silently
 * overwritten, and streamed back in seq order for `audit verify`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { KeyRecord } from '../common/protocol/enclave-api.js';
import { buildChain } from '../test/audit-chain.js';
import { openKeystore } from './keystore.js';

const dir = mkdtempSync(join(tmpdir(), 'es-audit-ks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `ks-${n++}.db`);

const keyring = { format: 'enclave-signer/keyring' as const, version: 1 as const, keyringId: 'kr-1', kmsKeyId: 'arn:aws:kms:eu-west-1:000000000000:key/x', dataKeyCiphertext: Uint8Array.of(1, 2, 3), createdAt: '2026-01-01T00:00:00.000Z' };
const key = (id: string): KeyRecord => ({ keyId: id, kind: 'secp256k1', keyringId: 'kr-1', publicKey: `04${id}`, address: `0x${id.padStart(40, '0')}`, blob: Uint8Array.of(9, 9) }) as KeyRecord;

describe('keystore audit_records', () => {
  it('stores the exact signed bytes and streams them back in seq order; the head is the last one', async () => {
    const { records } = await buildChain(5);
    const ks = openKeystore(fresh());
    ks.appendAuditRecords(records.slice(0, 2));
    ks.appendAuditRecords(records.slice(2));
    expect(ks.countAuditRecords()).toBe(6);
    expect([...ks.iterateAuditRecords()].map((r) => [r.seq, Buffer.from(r.record).equals(Buffer.from(records[r.seq]!))])).toEqual(records.map((_, i) => [i, true]));
    expect(Buffer.from(ks.auditHead()!).equals(Buffer.from(records[5]!))).toBe(true);
    expect([...ks.iterateAuditRecords(4)].map((r) => r.seq)).toEqual([4, 5]);
    ks.close();
  });

  it('a retried persist of the same bytes is a no-op; other bytes at a stored seq are refused (fork), not overwritten', async () => {
    const { records } = await buildChain(2);
    const other = await buildChain(2);
    const ks = openKeystore(fresh());
    ks.appendAuditRecords(records);
    ks.appendAuditRecords([records[2]!]);
    expect(() => ks.appendAuditRecords([other.records[2]!])).toThrow(expect.objectContaining({ code: 'KEYSTORE_AUDIT_CONFLICT' }));
    expect(Buffer.from(ks.auditHead()!).equals(Buffer.from(records[2]!))).toBe(true);
    expect(() => ks.appendAuditRecords([Uint8Array.of(1, 2, 3)])).toThrow(expect.objectContaining({ code: 'KEYSTORE_AUDIT_RECORD' }));
    ks.close();
  });

  it('a key and its audit record commit together: if either fails, neither is stored', async () => {
    const { log, records } = await buildChain(0);
    const ks = openKeystore(fresh());
    ks.putKeyring(keyring, records);
    const r1 = log.append({ kind: 'key.create', decision: 'done', keyId: 'k1' });
    ks.putKey(key('k1'), 'one', [r1.bytes]);
    expect(ks.getKey('k1')).toBeDefined();
    expect(ks.countAuditRecords()).toBe(2);
    // The audit write fails (a conflicting record at seq 1): the key is not stored either.
    const conflicting = (await buildChain(1)).records[1]!;
    expect(() => ks.putKey(key('k2'), 'two', [conflicting])).toThrow(expect.objectContaining({ code: 'KEYSTORE_AUDIT_CONFLICT' }));
    expect(ks.getKey('k2')).toBeUndefined();
    // The key write fails (duplicate id): its audit record is not stored either.
    const r2 = log.append({ kind: 'key.create', decision: 'done', keyId: 'k1' });
    expect(() => ks.putKey(key('k1'), 'again', [r2.bytes])).toThrow(expect.objectContaining({ code: 'KEYSTORE_UNAVAILABLE' }));
    expect(ks.countAuditRecords()).toBe(2);
    ks.close();
  });

  it('a read-only keystore refuses the audit write with a clear error (the caller must not release the result)', async () => {
    const { log, records } = await buildChain(1);
    const path = fresh();
    openKeystore(path).close();
    const ro = openKeystore(path, { readonly: true });
    let err: unknown;
    try {
      ro.appendAuditRecords(records);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'KEYSTORE_UNAVAILABLE', hint: expect.stringContaining('read-only') });
    expect(ro.countAuditRecords()).toBe(0);
    ro.close();
    log.close();
  });

  it('an older keystore without the audit table reads as no records when opened read-only', () => {
    const path = fresh();
    const db = new Database(path);
    db.exec("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '1'); CREATE TABLE keyrings (keyring_id TEXT PRIMARY KEY, kms_key_id TEXT, data_key_ciphertext BLOB, created_at TEXT, seq INTEGER); CREATE TABLE keys (key_id TEXT PRIMARY KEY, kind TEXT, keyring_id TEXT, public_key TEXT, address TEXT, xpub TEXT, fingerprint TEXT, blob BLOB, label TEXT, created_at TEXT);");
    db.close();
    const ro = openKeystore(path, { readonly: true });
    expect([...ro.iterateAuditRecords()]).toEqual([]);
    expect(ro.auditHead()).toBeUndefined();
    ro.close();
  });
});
