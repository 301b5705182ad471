/**
 * The keystore schema, as numbered migrations run in order and recorded in
 * `schema_migrations` (docs/keystore.md "Schema and migrations"). The same
 * list serves SQLite and PostgreSQL; only the binary column type differs.
 *
 * A store whose recorded version is newer than this build knows is refused
 * before anything is written (KEYSTORE_VERSION): an older binary must never
 * write into a schema it does not understand. `meta.schema_version` carries
 * the same number for the builds from before `schema_migrations`, which
 * refuse any version but theirs.
 */
import { KeystoreError, type SqlDb, type SqlExec } from './keystore-sql.js';

interface Migration {
  version: number;
  name: string;
  sql(d: SqlDb['dialect']): string[];
}

const blob = (d: SqlDb['dialect']) => (d === 'postgres' ? 'BYTEA' : 'BLOB');

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial: keyrings, keys, audit_records, sealed_state',
    // IF NOT EXISTS: a SQLite keystore from before schema_migrations is adopted as version 1 unchanged.
    sql: (d) => [
      'CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)',
      `CREATE TABLE IF NOT EXISTS keyrings (
        keyring_id TEXT PRIMARY KEY,
        kms_key_id TEXT NOT NULL,
        data_key_ciphertext ${blob(d)} NOT NULL,
        created_at TEXT NOT NULL,
        seq BIGINT NOT NULL
      )`,
      `CREATE TABLE IF NOT EXISTS keys (
        key_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('secp256k1','bip32-seed')),
        keyring_id TEXT NOT NULL REFERENCES keyrings(keyring_id),
        public_key TEXT NOT NULL,
        address TEXT UNIQUE,
        xpub TEXT,
        fingerprint TEXT,
        blob ${blob(d)} NOT NULL,
        label TEXT,
        created_at TEXT NOT NULL
      )`,
      // The audit chain (docs/audit.md): record = the exact signed bytes the enclave returned;
      // audit_key and hash are derived from them, for queries only.
      `CREATE TABLE IF NOT EXISTS audit_records (
        seq BIGINT PRIMARY KEY,
        audit_key ${blob(d)} NOT NULL,
        hash ${blob(d)} NOT NULL,
        record ${blob(d)} NOT NULL,
        stored_at TEXT NOT NULL
      )`,
      'CREATE INDEX IF NOT EXISTS audit_records_key ON audit_records (audit_key, seq)',
      // The enclave's sealed state (window counters, approvals): ciphertext with its sequence.
      `CREATE TABLE IF NOT EXISTS sealed_state (
        keyring_id TEXT PRIMARY KEY,
        sequence BIGINT NOT NULL,
        record TEXT NOT NULL,
        stored_at TEXT NOT NULL
      )`,
    ],
  },
  {
    version: 2,
    name: 'instances (own audit chain and sealed state per enclave), key request ids, fleet members',
    sql: (d) => [
      // Several enclaves on one store: each has its own audit chain and sealed-state sequence.
      ...(d === 'postgres'
        ? [
            "ALTER TABLE audit_records ADD COLUMN instance_id TEXT NOT NULL DEFAULT 'default'",
            'ALTER TABLE audit_records DROP CONSTRAINT audit_records_pkey',
            'ALTER TABLE audit_records ADD PRIMARY KEY (instance_id, seq)',
            "ALTER TABLE sealed_state ADD COLUMN instance_id TEXT NOT NULL DEFAULT 'default'",
            'ALTER TABLE sealed_state DROP CONSTRAINT sealed_state_pkey',
            'ALTER TABLE sealed_state ADD PRIMARY KEY (instance_id, keyring_id)',
          ]
        : [
            // SQLite cannot change a primary key in place: rebuild, keeping every row.
            `CREATE TABLE audit_records_v2 (
              instance_id TEXT NOT NULL DEFAULT 'default',
              seq INTEGER NOT NULL,
              audit_key BLOB NOT NULL,
              hash BLOB NOT NULL,
              record BLOB NOT NULL,
              stored_at TEXT NOT NULL,
              PRIMARY KEY (instance_id, seq)
            ) WITHOUT ROWID`,
            // WITHOUT ROWID: the rows live in (instance_id, seq) order, as they lived in seq order
            // before; a chain is read straight off the table, and a damaged page is met where it lies.
            "INSERT INTO audit_records_v2 (instance_id, seq, audit_key, hash, record, stored_at) SELECT 'default', seq, audit_key, hash, record, stored_at FROM audit_records ORDER BY seq",
            'DROP TABLE audit_records',
            'ALTER TABLE audit_records_v2 RENAME TO audit_records',
            'CREATE INDEX audit_records_key ON audit_records (audit_key, seq)',
            `CREATE TABLE sealed_state_v2 (
              instance_id TEXT NOT NULL DEFAULT 'default',
              keyring_id TEXT NOT NULL,
              sequence INTEGER NOT NULL,
              record TEXT NOT NULL,
              stored_at TEXT NOT NULL,
              PRIMARY KEY (instance_id, keyring_id)
            )`,
            "INSERT INTO sealed_state_v2 (instance_id, keyring_id, sequence, record, stored_at) SELECT 'default', keyring_id, sequence, record, stored_at FROM sealed_state",
            'DROP TABLE sealed_state',
            'ALTER TABLE sealed_state_v2 RENAME TO sealed_state',
          ]),
      // signer_createKey's requestId: stored in the key's own transaction, so a retry finds the key.
      `CREATE TABLE key_requests (
        request_id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL UNIQUE REFERENCES keys(key_id),
        created_at TEXT NOT NULL
      )`,
      // The instances serving from this store and what they serve (the mixed-fleet check).
      `CREATE TABLE fleet_members (
        instance_id TEXT PRIMARY KEY,
        policy_hash TEXT NOT NULL,
        manifest_digest TEXT NOT NULL,
        seen_at TEXT NOT NULL
      )`,
    ],
  },
  {
    version: 3,
    name: 'fleet_state: one shared sealed record per keyring (policy stateScope "fleet")',
    sql: () => [
      // Stored by compare-and-swap on (lineage, sequence) or the base (sequence, nonce):
      // parent/keystore.ts putFleetState, docs/scale-out.md "Limits across instances".
      `CREATE TABLE fleet_state (
        keyring_id TEXT PRIMARY KEY,
        sequence BIGINT NOT NULL,
        nonce TEXT NOT NULL,
        lineage TEXT NOT NULL,
        record TEXT NOT NULL,
        stored_at TEXT NOT NULL
      )`,
    ],
  },
  {
    version: 4,
    name: "key_audit: each key's key.create record (the chain and seq that vouch for its public data)",
    sql: () => [
      // Written in the key's own transaction (keystore.ts putKey), so signer_getReceipt finds the
      // record that proves a key's address at any later time, from any instance (docs/audit.md).
      // Keys stored before this migration have no row: their records name no public data.
      `CREATE TABLE key_audit (
        key_id TEXT PRIMARY KEY REFERENCES keys(key_id),
        instance_id TEXT NOT NULL,
        seq BIGINT NOT NULL
      )`,
    ],
  },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

