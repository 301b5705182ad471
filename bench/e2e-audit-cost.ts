/**
 * The audit-cost section of bench/e2e.ts (issue 10 §5 "Cost: records are cheap … the target is
 * under 10 %"). The audit chain cannot be switched off (and gets no switch: a "no audit" mode
 * would be a way to sign unrecorded), so its cost is measured by attribution instead of by
 * difference:
 *
 *   - two dev stacks (`enclave-signer dev`, permissive dev policy), one of them run with
 *     `--cpu-prof` (the dev process, the enclave and its signing workers: one profile per thread);
 *   - in alternated rounds, each gets 64 IPC clients of `signer_signDigest`, then one client;
 *   - each profile is cut to the measured windows of the profiled stack (the harness reports
 *     them on CLOCK_MONOTONIC, V8's sample clock) and its samples are split by the audit
 *     functions on their stack (bench/cpuprofile.ts `attribute`): in the enclave, building and
 *     encoding the record, SHA-256, the audit key's Ed25519 signature and the trail's buffer
 *     (the legacy stderr audit line is gone); in the parent, the persister, the keystore's parse and row
 *     writes, BEGIN/COMMIT (its fsync) and the receipt index;
 *   - a thread's audit share of its busy samples × that thread's CPU per signature from /proc
 *     = audit CPU per signature. Summed over the enclave and the parent and divided by their
 *     total CPU per signature: the audit share of the server's CPU. On a CPU-bound box (this one:
 *     2 vCPUs, everything on the same cores) that share is the throughput the audit costs.
 *
 * The unprofiled stack gives the reference throughput and p50 (the profiler costs CPU itself),
 * and the shares are applied to its CPU per thread too.
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { requestDigest } from '../common/audit/digest.js';
import { releasedResultDigest } from '../common/audit/result.js';
import { AuditLog } from '../enclave/audit/log.js';
import { createAuditPersister } from '../parent/audit-persist.js';
import { openKeystore } from '../parent/keystore.js';
import { openSqliteDb } from '../parent/keystore-sqlite.js';
import { devPaths } from '../dev/stack.js';
import { attribute, findProfile, type Attribution, type Category } from './cpuprofile.js';
import { digestHex, load, rpc, startStack, type LoadResult, type Stack } from './e2e-harness.js';

export interface AuditCostOptions {
  dir: string;
  rounds: number;
  /** Seconds per 64-client point and per 1-client point. */
  seconds: number;
  latencySeconds: number;
  warmupMs: number;
  log: (line: string) => void;
}

/** The relay of the enclave's console by the dev process: exists only on the dev stack. */
const DEV_RELAY = 'dev relay of the enclave console (dev stack only)';
const COMMIT = 'SQLite BEGIN/COMMIT (fsync wait included)';

/**
 * Enclave functions, grouped. A sample counts for the deepest match on its stack, so the
 * signature inside the record writer is "signature", the writer's own work "record building".
 */
export const ENCLAVE_CATEGORIES: readonly Category[] = [
  { name: 'audit-key signature (Ed25519 over the COSE Sig_structure)', match: ['signEnvelope@envelope.js', 'sigStructure@envelope.js', 'encodeEnvelope@envelope.js'] },
  { name: 'SHA-256 (record hash, request and result digests)', match: ['sha256@record.js'] },
  { name: 'request digest (CBOR re-encoding of the request)', match: ['requestDigest@digest.js'] },
  { name: 'record encoding and validation (canonical CBOR)', match: ['encodeRecordBody@record.js', 'validateBody@record.js'] },
  { name: 'result digest (which bytes)', match: ['releasedResultDigest@result.js'] },
  { name: 'trail bookkeeping (recent-records buffer)', match: ['#keep@trail.js', 'since@trail.js'] },
  { name: 'record building (head, time, fields)', match: ['#write@log.js', 'append@log.js', 'append@trail.js', 'signed@trail.js', 'denied@trail.js', 'pending@trail.js', 'log@trail.js'] },
];

