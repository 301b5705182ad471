/**
 * The keystore contract, run against BOTH backends (docs/keystore.md): the
 * embedded SQLite file and PostgreSQL (a throwaway cluster from
 * test/pg-cluster.ts, a database per test). Audit records stored as the exact
 * signed bytes, in the same transaction as the key change they describe,
 * never silently overwritten, streamed back in seq order; migrations run in
 * order and recorded; a newer schema refused before anything is written;
 * idempotent key creation under a request id; one audit chain and sealed
 * state per instance, keys and keyring shared; the mixed-fleet check.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRecord, parseRecordOnce } from '../common/audit/record.js';
import type { KeyRecord } from '../common/protocol/enclave-api.js';
import { collect } from '../test/async.js';
import { buildChain, digest } from '../test/audit-chain.js';
import { APP_PASSWORD, PG_AVAILABLE, startPgCluster, type PgCluster } from '../test/pg-cluster.js';
import { openKeystore } from './keystore.js';
import { SCHEMA_VERSION } from './keystore-migrations.js';
import { openPgDb } from './keystore-pg.js';
import { openSqliteDb } from './keystore-sqlite.js';
import type { SqlDb } from './keystore-sql.js';

const dir = mkdtempSync(join(tmpdir(), 'es-ks-contract-'));
let cluster: PgCluster | undefined;
beforeAll(async () => {
  if (PG_AVAILABLE) cluster = await startPgCluster();
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});
let n = 0;

const keyring = { format: 'enclave-signer/keyring' as const, version: 1 as const, keyringId: 'kr-1', kmsKeyId: 'arn:aws:kms:eu-west-1:000000000000:key/x', dataKeyCiphertext: Uint8Array.of(1, 2, 3), createdAt: '2026-01-01T00:00:00.000Z' };
const key = (id: string): KeyRecord => ({ keyId: id, kind: 'secp256k1', keyringId: 'kr-1', publicKey: `04${id}`, address: `0x${id.padStart(40, '0')}`, blob: Uint8Array.of(9, 9) }) as KeyRecord;

interface Backend {
  name: 'sqlite' | 'postgres';
  /** A fresh, empty store. */
  fresh(): Promise<string>;
  /** The raw SQL handle on a store (to plant rows as another release would). */
  raw(spec: string): Promise<SqlDb>;
}

const backends: Backend[] = [
  { name: 'sqlite', fresh: async () => join(dir, `ks-${n++}.db`), raw: async (p) => openSqliteDb(p) },
  { name: 'postgres', fresh: () => cluster!.createDatabase(), raw: (u) => openPgDb(u) },
];

