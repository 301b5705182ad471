/**
 * The parts of the end-to-end benchmark that drive a dev stack: start `enclave-signer dev` (the
 * real CLI, optionally with a policy file or CPU profiling), JSON-RPC clients over HTTP and raw
 * IPC on its Unix socket, a bounded closed-loop load generator, and CPU time per request read
 * from /proc. Used by bench/e2e.ts and its policy-cost section (bench/e2e-policy-cost.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot } from '../dev/stack.js';

export interface Stats {
  n: number;
  seconds: number;
  opsPerSec: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export function stats(latenciesMs: number[], seconds: number): Stats {
  const s = Float64Array.from(latenciesMs).sort();
  const q = (p: number) => +(s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN).toFixed(3);
  const sum = latenciesMs.reduce((a, b) => a + b, 0);
  return {
    n: s.length,
    seconds: +seconds.toFixed(3),
    opsPerSec: +(s.length / seconds).toFixed(1),
    meanMs: +(sum / Math.max(1, s.length)).toFixed(3),
    p50Ms: q(0.5),
    p90Ms: q(0.9),
    p99Ms: q(0.99),
    maxMs: q(1),
  };
}

// ------------------------------------------------------------ the hot wallet baseline

export interface HotWallet {
  ipc: string;
  http: string;
  pid: number;
  stop(): Promise<void>;
}

/** bench/hot-wallet.ts as its own Node process (one process, like the hot wallet it stands for). */
export async function startHotWallet(dir: string, node: string, env: NodeJS.ProcessEnv = process.env): Promise<HotWallet> {
  const ipc = join(dir, 'hot-ipc.sock');
  const http = join(dir, 'hot-http.sock');
  const script = join(repoRoot(), 'dist', 'bench', 'hot-wallet.js');
  const child = spawn(node, [script, '--ipc', ipc, '--http', http], { stdio: ['ignore', 'pipe', 'inherit'], env });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const deadline = Date.now() + 30_000;
  while (!out.includes('\n')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('the hot wallet did not start');
    await sleep(20);
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  return { ipc, http, pid: child.pid!, stop };
}

// ------------------------------------------------------------ the dev stack

export interface Stack {
  socket: string;
  /** The dev process (parent, KMS emulator, pipe, enclave supervisor) and the enclave child. */
  pids: { parent: number; enclave: number };
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The node that runs the dev process (the parent), with what it needs in its environment (bench/e2e.ts parentNode). */
export interface ParentNode {
  path: string;
  env?: Record<string, string>;
}

export async function startStack(dataDir: string, opts: { profileDir?: string | undefined; policy?: string | undefined; enclaveNode?: string | undefined; enclaveAllocator?: string | undefined; parentNode?: ParentNode | undefined } = {}): Promise<Stack> {
  const bin = join(repoRoot(), 'bin', 'enclave-signer.js');
  // --profile DIR: V8 CPU profiles of the dev process, the enclave and its signing workers (one file per thread).
  const prof = opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] : [];
  // --policy FILE: the enclave runs that policy instead of the permissive dev policy.
  const policy = opts.policy ? ['--policy', opts.policy] : [];
  // --enclave-node: the enclave on another node binary (the image's pinned Node 22), the parent on this one.
  const enclaveNode = opts.enclaveNode ? ['--enclave-node', opts.enclaveNode] : [];
  // --enclave-allocator: the enclave on the image's malloc (tcmalloc, preloaded), the parent on its own.
  if (opts.enclaveAllocator) enclaveNode.push('--enclave-allocator', opts.enclaveAllocator);
  // parentNode: the dev process (the parent) on another node binary; default this one.
  const node = opts.parentNode?.path ?? process.execPath;
  const env = opts.parentNode?.env ? { ...process.env, ...opts.parentNode.env } : process.env;
  const child = spawn(node, [...prof, bin, 'dev', '--data-dir', dataDir, '--json', ...policy, ...enclaveNode], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let tail = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  // Drained (the enclave logs one audit line per signature); only the tail is kept for errors.
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (tail = (tail + s).slice(-4000)));
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
    });
  const deadline = Date.now() + 60_000;
  let socket: string | undefined;
  let enclavePid = 0;
  while (!socket) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`enclave-signer dev did not start:\n${tail}`);
    }
    const line = stdout.split('\n').find((l) => l.startsWith('{'));
    if (line) ({ socket, enclavePid } = JSON.parse(line) as { socket: string; enclavePid: number });
    else await sleep(50);
  }
  while ((await get(socket, '/readyz').catch(() => 0)) !== 200) {
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the signer did not become ready:\n${tail}`);
    }
    await sleep(100);
  }
  return { socket, pids: { parent: child.pid!, enclave: enclavePid }, child, stop };
}

/** CLOCK_MONOTONIC in µs (process.hrtime), the time base of V8's CPU profiles in every process on this host. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function get(socketPath: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/** CPU time (user + system) of one /proc stat file, in ms (USER_HZ is 100 on Linux: 10 ms resolution). */
function cpuMsOfStat(path: string): number {
  try {
    const stat = readFileSync(path, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

/** A process's CPU: its main thread (the event loop) and all its other threads (signing workers, V8/libuv helpers). */
function cpuOf(pid: number): { main: number; others: number } {
  const total = cpuMsOfStat(`/proc/${pid}/stat`);
  const main = cpuMsOfStat(`/proc/${pid}/task/${pid}/stat`);
  return { main, others: total - main };
}

/** CPU ms by process/thread name: client (this process), <proc>Main and <proc>Others for each watched pid. */
export type Cpu = Record<string, number>;

export function cpuSnapshot(pids: Record<string, number>): Cpu {
  const u = process.cpuUsage();
  const out: Cpu = { client: (u.user + u.system) / 1000 };
  for (const [name, pid] of Object.entries(pids)) {
    const c = cpuOf(pid);
    out[`${name}Main`] = c.main;
    out[`${name}Others`] = c.others;
  }
  return out;
}

// ------------------------------------------------------------ clients

export type Call = (body: string) => Promise<string>;

/** The i-th digest the benchmarks sign: 32 bytes, 0x-hex, distinct per request. */
export const digestHex = (i: number): string => `0x${(i + 1).toString(16).padStart(64, '0')}`;

/** One JSON-RPC call over HTTP on the signing socket (set-up calls: keys, status); an error answer throws. */
export async function rpc(socket: string, method: string, params: unknown): Promise<any> {
  const a = JSON.parse(await httpClient(socket, new Agent())(JSON.stringify({ jsonrpc: '2.0', id: 1, method, params })));
  if (a.error) throw new Error(`${method}: ${a.error.message}`);
  return a.result;
}

/** HTTP over the Unix socket with keep-alive: one connection per concurrent client. */
export function httpClient(socketPath: string, agent: Agent): Call {
  return (body) =>
    new Promise((resolve, reject) => {
      const req = request(
        { socketPath, agent, method: 'POST', path: '/', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
}

/** Raw geth-style IPC: one connection, one request at a time, answers end with "\n". */
export async function ipcClient(socketPath: string): Promise<{ call: Call; close(): void }> {
  const sock: Socket = await new Promise((resolve, reject) => {
    const s = connect(socketPath, () => resolve(s));
    s.once('error', reject);
  });
  sock.setEncoding('utf8');
  let buf = '';
  let waiting: ((s: string) => void) | undefined;
  sock.on('data', (d: string) => {
    buf += d;
    const i = buf.indexOf('\n');
    if (i >= 0 && waiting) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting;
      waiting = undefined;
      w(line);
    }
  });
  return {
    call: (body) =>
      new Promise((resolve, reject) => {
        if (sock.destroyed) return reject(new Error('IPC connection closed'));
        waiting = resolve;
        sock.write(`${body}\n`);
      }),
    close: () => sock.destroy(),
  };
}

export interface LoadResult extends Stats {
  transport: string;
  method: string;
  concurrency: number;
  errors: number;
  /** CPU milliseconds per request, by process and thread (enclaveOthers is mostly the signing workers). */
  cpuMsPerOp: Cpu;
}

/**
 * `concurrency` clients, each sending its next request when the previous one
 * is answered, until `maxRequests` were sent or `seconds` passed. A warm-up
 * (not measured) runs first.
 */
export async function load(opts: {
  transport: 'http' | 'ipc';
  socket: string;
  pids: Record<string, number>;
  warmup?: number;
  concurrency: number;
  method: string;
  params: (i: number) => unknown;
  seconds: number;
  maxRequests: number;
  /** The whole request body for request i (e.g. a signed request); default: {jsonrpc, id, method, params}. */
  body?: (i: number, method: string, params: unknown) => string;
  /**
   * Told the measured window (after the warm-up) on CLOCK_MONOTONIC in µs, the clock V8 stamps
   * `--cpu-prof` samples with: lets a profile be cut to exactly the measured requests.
   */
  onMeasured?: (window: { startUs: number; endUs: number }) => void;
}): Promise<LoadResult> {
  const { concurrency } = opts;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const ipcs = opts.transport === 'ipc' ? await Promise.all(Array.from({ length: concurrency }, () => ipcClient(opts.socket))) : [];
  const callers: Call[] = opts.transport === 'http' ? Array.from({ length: concurrency }, () => httpClient(opts.socket, agent)) : ipcs.map((c) => c.call);
  let next = 0;
  let errors = 0;
  const body = (i: number) => (opts.body ? opts.body(i, opts.method, opts.params(i)) : JSON.stringify({ jsonrpc: '2.0', id: i, method: opts.method, params: opts.params(i) }));

  const run = async (budget: number, until: number, record: number[] | undefined) => {
    const worker = async (call: Call) => {
      while (next < budget && performance.now() < until) {
        const i = next++;
        const t0 = performance.now();
        const answer = await call(body(i));
        const dt = performance.now() - t0;
        if (!answer.includes('"result"')) errors++;
        record?.push(dt);
      }
    };
    await Promise.all(callers.map(worker));
  };
  try {
    // Warm-up: connections opened, JIT warm, worker pools busy once.
    await run(Math.min(200, Math.max(20, concurrency * 4)), performance.now() + (opts.warmup ?? 2_000), undefined);
    next = 0;
    errors = 0;
    const latencies: number[] = [];
    const c0 = cpuSnapshot(opts.pids);
    const m0 = monotonicUs();
    const t0 = performance.now();
    await run(opts.maxRequests, t0 + opts.seconds * 1000, latencies);
    const seconds = (performance.now() - t0) / 1000;
    const m1 = monotonicUs();
    const c1 = cpuSnapshot(opts.pids);
    opts.onMeasured?.({ startUs: m0, endUs: m1 });
    const cpuMsPerOp: Cpu = {};
    for (const k of Object.keys(c1)) cpuMsPerOp[k] = +((c1[k]! - c0[k]!) / Math.max(1, latencies.length)).toFixed(4);
    return {
      transport: opts.transport === 'http' ? 'http-unix-keepalive' : 'ipc',
      method: opts.method,
      concurrency,
      errors,
      ...stats(latencies, seconds),
      cpuMsPerOp,
    };
  } finally {
    agent.destroy();
    for (const c of ipcs) c.close();
  }
}