export const PARENT_CATEGORIES: readonly Category[] = [
  { name: COMMIT, match: ['transaction@keystore-sqlite.js'] },
  { name: 'row writes (one INSERT per record)', match: ['insertAudit@keystore.js', 'changeWithRecords@keystore.js'] },
  { name: 'keystore parse of each record', match: ['auditRows@keystore.js'] },
  { name: 'keystore append (other)', match: ['withAudit@keystore.js', 'appendAuditRecords@keystore.js', 'remember@keystore.js'] },
  { name: 'persister parse of each record', match: ['parsedRecord@audit-persist.js'] },
  { name: 'persister ordering and group commit', match: ['*@audit-persist.js'] },
  { name: 'receipt index and header', match: ['*@audit-methods.js', 'withReceipt@dispatch.js'] },
  { name: DEV_RELAY, match: ['*@supervise.js'] },
];

type Window = { startUs: number; endUs: number };

interface Target {
  name: 'plain' | 'profiled';
  stack: Stack;
  keyId: string;
  windows64: Window[];
  windows1: Window[];
  /** Date.now() around each 64-client point (warm-up included): to find its rows in the keystore. */
  wallWindows64: { from: number; to: number }[];
  at64: LoadResult[];
  at1: LoadResult[];
}

const r1 = (x: number) => +x.toFixed(1);
const r2 = (x: number) => +x.toFixed(2);
const r4 = (x: number) => +x.toFixed(4);

async function prepare(name: Target['name'], stack: Stack): Promise<Target> {
  const key = await rpc(stack.socket, 'signer_createKey', { label: 'bench-audit-cost' });
  return { name, stack, keyId: key.keyId as string, windows64: [], windows1: [], wallWindows64: [], at64: [], at1: [] };
}

async function point(t: Target, concurrency: 64 | 1, o: AuditCostOptions): Promise<LoadResult> {
  const from = Date.now();
  const r = await load({
    transport: 'ipc',
    socket: t.stack.socket,
    pids: { parent: t.stack.pids.parent, enclave: t.stack.pids.enclave },
    warmup: o.warmupMs,
    concurrency,
    method: 'signer_signDigest',
    params: (i) => ({ keyId: t.keyId, digest: digestHex(i) }),
    seconds: concurrency === 64 ? o.seconds : o.latencySeconds,
    maxRequests: 100_000,
    onMeasured: (w) => (concurrency === 64 ? t.windows64 : t.windows1).push(w),
  });
  (concurrency === 64 ? t.at64 : t.at1).push(r);
  if (concurrency === 64) t.wallWindows64.push({ from, to: Date.now() });
  return r;
}

/** CPU ms per signature over several points, weighted by their requests. */
function cpuPerSig(points: readonly LoadResult[]): Record<'parentMain' | 'parentOthers' | 'enclaveMain' | 'enclaveOthers' | 'client', number> {
  const n = points.reduce((a, p) => a + p.n, 0);
  const w = (k: string) => r4(points.reduce((a, p) => a + (p.cpuMsPerOp[k] ?? 0) * p.n, 0) / Math.max(1, n));
  return { parentMain: w('parentMain'), parentOthers: w('parentOthers'), enclaveMain: w('enclaveMain'), enclaveOthers: w('enclaveOthers'), client: w('client') };
}