/** The store's recorded version: schema_migrations, else the pre-migrations meta row, else 0 (empty). */
export async function storedVersion(t: SqlExec, db: SqlDb): Promise<number> {
  let v = 0;
  if ((await db.columns('schema_migrations')).length > 0) {
    v = (await t.get<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations'))?.v ?? 0;
  }
  if ((await db.columns('meta')).length > 0) {
    const m = await t.get<{ v: string }>('SELECT v FROM meta WHERE k = ?', ['schema_version']);
    if (m) v = Math.max(v, Number(m.v) || 0);
  }
  return Number(v);
}

function tooNew(v: number, db: SqlDb): KeystoreError {
  return new KeystoreError('KEYSTORE_VERSION', `keystore schema version ${v} is newer than this build's (${SCHEMA_VERSION}); nothing was written to ${db.describe}`, {
    hint: 'run the enclave-signer release that wrote it (or a newer one); never point an older release at a newer store',
  });
}

/**
 * Brings the store to SCHEMA_VERSION: every missing migration in order, each
 * recorded, all in one exclusive transaction (two instances starting together
 * never both migrate). A newer store is refused before anything is written.
 */
export async function migrate(db: SqlDb, log?: (line: string) => void): Promise<void> {
  await db.tx(
    async (t) => {
      const from = await storedVersion(t, db);
      if (from > SCHEMA_VERSION) throw tooNew(from, db);
      if (from === SCHEMA_VERSION && (await db.columns('schema_migrations')).length > 0) {
        // Up to date. Still one (same-value) write: a store this parent cannot write stops the start
        // now, with the reason, instead of failing the first client that creates a key.
        await t.run('UPDATE meta SET v = ? WHERE k = ?', [String(SCHEMA_VERSION), 'schema_version']);
        return;
      }
      await t.run('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
      const recorded = new Set((await t.all<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
      for (const m of MIGRATIONS) {
        if (recorded.has(m.version)) continue;
        // Version 1 is all IF NOT EXISTS: a pre-migrations SQLite keystore (meta version 1) gets
        // whatever tables its build predated, and keeps its rows.
        const apply = m.version > from || m.version === 1;
        if (apply) for (const s of m.sql(db.dialect)) await t.run(s);
        await t.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, new Date().toISOString()]);
        if (m.version > from) log?.(`keystore: migration ${m.version} applied (${m.name})`);
      }
      await t.run('INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v', ['schema_version', String(SCHEMA_VERSION)]);
    },
    { exclusive: true },
  );
}

/** Read-only opens never migrate: an older store is read as it is, a newer one refused. */
export async function checkReadable(db: SqlDb): Promise<number> {
  const v = await storedVersion(db, db);
  if (v > SCHEMA_VERSION) throw tooNew(v, db);
  if (v === 0) throw new KeystoreError('KEYSTORE_VERSION', `${db.describe} is not an enclave-signer keystore (no schema version)`);
  return v;
}