describe.each(backends)('keystore contract: $name', (b) => {
  const skip = b.name === 'postgres' && !PG_AVAILABLE;

  it.skipIf(skip)('stores the exact signed bytes and streams them back in seq order; the head is the last one', async () => {
    const { records } = await buildChain(5);
    const ks = await openKeystore(await b.fresh());
    await ks.appendAuditRecords(records.slice(0, 2));
    await ks.appendAuditRecords(records.slice(2));
    expect(await ks.countAuditRecords()).toBe(6);
    expect((await collect(ks.iterateAuditRecords())).map((r) => [r.seq, Buffer.from(r.record).equals(Buffer.from(records[r.seq]!))])).toEqual(records.map((_, i) => [i, true]));
    expect(Buffer.from((await ks.auditHead())!).equals(Buffer.from(records[5]!))).toBe(true);
    expect((await collect(ks.iterateAuditRecords(4))).map((r) => r.seq)).toEqual([4, 5]);
    expect(Buffer.from((await ks.getAuditRecord(3))!).equals(Buffer.from(records[3]!))).toBe(true);
    await ks.close();
  });

  it.skipIf(skip)('a retried persist of the same bytes is a no-op; other bytes at a stored seq are refused (fork), not overwritten', async () => {
    const { records } = await buildChain(2);
    const other = await buildChain(2);
    const ks = await openKeystore(await b.fresh());
    await ks.appendAuditRecords(records);
    await ks.appendAuditRecords([records[2]!]);
    await expect(ks.appendAuditRecords([other.records[2]!])).rejects.toMatchObject({ code: 'KEYSTORE_AUDIT_CONFLICT' });
    expect(Buffer.from((await ks.auditHead())!).equals(Buffer.from(records[2]!))).toBe(true);
    await expect(ks.appendAuditRecords([Uint8Array.of(1, 2, 3)])).rejects.toMatchObject({ code: 'KEYSTORE_AUDIT_RECORD' });
    await ks.close();
  });

  it.skipIf(skip)('a group of 100 (statements of 64, 32 and 4 rows): stored seqs among them are checked one by one; a fork stores nothing of its group', async () => {
    const { records } = await buildChain(120);
    const other = await buildChain(120);
    const ks = await openKeystore(await b.fresh());
    await ks.appendAuditRecords(records.slice(0, 10));
    // Seqs 5..9 are stored already with the same bytes (a retry): no-ops, the rest go in.
    await ks.appendAuditRecords(records.slice(5, 105));
    expect(await ks.countAuditRecords()).toBe(105);
    // A retried group whose seq 102 comes from another chain (a fork), inside a 16-row statement
    // that also carries new seqs: refused, naming the seq, and the group's new rows are not kept.
    const forked = [...records.slice(100, 102), other.records[102]!, ...records.slice(103, 121)];
    await expect(ks.appendAuditRecords(forked)).rejects.toMatchObject({ code: 'KEYSTORE_AUDIT_CONFLICT', message: expect.stringContaining('seq 102') });
    expect(await ks.countAuditRecords()).toBe(105);
    await ks.appendAuditRecords(records.slice(105));
    expect((await collect(ks.iterateAuditRecords())).every((r) => Buffer.from(r.record).equals(Buffer.from(records[r.seq]!)))).toBe(true);
    await ks.close();
  });

  it.skipIf(skip)('records changed in place after the persister parsed them are parsed again: the stored hash is of the stored bytes; bytes that no longer parse are refused', async () => {
    // The keystore reuses the persister's parse of the same bytes object (parseRecordOnce); a
    // parse remembered without its content would store one record's bytes under another's hash.
    const { log, records } = await buildChain(3);
    const spec = await b.fresh();
    const ks = await openKeystore(spec);
    await ks.appendAuditRecords(records.slice(0, 2));
    const signed = records[2]!; // a sign record of principal "backend"
    expect(parseRecordOnce(signed).body.principal).toBe('backend');
    signed[Buffer.from(signed).indexOf('backend')] = 'c'.charCodeAt(0); // still well-formed, another payload
    await ks.appendAuditRecords([signed]);
    const raw = await b.raw(spec);
    const row = await raw.get<{ hash: Buffer; record: Buffer }>('SELECT hash, record FROM audit_records WHERE seq = ?', [2]);
    await raw.close();
    expect(Buffer.from(row!.record).equals(Buffer.from(signed))).toBe(true);
    expect(Buffer.from(row!.hash).equals(Buffer.from(parseRecord(Uint8Array.from(signed)).hash))).toBe(true);
    expect(parseRecordOnce(signed).body.principal).toBe('cackend');
    const next = records[3]!;
    parseRecordOnce(next);
    next[0] = 0x85; // no longer a COSE_Sign1 array of 4
    await expect(ks.appendAuditRecords([next])).rejects.toMatchObject({ code: 'KEYSTORE_AUDIT_RECORD' });
    expect(await ks.countAuditRecords()).toBe(3);
    await ks.close();
    log.close();
  });

  it.skipIf(skip)('a key and its audit record commit together: if either fails, neither is stored', async () => {
    const { log, records } = await buildChain(0);
    const ks = await openKeystore(await b.fresh());
    await ks.putKeyring(keyring, records);
    const r1 = log.append({ kind: 'key.create', decision: 'done', keyId: 'k1' });
    await ks.putKey(key('k1'), 'one', [r1.bytes]);
    expect(await ks.getKey('k1')).toBeDefined();
    expect(await ks.countAuditRecords()).toBe(2);
    // The audit write fails (a conflicting record at seq 1): the key is not stored either.
    const conflicting = (await buildChain(1)).records[1]!;
    await expect(ks.putKey(key('k2'), 'two', [conflicting])).rejects.toMatchObject({ code: 'KEYSTORE_AUDIT_CONFLICT' });
    expect(await ks.getKey('k2')).toBeUndefined();
    // The key write fails (duplicate id): its audit record is not stored either.
    const r2 = log.append({ kind: 'key.create', decision: 'done', keyId: 'k1' });
    await expect(ks.putKey(key('k1'), 'again', [r2.bytes])).rejects.toMatchObject({ code: 'KEYSTORE_UNAVAILABLE' });
    expect(await ks.countAuditRecords()).toBe(2);
    expect((await ks.getKeyByAddress(key('k1').address!.toUpperCase().replace('0X', '0x')))?.keyId).toBe('k1');
    expect((await ks.listKeys()).map((k) => k.label)).toEqual(['one']);
    expect(await ks.countKeys()).toBe(1);
    expect((await ks.activeKeyring())?.keyringId).toBe('kr-1');
    await ks.close();
  });

  it.skipIf(skip)("a key's key.create record is found by its key id, by this instance and by another on the store; a key stored without one has none", async () => {
    const { log, records } = await buildChain(0);
    const spec = await b.fresh();
    const ks = await openKeystore(spec);
    await ks.putKeyring(keyring, records);
    const other = log.append({ kind: 'keyring.unlock', decision: 'done', keyId: 'kr-1' });
    const made = log.append({ kind: 'key.create', decision: 'done', keyId: 'k1', resultDigest: digest('public data of k1') });
    // In a group with another record (group commit): the key's own record is the one remembered.
    await ks.putKey(key('k1'), 'one', [other.bytes, made.bytes]);
    await ks.putKey(key('k2'), 'two');
    expect(Buffer.from((await ks.keyCreateRecord('k1'))!).equals(Buffer.from(made.bytes))).toBe(true);
    expect(await ks.keyCreateRecord('k2')).toBeUndefined();
    expect(await ks.keyCreateRecord('nope')).toBeUndefined();
    const second = await openKeystore(spec, { instanceId: 'second' });
    expect(Buffer.from((await second.keyCreateRecord('k1'))!).equals(Buffer.from(made.bytes))).toBe(true);
    await second.close();
    await ks.close();
    log.close();
  });

  it.skipIf(skip)('a read-only keystore refuses the audit write with a clear error (the caller must not release the result)', async () => {
    const { log, records } = await buildChain(1);
    const spec = await b.fresh();
    await (await openKeystore(spec)).close();
    const ro = await openKeystore(spec, { readonly: true });
    await expect(ro.appendAuditRecords(records)).rejects.toMatchObject({ code: 'KEYSTORE_UNAVAILABLE', hint: expect.stringContaining('read-only') });
    expect(await ro.countAuditRecords()).toBe(0);
    expect(ro.putSealedState).toBeUndefined();
    await ro.close();
    log.close();
  });

  it.skipIf(skip)('migrations run in order and are recorded; opening again applies nothing', async () => {
    const spec = await b.fresh();
    await (await openKeystore(spec)).close();
    const lines: string[] = [];
    await (await openKeystore(spec, { log: (l) => lines.push(l) })).close();
    expect(lines.filter((l) => l.includes('migration'))).toEqual([]);
    const raw = await b.raw(spec);
    const rows = await raw.all<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');
    expect(rows.map((r) => Number(r.version))).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
    expect((await raw.get<{ v: string }>("SELECT v FROM meta WHERE k = 'schema_version'"))?.v).toBe(String(SCHEMA_VERSION));
    for (const t of ['keyrings', 'keys', 'audit_records', 'sealed_state', 'key_requests', 'fleet_members']) expect((await raw.columns(t)).length).toBeGreaterThan(0);
    expect(await raw.columns('audit_records')).toEqual(expect.arrayContaining(['instance_id', 'seq', 'record']));
    expect(await raw.columns('sealed_state')).toEqual(expect.arrayContaining(['instance_id', 'keyring_id', 'sequence', 'record']));
    await raw.close();
  });

  it.skipIf(skip)('bad input: a schema from a newer version is a clear startup error, and nothing is written', async () => {
    const spec = await b.fresh();
    const raw = await b.raw(spec);
    await raw.run('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
    await raw.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [SCHEMA_VERSION + 7, 'from the future', 'x']);
    for (const readonly of [false, true]) {
      await expect(openKeystore(spec, { readonly })).rejects.toMatchObject({
        code: 'KEYSTORE_VERSION',
        message: expect.stringMatching(new RegExp(`schema version ${SCHEMA_VERSION + 7} is newer than this build's \\(${SCHEMA_VERSION}\\); nothing was written`)),
      });
    }
    // Nothing written: no table of ours was created, the future row is alone.
    for (const t of ['meta', 'keyrings', 'keys', 'audit_records']) expect(await raw.columns(t)).toEqual([]);
    expect((await raw.all('SELECT version FROM schema_migrations')).length).toBe(1);
    await raw.close();
  });

  it.skipIf(skip)('signer_createKey requestId: the mapping is stored with the key; a second key under it stores nothing', async () => {
    const { log, records } = await buildChain(0);
    const ks = await openKeystore(await b.fresh());
    await ks.putKeyring(keyring, records);
    const r1 = log.append({ kind: 'key.create', decision: 'done', keyId: 'k1' });
    await ks.putKey(key('k1'), 'one', [r1.bytes], 'req-1');
    expect((await ks.getKeyByRequestId('req-1'))?.keyId).toBe('k1');
    expect(await ks.getKeyByRequestId('req-2')).toBeUndefined();
    const r2 = log.append({ kind: 'key.create', decision: 'done', keyId: 'k2' });
    await expect(ks.putKey(key('k2'), 'two', [r2.bytes], 'req-1')).rejects.toMatchObject({ code: 'KEYSTORE_REQUEST_ID_TAKEN' });
    expect(await ks.getKey('k2')).toBeUndefined();
    expect(await ks.countAuditRecords()).toBe(2);
    await ks.close();
  });

  it.skipIf(skip)('two handles racing one requestId store exactly one key', async () => {
    const spec = await b.fresh();
    const { log, records } = await buildChain(0);
    const a = await openKeystore(spec);
    const c = await openKeystore(spec, { instanceId: 'other' });
    await a.putKeyring(keyring);
    await a.appendAuditRecords(records);
    const ra = log.append({ kind: 'key.create', decision: 'done', keyId: 'ka' });
    const results = await Promise.allSettled([a.putKey(key('ka'), 'a', [ra.bytes], 'race'), c.putKey(key('kc'), 'c', [], 'race')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await a.countKeys()).toBe(1);
    expect((await c.getKeyByRequestId('race'))?.keyId).toBe((await a.listKeys())[0]!.keyId);
    await a.close();
    await c.close();
  });

  it.skipIf(skip)('a key found by id is served from memory afterwards (rows never change); a key not found is looked up again, so one another instance adds is seen', async () => {
    const spec = await b.fresh();
    const { records } = await buildChain(0);
    const a = await openKeystore(spec);
    const other = await openKeystore(spec, { instanceId: 'other' });
    await a.putKeyring(keyring);
    await a.appendAuditRecords(records);
    // Not there yet: undefined, and the miss is not remembered.
    expect(await a.getKey('k2')).toBeUndefined();
    await other.putKey(key('k2'), 'from another instance');
    const found = await a.getKey('k2');
    expect(found).toMatchObject({ keyId: 'k2', label: 'from another instance' });
    // Served from memory: a row edited behind the keystore's back (the product never does) is not
    // read again. What the parent then sends the enclave is the row as it was first read.
    const raw = await b.raw(spec);
    await raw.run("UPDATE keys SET label = 'edited' WHERE key_id = ?", ['k2']);
    expect((await a.getKey('k2'))?.label).toBe('from another instance');
    expect((await other.getKey('k2'))?.label).toBe('edited'); // a handle that had not read it sees the store
    // Callers own what they get: changing it does not change the next answer.
    found!.label = 'changed by a caller';
    (await a.getKey('k2'))!.keyringId = 'changed too';
    expect(await a.getKey('k2')).toMatchObject({ label: 'from another instance', keyringId: 'kr-1' });
    await raw.close();
    await a.close();
    await other.close();
  });

  it.skipIf(skip)('fleet state: one record per keyring, stored by compare-and-swap on the lineage or its base (docs/scale-out.md)', async () => {
    const spec = await b.fresh();
    const one = await openKeystore(spec, { instanceId: 'i1' });
    const two = await openKeystore(spec, { instanceId: 'i2' });
    const rec = (sequence: number, nonce: string) => ({ sequence, nonce, record: { sequence, nonce, c: nonce } });
    const L1 = 'a'.repeat(32);
    const L2 = 'b'.repeat(32);
    const L3 = 'c'.repeat(32);
    expect(await one.getFleetHead!('kr-1')).toBeUndefined();
    // Empty store: the first lineage without a base is stored; a second one is not.
    expect(await one.putFleetState!('kr-1', rec(1, 'n1'), { id: L1, base: null })).toBe('stored');
    expect(await two.putFleetState!('kr-1', rec(1, 'm1'), { id: L2, base: null })).toBe('conflict');
    // The same lineage moves on; a later seal stored first covers an earlier one.
    expect(await one.putFleetState!('kr-1', rec(3, 'n3'), { id: L1, base: null })).toBe('stored');
    expect(await one.putFleetState!('kr-1', rec(2, 'n2'), { id: L1, base: null })).toBe('covered');
    // Another instance took the head over (base = n3) and stores; the old lineage is now refused.
    expect(await two.putFleetState!('kr-1', rec(4, 'm4'), { id: L2, base: { sequence: 3, nonce: 'n3' } })).toBe('stored');
    expect(await one.putFleetState!('kr-1', rec(4, 'n4'), { id: L1, base: null })).toBe('conflict');
    // A base that is no longer the head (someone stored since) is refused.
    expect(await one.putFleetState!('kr-1', rec(4, 'x4'), { id: L3, base: { sequence: 3, nonce: 'n3' } })).toBe('conflict');
    expect(await one.getFleetHead!('kr-1')).toEqual({ sequence: 4, nonce: 'm4' });
    expect(await two.getFleetState!('kr-1')).toEqual(rec(4, 'm4'));
    // Keyrings are apart.
    expect(await one.putFleetState!('kr-2', rec(9, 'z9'), { id: L3, base: null })).toBe('stored');
    expect((await one.getFleetHead!('kr-1'))?.nonce).toBe('m4');
    // Racing swaps from one base: exactly one wins. (Concurrently on PostgreSQL; one after another
    // on SQLite, whose two connections here share one thread — a file serves one host's parent.)
    const swap = (i: number) => (i % 2 ? one : two).putFleetState!('kr-1', rec(5, `r${i}`), { id: String(i).repeat(32), base: { sequence: 4, nonce: 'm4' } });
    const racers: string[] = [];
    if (spec.startsWith('postgres')) racers.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => swap(i)))));
    else for (let i = 0; i < 8; i++) racers.push(await swap(i));
    expect(racers.filter((r) => r === 'stored')).toHaveLength(1);
    expect(racers.filter((r) => r === 'conflict')).toHaveLength(7);
    await one.close();
    await two.close();
  });

  it.skipIf(skip)('several instances on one store: each has its own audit chain and sealed state; keys and keyring are shared', async () => {
    const spec = await b.fresh();
    const one = await openKeystore(spec, { instanceId: 'i1' });
    const two = await openKeystore(spec, { instanceId: 'i2' });
    const c1 = await buildChain(3);
    const c2 = await buildChain(2);
    await one.appendAuditRecords(c1.records);
    await two.appendAuditRecords(c2.records); // the same seqs 0..2: no collision
    expect((await collect(one.iterateAuditRecords())).map((r) => r.seq)).toEqual([0, 1, 2, 3]);
    expect((await collect(two.iterateAuditRecords())).map((r) => r.seq)).toEqual([0, 1, 2]);
    expect(Buffer.from((await two.auditHead())!).equals(Buffer.from(c2.records[2]!))).toBe(true);
    await one.putKeyring(keyring);
    await one.putKey(key('k1'), 'shared');
    expect((await two.activeKeyring())?.keyringId).toBe('kr-1');
    expect((await two.getKey('k1'))?.label).toBe('shared');
    await one.putSealedState!('kr-1', 5, { sequence: 5, c: 'one' });
    await two.putSealedState!('kr-1', 2, { sequence: 2, c: 'two' });
    await one.putSealedState!('kr-1', 6, { sequence: 6, c: 'one' });
    expect(await one.getSealedState!('kr-1')).toEqual({ sequence: 6, c: 'one' });
    expect(await two.getSealedState!('kr-1')).toEqual({ sequence: 2, c: 'two' });
    // The hand-over of either chain is found by its audit key, from any instance.
    const handover = (await two.auditKeyFirstRecord(c1.log.auditKey))!;
    expect(Buffer.from(handover).equals(Buffer.from(c1.records[0]!))).toBe(true);
    await one.close();
    await two.close();
    c1.log.close();
    c2.log.close();
  });

  it.skipIf(skip)('bad input: a mixed fleet (another live instance with another policy or manifest) is refused, naming both', async () => {
    const spec = await b.fresh();
    const one = await openKeystore(spec, { instanceId: 'i1' });
    const two = await openKeystore(spec, { instanceId: 'i2' });
    const A = { policyHash: 'a'.repeat(64), manifestDigest: 'm'.repeat(64) };
    await one.joinFleet(A, 30_000);
    await expect(two.joinFleet({ ...A, policyHash: 'b'.repeat(64) }, 30_000)).rejects.toMatchObject({
      code: 'KEYSTORE_FLEET_MISMATCH',
      message: expect.stringMatching(new RegExp(`instance "i1" serves policy ${'a'.repeat(64)} .* this instance "i2" would serve policy ${'b'.repeat(64)}`)),
    });
    await expect(two.joinFleet({ ...A, manifestDigest: 'n'.repeat(64) }, 30_000)).rejects.toMatchObject({ code: 'KEYSTORE_FLEET_MISMATCH' });
    await two.joinFleet(A, 30_000); // the same policy and manifest: welcome
    await one.touchFleet();
    // An instance that stopped refreshing its entry no longer holds the fleet to its policy (a finished rollout).
    await new Promise((r) => setTimeout(r, 20));
    await one.joinFleet({ ...A, policyHash: 'c'.repeat(64) }, 1);
    await one.close();
    await two.close();
  });
});