function throughput(points: readonly LoadResult[]): number {
  const n = points.reduce((a, p) => a + p.n, 0);
  const s = points.reduce((a, p) => a + p.seconds, 0);
  return r1(n / Math.max(1e-9, s));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function runSummary(t: Target) {
  const cpu = cpuPerSig(t.at64);
  return {
    opsPerSecAt64Ipc: throughput(t.at64),
    p50MsAt64Ipc: r2(median(t.at64.map((p) => p.p50Ms))),
    p50MsAt1Ipc: r2(median(t.at1.map((p) => p.p50Ms))),
    opsPerSecAt1Ipc: throughput(t.at1),
    errors: [...t.at64, ...t.at1].reduce((a, p) => a + p.errors, 0),
    signaturesAt64: t.at64.reduce((a, p) => a + p.n, 0),
    cpuMsPerSignatureAt64: { ...cpu, parent: r4(cpu.parentMain + cpu.parentOthers), enclave: r4(cpu.enclaveMain + cpu.enclaveOthers), server: r4(cpu.parentMain + cpu.parentOthers + cpu.enclaveMain + cpu.enclaveOthers) },
    points: t.at64.map((p, i) => ({ at64: { opsPerSec: p.opsPerSec, n: p.n, p50Ms: p.p50Ms, cpuMsPerOp: p.cpuMsPerOp }, at1: t.at1[i] ? { opsPerSec: t.at1[i]!.opsPerSec, p50Ms: t.at1[i]!.p50Ms, cpuMsPerOp: t.at1[i]!.cpuMsPerOp } : null })),
  };
}

/** Share (0..1) of a thread's busy samples in the named categories. */
const shareOf = (a: Attribution | undefined, pick: (name: string) => boolean) =>
  a ? a.categories.filter((c) => pick(c.frame)).reduce((s, c) => s + c.ms, 0) / Math.max(1e-9, a.busyMs) : 0;

/** Workers' profiles merged: busy and per-category ms summed. */
function mergeWorkers(as: Attribution[]): Attribution | undefined {
  if (as.length === 0) return undefined;
  const cats = new Map<string, number>();
  for (const a of as) for (const c of a.categories) cats.set(c.frame, (cats.get(c.frame) ?? 0) + c.ms);
  const busy = as.reduce((s, a) => s + a.busyMs, 0);
  const matched = as.reduce((s, a) => s + a.matchedMs, 0);
  return {
    file: as.map((a) => a.file).join(', '),
    wallMs: r1(as.reduce((s, a) => s + a.wallMs, 0)),
    busyMs: r1(busy),
    gcMs: r1(as.reduce((s, a) => s + a.gcMs, 0)),
    categories: [...cats.entries()].map(([frame, ms]) => ({ frame, ms: r1(ms), pct: r2((100 * ms) / Math.max(1e-9, busy)) })),
    matchedMs: r1(matched),
    matchedPct: r2((100 * matched) / Math.max(1e-9, busy)),
    topSelfMatched: as.flatMap((a) => a.topSelfMatched).slice(0, 10),
  };
}

interface Threads {
  enclaveMain: Attribution | undefined;
  enclaveWorkers: Attribution | undefined;
  parentMain: Attribution | undefined;
}

function attributeAll(profDir: string, pids: Stack['pids'], windows: Window[]): Threads {
  const one = (pid: number, cats: readonly Category[]) => {
    const f = findProfile(profDir, pid, 'main')[0];
    return f ? attribute(f, { windows, categories: cats }) : undefined;
  };
  return {
    enclaveMain: one(pids.enclave, ENCLAVE_CATEGORIES),
    enclaveWorkers: mergeWorkers(findProfile(profDir, pids.enclave, 'others').map((f) => attribute(f, { windows, categories: ENCLAVE_CATEGORIES }))),
    parentMain: one(pids.parent, PARENT_CATEGORIES),
  };
}

/**
 * Audit CPU per signature (µs) from the threads' audit shares and their CPU per signature (ms).
 * The enclave's other threads are the signing workers plus V8/libuv helpers: the workers' share
 * is applied to all of them. The parent's other threads (V8/libuv helpers, and the profiler's
 * sampling thread in a profiled run) run no JavaScript and get no share.
 */
function perSignature(t: Threads, cpu: ReturnType<typeof cpuPerSig>) {
  const chain = (n: string) => n !== DEV_RELAY;
  const us = (share: number, ms: number) => r1(share * ms * 1000);
  const enclaveChainUs = us(shareOf(t.enclaveMain, chain), cpu.enclaveMain) + us(shareOf(t.enclaveWorkers, chain), cpu.enclaveOthers);
  const parentChainUs = us(shareOf(t.parentMain, chain), cpu.parentMain);
  const commitUs = us(shareOf(t.parentMain, (n) => n === COMMIT), cpu.parentMain);
  const devRelayUs = us(shareOf(t.parentMain, (n) => n === DEV_RELAY), cpu.parentMain);
  const serverUs = r1((cpu.parentMain + cpu.parentOthers + cpu.enclaveMain + cpu.enclaveOthers) * 1000);
  const pct = (x: number) => r2((100 * x) / Math.max(1e-9, serverUs));
  const byCategory = (a: Attribution | undefined, ms: number) => Object.fromEntries((a?.categories ?? []).map((c) => [c.frame, us(c.ms / Math.max(1e-9, a!.busyMs), ms)]));
  return {
    /** µs per signature of each category (its share of the thread's busy samples × the thread's CPU). */
    enclaveMainByCategoryUs: byCategory(t.enclaveMain, cpu.enclaveMain),
    parentMainByCategoryUs: byCategory(t.parentMain, cpu.parentMain),
    enclaveAuditChainUs: r1(enclaveChainUs),
    parentAuditChainUs: parentChainUs,
    parentCommitUs: commitUs,
    devRelayOfAuditLinesUs: devRelayUs,
    auditChainUs: r1(enclaveChainUs + parentChainUs),
    serverCpuUs: serverUs,
    /** The headline: the chain (enclave + parent) as a share of the server's CPU per signature. */
    auditChainSharePct: pct(enclaveChainUs + parentChainUs),
    /**
     * The chain's share of the enclave's own CPU (main + workers). On Nitro the enclave has its
     * own vCPUs and they bound the signing rate; the parent's part runs on the host's cores.
     */
    enclaveChainShareOfEnclavePct: r2((100 * enclaveChainUs) / Math.max(1e-9, (cpu.enclaveMain + cpu.enclaveOthers) * 1000)),
    /** Without BEGIN/COMMIT, whose samples include time blocked in fsync (not CPU). */
    auditChainSharePctWithoutCommit: pct(enclaveChainUs + parentChainUs - commitUs),
    /** Plus the dev process relaying the enclave's console (the stderr audit line is gone: ~0). */
    allAuditOnDevStackSharePct: pct(enclaveChainUs + parentChainUs + devRelayUs),
  };
}

/**
 * The same work in this process, with no other stage of the stack: CPU (process.cpuUsage: user +
 * system, so the kernel's share of fsync counts and the time blocked on the disk does not) and
 * wall time per record. Enclave: the request digest, AuditLog.append of an allowed sign record
 * (encode, SHA-256, Ed25519) and the result digest. Parent: the real persister on a real SQLite
 * keystore in `dir` (the file system the dev stacks use), `batch` records per event-loop turn
 * (one transaction, one fsync per batch).
 */
export async function measureInProcess(dir: string, records = 2000): Promise<Record<string, unknown>> {
  const log = await AuditLog.open({ nsm: { attest: async () => Uint8Array.of(0xde, 0xad, 0xbe, 0xef) } });
  const params = new Map<string, unknown>([
    ['op', 'signer_signDigest'],
    ['request', new Map([['digest', randomBytes(32)]])],
  ]);
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const made: Uint8Array[] = [];
  for (let i = 0; i < 200; i++) log.append({ kind: 'sign', decision: 'allowed', principal: 'host', op: 'signer_signDigest', keyId: 'k', requestDigest: requestDigest('sign', params as never), resultDigest: releasedResultDigest({ signature: `0x${'ab'.repeat(65)}` }) }); // warm-up
  const c0 = cpu();
  const w0 = performance.now();
  for (let i = 0; i < records; i++) {
    const rec = log.append({ kind: 'sign', decision: 'allowed', principal: 'host', op: 'signer_signDigest', keyId: '6f1c2e0a-0000-4000-8000-000000000001', requestDigest: requestDigest('sign', params as never), resultDigest: releasedResultDigest({ signature: `0x${i.toString(16).padStart(130, '0')}` }) });
    made.push(rec.bytes);
  }
  const enclave = { cpuUsPerRecord: r1(((cpu() - c0) * 1000) / records), wallUsPerRecord: r1(((performance.now() - w0) * 1000) / records) };
  // Records of a fresh log start after its hand-over (seq 0..200 went into the warm-up above, so a new log per batch size).
  const parent: Record<string, unknown>[] = [];
  for (const batch of [1, 16]) {
    const l = await AuditLog.open({ nsm: { attest: async () => Uint8Array.of(0xde, 0xad, 0xbe, 0xef) } });
    const recs = Array.from({ length: records }, (_, i) => l.append({ kind: 'sign', decision: 'allowed', principal: 'host', op: 'signer_signDigest', keyId: 'k', requestDigest: requestDigest('sign', params as never), resultDigest: releasedResultDigest({ signature: `0x${i.toString(16).padStart(130, '0')}` }) }).bytes);
    const ks = await openKeystore(join(dir, `in-process-${batch}.db`));
    const persister = createAuditPersister({ keystore: ks, log: () => {} });
    await persister.resync();
    await persister.persist([l.handover.bytes]);
    const p0 = cpu();
    const t0 = performance.now();
    for (let i = 0; i < recs.length; i += batch) await Promise.all(recs.slice(i, i + batch).map((r) => persister.persist([r])));
    parent.push({ recordsPerTransaction: batch, cpuUsPerRecord: r1(((cpu() - p0) * 1000) / records), wallUsPerRecord: r1(((performance.now() - t0) * 1000) / records) });
    if ((await ks.countAuditRecords()) !== records + 1) throw new Error('audit cost: the in-process persister lost records');
    persister.close();
    await ks.close();
    l.close();
  }
  log.close();
  return { records, enclave, parent, note: 'one thread, no other stage running in it; CPU includes kernel time (fsync), not time blocked on the disk' };
}

/**
 * Records per transaction at 64 clients: every row one transaction stores carries that
 * transaction's `stored_at` (keystore.ts insertAudit), so distinct values are transactions
 * (two commits in the same millisecond would count as one: an upper bound on the batch).
 */
async function recordsPerTransaction(keystorePath: string, windows: readonly { from: number; to: number }[]): Promise<{ records: number; transactions: number; recordsPerTransaction: number }> {
  const db = openSqliteDb(keystorePath, { readonly: true });
  try {
    const rows = await db.all<{ stored_at: string }>('SELECT stored_at FROM audit_records ORDER BY seq');
    const inside = rows.map((r) => Date.parse(r.stored_at)).filter((t) => windows.some((w) => t >= w.from && t <= w.to));
    const transactions = new Set(inside).size;
    return { records: inside.length, transactions, recordsPerTransaction: r1(inside.length / Math.max(1, transactions)) };
  } finally {
    await db.close();
  }
}

export async function measureAuditCost(o: AuditCostOptions): Promise<Record<string, unknown>> {
  const started = performance.now();
  const load0 = loadavg();
  const profDir = join(o.dir, 'profile');
  o.log('audit cost: starting two dev stacks (one with --cpu-prof) …');
  const [plainStack, profStack] = await Promise.all([startStack(join(o.dir, 'data-plain')), startStack(join(o.dir, 'data-profiled'), { profileDir: profDir })]);
  let plain: Target | undefined;
  let prof: Target | undefined;
  try {
    plain = await prepare('plain', plainStack);
    prof = await prepare('profiled', profStack);
    for (let round = 0; round < o.rounds; round++) {
      // Alternated (load from other processes comes and goes): plain first in even rounds.
      const order = round % 2 === 0 ? [plain, prof] : [prof, plain];
      for (const t of order) {
        const r = await point(t, 64, o);
        o.log(`  round ${round} ${t.name} ×64: ${r.opsPerSec}/s (errors ${r.errors}) | CPU ms/sig parent ${r4((r.cpuMsPerOp.parentMain ?? 0) + (r.cpuMsPerOp.parentOthers ?? 0))}, enclave ${r4((r.cpuMsPerOp.enclaveMain ?? 0) + (r.cpuMsPerOp.enclaveOthers ?? 0))} (main ${r.cpuMsPerOp.enclaveMain})`);
      }
      for (const t of order) {
        const r = await point(t, 1, o);
        o.log(`  round ${round} ${t.name} ×1: p50 ${r.p50Ms} ms, ${r.opsPerSec}/s`);
      }
    }
  } finally {
    // The profiles are written when the processes exit.
    await Promise.all([plainStack.stop(), profStack.stop()]);
  }
  const batching = await recordsPerTransaction(devPaths(join(o.dir, 'data-profiled')).keystore, prof.wallWindows64);
  o.log(`audit cost: ${batching.records} records in ${batching.transactions} transactions at 64 clients (${batching.recordsPerTransaction} per transaction)`);
  const at64 = attributeAll(profDir, profStack.pids, prof.windows64);
  const at1 = attributeAll(profDir, profStack.pids, prof.windows1);
  if (!at64.enclaveMain || !at64.parentMain) throw new Error(`audit cost: no CPU profile of the enclave or the dev process in ${profDir}`);
  const profCpu = cpuPerSig(prof.at64);
  const plainCpu = cpuPerSig(plain.at64);
  const measured = perSignature(at64, profCpu);
  const estimated = perSignature(at64, plainCpu);
  // At one client the parent waits for each record's own commit: its BEGIN/COMMIT samples per
  // request are wall time on the request's path (mostly the fsync), next to the p50.
  const n1 = prof.at1.reduce((a, p) => a + p.n, 0);
  const commitAt1 = at1.parentMain?.categories.find((c) => c.frame === COMMIT)?.ms ?? 0;
  const latencyAt1 = {
    p50Ms: r2(median(prof.at1.map((p) => p.p50Ms))),
    commitWallUsPerSignature: r1((commitAt1 * 1000) / Math.max(1, n1)),
    parentAuditWallUsPerSignature: r1(((at1.parentMain?.matchedMs ?? 0) * 1000) / Math.max(1, n1)),
    enclaveAuditWallUsPerSignature: r1(((at1.enclaveMain?.matchedMs ?? 0) * 1000) / Math.max(1, n1)),
    note: 'sampled wall time per request at one client in the profiled run (includes waiting for the disk and for a core), not CPU',
  };
  o.log('audit cost: the same work in process …');
  const inProcess = await measureInProcess(o.dir);
  o.log(`  ${JSON.stringify(inProcess)}`);
  // Best CPU estimate: BEGIN/COMMIT samples are mostly time blocked in fsync, not CPU. Its CPU is
  // taken from the in-process persister instead: (CPU per record at 1 − at 16 records per
  // transaction) × 16/15 = CPU per transaction, divided by the records per transaction measured above.
  const ip = inProcess.parent as { recordsPerTransaction: number; cpuUsPerRecord: number }[];
  const commitCpuUsPerTransaction = r1(((ip[0]!.cpuUsPerRecord - ip[1]!.cpuUsPerRecord) * 16) / 15);
  const commitCpuUsPerSignature = r1(commitCpuUsPerTransaction / Math.max(1, batching.recordsPerTransaction));
  const bestChainUs = r1(measured.auditChainUs - measured.parentCommitUs + commitCpuUsPerSignature);
  const bestEstimate = {
    commitCpuUsPerTransaction,
    commitCpuUsPerSignature,
    auditChainUs: bestChainUs,
    serverCpuUs: measured.serverCpuUs,
    auditChainSharePct: r2((100 * bestChainUs) / Math.max(1e-9, measured.serverCpuUs)),
    how: 'perSignature.auditChainUs − its BEGIN/COMMIT samples + the commit CPU per transaction measured in process ÷ the records per transaction of this run',
  };
  o.log(`audit cost: best CPU estimate: chain ${bestEstimate.auditChainUs} µs of ${bestEstimate.serverCpuUs} µs = ${bestEstimate.auditChainSharePct} % (commit ${commitCpuUsPerTransaction} µs CPU per transaction ÷ ${batching.recordsPerTransaction} records)`);
  const load1 = loadavg();
  o.log(
    `audit cost: chain ${measured.auditChainUs} µs of ${measured.serverCpuUs} µs server CPU per signature = ${measured.auditChainSharePct} % (enclave ${measured.enclaveAuditChainUs}, parent ${measured.parentAuditChainUs} of which BEGIN/COMMIT ${measured.parentCommitUs}); without COMMIT ${measured.auditChainSharePctWithoutCommit} %; with the dev relay of the console ${measured.allAuditOnDevStackSharePct} %; of the enclave's own CPU ${measured.enclaveChainShareOfEnclavePct} %`,
  );
  o.log(`audit cost at 1 client (profiled): p50 ${latencyAt1.p50Ms} ms; BEGIN/COMMIT ${latencyAt1.commitWallUsPerSignature} µs wall per signature`);
  o.log(`audit cost: on the unprofiled stack's CPU: chain ${estimated.auditChainUs} of ${estimated.serverCpuUs} µs = ${estimated.auditChainSharePct} %`);
  const threads = (t: Threads) => ({ enclaveMain: t.enclaveMain, enclaveWorkers: t.enclaveWorkers, parentMain: t.parentMain });
  return {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.version, loadavgBefore: load0.map(r2), loadavgAfter: load1.map(r2) },
    method:
      'two dev stacks (enclave-signer dev, permissive dev policy), one with --cpu-prof; alternated rounds of 64 IPC clients of signer_signDigest, then 1 client; the profiles are cut to the profiled stack\'s measured windows; a sample counts for the deepest audit function on its stack (categories below); audit CPU per signature = the thread\'s audit share of its busy samples × its CPU per signature from /proc (10 ms ticks); audit share = audit CPU / (parent + enclave CPU) per signature. The client (this process, same cores) is not in the denominator.',
    setup: { rounds: o.rounds, secondsAt64: o.seconds, secondsAt1: o.latencySeconds, warmupMs: o.warmupMs, op: 'signer_signDigest, secp256k1 key, 32-byte digest, IPC on the Unix socket', keystore: 'SQLite (WAL, synchronous=FULL) in the OS temp dir' },
    categories: { enclave: ENCLAVE_CATEGORIES, parent: PARENT_CATEGORIES },
    unprofiled: runSummary(plain),
    profiled: runSummary(prof),
    /** Audit CPU per signature at 64 clients, from the profiled run's shares and CPU. */
    perSignature: measured,
    /** The same shares applied to the unprofiled run's CPU per thread (the profiler's own cost removed). */
    perSignatureOnUnprofiledCpu: estimated,
    latencyAt1,
    inProcess,
    batchingAt64: batching,
    bestEstimate,
    target: { auditChainSharePct: 10, metByUpperBound: measured.auditChainSharePct < 10, metByBestEstimate: bestEstimate.auditChainSharePct < 10, metByLowerBound: measured.auditChainSharePctWithoutCommit < 10 },
    attributionAt64: threads(at64),
    attributionAt1: threads(at1),
    durationSeconds: r1((performance.now() - started) / 1000),
  };
}
