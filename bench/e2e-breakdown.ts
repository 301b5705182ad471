/**
 * The CPU-breakdown section of bench/e2e.ts (issue 11 §4: "where a target is missed, the CPU
 * breakdown says exactly where the time goes"). For each level (default: 64 IPC clients, where
 * the throughput, enclave-CPU and parent-CPU targets are set, and one client, where the latency
 * target is), the appliance and the hot wallet each get the same closed-loop load of
 * `signer_signDigest` while Linux perf samples them on CPU:
 *
 *   - `perf record -F 999 -g` on the dev process (the parent) and the enclave process, then on
 *     the hot wallet; node runs with `--perf-basic-prof`, so JavaScript frames have names;
 *   - every sample is given the category of its innermost frame that a rule claims
 *     (bench/perf-samples.ts): the signing primitive, the audit record's Ed25519 signature, the
 *     rest of the record, the bridge and CBOR, thread messages, malloc/free, the kernel by system
 *     call, …;
 *   - a thread's share of a category × that thread's CPU per signature from /proc (over the
 *     load's measured window) = CPU per signature spent on that category. perf's shares come
 *     from ~4,000–8,000 samples per point; /proc gives the absolute time, as in the main section.
 *
 * The result puts each target beside what it is made of: the enclave's CPU per signature against
 * 1.15 × the raw sign, split into the primitive and the rest; the parent's CPU per request against
 * 0.1 ms; the whole path's CPU per request at one client against the hot wallet's; and the CPU
 * per signature of every process at 64 clients against the hot wallet's (on a shared 2-vCPU box,
 * throughput is 2 vCPUs over the CPU a signature costs).
 *
 * perf costs CPU itself (sampling with call stacks at ~1 kHz), so throughput and p50 under it are
 * a little lower than in the main section; the shares are what this section is for.
 *
 * Needs `perf` (Debian: linux-perf) and the right to profile processes of this user
 * (kernel.perf_event_paranoid ≤ 2 for one's own processes; root here). Without it the section
 * fails with that message; the main section does not need it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { digestHex, load, rpc, sleep, startHotWallet, startStack, type HotWallet, type LoadResult, type ParentNode } from './e2e-harness.js';
import { PRIMITIVE, parsePerfScript, tally, threadRoles, type PerfSample } from './perf-samples.js';

export interface BreakdownOptions {
  dir: string;
  /** Seconds of load (and of sampling) per point. */
  seconds: number;
  /** Concurrent IPC clients per point. */
  levels: number[];
  /** Seconds of steady-state load before the points (at 64 clients, then at one), for both. */
  steadySeconds: number;
  /** The node of the enclave and the hot wallet (the image's Node 22 when installed). */
  signingNode: string;
  /** The enclave's malloc library (the image's tcmalloc, e2e.ts --enclave-allocator); undefined: glibc's. */
  enclaveAllocator?: string | undefined;
  /** The node of the parent, with what it needs in its environment (e2e.ts --parent-node); default this one. */
  parentNode?: ParentNode;
  /** The raw primitive's CPU per signature, measured on the signing node (e2e.ts rawSigningOn). */
  rawCpuMsPerSignature: () => number;
  log: (line: string) => void;
}

/** CPU ms per signature by category, for one thread group. */
type Categories = Record<string, number>;

interface ThreadGroup {
  /** CPU ms per signature from /proc (for workers and helpers: the process's other threads, split by perf's shares). */
  cpuMs: number;
  categories: Categories;
}

interface Side {
  signaturesPerSec: number;
  p50Ms: number;
  errors: number;
  /** The load client's CPU per signature (this process). */
  clientCpuMs: number;
  /** perf samples of the side's processes in the point. */
  samples: number;
  threads: Record<string, ThreadGroup>;
}

export interface BreakdownPoint {
  clients: number;
  appliance: Side;
  hotWallet: Side;
}

const r4 = (x: number) => +x.toFixed(4);
const NOT_SAMPLED = 'not sampled by perf (CPU /proc counted in a thread perf caught no sample of)';

