/**
 * The parent's keystore: SQLite (better-sqlite3) holding only ciphertext and
 * public data — keyring records (KMS ciphertext of the data key) and wrapped
 * key blobs. WAL with synchronous=FULL: a write is acknowledged only after it
 * is durable, so a crash loses nothing a client was told succeeded.
 *
 * Nothing here can sign or decrypt: a thief of this file gets blobs that only
 * an attested enclave with the keyring's CMK can open.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { SignerError } from '../common/errors.js';
import type { KeyKind, KeyRecord, KeyringRecordWire } from '../common/protocol/enclave-api.js';
import { parseRecord } from '../common/audit/record.js';

export class KeystoreError extends SignerError {}

export interface StoredKey extends KeyRecord {
  label: string | null;
  createdAt: string;
}

export interface Keystore {
  readonly path: string;
  /** `audit`: signed audit records written in the same transaction (docs/audit.md). */
  putKeyring(r: KeyringRecordWire, audit?: readonly Uint8Array[]): void;
  /** The active keyring (the most recently created one that is not retired). */
  activeKeyring(): KeyringRecordWire | undefined;
  replaceKeyring(r: KeyringRecordWire, audit?: readonly Uint8Array[]): void;
  putKey(k: KeyRecord, label?: string, audit?: readonly Uint8Array[]): StoredKey;
  /** Persists signed audit records (all or none), durably, before the caller releases anything. */
  appendAuditRecords(records: readonly Uint8Array[]): void;
  /** The stored record with the highest seq: the head to show a new enclave. */
  auditHead(): Uint8Array | undefined;
  /** Stored records in seq order, streamed (a chain can be long). */
  iterateAuditRecords(fromSeq?: number): IterableIterator<{ seq: number; record: Uint8Array }>;
  countAuditRecords(): number;
  /** The stored record at `seq`, if any. */
  getAuditRecord(seq: number): Uint8Array | undefined;
  /** The first stored record of an audit key: its hand-over, which carries the attestation binding it. */
  auditKeyFirstRecord(auditKey: Uint8Array): Uint8Array | undefined;
  getKey(keyId: string): StoredKey | undefined;
  getKeyByAddress(address: string): StoredKey | undefined;
  listKeys(): StoredKey[];
  countKeys(): number;
  /** The enclave's latest sealed state record (docs/principals.md "Sealed state"): ciphertext only. */
  getSealedState?(keyringId: string): unknown;
  /** Stores it durably (synchronous=FULL) before the caller releases the signature it came with. */
  putSealedState?(keyringId: string, sequence: number, record: unknown): void;
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keyrings (
  keyring_id TEXT PRIMARY KEY,
  kms_key_id TEXT NOT NULL,
  data_key_ciphertext BLOB NOT NULL,
  created_at TEXT NOT NULL,
  seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
  key_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('secp256k1','bip32-seed')),
  keyring_id TEXT NOT NULL REFERENCES keyrings(keyring_id),
  public_key TEXT NOT NULL,
  address TEXT UNIQUE,
  xpub TEXT,
  fingerprint TEXT,
  blob BLOB NOT NULL,
  label TEXT,
  created_at TEXT NOT NULL
);
-- The audit chain (docs/audit.md): record = the exact signed bytes the enclave
-- returned; audit_key and hash are derived from them, for queries only.
CREATE TABLE IF NOT EXISTS audit_records (
  seq INTEGER PRIMARY KEY,
  audit_key BLOB NOT NULL,
  hash BLOB NOT NULL,
  record BLOB NOT NULL,
  stored_at TEXT NOT NULL
);
-- signer_getReceipt finds an audit key's hand-over (its attestation) by key.
CREATE INDEX IF NOT EXISTS audit_records_key ON audit_records (audit_key, seq);
-- The enclave's sealed state (window counters, approvals): AES-GCM under a key derived from the
-- keyring, with its sequence; the parent only stores it (docs/principals.md "Sealed state").
CREATE TABLE IF NOT EXISTS sealed_state (
  keyring_id TEXT PRIMARY KEY,
  sequence INTEGER NOT NULL,
  record TEXT NOT NULL,
  stored_at TEXT NOT NULL
);
`;

const SCHEMA_VERSION = '1';

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

function wrap<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof KeystoreError) throw e;
    const code = (e as { code?: string }).code ?? 'SQLITE_ERROR';
    const hint =
      code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED'
        ? 'another process holds the keystore lock'
        : code === 'SQLITE_READONLY'
          ? 'the keystore file or its directory is read-only'
          : code === 'SQLITE_FULL'
            ? 'the disk is full'
            : undefined;
    throw new KeystoreError('KEYSTORE_UNAVAILABLE', `keystore ${what} failed: ${code}`, hint === undefined ? { cause: e } : { cause: e, hint });
  }
}

export function openKeystore(path: string, opts: { readonly?: boolean } = {}): Keystore {
  const db = wrap('open', () => {
    if (!opts.readonly) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const d = new Database(path, { readonly: opts.readonly === true, fileMustExist: opts.readonly === true, timeout: 2000 });
    if (!opts.readonly) {
      d.pragma('journal_mode = WAL');
      d.pragma('synchronous = FULL');
      d.pragma('foreign_keys = ON');
      d.exec(SCHEMA);
      d.prepare('INSERT OR IGNORE INTO meta (k, v) VALUES (?, ?)').run('schema_version', SCHEMA_VERSION);
    }
    const v = (d.prepare('SELECT v FROM meta WHERE k = ?').get('schema_version') as { v: string } | undefined)?.v;
    if (v !== SCHEMA_VERSION) throw new KeystoreError('KEYSTORE_VERSION', `keystore schema version ${String(v)} is not ${SCHEMA_VERSION}`);
    return d;
  });

  // An older keystore opened read-only may predate the audit table: it then simply has no records.
  const hasAudit = wrap('open', () => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_records'").get() !== undefined);
  const stmts = {
    putKeyring: db.prepare(
      'INSERT INTO keyrings (keyring_id, kms_key_id, data_key_ciphertext, created_at, seq) VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM keyrings))',
    ),
    replaceKeyring: db.prepare('UPDATE keyrings SET kms_key_id = ?, data_key_ciphertext = ? WHERE keyring_id = ?'),
    activeKeyring: db.prepare('SELECT keyring_id, kms_key_id, data_key_ciphertext, created_at FROM keyrings ORDER BY seq DESC LIMIT 1'),
    putKey: db.prepare(
      'INSERT INTO keys (key_id, kind, keyring_id, public_key, address, xpub, fingerprint, blob, label, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    getKey: db.prepare('SELECT * FROM keys WHERE key_id = ?'),
    getKeyByAddress: db.prepare('SELECT * FROM keys WHERE lower(address) = lower(?)'),
    listKeys: db.prepare('SELECT * FROM keys ORDER BY created_at, key_id'),
    countKeys: db.prepare('SELECT COUNT(*) AS n FROM keys'),
    ...(hasAudit
      ? {
          putAudit: db.prepare('INSERT INTO audit_records (seq, audit_key, hash, record, stored_at) VALUES (?, ?, ?, ?, ?)'),
          getAudit: db.prepare('SELECT record FROM audit_records WHERE seq = ?'),
          auditHead: db.prepare('SELECT record FROM audit_records ORDER BY seq DESC LIMIT 1'),
          iterAudit: db.prepare('SELECT seq, record FROM audit_records WHERE seq >= ? ORDER BY seq'),
          countAudit: db.prepare('SELECT COUNT(*) AS n FROM audit_records'),
          firstOfKey: db.prepare('SELECT record FROM audit_records WHERE audit_key = ? ORDER BY seq LIMIT 1'),
        }
      : {}),
  };

  /** Checks shape (not signatures: the parent is not the verifier) and extracts the indexed columns. */
  const auditRows = (records: readonly Uint8Array[]) =>
    records.map((bytes) => {
      let r;
      try {
        r = parseRecord(bytes);
      } catch (e) {
        throw new KeystoreError('KEYSTORE_AUDIT_RECORD', `not an audit record: ${(e as Error).message}`, { cause: e });
      }
      return { seq: r.body.seq, auditKey: Buffer.from(r.body.auditKey), hash: Buffer.from(r.hash), bytes: Buffer.from(bytes) };
    });

  /** Inserts inside the caller's transaction. The same bytes again are a no-op (a retried persist); other bytes at a stored seq are a conflict. */
  const insertAudit = (rows: ReturnType<typeof auditRows>): void => {
    if (rows.length === 0) return;
    if (!stmts.putAudit || !stmts.getAudit) throw new KeystoreError('KEYSTORE_READONLY', 'this keystore has no audit table (opened read-only)');
    const at = new Date().toISOString();
    for (const r of rows) {
      const existing = stmts.getAudit.get(r.seq) as { record: Buffer } | undefined;
      if (existing) {
        if (existing.record.equals(r.bytes)) continue;
        throw new KeystoreError('KEYSTORE_AUDIT_CONFLICT', `audit seq ${r.seq} is already stored with different bytes: the enclave continued from a head other than the stored one`);
      }
      stmts.putAudit.run(r.seq, r.auditKey, r.hash, r.bytes, at);
    }
  };

  /** Runs a key change and its audit records as one transaction: both are durable, or neither. */
  const withAudit = <T>(audit: readonly Uint8Array[] | undefined, fn: () => T): T => {
    const rows = auditRows(audit ?? []);
    return wrap('write', () => db.transaction(() => {
      const out = fn();
      insertAudit(rows);
      return out;
    })());
  };

  return {
    path,
    putKeyring: (r, audit) => withAudit(audit, () => void stmts.putKeyring.run(r.keyringId, r.kmsKeyId, Buffer.from(r.dataKeyCiphertext), r.createdAt)),
    replaceKeyring: (r, audit) =>
      withAudit(audit, () => {
        const res = stmts.replaceKeyring.run(r.kmsKeyId, Buffer.from(r.dataKeyCiphertext), r.keyringId);
        if (res.changes !== 1) throw new KeystoreError('KEYSTORE_NOT_FOUND', `no keyring ${r.keyringId}`);
      }),
    activeKeyring: () =>
      wrap('read', () => {
        const row = stmts.activeKeyring.get() as { keyring_id: string; kms_key_id: string; data_key_ciphertext: Buffer; created_at: string } | undefined;
        if (!row) return undefined;
        return {
          format: 'enclave-signer/keyring' as const,
          version: 1 as const,
          keyringId: row.keyring_id,
          kmsKeyId: row.kms_key_id,
          dataKeyCiphertext: new Uint8Array(row.data_key_ciphertext),
          createdAt: row.created_at,
        };
      }),
    putKey: (k, label, audit) =>
      withAudit(audit, () => {
        const createdAt = new Date().toISOString();
        stmts.putKey.run(k.keyId, k.kind, k.keyringId, k.publicKey, k.address ?? null, k.xpub ?? null, k.fingerprint ?? null, Buffer.from(k.blob), label ?? null, createdAt);
        return { ...k, label: label ?? null, createdAt };
      }),
    getKey: (id) => wrap('read', () => {
      const r = stmts.getKey.get(id) as KeyRow | undefined;
      return r ? fromRow(r) : undefined;
    }),
    getKeyByAddress: (a) => wrap('read', () => {
      const r = stmts.getKeyByAddress.get(a) as KeyRow | undefined;
      return r ? fromRow(r) : undefined;
    }),
    listKeys: () => wrap('read', () => (stmts.listKeys.all() as KeyRow[]).map(fromRow)),
    countKeys: () => wrap('read', () => (stmts.countKeys.get() as { n: number }).n),
    // A read-only keystore stores no sealed state: answers that carry some are withheld (fail closed).
    ...(opts.readonly ? {} : { getSealedState: (keyringId: string) =>
      wrap('read', () => {
        const row = db.prepare('SELECT record FROM sealed_state WHERE keyring_id = ?').get(keyringId) as { record: string } | undefined;
        return row ? (JSON.parse(row.record) as unknown) : undefined;
      }),
    putSealedState: (keyringId: string, sequence: number, record: unknown) =>
      wrap('write', () => {
        db.prepare('INSERT INTO sealed_state (keyring_id, sequence, record, stored_at) VALUES (?, ?, ?, ?) ON CONFLICT (keyring_id) DO UPDATE SET sequence = excluded.sequence, record = excluded.record, stored_at = excluded.stored_at').run(
          keyringId,
          sequence,
          JSON.stringify(record),
          new Date().toISOString(),
        );
      }) }),
    appendAuditRecords: (records) => withAudit(records, () => undefined),
    auditHead: () =>
      wrap('read', () => {
        const row = stmts.auditHead?.get() as { record: Buffer } | undefined;
        return row ? new Uint8Array(row.record) : undefined;
      }),
    iterateAuditRecords: (fromSeq = 0) => {
      const it = stmts.iterAudit ? (stmts.iterAudit.iterate(fromSeq) as IterableIterator<{ seq: number; record: Buffer }>) : [][Symbol.iterator]();
      return (function* () {
        for (;;) {
          const n = wrap('read', () => it.next());
          if (n.done) return;
          yield { seq: n.value.seq, record: new Uint8Array(n.value.record) };
        }
      })();
    },
    countAuditRecords: () => wrap('read', () => (stmts.countAudit ? (stmts.countAudit.get() as { n: number }).n : 0)),
    getAuditRecord: (seq) =>
      wrap('read', () => {
        const row = stmts.getAudit?.get(seq) as { record: Buffer } | undefined;
        return row ? new Uint8Array(row.record) : undefined;
      }),
    auditKeyFirstRecord: (key) =>
      wrap('read', () => {
        const row = stmts.firstOfKey?.get(Buffer.from(key)) as { record: Buffer } | undefined;
        return row ? new Uint8Array(row.record) : undefined;
      }),
    close: () => db.close(),
  };
}
