/**
 * End-to-end helpers: the real `enclave-signer dev` CLI as a child process
 * (KMS emulator, enclave child with the simulated NSM, parent with its
 * signing socket), and small clients for that socket — HTTP over the Unix
 * socket, raw geth-style IPC, and curl.
 *
 * The CLI runs from dist/ (`npm run build`; `npm test` builds first). Its
 * stdout and stderr are captured whole so tests can scan them for secrets.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(REPO, 'bin', 'enclave-signer.js');

export interface DevStack {
  /** The signing socket (HTTP and raw IPC). */
  socket: string;
  /** http://127.0.0.1:PORT, or null without --http. */
  http: string | null;
  dataDir: string;
  /** The first enclave process (the supervisor restarts it under a new pid). */
  enclavePid: number;
  /** The `enclave-signer dev` process. */
  pid: number;
  child: ChildProcess;
  /** Everything the dev process wrote so far. */
  output(): { stdout: string; stderr: string };
  /** SIGTERM, then the exit status (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function assertBuilt(): void {
  if (!existsSync(join(REPO, 'dist', 'cli', 'dev.js'))) {
    throw new Error('dist/cli/dev.js is missing: run `npm run build` first (npm test does)');
  }
}

/**
 * Starts `enclave-signer dev --data-dir DIR --json [--http 127.0.0.1:0] [args…]` and
 * resolves once it printed its endpoints and GET /readyz answers 200.
 */
export async function startDevStack(opts: { dataDir: string; http?: boolean; timeoutMs?: number; args?: readonly string[] }): Promise<DevStack> {
  assertBuilt();
  const timeoutMs = opts.timeoutMs ?? 45_000;
  const args = [BIN, 'dev', '--data-dir', opts.dataDir, '--json', ...(opts.http ? ['--http', '127.0.0.1:0'] : []), ...(opts.args ?? [])];
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((x) => (exitInfo = x));

  const fail = (why: string) => {
    child.kill('SIGKILL');
    return new Error(`enclave-signer dev: ${why}\n--- stderr ---\n${stderr.slice(-4000)}`);
  };
  const deadline = Date.now() + timeoutMs;
  let endpoints: { socket: string; http: string | null; dataDir: string; enclavePid: number } | undefined;
  while (!endpoints) {
    if (exitInfo) throw fail(`exited early (${exitInfo.signal ?? exitInfo.code})`);
    if (Date.now() > deadline) throw fail('no endpoints line on stdout in time');
    const line = stdout.split('\n').find((l) => l.startsWith('{'));
    if (line) endpoints = JSON.parse(line);
    else await sleep(50);
  }
  try {
    await waitReady(endpoints.socket, Math.max(1000, deadline - Date.now()));
  } catch (e) {
    throw fail((e as Error).message);
  }
  const stack: DevStack = {
    ...endpoints,
    pid: child.pid!,
    child,
    output: () => ({ stdout, stderr }),
    async stop(graceMs = 15_000) {
      if (exitInfo) return exitInfo;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
  return stack;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}

// ------------------------------------------------------------ HTTP over the Unix socket

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function httpUnix(socket: string, opts: { method?: string; path?: string; body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers };
    const req = request({ socketPath: socket, method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'), path: opts.path ?? '/', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export async function waitReady(socket: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return waitFor(
    '/readyz 200',
    async () => {
      const r = await httpUnix(socket, { path: '/readyz' });
      return r.status === 200 ? (JSON.parse(r.body) as Record<string, unknown>) : undefined;
    },
    timeoutMs,
  );
}

export interface RpcError {
  code: number;
  message: string;
  data?: { code?: string; field?: string; hint?: string; rule?: string | null; approvalId?: string; [k: string]: unknown };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type RpcAnswer = { jsonrpc: '2.0'; id: unknown; result?: any; error?: RpcError };

let nextId = 1;

/** One JSON-RPC call over HTTP on the Unix socket; resolves with the whole response object. */
export async function rpc(socket: string, method: string, params?: unknown): Promise<RpcAnswer> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, ...(params === undefined ? {} : { params }) });
  const r = await httpUnix(socket, { body });
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body}`);
  return JSON.parse(r.body) as RpcAnswer;
}

/** The result, or throws with the JSON-RPC error. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function call(socket: string, method: string, params?: unknown): Promise<any> {
  const a = await rpc(socket, method, params);
  if (a.error) throw Object.assign(new Error(`${method}: ${a.error.code} ${a.error.message}`), { rpc: a.error });
  return a.result;
}

// ------------------------------------------------------------ raw IPC

/**
 * Writes `payload` on a fresh IPC connection and collects newline-ended
 * answers until there are `count` of them, or — with `untilClose` — until the
 * server closes the connection (or the timeout passes).
 */
export function ipcExchange(socket: string, payload: string | Buffer, count: number, timeoutMs = 10_000, untilClose = false): Promise<{ answers: unknown[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(socket);
    let buf = '';
    const answers: unknown[] = [];
    let closed = false;
    const done = () => {
      clearTimeout(t);
      s.destroy();
      resolve({ answers, closed });
    };
    const t = setTimeout(done, timeoutMs);
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) answers.push(JSON.parse(line));
      }
      if (answers.length >= count && !untilClose) done();
    });
    s.on('end', () => {
      closed = true;
      done();
    });
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? ((closed = true), done()) : reject(e)));
    s.write(payload);
  });
}

// ------------------------------------------------------------ curl

export const CURL = ['/usr/bin/curl', '/bin/curl', '/usr/local/bin/curl'].find((p) => existsSync(p));

export function curl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    if (!CURL) return reject(new Error('curl is not installed'));
    execFile(CURL, args, { timeout: 15_000 }, (err, stdout, stderr) => (err ? reject(Object.assign(err, { stdout, stderr })) : resolve({ stdout, stderr })));
  });
}

// ------------------------------------------------------------ processes


export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------ a second parent (the real CLI)

export interface ParentProcess {
  socket: string;
  pid: number;
  output(): string;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `enclave-signer parent` on the dev stack's trust anchors (dev CA root, the
 * dev-signed PCR manifest and its release key, the dev KMS credentials),
 * pointed at `enclaveUri`. Resolves once the socket answers GET /healthz.
 */
export async function startParentCli(stack: { dataDir: string }, opts: { enclave: string; socket: string; keystore: string; extra?: string[]; credentialsFile: string }): Promise<ParentProcess> {
  const d = stack.dataDir;
  const args = [
    BIN, 'parent',
    '--enclave', opts.enclave,
    '--socket', opts.socket,
    '--keystore', opts.keystore,
    '--root', join(d, 'dev-ca', 'root.pem'),
    '--manifest', join(d, 'pcr-manifest.dev.json'),
    '--manifest-key', join(d, 'release', 'dev-release.pub.pem'),
    '--aws-credentials', `file:${opts.credentialsFile}`,
    ...(opts.extra ?? []),
  ];
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const r = await exited;
    clearTimeout(t);
    return r;
  };
  try {
    await waitFor(
      'the parent to listen',
      async () => {
        if (child.exitCode !== null) throw new Error(`parent exited ${child.exitCode}: ${stderr.slice(-2000)}`);
        return (await httpUnix(opts.socket, { path: '/healthz' })).status === 200;
      },
      20_000,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { socket: opts.socket, pid: child.pid!, output: () => stderr, stop };
}
