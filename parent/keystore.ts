/**
 * The parent's keystore: ciphertext and public data only — keyring records
 * (KMS ciphertext of the data key), wrapped key blobs, the enclave's signed
 * audit records and sealed state. Two backends behind one schema
 * (docs/keystore.md): an embedded SQLite file (`sqlite:PATH` or a plain path,
 * the default) and PostgreSQL (`postgres://…`, shared by a fleet of instances,
 * docs/scale-out.md). A write is acknowledged only once it is committed.
 *
 * Nothing here can sign or decrypt: a thief of the store gets blobs that only
 * an attested enclave with the keyring's CMK can open.
 *
 * Several instances on one store share the keys and the keyring; each enclave
 * has its own audit chain and its own sealed-state sequence, kept apart by the
 * instance id (--instance-id).
 */
import { parseRecordOnce } from '../common/audit/record.js';
import type { KeyKind, KeyRecord, KeyringRecordWire } from '../common/protocol/enclave-api.js';
import { checkReadable, migrate } from './keystore-migrations.js';
import { isPostgresUrl, openPgDb } from './keystore-pg.js';
import { KeystoreError, type SqlDb, type SqlExec } from './keystore-sql.js';
import { openSqliteDb } from './keystore-sqlite.js';
import { KeyRowCache } from './key-row-cache.js';
import { AuditTable } from './keystore-audit-table.js';
import { type FleetLineage, type FleetMember, type FleetRecord, joinFleetTable, stateTables, touchFleetTable } from './keystore-state-tables.js';

export { KeystoreError } from './keystore-sql.js';
export type { FleetLineage, FleetMember, FleetRecord } from './keystore-state-tables.js';

export interface StoredKey extends KeyRecord {
  label: string | null;
  createdAt: string;
}

