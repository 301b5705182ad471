/**
 * The embedded keystore backend: one SQLite file (better-sqlite3), WAL with
 * synchronous=FULL — a write is acknowledged only after it is durable, so a
 * crash loses nothing a client was told succeeded.
 *
 * better-sqlite3 is synchronous; the keystore surface is async (it is shared
 * with PostgreSQL). A transaction spans awaits, so every statement goes
 * through one queue: nothing else runs inside an open transaction.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { KeystoreError, type SqlDb, type SqlExec } from './keystore-sql.js';

function mapError(what: string, e: unknown): KeystoreError {
  if (e instanceof KeystoreError) return e;
  const code = (e as { code?: string }).code ?? 'SQLITE_ERROR';
  const hint =
    code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED'
      ? 'another process holds the keystore lock'
      : code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY_')
        ? 'the keystore file or its directory is read-only'
        : code === 'SQLITE_FULL'
          ? 'the disk is full'
          : undefined;
  return new KeystoreError('KEYSTORE_UNAVAILABLE', `keystore ${what} failed: ${code}`, hint === undefined ? { cause: e } : { cause: e, hint });
}

/** SQLite takes no booleans or Uint8Array views of other buffers: plain Buffers and numbers only. */
const bind = (params: readonly unknown[] | undefined): unknown[] => (params ?? []).map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p) : p));

export function openSqliteDb(path: string, opts: { readonly?: boolean } = {}): SqlDb {
  const readonly = opts.readonly === true;
  let db: Database.Database;
  try {
    if (!readonly) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    db = new Database(path, { readonly, fileMustExist: readonly, timeout: 2000 });
    if (!readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
    }
  } catch (e) {
    throw mapError('open', e);
  }
  const cache = new Map<string, Database.Statement>();
  const stmt = (sql: string) => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
  let writing = false;
  const exec = (what: () => string): SqlExec => ({
    all: async <R>(sql: string, params?: readonly unknown[]) => {
      try {
        return stmt(sql).all(...bind(params)) as R[];
      } catch (e) {
        throw mapError(what(), e);
      }
    },
    get: async <R>(sql: string, params?: readonly unknown[]) => {
      try {
        return stmt(sql).get(...bind(params)) as R | undefined;
      } catch (e) {
        throw mapError(what(), e);
      }
    },
    run: async (sql: string, params?: readonly unknown[]) => {
      try {
        return stmt(sql).run(...bind(params)).changes;
      } catch (e) {
        throw mapError('write', e);
      }
    },
  });
  // One queue for everything: a transaction that awaits must not see another caller's statements.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn, fn);
    queue = p.catch(() => undefined);
    return p;
  };
  const outside = exec(() => 'read');
  const inside = exec(() => 'write');
  return {
    dialect: 'sqlite',
    describe: path,
    readonly,
    all: (sql, params) => serial(() => outside.all(sql, params)),
    get: (sql, params) => serial(() => outside.get(sql, params)),
    run: (sql, params) => serial(() => outside.run(sql, params)),
    tx: (fn) =>
      // Named so CPU profiles can tell BEGIN/COMMIT (with its fsync) apart (bench/e2e-audit-cost.ts).
      serial(async function transaction() {
        try {
          db.exec('BEGIN IMMEDIATE');
        } catch (e) {
          throw mapError('write', e);
        }
        writing = true;
        try {
          const out = await fn(inside);
          db.exec('COMMIT');
          return out;
        } catch (e) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw mapError('write', e);
        } finally {
          writing = false;
        }
      }),
    exclusively: (fn) => fn(),
    columns: async (table) => {
      try {
        return (db.prepare(`PRAGMA table_info(${JSON.stringify(table)})`).all() as { name: string }[]).map((r) => r.name);
      } catch (e) {
        throw mapError('read', e);
      }
    },
    close: async () => {
      await queue;
      if (writing) return;
      db.close();
    },
  };
}
