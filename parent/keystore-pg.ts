/**
 * The PostgreSQL keystore backend (node-postgres `pg`): one database shared by
 * every instance of a fleet (docs/scale-out.md). It holds what the SQLite file
 * holds — ciphertext and public data only — so a thief of the database gets
 * blobs only an attested enclave can open.
 *
 * Bounded waits (docs/keystore.md "PostgreSQL options"): connecting, each
 * statement and each pool checkout have a deadline, so a stopped or
 * unreachable server turns into KEYSTORE_UNAVAILABLE (-32002) within a client's
 * deadline instead of a hang; the pool reconnects by itself once the server is
 * back (no restart of the appliance). Each operation fails within
 * connect_timeout_ms + query_timeout_ms, also when the server is black-holed
 * (packets dropped, no answer and no refusal: test/faults/partition.test.ts):
 * a transaction whose connection died is abandoned, not rolled back over it,
 * and the server ends such an abandoned transaction by itself
 * (idle_in_transaction_session_timeout), so its locks do not outlive it.
 *
 * Durability: a transaction resolves only after COMMIT returned, with the
 * server's synchronous_commit (default on): a key acknowledged to a client is
 * on the server's disk.
 */
import pg from 'pg';
import { KeystoreError, type SqlDb, type SqlExec } from './keystore-sql.js';

export interface PgOptions {
  readonly?: boolean;
  log?: (line: string) => void;
}

/** Our own URL parameters (the rest — sslmode, sslrootcert, host=/socket/dir, … — are node-postgres's). */
const OWN_PARAMS = {
  pool_max: { def: 10, min: 1, max: 1000 },
  connect_timeout_ms: { def: 5_000, min: 100, max: 600_000 },
  query_timeout_ms: { def: 10_000, min: 100, max: 600_000 },
} as const;
type OwnParam = keyof typeof OWN_PARAMS;

export function isPostgresUrl(spec: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(spec);
}

/** The URL without its password (for logs and errors). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparseable URL)';
  }
}

function badUrl(message: string, cause?: unknown): KeystoreError {
  return new KeystoreError('KEYSTORE_CONFIG', message, { ...(cause === undefined ? {} : { cause }), hint: 'use postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=verify-full&sslrootcert=/path/ca.pem&pool_max=10] (docs/keystore.md)' });
}

export function parsePgUrl(url: string): { connectionString: string; own: Record<OwnParam, number>; describe: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw badUrl(`--keystore ${redactUrl(url)}: not a URL`, e);
  }
  if (!/^postgres(ql)?:$/i.test(u.protocol)) throw badUrl(`--keystore: ${u.protocol} is not postgres:`);
  if (u.pathname.length <= 1) throw badUrl(`--keystore ${redactUrl(url)}: names no database (postgres://…/DBNAME)`);
  const own = {} as Record<OwnParam, number>;
  for (const [k, spec] of Object.entries(OWN_PARAMS) as [OwnParam, (typeof OWN_PARAMS)[OwnParam]][]) {
    const v = u.searchParams.get(k);
    u.searchParams.delete(k);
    if (v === null) {
      own[k] = spec.def;
      continue;
    }
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < spec.min || n > spec.max) throw badUrl(`--keystore: ${k} must be a whole number in ${spec.min}..${spec.max}, got ${JSON.stringify(v)}`);
    own[k] = n;
  }
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode !== null && !['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'].includes(sslmode)) {
    throw badUrl(`--keystore: sslmode ${JSON.stringify(sslmode)} is not one of disable, require, verify-ca, verify-full`);
  }
  return { connectionString: u.toString(), own, describe: redactUrl(url) };
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

function mapError(what: string, e: unknown, describe: string): KeystoreError {
  if (e instanceof KeystoreError) return e;
  const code = String((e as { code?: unknown }).code ?? '');
  const msg = (e as Error)?.message ?? String(e);
  if (code === '28P01' || code === '28000') {
    return new KeystoreError('KEYSTORE_AUTH', `keystore ${what} failed: PostgreSQL refused the credentials for ${describe}`, { cause: e, hint: 'check the user and password in --keystore (and pg_hba.conf on the server)' });
  }
  if (code === '3D000') return new KeystoreError('KEYSTORE_NOT_FOUND', `keystore ${what} failed: the database in ${describe} does not exist`, { cause: e, hint: 'create it (createdb) or fix the database name' });
  // 57014 is the server's own answer (statement_timeout: e.g. waiting for a lock another session holds):
  // the server is there, so it is not reported as unreachable.
  const unreachable =
    code !== '57014' &&
    (UNREACHABLE.has(code) ||
      code.startsWith('08') ||
      code === '57P01' ||
      code === '57P02' ||
      code === '57P03' ||
      /timeout|terminated|Connection terminated|not queryable|ended/i.test(msg));
  if (unreachable) {
    return new KeystoreError('KEYSTORE_UNAVAILABLE', `keystore ${what} failed: PostgreSQL unreachable (${code || 'no answer'})`, {
      cause: e,
      hint: `is the server at ${describe} up? the parent reconnects by itself when it is back`,
    });
  }
  const hint =
    code === '25006' ? 'the keystore is open read-only' : code === '53100' ? 'the database server\'s disk is full' : code === '57014' ? 'the statement took longer than query_timeout_ms (the server cancelled it: slow, or waiting for a lock another session holds)' : undefined;
  return new KeystoreError('KEYSTORE_UNAVAILABLE', `keystore ${what} failed: PG_${code || 'ERROR'}`, hint === undefined ? { cause: e } : { cause: e, hint });
}

/** `?` → `$1, $2, …` (our SQL has no `?` inside literals). */
function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