export interface Keystore {
  /** Where it is (a file path, or the PostgreSQL URL without its password). */
  readonly path: string;
  readonly backend: 'sqlite' | 'postgres';
  /** This enclave's audit chain and sealed state (docs/scale-out.md). */
  readonly instanceId: string;
  /** `audit`: signed audit records written in the same transaction (docs/audit.md). */
  putKeyring(r: KeyringRecordWire, audit?: readonly Uint8Array[]): Promise<void>;
  /** The active keyring (the most recently created one that is not retired). */
  activeKeyring(): Promise<KeyringRecordWire | undefined>;
  replaceKeyring(r: KeyringRecordWire, audit?: readonly Uint8Array[]): Promise<void>;
  /**
   * Stores a key with its audit records, and — given a client `requestId` — the
   * request id → key mapping, all in one transaction. A requestId that is
   * already stored fails with KEYSTORE_REQUEST_ID_TAKEN and stores nothing.
   */
  putKey(k: KeyRecord, label?: string, audit?: readonly Uint8Array[], requestId?: string): Promise<StoredKey>;
  /** The key a signer_createKey with this requestId made, if any. */
  getKeyByRequestId(requestId: string): Promise<StoredKey | undefined>;
  /** Persists signed audit records (all or none), durably, before the caller releases anything. */
  appendAuditRecords(records: readonly Uint8Array[]): Promise<void>;
  /** This instance's stored record with the highest seq: the head to show its enclave. */
  auditHead(): Promise<Uint8Array | undefined>;
  /** This instance's stored records in seq order, read page by page (a chain can be long). */
  iterateAuditRecords(fromSeq?: number): AsyncIterableIterator<{ seq: number; record: Uint8Array }>;
  countAuditRecords(): Promise<number>;
  /** This instance's stored record at `seq`, if any. */
  getAuditRecord(seq: number): Promise<Uint8Array | undefined>;
  /** The first stored record of an audit key: its hand-over, which carries the attestation binding it. */
  auditKeyFirstRecord(auditKey: Uint8Array): Promise<Uint8Array | undefined>;
  /** The same, from memory only (filled by writes and lookups): for the synchronous inline receipt. */
  cachedAuditKeyFirstRecord(auditKey: Uint8Array): Uint8Array | undefined;
  getKey(keyId: string): Promise<StoredKey | undefined>;
  /** The key.create record that made this key (any instance's chain), when the store has one. */
  keyCreateRecord(keyId: string): Promise<Uint8Array | undefined>;
  getKeyByAddress(address: string): Promise<StoredKey | undefined>;
  listKeys(): Promise<StoredKey[]>;
  countKeys(): Promise<number>;
  /** The enclave's latest sealed state record (docs/principals.md "Sealed state"): ciphertext only. */
  getSealedState?(keyringId: string): Promise<unknown>;
  /** Stores it durably before the caller releases the signature it came with. */
  putSealedState?(keyringId: string, sequence: number, record: unknown): Promise<void>;
  /** Fleet scope: the position of the keyring's shared record (no ciphertext: read before every decision). */
  getFleetHead?(keyringId: string): Promise<{ sequence: number; nonce: string } | undefined>;
  getFleetState?(keyringId: string): Promise<FleetRecord | undefined>;
  /**
   * Fleet scope, compare-and-swap in one statement (docs/scale-out.md "Limits across instances"):
   *   stored    the row held the lineage's base, or an older record of the same lineage;
   *   covered   the row already holds a newer record of the same lineage (which includes this one);
   *   conflict  anything else: another instance stored first — the caller withholds its answer.
   */
  putFleetState?(keyringId: string, r: FleetRecord, lineage: FleetLineage): Promise<'stored' | 'covered' | 'conflict'>;
  /**
   * Registers this instance in the fleet; refuses (KEYSTORE_FLEET_MISMATCH, naming both) when
   * another instance seen within `liveMs` serves a different policy or manifest.
   */
  joinFleet(m: FleetMember, liveMs: number): Promise<void>;
  /**
   * Runs `fn` under a lock all instances on this store share (docs/scale-out.md): the first boot
   * of a fleet makes one keyring, however many instances start at once.
   */
  exclusively<T>(fn: () => Promise<T>): Promise<T>;
  /** Refreshes this instance's fleet entry (its liveness). */
  touchFleet(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenKeystoreOptions {
  readonly?: boolean;
  /** Default "default": the single instance of a single-host deployment. */
  instanceId?: string;
  log?: (line: string) => void;
}

const INSTANCE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

export function checkInstanceId(id: string): string {
  if (!INSTANCE_ID.test(id)) throw new KeystoreError('KEYSTORE_CONFIG', `instance id ${JSON.stringify(id.slice(0, 80))} must be 1..64 of A-Z a-z 0-9 _ . -`);
  return id;
}

/** `postgres://…` → PostgreSQL; `sqlite:PATH` or a plain path → the embedded SQLite file. */
export function keystoreBackendOf(spec: string): { backend: 'postgres'; url: string } | { backend: 'sqlite'; path: string } {
  if (isPostgresUrl(spec)) return { backend: 'postgres', url: spec };
  if (spec.startsWith('sqlite:')) return { backend: 'sqlite', path: spec.slice('sqlite:'.length) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new KeystoreError('KEYSTORE_CONFIG', `--keystore: unsupported scheme in ${JSON.stringify(spec.split('://')[0])}://…`, { hint: 'use postgres://…, sqlite:PATH or a file path' });
  }
  return { backend: 'sqlite', path: spec };
}

/** Opens (and, unless read-only, migrates) the keystore `spec` names. */
export async function openKeystore(spec: string, opts: OpenKeystoreOptions = {}): Promise<Keystore> {
  const instanceId = checkInstanceId(opts.instanceId ?? 'default');
  const b = keystoreBackendOf(spec);
  const db = b.backend === 'postgres' ? await openPgDb(b.url, { readonly: opts.readonly === true, ...(opts.log ? { log: opts.log } : {}) }) : openSqliteDb(b.path, { readonly: opts.readonly === true });
  try {
    if (opts.readonly) await checkReadable(db);
    else await migrate(db, opts.log);
    return await sqlKeystore(db, instanceId, opts.readonly === true);
  } catch (e) {
    await db.close().catch(() => undefined);
    throw e;
  }
}

interface KeyRow {
  key_id: string;
  kind: KeyKind;
  keyring_id: string;
  public_key: string;
  address: string | null;
  xpub: string | null;
  fingerprint: string | null;
  blob: Buffer;
  label: string | null;
  created_at: string;
}

function fromRow(r: KeyRow): StoredKey {
  const k: StoredKey = {
    keyId: r.key_id,
    kind: r.kind,
    keyringId: r.keyring_id,
    publicKey: r.public_key,
    blob: new Uint8Array(r.blob),
    label: r.label,
    createdAt: r.created_at,
  };
  if (r.address !== null) k.address = r.address;
  if (r.xpub !== null) k.xpub = r.xpub;
  if (r.fingerprint !== null) k.fingerprint = r.fingerprint;
  return k;
}

/** The seq of the key.create record for `keyId` among a key's records (parsed once already by the persister). */
function keyCreateSeq(records: readonly Uint8Array[] | undefined, keyId: string): number | undefined {
  for (const bytes of records ?? []) {
    const b = parseRecordOnce(bytes).body;
    if (b.kind === 'key.create' && b.decision === 'done' && b.keyId === keyId) return b.seq;
  }
  return undefined;
}

const KEY_COLUMNS = 'key_id, kind, keyring_id, public_key, address, xpub, fingerprint, blob, label, created_at';

async function sqlKeystore(db: SqlDb, instanceId: string, readonly: boolean): Promise<Keystore> {
  const audit = await AuditTable.open(db, instanceId);
  // A store opened read-only may predate migration 4.
  const hasKeyAudit = (await db.columns('key_audit')).length > 0;

  /** Runs a change and its audit records as one transaction: both are durable, or neither. */
  const withAudit = async <T>(records: readonly Uint8Array[] | undefined, fn: (t: SqlExec) => Promise<T>): Promise<T> => {
    const rows = audit.rows(records ?? []);
    if (readonly) throw new KeystoreError('KEYSTORE_UNAVAILABLE', 'keystore write failed: opened read-only', { hint: 'the keystore is open read-only (--keystore-readonly)' });
    const out = await db.tx(async function changeWithRecords(t) {
      const o = await fn(t);
      await audit.insert(t, rows);
      return o;
    });
    audit.committed(rows);
    return out;
  };

  const one = async (sql: string, args: unknown[]) => {
    const r = await db.get<KeyRow>(sql, args);
    return r ? fromRow(r) : undefined;
  };
  const byId = new KeyRowCache<StoredKey>();

  return {
    path: db.describe,
    backend: db.dialect,
    instanceId,
    putKeyring: (r, records) =>
      withAudit(records, async (t) => {
        await t.run('INSERT INTO keyrings (keyring_id, kms_key_id, data_key_ciphertext, created_at, seq) VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM keyrings))', [
          r.keyringId,
          r.kmsKeyId,
          Buffer.from(r.dataKeyCiphertext),
          r.createdAt,
        ]);
      }),
    replaceKeyring: (r, records) =>
      withAudit(records, async (t) => {
        const n = await t.run('UPDATE keyrings SET kms_key_id = ?, data_key_ciphertext = ? WHERE keyring_id = ?', [r.kmsKeyId, Buffer.from(r.dataKeyCiphertext), r.keyringId]);
        if (n !== 1) throw new KeystoreError('KEYSTORE_NOT_FOUND', `no keyring ${r.keyringId}`);
      }),
    activeKeyring: async () => {
      const row = await db.get<{ keyring_id: string; kms_key_id: string; data_key_ciphertext: Buffer; created_at: string }>(
        'SELECT keyring_id, kms_key_id, data_key_ciphertext, created_at FROM keyrings ORDER BY seq DESC LIMIT 1',
      );
      if (!row) return undefined;
      return {
        format: 'enclave-signer/keyring' as const,
        version: 1 as const,
        keyringId: row.keyring_id,
        kmsKeyId: row.kms_key_id,
        dataKeyCiphertext: new Uint8Array(row.data_key_ciphertext),
        createdAt: row.created_at,
      };
    },
    putKey: (k, label, records, requestId) =>
      withAudit(records, async (t) => {
        const createdAt = new Date().toISOString();
        if (requestId !== undefined) {
          // Checked first inside the transaction; the primary key catches a racing twin on another instance.
          const taken = await t.get('SELECT key_id FROM key_requests WHERE request_id = ?', [requestId]);
          if (taken) throw new KeystoreError('KEYSTORE_REQUEST_ID_TAKEN', `requestId ${JSON.stringify(requestId)} already made a key`);
        }
        await t.run(`INSERT INTO keys (${KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
          k.keyId,
          k.kind,
          k.keyringId,
          k.publicKey,
          k.address ?? null,
          k.xpub ?? null,
          k.fingerprint ?? null,
          Buffer.from(k.blob),
          label ?? null,
          createdAt,
        ]);
        if (requestId !== undefined) await t.run('INSERT INTO key_requests (request_id, key_id, created_at) VALUES (?, ?, ?)', [requestId, k.keyId, createdAt]);
        const made = keyCreateSeq(records, k.keyId);
        if (made !== undefined) await t.run('INSERT INTO key_audit (key_id, instance_id, seq) VALUES (?, ?, ?)', [k.keyId, instanceId, made]);
        return { ...k, label: label ?? null, createdAt };
      }),
    getKeyByRequestId: (id) => one(`SELECT ${KEY_COLUMNS.split(', ').map((c) => `k.${c}`).join(', ')} FROM key_requests r JOIN keys k ON k.key_id = r.key_id WHERE r.request_id = ?`, [id]),
    getKey: async (id) => {
      const hit = byId.get(id);
      if (hit) return hit;
      const k = await one(`SELECT ${KEY_COLUMNS} FROM keys WHERE key_id = ?`, [id]);
      if (k) byId.put(k);
      return k;
    },
    keyCreateRecord: async (id) => {
      if (!hasKeyAudit) return undefined;
      const r = await db.get<{ record: Buffer }>('SELECT a.record FROM key_audit k JOIN audit_records a ON a.instance_id = k.instance_id AND a.seq = k.seq WHERE k.key_id = ?', [id]);
      return r ? new Uint8Array(r.record) : undefined;
    },
    getKeyByAddress: (a) => one(`SELECT ${KEY_COLUMNS} FROM keys WHERE lower(address) = lower(?)`, [a]),
    listKeys: async () => (await db.all<KeyRow>(`SELECT ${KEY_COLUMNS} FROM keys ORDER BY created_at, key_id`)).map(fromRow),
    countKeys: async () => Number((await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM keys'))?.n ?? 0),
    // A read-only keystore stores no sealed state, per instance or shared: answers that carry some
    // are withheld (fail closed).
    ...(readonly ? {} : stateTables(db, instanceId)),
    appendAuditRecords: (records) => withAudit(records, async () => undefined),
    auditHead: () => audit.head(),
    iterateAuditRecords: (fromSeq = 0) => audit.iterate(fromSeq),
    countAuditRecords: () => audit.count(),
    getAuditRecord: (seq) => audit.get(seq),
    auditKeyFirstRecord: (key) => audit.firstRecord(key),
    cachedAuditKeyFirstRecord: (key) => audit.cachedFirstRecord(key),
    exclusively: (fn) => db.exclusively(fn),
    joinFleet: async (m, liveMs) => {
      if (!readonly) await joinFleetTable(db, instanceId, m, liveMs);
    },
    touchFleet: async () => {
      if (!readonly) await touchFleetTable(db, instanceId);
    },
    close: () => db.close(),
  };
}