describe('keystore: SQLite only', () => {
  it('an older keystore without the audit table reads as no records when opened read-only', async () => {
    const path = join(dir, `old-${n++}.db`);
    const db = new Database(path);
    db.exec("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '1'); CREATE TABLE keyrings (keyring_id TEXT PRIMARY KEY, kms_key_id TEXT, data_key_ciphertext BLOB, created_at TEXT, seq INTEGER); CREATE TABLE keys (key_id TEXT PRIMARY KEY, kind TEXT, keyring_id TEXT, public_key TEXT, address TEXT, xpub TEXT, fingerprint TEXT, blob BLOB, label TEXT, created_at TEXT);");
    db.close();
    const ro = await openKeystore(path, { readonly: true });
    expect(await collect(ro.iterateAuditRecords())).toEqual([]);
    expect(await ro.auditHead()).toBeUndefined();
    await ro.close();
  });

  it('a keystore from before schema_migrations (version 1) is migrated in place: its chain becomes instance "default", nothing lost', async () => {
    const { records } = await buildChain(2);
    const path = join(dir, `v1-${n++}.db`);
    const db = new Database(path);
    db.exec(
      "CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '1'); CREATE TABLE audit_records (seq INTEGER PRIMARY KEY, audit_key BLOB NOT NULL, hash BLOB NOT NULL, record BLOB NOT NULL, stored_at TEXT NOT NULL); CREATE TABLE sealed_state (keyring_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL, record TEXT NOT NULL, stored_at TEXT NOT NULL);",
    );
    for (const [i, r] of records.entries()) db.prepare('INSERT INTO audit_records VALUES (?, ?, ?, ?, ?)').run(i, Buffer.alloc(1), Buffer.alloc(1), Buffer.from(r), 'then');
    db.prepare('INSERT INTO sealed_state VALUES (?, ?, ?, ?)').run('kr-1', 3, JSON.stringify({ sequence: 3 }), 'then');
    db.close();
    const ks = await openKeystore(path);
    expect((await collect(ks.iterateAuditRecords())).map((r) => r.seq)).toEqual([0, 1, 2]);
    expect(await ks.getSealedState!('kr-1')).toEqual({ sequence: 3 });
    await ks.close();
  });

  it('sqlite:PATH is the same embedded backend as a plain path', async () => {
    const path = join(dir, `prefixed-${n++}.db`);
    const ks = await openKeystore(`sqlite:${path}`);
    expect(ks.backend).toBe('sqlite');
    await ks.close();
    expect((await openKeystore(path, { readonly: true })).backend).toBe('sqlite');
  });
});

