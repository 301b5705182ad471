/**
 * The one SQL surface both keystore backends offer (docs/keystore.md): the
 * embedded SQLite file (keystore-sqlite.ts) and PostgreSQL (keystore-pg.ts).
 * The keystore (keystore-store.ts) and the migrations (keystore-migrations.ts)
 * are written once against it, so both backends hold the same schema and keep
 * the same contract — the same tests run against both (keystore-contract.test.ts).
 *
 * SQL is written with `?` placeholders (the PostgreSQL driver numbers them)
 * and only in the dialect both engines share; the few differences (the binary
 * column type, locking) are the driver's.
 */
import { SignerError } from '../common/errors.js';

export class KeystoreError extends SignerError {}

export type Row = Record<string, unknown>;

export interface SqlExec {
  all<R = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  get<R = Row>(sql: string, params?: readonly unknown[]): Promise<R | undefined>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
}

export interface SqlDb extends SqlExec {
  readonly dialect: 'sqlite' | 'postgres';
  /** Where the keystore is, for logs and errors: never a password. */
  readonly describe: string;
  readonly readonly: boolean;
  /**
   * Runs `fn` as one transaction: committed (durably: synchronous=FULL /
   * synchronous_commit) before the promise resolves, or rolled back. `exclusive`
   * serialises it against every other writer of the store (schema changes,
   * the fleet check).
   */
  tx<T>(fn: (t: SqlExec) => Promise<T>, opts?: { exclusive?: boolean }): Promise<T>;
  /**
   * Runs `fn` while holding a lock every instance of the fleet shares (PostgreSQL: a session-level
   * advisory lock on a connection of its own, so a long `fn` — a KMS call — is not an idle
   * transaction; released when `fn` ends or the session dies). SQLite serves one host: `fn` runs.
   * Waiting for the lock is bounded by the driver's query timeout (KEYSTORE_UNAVAILABLE).
   */
  exclusively<T>(fn: () => Promise<T>): Promise<T>;
  /** The columns of `table` (empty when it does not exist). */
  columns(table: string): Promise<string[]>;
  close(): Promise<void>;
}
