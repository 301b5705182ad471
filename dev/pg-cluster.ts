/**
 * A throwaway PostgreSQL cluster (initdb + pg_ctl from Debian's `postgresql`,
 * /usr/lib/postgresql/<v>/bin or $PG_BIN) listening ONLY on a unix socket in a
 * temp directory — no TCP port, nothing shared with anything else. Used by the
 * tests (test/pg-cluster.ts: one cluster per test file, a database per test)
 * and by the multi-instance soak (bench/soak.ts), which must not import test/
 * (test/ is not built into dist/). dev/ never ships in the enclave image.
 *
 * initdb refuses to run as root, so as root (CI) every server binary runs as
 * the `postgres` user (runuser) and the temp directory is handed to it. Local
 * connections as `postgres` are trusted; each extra role in `roles` must show
 * its password (scram-sha-256).
 *
 * `tcp` (network fault tests): the server also listens on one TCP address, and
 * with `netns` it runs inside that network namespace (`ip netns exec`), so it
 * is reachable only through the test's own veth links. The unix socket stays
 * the admin door (unix sockets are not bound to a network namespace).
 *
 * `stop()` stops the server and removes the directory; a cluster that fails
 * to start removes what it made before throwing.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { SignerError } from '../common/errors.js';

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

export interface PgCluster {
  readonly dir: string;
  /** A connection URL for `db` over the unix socket (user postgres, trusted). */
  url(db: string, user?: string, password?: string): string;
  /** `postgres://app@ADDRESS:PORT/db` over TCP (options.tcp; the password goes in PGPASSWORD or the URL). */
  tcpUrl(db: string, password?: string): string;
  /** Creates a fresh database and returns its URL. */
  createDatabase(prefix?: string, owner?: string): Promise<string>;
  /** Runs SQL as the superuser in `db`. */
  sql(db: string, text: string, params?: unknown[]): Promise<pg.QueryResult>;
  /** pg_ctl stop (fast by default: clients are disconnected at once). */
  stopServer(mode?: 'fast' | 'immediate'): Promise<void>;
  startServer(): Promise<void>;
  /** Stops the server and removes the directory. */
  stop(): Promise<void>;
}

export interface PgClusterOptions {
  /** Login roles made at start, each authenticated by its password (scram-sha-256). */
  roles?: readonly { name: string; password: string }[];
  /**
   * Listen on TCP as well, on `address` only (never a wildcard); `allow` is the
   * CIDR that may log in over it, as `app` with its password (scram-sha-256).
   */
  tcp?: { address: string; port?: number; allow: string };
  /** Run the server inside this network namespace (it must exist; `ip netns add`). */
  netns?: string;
}

let dbCounter = 0;
const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export async function startPgCluster(opts: PgClusterOptions = {}): Promise<PgCluster> {
  const bin = findPgBin();
  if (!bin) throw new SignerError('DEV_START_FAILED', 'PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin or $PG_BIN (apt-get install postgresql)');
  const roles = opts.roles ?? [];
  for (const r of roles) if (!ROLE_NAME.test(r.name)) throw new SignerError('DEV_START_FAILED', `not a plain role name: ${JSON.stringify(r.name)}`);
  const asRoot = process.getuid?.() === 0;
  const o = opts;
  if (o.tcp && (!/^\d{1,3}(\.\d{1,3}){3}$/.test(o.tcp.address) || !/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(o.tcp.allow))) {
    throw new SignerError('DEV_START_FAILED', `tcp.address must be one IPv4 address and tcp.allow an IPv4 CIDR, got ${JSON.stringify(o.tcp)}`);
  }
  if (o.netns !== undefined && !asRoot) throw new SignerError('DEV_START_FAILED', 'netns needs root (ip netns exec)');
  // Resolved before anything is made: a missing postgres user fails here, with nothing to clean up.
  const owner = asRoot ? pgOwner() : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'es-pg-'));
  const data = join(dir, 'data');
  // Only the server needs the namespace; `ip netns exec` execs the command, so pg_ctl's postmaster is born in it.
  const inNs = (argv: string[]) => (o.netns === undefined ? argv : ['ip', 'netns', 'exec', o.netns, ...argv]);
  const exec = (cmd: string, args: string[]) => {
    const argv = inNs(asRoot ? ['runuser', '-u', 'postgres', '--', join(bin, cmd), ...args] : [join(bin, cmd), ...args]);
    return run(argv[0]!, argv.slice(1), { cwd: dir });
  };
  const listen = o.tcp ? o.tcp.address : '';
  const opt = `-k ${dir} -c listen_addresses='${listen}' -p ${o.tcp?.port ?? 5432} -c max_connections=200 -c shared_buffers=16MB`;
  const start = () => exec('pg_ctl', ['start', '-w', '-t', '60', '-D', data, '-l', join(dir, 'server.log'), '-o', opt]).then(() => undefined);
  const stopServer = async (mode: 'fast' | 'immediate' = 'fast') => {
    await exec('pg_ctl', ['stop', '-w', '-t', '60', '-D', data, '-m', mode]).catch(() => undefined);
  };
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
  let started = false;
  try {
    if (owner) chownSync(dir, owner.uid, owner.gid);
    await exec('initdb', ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=reject', '-E', 'UTF8', '--no-sync', '--locale=C']);
    // Local socket (postgres trusted); the extra roles must show their passwords, over TCP too (and only `app` there).
    const hba = `${roles.map((r) => `local all ${r.name} scram-sha-256\n`).join('')}local all all trust\n${o.tcp ? `host all app ${o.tcp.allow} scram-sha-256\n` : ''}`;
    writeFileSync(join(data, 'pg_hba.conf'), hba);
    if (owner) chownSync(join(data, 'pg_hba.conf'), owner.uid, owner.gid);
    await start();
    started = true;
    for (const r of roles) await sql('postgres', `CREATE ROLE ${r.name} LOGIN PASSWORD '${r.password.replaceAll("'", "''")}'`);
  } catch (e) {
    if (started) await stopServer('immediate');
    rmSync(dir, { recursive: true, force: true });
    const msg = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
    throw new SignerError('DEV_START_FAILED', `throwaway PostgreSQL cluster did not start: ${msg}`, { cause: e });
  }
  const tcpUrl = (db: string, password?: string) => {
    if (!o.tcp) throw new SignerError('DEV_START_FAILED', 'this cluster was started without tcp');
    return `postgres://app${password === undefined ? '' : `:${encodeURIComponent(password)}`}@${o.tcp.address}:${o.tcp.port ?? 5432}/${db}`;
  };
  return {
    dir,
    url,
    tcpUrl,
    async createDatabase(prefix = 'ks', dbOwner?: string) {
      const name = `${prefix}_${process.pid}_${++dbCounter}`;
      await sql('postgres', `CREATE DATABASE ${name}${dbOwner === undefined ? '' : ` OWNER ${dbOwner}`}`);
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

function pgOwner(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const f = line?.split(':') ?? [];
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!line || !Number.isInteger(uid) || !Number.isInteger(gid)) throw new SignerError('DEV_START_FAILED', "no postgres user: install Debian's postgresql (it creates the user)");
  return { uid, gid };
}
