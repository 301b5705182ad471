/**
 * Test fixture: a throwaway PostgreSQL cluster (initdb + pg_ctl from Debian's
 * `postgresql`, /usr/lib/postgresql/<v>/bin) listening ONLY on a unix socket
 * in a temp directory — no TCP port, nothing shared with other test files.
 * One cluster per test file, a database per test (`createDatabase`).
 *
 * initdb refuses to run as root, so when the tests run as root (CI does) every
 * server binary runs as the `postgres` user (runuser) and the temp directory is
 * handed to it. Local connections as `postgres` are trusted; the role `app`
 * needs its password (scram-sha-256), for the wrong-credentials tests.
 *
 * `stop()` always runs from the test's afterAll: nothing is left running.
 *
 * `tcp` (network fault tests): the server also listens on one TCP address, and
 * with `netns` it runs inside that network namespace (`ip netns exec`), so it
 * is reachable only through the test's own veth links. The unix socket stays
 * the test's admin door (unix sockets are not bound to a network namespace).
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

/** The newest installed server's bin directory (or PG_BIN), if any. */
export function findPgBin(): string | undefined {
  if (process.env.PG_BIN && existsSync(join(process.env.PG_BIN, 'initdb'))) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** CI installs PostgreSQL (.ci/run), so there a missing server is a failure, not a skip. */
export const PG_AVAILABLE = findPgBin() !== undefined || process.env.CI === 'true';

export const APP_PASSWORD = 'app-test-password';

export interface PgCluster {
  readonly dir: string;
  /** A connection URL for `db` over the unix socket (user postgres, trusted). */
  url(db: string, user?: string, password?: string): string;
  /** `postgres://app@ADDRESS:PORT/db` over TCP (options.tcp; the password goes in PGPASSWORD or the URL). */
  tcpUrl(db: string, password?: string): string;
  /** Creates a fresh database and returns its URL. */
  createDatabase(prefix?: string): Promise<string>;
  /** Runs SQL as the superuser in `db`. */
  sql(db: string, text: string, params?: unknown[]): Promise<pg.QueryResult>;
  /** pg_ctl stop (fast by default: clients are disconnected at once). */
  stopServer(mode?: 'fast' | 'immediate'): Promise<void>;
  startServer(): Promise<void>;
  /** Stops the server and removes the directory. */
  stop(): Promise<void>;
}

let dbCounter = 0;

export interface PgClusterOptions {
  /**
   * Listen on TCP as well, on `address` only (never a wildcard); `allow` is the
   * CIDR that may log in over it, as `app` with its password (scram-sha-256).
   */
  tcp?: { address: string; port?: number; allow: string };
  /** Run the server inside this network namespace (it must exist; `ip netns add`). */
  netns?: string;
}

export async function startPgCluster(o: PgClusterOptions = {}): Promise<PgCluster> {
  const bin = findPgBin();
  if (!bin) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)');
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'es-pg-'));
  const data = join(dir, 'data');
  if (asRoot) chownSync(dir, pgUid(), pgGid());
  if (o.tcp && (!/^\d{1,3}(\.\d{1,3}){3}$/.test(o.tcp.address) || !/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(o.tcp.allow))) {
    throw new Error(`startPgCluster: tcp.address must be one IPv4 address and tcp.allow an IPv4 CIDR, got ${JSON.stringify(o.tcp)}`);
  }
  if (o.netns !== undefined && !asRoot) throw new Error('startPgCluster: netns needs root (ip netns exec)');
  // Only the server needs the namespace; `ip netns exec` execs the command, so pg_ctl's postmaster is born in it.
  const inNs = (argv: string[]) => (o.netns === undefined ? argv : ['ip', 'netns', 'exec', o.netns, ...argv]);
  const exec = (cmd: string, args: string[]) => {
    const argv = inNs(asRoot ? ['runuser', '-u', 'postgres', '--', join(bin, cmd), ...args] : [join(bin, cmd), ...args]);
    return run(argv[0]!, argv.slice(1), { cwd: dir });
  };
  await exec('initdb', ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=reject', '-E', 'UTF8', '--no-sync', '--locale=C']);
  // Local socket for the test (trusted); `app` must show its password, over TCP too (and only `app` there).
  const hba = `local all app scram-sha-256\nlocal all all trust\n${o.tcp ? `host all app ${o.tcp.allow} scram-sha-256\n` : ''}`;
  writeFileSync(join(data, 'pg_hba.conf'), hba);
  if (asRoot) chownSync(join(data, 'pg_hba.conf'), pgUid(), pgGid());
  const listen = o.tcp ? o.tcp.address : '';
  const opts = `-k ${dir} -c listen_addresses='${listen}' -p ${o.tcp?.port ?? 5432} -c max_connections=200 -c shared_buffers=16MB`;
  const start = () => exec('pg_ctl', ['start', '-w', '-t', '60', '-D', data, '-l', join(dir, 'server.log'), '-o', opts]).then(() => undefined);
  const stopServer = async (mode: 'fast' | 'immediate' = 'fast') => {
    await exec('pg_ctl', ['stop', '-w', '-t', '60', '-D', data, '-m', mode]).catch(() => undefined);
  };
  await start();
  const url = (db: string, user = 'postgres', password?: string) =>
    `postgres://${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@localhost/${db}?host=${encodeURIComponent(dir)}`;
  const sql = async (db: string, text: string, params?: unknown[]) => {
    const c = new pg.Client({ connectionString: url(db) });
    await c.connect();
    try {
      return await c.query(text, params);
    } finally {
      await c.end();
    }
  };
  try {
    await sql('postgres', `CREATE ROLE app LOGIN PASSWORD '${APP_PASSWORD}'`);
  } catch (e) {
    await stopServer('immediate');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const tcpUrl = (db: string, password?: string) => {
    if (!o.tcp) throw new Error('this cluster was started without tcp');
    return `postgres://app${password === undefined ? '' : `:${encodeURIComponent(password)}`}@${o.tcp.address}:${o.tcp.port ?? 5432}/${db}`;
  };
  return {
    dir,
    url,
    tcpUrl,
    async createDatabase(prefix = 'ks') {
      const name = `${prefix}_${process.pid}_${++dbCounter}`;
      await sql('postgres', `CREATE DATABASE ${name} OWNER app`);
      return url(name);
    },
    sql,
    stopServer,
    startServer: start,
    async stop() {
      await stopServer('immediate');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function passwdField(i: number): number {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  const v = Number(line?.split(':')[i]);
  if (!Number.isInteger(v)) throw new Error('no postgres user: install Debian\'s postgresql (it creates the user)');
  return v;
}
const pgUid = () => passwdField(2);
const pgGid = () => passwdField(3);