/** Fails with what to do when perf cannot profile here. */
function checkPerf(): void {
  try {
    execFileSync('perf', ['record', '-q', '-F', '99', '-g', '-o', '/dev/null', '--', 'true'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const why = (e as { stderr?: Buffer }).stderr?.toString().trim().split('\n')[0] ?? String(e);
    throw new Error(`the CPU breakdown needs Linux perf and the right to profile this user's processes (Debian: apt install linux-perf; kernel.perf_event_paranoid ≤ 2): ${why}`);
  }
}

/** Samples `pids` with call stacks while `during` runs; returns the parsed samples. */
async function sampled(pids: number[], file: string, during: () => Promise<LoadResult>): Promise<{ samples: PerfSample[]; result: LoadResult }> {
  const perf = spawn('perf', ['record', '-q', '-F', '999', '-g', '-p', pids.join(','), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  perf.stderr!.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-2000)));
  const exited = new Promise<string>((r) => perf.once('exit', (code, signal) => r(signal ?? String(code))));
  await sleep(150); // perf attaches to every thread of the processes
  let result: LoadResult;
  try {
    result = await during();
  } finally {
    perf.kill('SIGINT');
  }
  // perf stops on SIGINT and writes its file (it exits 0, or re-raises the signal).
  const how = await exited;
  if (how !== '0' && how !== 'SIGINT') throw new Error(`perf record failed (${how}): ${err.trim()}`);
  const text = execFileSync('perf', ['script', '-i', file, '-F', 'pid,tid,period,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  rmSync(file, { force: true });
  return { samples: parsePerfScript(text), result };
}

/** ns by category → ms per signature, scaled so that the group's categories add up to `cpuMs`. */
function scaled(t: Map<string, number>, cpuMs: number): Categories {
  const total = [...t.values()].reduce((a, b) => a + b, 0);
  // /proc counted CPU that perf caught no sample of (a thread that ran a few ms): said so, so that
  // a group's categories still add up to its CPU.
  if (total === 0) return cpuMs > 0 ? { [NOT_SAMPLED]: r4(cpuMs) } : {};
  const out: Categories = {};
  for (const [k, v] of [...t].sort((a, b) => b[1] - a[1])) out[k] = r4((v / total) * cpuMs);
  return out;
}

/**
 * One process's threads: the main thread gets /proc's main-thread CPU, the other threads /proc's
 * rest, split between signing workers and runtime helpers by perf's shares.
 */
function groups(samples: PerfSample[], pid: number, cpuMain: number, cpuOthers: number, names: { main: string; worker: string; helper: string }): Record<string, ThreadGroup> {
  const mine = samples.filter((s) => s.pid === pid);
  const roles = threadRoles(mine);
  const ns = (role: string) => mine.filter((s) => roles.get(s.tid) === role).reduce((a, s) => a + s.period, 0);
  const workerNs = ns('worker');
  const helperNs = ns('helper');
  const workerMs = workerNs + helperNs > 0 ? (cpuOthers * workerNs) / (workerNs + helperNs) : 0;
  const out: Record<string, ThreadGroup> = {
    [names.main]: { cpuMs: r4(cpuMain), categories: scaled(tally(mine, (s) => roles.get(s.tid) === 'main'), cpuMain) },
  };
  if (workerNs > 0) out[names.worker] = { cpuMs: r4(workerMs), categories: scaled(tally(mine, (s) => roles.get(s.tid) === 'worker'), workerMs) };
  out[names.helper] = { cpuMs: r4(cpuOthers - workerMs), categories: scaled(tally(mine, (s) => roles.get(s.tid) === 'helper'), cpuOthers - workerMs) };
  return out;
}

function side(r: LoadResult, samples: PerfSample[], threads: Record<string, ThreadGroup>): Side {
  return { signaturesPerSec: r.opsPerSec, p50Ms: r.p50Ms, errors: r.errors, clientCpuMs: r4(r.cpuMsPerOp.client ?? 0), samples: samples.length, threads };
}

/** Adds up categories over thread groups. */
function sum(groupsOf: ThreadGroup[]): Categories {
  const out: Categories = {};
  for (const g of groupsOf) for (const [k, v] of Object.entries(g.categories)) out[k] = (out[k] ?? 0) + v;
  return Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, r4(v)]));
}

const total = (gs: ThreadGroup[]) => r4(gs.reduce((a, g) => a + g.cpuMs, 0));