describe.skipIf(!PG_AVAILABLE)('keystore: PostgreSQL connection errors (bad input at startup)', () => {
  it('wrong credentials: a clear startup error that names the cause, never the password', async () => {
    const db = (await cluster!.createDatabase()).split('/').pop()!.split('?')[0]!;
    const url = cluster!.url(db, 'app', 'not-the-password');
    const err = await openKeystore(url).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'KEYSTORE_AUTH', message: expect.stringMatching(/refused the credentials/) });
    expect(JSON.stringify({ m: (err as Error).message, h: (err as { hint?: string }).hint })).not.toContain('not-the-password');
    // The right password opens it.
    await (await openKeystore(cluster!.url(db, 'app', APP_PASSWORD))).close();
  });

  it('a database that does not exist, an unreachable server, a URL without a database or with a bad option: clear errors', async () => {
    await expect(openKeystore(cluster!.url('no_such_db'))).rejects.toMatchObject({ code: 'KEYSTORE_NOT_FOUND', message: expect.stringMatching(/does not exist/) });
    await expect(openKeystore(`postgres://postgres@localhost/x?host=${encodeURIComponent(join(dir, 'nowhere'))}&connect_timeout_ms=500`)).rejects.toMatchObject({
      code: 'KEYSTORE_UNAVAILABLE',
      message: expect.stringMatching(/cannot connect/),
    });
    await expect(openKeystore('postgres://postgres@localhost')).rejects.toMatchObject({ code: 'KEYSTORE_CONFIG', message: expect.stringMatching(/names no database/) });
    await expect(openKeystore(`${cluster!.url('x')}&pool_max=0`)).rejects.toMatchObject({ code: 'KEYSTORE_CONFIG', message: expect.stringMatching(/pool_max/) });
    await expect(openKeystore(`${cluster!.url('x')}&sslmode=sometimes`)).rejects.toMatchObject({ code: 'KEYSTORE_CONFIG', message: expect.stringMatching(/sslmode/) });
    await expect(openKeystore('mysql://u@h/db')).rejects.toMatchObject({ code: 'KEYSTORE_CONFIG', message: expect.stringMatching(/unsupported scheme/) });
  });
});