/** BIGINT (int8) as a JS number: seqs and counts stay far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser,
};

const bind = (params: readonly unknown[] | undefined): unknown[] => (params ?? []).map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p) : p));

export async function openPgDb(url: string, opts: PgOptions = {}): Promise<SqlDb> {
  const { connectionString, own, describe } = parsePgUrl(url);
  const readonly = opts.readonly === true;
  let pool: pg.Pool;
  try {
    pool = new pg.Pool({
      connectionString,
      max: own.pool_max,
      connectionTimeoutMillis: own.connect_timeout_ms,
      query_timeout: own.query_timeout_ms,
      statement_timeout: own.query_timeout_ms,
      // A transaction whose client vanished mid-way (a partition: its ROLLBACK never arrives) is ended by
      // the server after this long idle, releasing its row locks — which another instance may be waiting on.
      idle_in_transaction_session_timeout: own.query_timeout_ms,
      idleTimeoutMillis: 30_000,
      application_name: 'enclave-signer',
      types,
      ...(readonly ? { options: '-c default_transaction_read_only=on' } : {}),
    });
  } catch (e) {
    // e.g. sslrootcert names a file that cannot be read
    throw badUrl(`--keystore ${describe}: ${(e as Error).message}`, e);
  }
  // An idle connection the server dropped (restart, failover) must not crash the parent: the pool replaces it.
  pool.on('error', (e) => opts.log?.(`keystore: PostgreSQL connection lost (${(e as { code?: string }).code ?? (e as Error).message}); reconnecting on the next request`));

  const exec = (q: (sql: string, params: unknown[]) => Promise<pg.QueryResult>, what: string): SqlExec => ({
    all: async <R>(sql: string, params?: readonly unknown[]) => {
      try {
        return (await q(numbered(sql), bind(params))).rows as R[];
      } catch (e) {
        throw mapError(what, e, describe);
      }
    },
    get: async <R>(sql: string, params?: readonly unknown[]) => {
      try {
        return (await q(numbered(sql), bind(params))).rows[0] as R | undefined;
      } catch (e) {
        throw mapError(what, e, describe);
      }
    },
    run: async (sql: string, params?: readonly unknown[]) => {
      try {
        return (await q(numbered(sql), bind(params))).rowCount ?? 0;
      } catch (e) {
        throw mapError('write', e, describe);
      }
    },
  });
  const outside = exec((sql, params) => pool.query(sql, params), 'read');

  /**
   * A pooled connection of its own, for a transaction or a session lock. A connection the server
   * drops while checked out (shutdown, failover) emits 'error': without a listener that would crash
   * the parent; its next query fails instead. One marked broken is dropped, not reused.
   */
  const withConnection = async <T>(during: string, fn: (c: { client: pg.PoolClient; broken: boolean }) => Promise<T>): Promise<T> => {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (e) {
      throw mapError('write', e, describe);
    }
    const c = { client, broken: false };
    const onError = (e: Error) => {
      c.broken = true;
      opts.log?.(`keystore: PostgreSQL connection lost ${during} (${(e as { code?: string }).code ?? e.message})`);
    };
    client.on('error', onError);
    try {
      return await fn(c);
    } finally {
      client.removeListener('error', onError);
      client.release(c.broken);
    }
  };

  const db: SqlDb = {
    dialect: 'postgres',
    describe,
    readonly,
    ...outside,
    tx: (fn, o) =>
      withConnection('in a transaction', async (c) => {
        // A statement that failed without the server's answer (query_timeout_ms passed, the connection
        // broke) leaves the connection unusable: node-postgres still waits for that answer, so a
        // ROLLBACK would only queue behind it and wait out a second query_timeout_ms — doubling the
        // wait of a request behind a black-holed link. Such a connection is dropped instead; the
        // server rolls the transaction back when the session ends (or idles past its timeout).
        const q = async (sql: string, params?: unknown[]) => {
          try {
            return await c.client.query(sql, params);
          } catch (e) {
            if (!(e instanceof pg.DatabaseError)) c.broken = true;
            throw e;
          }
        };
        try {
          await q('BEGIN');
          // Schema changes and the fleet check: one at a time across every instance of the fleet.
          if (o?.exclusive) await q('SELECT pg_advisory_xact_lock(7436210)');
          const out = await fn(exec((sql, params) => q(sql, params), 'write'));
          await q('COMMIT');
          return out;
        } catch (e) {
          if (!c.broken) {
            try {
              await c.client.query('ROLLBACK');
            } catch {
              c.broken = true;
            }
          }
          throw mapError('write', e, describe);
        }
      }),
    exclusively: (fn) =>
      withConnection('holding the keyring lock', async (c) => {
        try {
          await c.client.query('SELECT pg_advisory_lock(7436211)');
        } catch (e) {
          // A wait cut short by query_timeout_ms may still be granted later: drop the session.
          c.broken = true;
          throw mapError('write', e, describe);
        }
        try {
          return await fn();
        } finally {
          // A connection whose unlock did not go through is dropped: the session ending releases it.
          await c.client.query('SELECT pg_advisory_unlock(7436211)').catch(() => {
            c.broken = true;
          });
        }
      }),
    columns: async (table) =>
      (await outside.all<{ column_name: string }>('SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position', [table])).map(
        (r) => r.column_name,
      ),
    close: () => pool.end(),
  };
  // Connect once now: a wrong URL, wrong credentials or a missing database stop the start with a clear error.
  try {
    await db.get('SELECT 1 AS ok');
  } catch (e) {
    await pool.end().catch(() => undefined);
    const k = e as KeystoreError;
    throw k.code === 'KEYSTORE_UNAVAILABLE' ? new KeystoreError('KEYSTORE_UNAVAILABLE', `keystore ${describe}: cannot connect: ${k.message}`, { cause: e, ...(k.hint ? { hint: k.hint } : {}) }) : e;
  }
  return db;
}