export async function measureBreakdown(o: BreakdownOptions): Promise<Record<string, unknown>> {
  checkPerf();
  // JavaScript frames get names in perf only with --perf-basic-prof (node writes /tmp/perf-PID.map).
  const withPerfMap = (opts: string | undefined) => `${opts ?? ''} --perf-basic-prof`.trim();
  const env = { ...process.env, NODE_OPTIONS: withPerfMap(process.env.NODE_OPTIONS) };
  const parent = o.parentNode ?? { path: process.execPath };
  const stack = await startStack(join(o.dir, 'data'), {
    ...(o.signingNode === process.execPath ? {} : { enclaveNode: o.signingNode }),
    enclaveAllocator: o.enclaveAllocator,
    parentNode: { path: parent.path, env: { ...parent.env, NODE_OPTIONS: withPerfMap(parent.env?.NODE_OPTIONS ?? process.env.NODE_OPTIONS) } },
  });
  let hot: HotWallet | undefined;
  try {
    const wallet = await startHotWallet(o.dir, o.signingNode, env);
    hot = wallet;
    const key = await rpc(stack.socket, 'signer_createKey', { label: 'breakdown' });
    const appliancePids = { parent: stack.pids.parent, enclave: stack.pids.enclave };
    const run = (socket: string, pids: Record<string, number>, clients: number, seconds: number) =>
      load({ transport: 'ipc', socket, pids, warmup: 100, concurrency: clients, method: 'signer_signDigest', params: (i) => ({ keyId: key.keyId, digest: digestHex(i) }), seconds, maxRequests: 1e9 });

    o.log(`breakdown: steady-state warm-up, ${o.steadySeconds} s at 64 clients and ${2 * o.steadySeconds} s at 1, appliance and hot wallet …`);
    for (const [socket, pids] of [[stack.socket, appliancePids], [wallet.ipc, { hot: wallet.pid }]] as const) {
      await run(socket, pids, 64, o.steadySeconds);
      await run(socket, pids, 1, 2 * o.steadySeconds);
    }
    const raw = o.rawCpuMsPerSignature();
    const points: BreakdownPoint[] = [];
    for (const clients of o.levels) {
      o.log(`breakdown: ${clients} IPC client(s), ${o.seconds} s each under perf …`);
      const a = await sampled([stack.pids.parent, stack.pids.enclave], join(o.dir, 'appliance.perf'), () => run(stack.socket, appliancePids, clients, o.seconds));
      const h = await sampled([wallet.pid], join(o.dir, 'hot.perf'), () => run(wallet.ipc, { hot: wallet.pid }, clients, o.seconds));
      const c = a.result.cpuMsPerOp;
      const hc = h.result.cpuMsPerOp;
      points.push({
        clients,
        appliance: side(a.result, a.samples, {
          ...groups(a.samples, stack.pids.parent, c.parentMain!, c.parentOthers!, { main: 'parent: main thread', worker: 'parent: worker threads', helper: 'parent: runtime helper threads' }),
          ...groups(a.samples, stack.pids.enclave, c.enclaveMain!, c.enclaveOthers!, { main: 'enclave: main thread', worker: 'enclave: signing workers', helper: 'enclave: runtime helper threads' }),
        }),
        hotWallet: side(h.result, h.samples, groups(h.samples, wallet.pid, hc.hotMain!, hc.hotOthers!, { main: 'hot wallet: main thread', worker: 'hot wallet: worker threads', helper: 'hot wallet: runtime helper threads' })),
      });
    }
    return { ...report(points, raw), points, machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavg: loadavg().map((x) => +x.toFixed(2)), node: process.version, signingNode: o.signingNode, parentNode: parent.path } };
  } finally {
    await stack.stop();
    await hot?.stop();
    for (const p of [stack.pids.parent, stack.pids.enclave, hot?.pid]) if (p !== undefined) rmSync(`/tmp/perf-${p}.map`, { force: true });
  }
}

/** The targets beside what they are made of. */
export function report(points: BreakdownPoint[], raw: number, vcpus = cpus().length): Record<string, unknown> {
  const at = (n: number) => points.find((p) => p.clients === n);
  const out: Record<string, unknown> = { rawPrimitiveCpuMsPerSignature: r4(raw) };
  const p64 = at(64) ?? points[points.length - 1];
  if (p64) {
    const t = p64.appliance.threads;
    const enclave = Object.entries(t).filter(([k]) => k.startsWith('enclave:')).map(([, g]) => g);
    const parent = Object.entries(t).filter(([k]) => k.startsWith('parent:')).map(([, g]) => g);
    const enclaveCats = sum(enclave);
    const primitive = enclaveCats[PRIMITIVE] ?? 0;
    const rest = Object.fromEntries(Object.entries(enclaveCats).filter(([k]) => k !== PRIMITIVE));
    const hotGroups = Object.values(p64.hotWallet.threads);
    out.enclaveCpuAgainstRaw = {
      clients: p64.clients,
      target: 'enclave CPU per signature ≤ 1.15 × the raw @noble/secp256k1 sign',
      rawMs: r4(raw),
      allowedMs: r4(1.15 * raw),
      enclaveMs: total(enclave),
      ratio: +(total(enclave) / raw).toFixed(3),
      primitiveInEnclaveMs: r4(primitive),
      everythingElseMs: r4(total(enclave) - primitive),
      everythingElse: rest,
    };
    out.parentCpuPerRequest = { clients: p64.clients, target: 'parent CPU ≤ 0.1 ms per request over IPC', targetMs: 0.1, parentMs: total(parent), categories: sum(parent) };
    const applianceAll = total([...enclave, ...parent]) + p64.appliance.clientCpuMs;
    out.throughputAgainstHotWallet = {
      clients: p64.clients,
      target: 'throughput at 64 IPC clients ≥ 1.0 × the hot wallet',
      ratio: +(p64.appliance.signaturesPerSec / p64.hotWallet.signaturesPerSec).toFixed(3),
      applianceSignaturesPerSec: p64.appliance.signaturesPerSec,
      hotWalletSignaturesPerSec: p64.hotWallet.signaturesPerSec,
      cpuMsPerSignature: { appliance: r4(applianceAll), enclave: total(enclave), parent: total(parent), client: p64.appliance.clientCpuMs, hotWallet: r4(total(hotGroups)), hotWalletClient: p64.hotWallet.clientCpuMs },
      hotWalletCategories: sum(hotGroups),
      why: 'every process shares the same vCPUs: the appliance can sign at most vCPUs / (its CPU per signature, all processes) per second; the hot wallet is one thread, so at most 1 / (its CPU per signature) whatever the vCPUs',
      ceilingSignaturesPerSec: { appliance: Math.round((vcpus * 1000) / applianceAll), hotWallet: Math.round(1000 / total(hotGroups)) },
    };
  }
  const p1 = at(1);
  if (p1) {
    const all = Object.values(p1.appliance.threads);
    const hotAll = Object.values(p1.hotWallet.threads);
    out.oneClient = {
      clients: 1,
      target: 'added p50 at one client ≤ 0.5 ms over IPC',
      addedP50Ms: r4(p1.appliance.p50Ms - p1.hotWallet.p50Ms),
      cpuMsPerRequest: { appliance: r4(total(all) + p1.appliance.clientCpuMs), hotWallet: r4(total(hotAll) + p1.hotWallet.clientCpuMs) },
      why: 'one request at a time: its latency is the CPU of its path run in series plus the wake-ups between processes and threads',
      applianceCategories: sum(all),
      hotWalletCategories: sum(hotAll),
    };
  }
  return out;
}

/** A Markdown table of one point's categories by thread group (for docs/performance.md). */
export function markdown(b: Record<string, unknown>): string {
  const points = b.points as BreakdownPoint[];
  const lines: string[] = [];
  for (const p of points) {
    const groupsOf = { ...p.appliance.threads, ...p.hotWallet.threads };
    const names = Object.keys(groupsOf).filter((g) => groupsOf[g]!.cpuMs >= 0.0005);
    const cats = [...new Set(names.flatMap((g) => Object.keys(groupsOf[g]!.categories)))];
    cats.sort((x, y) => names.reduce((a, g) => a + (groupsOf[g]!.categories[y] ?? 0), 0) - names.reduce((a, g) => a + (groupsOf[g]!.categories[x] ?? 0), 0));
    lines.push(`${p.clients} IPC client(s): appliance ${p.appliance.signaturesPerSec}/s p50 ${p.appliance.p50Ms} ms; hot wallet ${p.hotWallet.signaturesPerSec}/s p50 ${p.hotWallet.p50Ms} ms (µs of CPU per signature)`, '');
    lines.push(`| category | ${names.join(' | ')} |`, `|---|${names.map(() => '---:').join('|')}|`);
    for (const c of cats) lines.push(`| ${c} | ${names.map((g) => Math.round(1000 * (groupsOf[g]!.categories[c] ?? 0))).join(' | ')} |`);
    lines.push(`| **total** | ${names.map((g) => `**${Math.round(1000 * groupsOf[g]!.cpuMs)}**`).join(' | ')} |`, '');
  }
  return lines.join('\n');
}

/** For a quick look at a saved result: node dist/bench/e2e-breakdown.js [bench/results/e2e.json]. */
if (process.argv[1]?.endsWith('e2e-breakdown.js')) {
  const file = process.argv[2] ?? join(process.cwd(), 'bench', 'results', 'e2e.json');
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { cpuBreakdown?: Record<string, unknown> };
  if (!saved.cpuBreakdown) throw new Error(`${file} has no cpuBreakdown (node dist/bench/e2e.js --sections breakdown)`);
  process.stdout.write(`${markdown(saved.cpuBreakdown)}\n`);
}
