/**
 * Soak (issue 13 §6, docs/faults.md): many clients × minutes of mixed
 * operations against the running appliance while its enclave is restarted on
 * a schedule; reports errors by code, RSS per interval, latency percentiles per
 * interval, and the audit chain verified at the end.
 *
 *   clients    each sends its next request when the previous one is answered
 *              (HTTP keep-alive over the signing socket), picking an operation
 *              by weight: key creation (both kinds), every signing method,
 *              requests the policy denies (a blocklisted recipient, a full
 *              window), and the 2-of-3 approval flow (request → -32010 →
 *              two approvers sign → resubmit → signed; sometimes a veto)
 *   restarts   every --restart-every seconds one instance's enclave is killed
 *              (SIGKILL, a crash: the harshest restart); the dev supervisor
 *              starts a new one, the parent reconnects, re-attests, unlocks
 *   expected   answers the policy gives by design (4001 for the blocklist and
 *              a full window, -32010/-32011 in the approval flow) and -32002 for
 *              requests in flight while an instance restarts (from the kill
 *              until its /readyz is 200 again, plus a grace second) are
 *              counted apart; every other error is `unexpected` (0 expected)
 *   end        the stack is stopped and `enclave-signer audit verify` checks
 *              each instance's keystore against the dev root
 *
 * Instances: today one (`enclave-signer dev`: parent + KMS emulator in one
 * process, the enclave in a child). Clients and restarts already go round-robin
 * over a list of instances, so N instances plug in once `dev --instances N`
 * exists (one socket per instance: `<socket>.<i>`): only `startInstances` changes.
 *
 * Usage: npm run soak [-- --duration 600 --clients 64 --restart-every 120 --interval 60
 *                         --out bench/results/soak.json --check]
 * --check exits 1 on any unexpected error or an audit chain that does not verify (CI).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as btc from '@scure/btc-signer';
import { loadPrincipalKey, signApproval, type PrincipalKey } from '../common/auth/client-signer.js';
import { requestDigest } from '../common/auth/request.js';
import { repoRoot } from '../dev/stack.js';
import { childProcesses } from './proc.js';

// ------------------------------------------------------------ options

const { values: argv } = parseArgs({
  options: {
    duration: { type: 'string', default: '600' },
    clients: { type: 'string', default: '64' },
    'restart-every': { type: 'string', default: '120' },
    interval: { type: 'string', default: '60' },
    instances: { type: 'string', default: '1' },
    out: { type: 'string' },
    check: { type: 'boolean', default: false },
  },
});
const num = (name: string, v: string | undefined, min: number): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}`);
  return n;
};
const DURATION_S = num('duration', argv.duration, 5);
const CLIENTS = Math.floor(num('clients', argv.clients, 1));
const RESTART_S = num('restart-every', argv['restart-every'], 0); // 0: never
const INTERVAL_S = num('interval', argv.interval, 1);
const INSTANCES = Math.floor(num('instances', argv.instances, 1));
const REPO = repoRoot();
const BIN = join(REPO, 'bin', 'enclave-signer.js');
const OUT = argv.out ?? join(REPO, 'bench', 'results', 'soak.json');

const ALLOWED = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
const BLOCKED = '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc';
const TREASURY = '0x90f79bf6eb2c4f870365e785982e1f101e93b906';
const WINDOW = { seconds: 60, maxCount: 300 };
/** Short, so approvals left pending by a flow a restart cut off expire instead of filling the book (256 per requester). */
const APPROVAL_TTL_S = 300;

// ------------------------------------------------------------ the policy: a window and a 2-of-3 approval rule

type Approver = 'alice' | 'bob' | 'carol';

function writePolicy(dir: string): { file: string; keys: Record<Approver, PrincipalKey> } {
  const principals: Record<string, { alg: 'ed25519'; publicKey: string }> = {};
  const keys = {} as Record<Approver, PrincipalKey>;
  for (const name of ['alice', 'bob', 'carol'] as const) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    principals[name] = { alg: 'ed25519', publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
    keys[name] = loadPrincipalKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  }
  // Like examples/policy/hot-wallet.json + treasury.json, with a short window so it fills and rolls during the soak.
  const policy = {
    policyVersion: 1,
    name: 'soak',
    principals,
    rules: [
      { id: 'treasury', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [TREASURY], approvals: { threshold: 2, from: ['alice', 'bob', 'carol'], ttlSeconds: APPROVAL_TTL_S } },
      { id: 'blocklist', effect: 'deny', to: [BLOCKED] },
      { id: 'create', effect: 'allow', ops: ['signer_createKey'] },
      { id: 'eth-small', effect: 'allow', ops: ['eth_signTransaction'], chainIds: [1], to: [ALLOWED], maxValueWei: '1000000000000000000', window: WINDOW },
      { id: 'messages', effect: 'allow', ops: ['personal_sign', 'eth_sign', 'eth_signTypedData_v4', 'signer_signDigest', 'signer_signSchnorr', 'signer_signPsbt', 'signer_deriveKey'] },
      { id: 'delegation', effect: 'allow', ops: ['signer_signAuthorization'], chainIds: [1], delegates: [ALLOWED] },
    ],
  };
  const file = join(dir, 'soak-policy.json');
  writeFileSync(file, JSON.stringify(policy, null, 2));
  return { file, keys };
}

// ------------------------------------------------------------ instances

interface Instance {
  index: number;
  socket: string;
  dataDir: string;
  /** The process that runs the parent (in dev also the KMS emulator, pipe and supervisor). */
  parentPid: number;
  /** The current enclave process (the supervisor restarts it under a new pid). */
  enclavePid(): number | undefined;
  stop(): Promise<void>;
}

function rssMb(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? +(Number(m[1]) / 1024).toFixed(1) : null;
  } catch {
    return null;
  }
}

/** `enclave-signer dev` (one instance). N instances: `dev --instances N` (issue 13 §2) replaces this function only. */
async function startInstances(n: number, dir: string, policyFile: string): Promise<Instance[]> {
  if (n !== 1) throw new Error('--instances > 1 needs `enclave-signer dev --instances N` (issue 13 §2), which this build does not have yet');
  const dataDir = join(dir, 'data-1');
  const child: ChildProcess = spawn(process.execPath, [BIN, 'dev', '--data-dir', dataDir, '--json', '--policy', policyFile], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderrTail = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderrTail = (stderrTail + s).slice(-8000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 90_000;
  let socket: string | undefined;
  while (!socket) {
    if (child.exitCode !== null) throw new Error(`enclave-signer dev exited: ${stderrTail}`);
    if (Date.now() > deadline) throw new Error(`enclave-signer dev did not start: ${stderrTail}`);
    const line = stdout.split('\n').find((l) => l.startsWith('{'));
    if (line) socket = (JSON.parse(line) as { socket: string }).socket;
    else await sleep(100);
  }
  const inst: Instance = {
    index: 1,
    socket,
    dataDir,
    parentPid: child.pid!,
    enclavePid: () => childProcesses(child.pid!).find((c) => / enclave /.test(c.cmdline))?.pid,
    async stop() {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    },
  };
  await waitReady(inst, 90_000);
  return [inst];
}

// ------------------------------------------------------------ JSON-RPC over the socket

const agents = new Map<string, Agent>();
function agentFor(socket: string): Agent {
  let a = agents.get(socket);
  if (!a) {
    a = new Agent({ keepAlive: true, maxSockets: CLIENTS + 8 });
    agents.set(socket, a);
  }
  return a;
}

interface RpcErr {
  code: number;
  message: string;
  data?: { code?: string; rule?: string | null; approvalId?: string };
}
interface Answer {
  result?: unknown;
  error?: RpcErr;
  /** Transport failure (socket closed, refused): no JSON-RPC answer at all. */
  transport?: string;
}

let nextId = 1;
function rpc(socket: string, method: string, params?: unknown, timeoutMs = 60_000): Promise<Answer> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, ...(params === undefined ? {} : { params }) });
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, method: 'POST', path: '/', agent: agentFor(socket), headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          const j = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Answer;
          resolve(j.error ? { error: j.error } : { result: j.result });
        } catch {
          resolve({ transport: `HTTP ${res.statusCode}: not JSON` });
        }
      });
      res.on('error', (e) => resolve({ transport: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ transport: e.code ?? e.message }));
    req.end(body);
  });
}

function httpGet(socket: string, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, method: 'GET', path, agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function waitReady(inst: Instance, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while ((await httpGet(inst.socket, '/readyz')) !== 200) {
    if (Date.now() > end) throw new Error(`instance ${inst.index} not ready after ${ms} ms`);
    await sleep(100);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ------------------------------------------------------------ the operations

interface Keys {
  address: string;
  keyId: string;
  seedId: string;
  fingerprint: number;
  psbtPub: Uint8Array;
}

const hex = (b: Uint8Array | Buffer) => `0x${Buffer.from(b).toString('hex')}`;
const rnd = (n: number) => hex(randomBytes(n));
const nonce = () => `0x${randomBytes(3).toString('hex')}`;
const tx = (k: Keys, to: string) => [{ from: k.address, to, value: '0x1', nonce: nonce(), gas: '0x5208', maxFeePerGas: '0x3b9aca00', maxPriorityFeePerGas: '0x1', chainId: '0x1', type: '0x2' }];
const typedData = (i: string) =>
  JSON.stringify({
    types: {
      EIP712Domain: [{ name: 'name', type: 'string' }, { name: 'version', type: 'string' }, { name: 'chainId', type: 'uint256' }, { name: 'verifyingContract', type: 'address' }],
      Person: [{ name: 'name', type: 'string' }, { name: 'wallet', type: 'address' }],
      Mail: [{ name: 'from', type: 'Person' }, { name: 'to', type: 'Person' }, { name: 'contents', type: 'string' }],
    },
    primaryType: 'Mail',
    domain: { name: 'Ether Mail', version: '1', chainId: 1, verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC' },
    message: { from: { name: 'Cow', wallet: '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826' }, to: { name: 'Bob', wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' }, contents: `soak ${i}` },
  });
function psbt(k: Keys): string {
  const t = new btc.Transaction();
  const pay = btc.p2wpkh(k.psbtPub);
  t.addInput({ txid: randomBytes(32), index: 0, witnessUtxo: { script: pay.script, amount: 10_000n }, bip32Derivation: [[k.psbtPub, { fingerprint: k.fingerprint, path: btc.bip32Path("m/84'/0'/0'/0/0") }]] });
  t.addOutput({ script: pay.script, amount: 9_000n });
  return Buffer.from(t.toPSBT()).toString('base64');
}

/** What the soak expects of an answer: ok, or one of the policy's deliberate refusals. */
type Expect = 'ok' | 'ok-or-window' | 'denied';
interface Op {
  name: string;
  weight: number;
  expect: Expect;
  params(k: Keys): [string, unknown];
}
const OPS: Op[] = [
  { name: 'signer_createKey secp256k1', weight: 2, expect: 'ok', params: () => ['signer_createKey', { label: 'soak' }] },
  { name: 'signer_createKey bip32-seed', weight: 1, expect: 'ok', params: () => ['signer_createKey', { kind: 'bip32-seed', label: 'soak' }] },
  { name: 'eth_signTransaction (window)', weight: 10, expect: 'ok-or-window', params: (k) => ['eth_signTransaction', tx(k, ALLOWED)] },
  { name: 'eth_signTransaction (blocklist)', weight: 3, expect: 'denied', params: (k) => ['eth_signTransaction', tx(k, BLOCKED)] },
  { name: 'eth_sign', weight: 8, expect: 'ok', params: (k) => ['eth_sign', [k.address, rnd(32)]] },
  { name: 'personal_sign', weight: 10, expect: 'ok', params: (k) => ['personal_sign', [rnd(24), k.address]] },
  { name: 'eth_signTypedData_v4', weight: 8, expect: 'ok', params: (k) => ['eth_signTypedData_v4', [k.address, typedData(rnd(4))]] },
  { name: 'signer_signDigest', weight: 10, expect: 'ok', params: (k) => ['signer_signDigest', { keyId: k.keyId, digest: rnd(32) }] },
  { name: 'signer_signSchnorr', weight: 8, expect: 'ok', params: (k) => ['signer_signSchnorr', { keyId: k.keyId, message: rnd(32) }] },
  { name: 'signer_signPsbt', weight: 5, expect: 'ok', params: (k) => ['signer_signPsbt', { keyId: k.seedId, psbt: psbt(k) }] },
  { name: 'signer_signAuthorization', weight: 6, expect: 'ok', params: (k) => ['signer_signAuthorization', { keyId: k.keyId, chainId: 1, address: ALLOWED, nonce: randomBytes(2).readUInt16BE() }] },
  { name: 'signer_deriveKey', weight: 5, expect: 'ok', params: (k) => ['signer_deriveKey', { keyId: k.seedId, path: `m/84'/0'/0'/0/${randomBytes(1)[0]}` }] },
];
const APPROVAL_WEIGHT = 2;
const TOTAL_WEIGHT = OPS.reduce((a, o) => a + o.weight, 0) + APPROVAL_WEIGHT;

// ------------------------------------------------------------ bookkeeping

interface Bucket {
  latencies: number[];
  requests: number;
  ok: number;
}
const buckets: Bucket[] = [];
const outcomes = new Map<string, number>(); // "<op>: <outcome>"
const unexpected = new Map<string, { count: number; example: string }>();
/** -32002 answers at a restart: for requests in flight at the kill, and for requests sent while it restarted. */
const restartErrors = { inFlightAtKill: new Map<string, number>(), sentWhileRestarting: new Map<string, number>() };
let released = 0;
let t0 = 0;
const restarting = new Map<number, { from: number; until: number | undefined }[]>(); // instance → windows

function bucketOf(now: number): Bucket {
  // Answers that arrive after the end (the last requests in flight) count in the last interval.
  const i = Math.min(Math.floor((now - t0) / (INTERVAL_S * 1000)), Math.max(0, Math.ceil(DURATION_S / INTERVAL_S) - 1));
  while (buckets.length <= i) buckets.push({ latencies: [], requests: 0, ok: 0 });
  return buckets[i]!;
}
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
const GRACE_MS = 1_000;
const BACKOFF_MS = 250;
function duringRestart(inst: Instance, sentAt: number, at: number): 'inFlightAtKill' | 'sentWhileRestarting' | undefined {
  const w = (restarting.get(inst.index) ?? []).find((x) => sentAt <= (x.until ?? Infinity) + GRACE_MS && at >= x.from);
  return w === undefined ? undefined : sentAt < w.from ? 'inFlightAtKill' : 'sentWhileRestarting';
}
const errCode = (e: RpcErr) => `${e.code} ${e.data?.code ?? ''}`.trim();

function record(inst: Instance, op: string, sentAt: number, a: Answer, expect: Expect | 'approval-required' | 'approval-rejected'): void {
  const now = performance.now();
  const b = bucketOf(now);
  b.requests++;
  b.latencies.push(now - sentAt);
  if (a.result !== undefined) {
    b.ok++;
    // Answers of the signing methods (signer_deriveKey included: a policy-gated op); not key creation or the approval calls.
    if (!/^(signer_createKey|approval: (getApproval|approve|veto))/.test(op)) released++;
    bump(outcomes, `${op}: ok`);
    return;
  }
  const e = a.error;
  const what = e ? errCode(e) : `transport ${a.transport}`;
  const isUnavailable = (e && e.code === -32002) || a.transport !== undefined;
  const restart = isUnavailable ? duringRestart(inst, sentAt, now) : undefined;
  if (restart) {
    bump(restartErrors[restart], what);
    bump(outcomes, `${op}: -32002 at a restart`);
    return;
  }
  const deliberate =
    e &&
    ((expect === 'denied' && e.code === 4001 && e.data?.rule === 'blocklist') ||
      (expect === 'ok-or-window' && e.code === 4001 && e.data?.rule === 'eth-small') ||
      (expect === 'approval-required' && e.code === -32010 && e.data?.code === 'APPROVAL_REQUIRED') ||
      (expect === 'approval-rejected' && e.code === -32011 && e.data?.code === 'APPROVAL_REJECTED'));
  if (deliberate) {
    bump(outcomes, `${op}: ${errCode(e)}${e.data?.rule ? ` (${e.data.rule})` : ''}`);
    return;
  }
  const u = unexpected.get(what) ?? { count: 0, example: `${op}: ${e ? e.message : a.transport}`.slice(0, 300) };
  u.count++;
  unexpected.set(what, u);
  bump(outcomes, `${op}: UNEXPECTED ${what}`);
}

// ------------------------------------------------------------ clients

async function setupKeys(inst: Instance): Promise<Keys> {
  const k = await rpc(inst.socket, 'signer_createKey', { label: 'soak-base' });
  const s = await rpc(inst.socket, 'signer_createKey', { kind: 'bip32-seed', label: 'soak-seed' });
  if (k.error || s.error) throw new Error(`setup: ${JSON.stringify(k.error ?? s.error)}`);
  const key = k.result as { keyId: string; address: string };
  const seed = s.result as { keyId: string; fingerprint: string };
  const d = await rpc(inst.socket, 'signer_deriveKey', { keyId: seed.keyId, path: "m/84'/0'/0'/0/0" });
  if (d.error) throw new Error(`setup derive: ${JSON.stringify(d.error)}`);
  const pub = Buffer.from(String((d.result as { publicKey: string }).publicKey).replace(/^0x/, ''), 'hex');
  return { address: key.address, keyId: key.keyId, seedId: seed.keyId, fingerprint: Number.parseInt(seed.fingerprint, 16), psbtPub: new Uint8Array(pub) };
}

/**
 * The 2-of-3 flow: request → -32010 → each approver does what `enclave-signer approve` does
 * (signer_getApproval, recompute the digest from the request shown, sign it) → resubmit → signed.
 * One flow in five is vetoed by carol instead, and the resubmit is -32011 APPROVAL_REJECTED.
 */
async function approvalFlow(inst: Instance, k: Keys, approvers: Record<Approver, PrincipalKey>, audience: string): Promise<void> {
  const params = tx(k, TREASURY);
  let sentAt = performance.now();
  const first = await rpc(inst.socket, 'eth_signTransaction', params);
  record(inst, 'approval: request', sentAt, first, 'approval-required');
  const id = first.error?.code === -32010 ? first.error.data?.approvalId : undefined;
  if (!id) return;
  const veto = randomBytes(1)[0]! < 52;
  const who: Approver[] = veto ? ['carol'] : ['alice', 'bob'];
  for (const name of who) {
    sentAt = performance.now();
    const shown = await rpc(inst.socket, 'signer_getApproval', { approvalId: id });
    record(inst, 'approval: getApproval', sentAt, shown, 'ok');
    const view = shown.result as { requestDigest: string; request: { method: string; params: unknown } } | undefined;
    if (!view) return;
    const digest = requestDigest(audience, view.request.method, view.request.params);
    if (digest !== view.requestDigest) {
      record(inst, 'approval: digest check', sentAt, { error: { code: 0, message: `approval ${id}: the shown request does not match its digest`, data: { code: 'SOAK_DIGEST_MISMATCH' } } }, 'ok');
      return;
    }
    const s = signApproval({ key: approvers[name], approver: name, approvalId: id, requestDigest: digest, decision: veto ? 'reject' : 'approve', webauthn: false });
    sentAt = performance.now();
    const a = await rpc(inst.socket, veto ? 'signer_reject' : 'signer_approve', { approvalId: id, approver: name, signature: s.signature });
    record(inst, veto ? 'approval: veto' : 'approval: approve', sentAt, a, 'ok');
    if (a.error) return;
  }
  sentAt = performance.now();
  const last = await rpc(inst.socket, 'eth_signTransaction', params);
  record(inst, veto ? 'approval: resubmit after veto' : 'approval: resubmit', sentAt, last, veto ? 'approval-rejected' : 'ok');
}

function pick(): Op | 'approval' {
  let r = Math.random() * TOTAL_WEIGHT;
  for (const o of OPS) {
    r -= o.weight;
    if (r < 0) return o;
  }
  return 'approval';
}

async function client(i: number, instances: Instance[], keys: Keys[], approvers: Record<Approver, PrincipalKey>, audiences: string[], until: number): Promise<void> {
  const inst = instances[i % instances.length]!;
  const k = keys[i % instances.length]!;
  while (performance.now() < until) {
    const op = pick();
    if (op === 'approval') {
      await approvalFlow(inst, k, approvers, audiences[i % instances.length]!);
      continue;
    }
    const [method, params] = op.params(k);
    const sentAt = performance.now();
    const a = await rpc(inst.socket, method, params);
    record(inst, op.name, sentAt, a, op.expect);
    // Like a custody client's retry policy: -32002 means "retry later", so back off instead of spinning.
    if (a.transport || a.error?.code === -32002) await sleep(BACKOFF_MS);
  }
}

// ------------------------------------------------------------ restarts and sampling

async function restarter(instances: Instance[], until: number): Promise<{ at: number; instance: number; killedPid: number | undefined; readyAfterMs: number | null }[]> {
  const log: { at: number; instance: number; killedPid: number | undefined; readyAfterMs: number | null }[] = [];
  if (RESTART_S <= 0) return log;
  let n = 0;
  for (;;) {
    const next = t0 + (n + 1) * RESTART_S * 1000;
    if (next >= until - 2_000) return log;
    await sleep(next - performance.now());
    const inst = instances[n % instances.length]!;
    n++;
    const pid = inst.enclavePid();
    const w = { from: performance.now(), until: undefined as number | undefined };
    const windows = restarting.get(inst.index) ?? [];
    windows.push(w);
    restarting.set(inst.index, windows);
    if (pid) process.kill(pid, 'SIGKILL');
    // Ready again: a new enclave pid and /readyz 200.
    let readyAfterMs: number | null = null;
    const end = performance.now() + 60_000;
    while (performance.now() < end) {
      const p = inst.enclavePid();
      if (p && p !== pid && (await httpGet(inst.socket, '/readyz')) === 200) {
        readyAfterMs = Math.round(performance.now() - w.from);
        break;
      }
      await sleep(50);
    }
    w.until = performance.now();
    log.push({ at: Math.round((w.from - t0) / 1000), instance: inst.index, killedPid: pid, readyAfterMs });
  }
}

interface Sample {
  t: number;
  instance: number;
  parentRssMb: number | null;
  enclaveRssMb: number | null;
}
const samples: Sample[] = [];
function sample(instances: Instance[]): void {
  for (const inst of instances) {
    samples.push({ t: Math.round((performance.now() - t0) / 1000), instance: inst.index, parentRssMb: rssMb(inst.parentPid), enclaveRssMb: rssMb(inst.enclavePid()) });
  }
}

function pct(sorted: Float64Array, p: number): number {
  return +(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN).toFixed(2);
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: REPO, timeout: 30 * 60_000, maxBuffer: 64 * 1024 * 1024 }, (e, stdout, stderr) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

// ------------------------------------------------------------ main

async function main(): Promise<void> {
  if (!existsSync(join(REPO, 'dist', 'cli', 'dev.js'))) throw new Error('run `npm run build` first (npm run soak does)');
  const dir = mkdtempSync(join(tmpdir(), 'es-soak-'));
  const policy = writePolicy(dir);
  const started = new Date();
  process.stderr.write(`soak: ${CLIENTS} clients × ${DURATION_S} s, ${INSTANCES} instance(s), enclave restart every ${RESTART_S || '∞'} s, interval ${INTERVAL_S} s\n`);
  const instances = await startInstances(INSTANCES, dir, policy.file);
  let stopped = false;
  try {
    const keys = await Promise.all(instances.map(setupKeys));
    const audiences = await Promise.all(
      instances.map(async (inst) => {
        const s = await rpc(inst.socket, 'signer_status');
        return String((s.result as { policy: { hash: string } }).policy.hash);
      }),
    );
    t0 = performance.now();
    const until = t0 + DURATION_S * 1000;
    sample(instances);
    const sampler = setInterval(() => sample(instances), INTERVAL_S * 1000);
    const restarts = restarter(instances, until);
    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i, instances, keys, policy.keys, audiences, until)));
    clearInterval(sampler);
    sample(instances);
    const restartLog = await restarts;
    const elapsedS = (performance.now() - t0) / 1000;

    for (const a of agents.values()) a.destroy();
    for (const inst of instances) await inst.stop();
    stopped = true;

    const audits = [];
    for (const inst of instances) {
      const t = performance.now();
      const v = await cli(['audit', 'verify', '--keystore', join(inst.dataDir, 'keystore.sqlite'), '--root', join(inst.dataDir, 'dev-ca', 'root.pem'), '--json']);
      let report: { valid?: boolean; records?: number; gaps?: unknown[]; forks?: unknown[]; enclaves?: unknown[]; problemCount?: number } = {};
      try {
        report = JSON.parse(v.stdout);
      } catch {
        // reported below as exit code and stderr
      }
      audits.push({
        instance: inst.index,
        command: 'enclave-signer audit verify --keystore <data>/keystore.sqlite --root <data>/dev-ca/root.pem --json',
        exitCode: v.code,
        valid: report.valid === true,
        records: report.records ?? null,
        enclaveLives: Array.isArray(report.enclaves) ? report.enclaves.length : null,
        gaps: report.gaps ?? null,
        forks: report.forks ?? null,
        problemCount: report.problemCount ?? null,
        verifySeconds: +((performance.now() - t) / 1000).toFixed(1),
        ...(v.code !== 0 ? { stderr: v.stderr.slice(-2000) } : {}),
      });
    }

    const perInterval = buckets.map((b, i) => {
      const s = Float64Array.from(b.latencies).sort();
      const from = i * INTERVAL_S;
      const inWindow = samples.filter((x) => x.t >= from && x.t <= from + INTERVAL_S);
      // The last sample of the interval that found the process (an enclave being restarted has no pid for a moment).
      const last = { parentRssMb: inWindow.findLast((x) => x.parentRssMb !== null)?.parentRssMb, enclaveRssMb: inWindow.findLast((x) => x.enclaveRssMb !== null)?.enclaveRssMb };
      return {
        fromS: from,
        requests: b.requests,
        ok: b.ok,
        perSecond: +(b.requests / INTERVAL_S).toFixed(1),
        p50Ms: pct(s, 0.5),
        p99Ms: pct(s, 0.99),
        p999Ms: pct(s, 0.999),
        maxMs: +(s[s.length - 1] ?? Number.NaN).toFixed(2),
        parentRssMb: last.parentRssMb ?? null,
        enclaveRssMb: last.enclaveRssMb ?? null,
      };
    });
    const unexpectedTotal = [...unexpected.values()].reduce((a, u) => a + u.count, 0);
    const result = {
      bench: 'soak',
      startedAt: started.toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? null, loadavg: loadavg(), node: process.version, shared: 'the machine was shared with other jobs; latencies include their load' },
      config: { durationS: DURATION_S, clients: CLIENTS, instances: INSTANCES, restartEveryS: RESTART_S, restartSignal: 'SIGKILL (enclave process; the dev supervisor restarts it)', intervalS: INTERVAL_S, window: WINDOW, approvals: `2 of alice, bob, carol, ttl ${APPROVAL_TTL_S} s (1 in 5 flows vetoed by carol)`, transport: 'JSON-RPC over HTTP keep-alive on the Unix signing socket' },
      elapsedS: +elapsedS.toFixed(1),
      requests: buckets.reduce((a, b) => a + b.requests, 0),
      signaturesReleased: released,
      errors: {
        unexpectedTotal,
        unexpected: Object.fromEntries(unexpected),
        atRestart: { inFlightAtKill: Object.fromEntries(restartErrors.inFlightAtKill), sentWhileRestarting: Object.fromEntries(restartErrors.sentWhileRestarting) },
        note: `-32002 (or a dropped socket) between an enclave kill and /readyz 200 again (+1 s) counts as at a restart: for requests in flight at the kill, or sent while the instance restarted (clients back off ${BACKOFF_MS} ms after a -32002, as a custody client's retry policy would); deliberate policy answers are under outcomes`,
      },
      outcomes: Object.fromEntries([...outcomes].sort()),
      restarts: restartLog,
      perInterval,
      rssSamples: samples,
      audit: audits,
      pass: unexpectedTotal === 0 && audits.every((a) => a.valid && a.exitCode === 0),
    };
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
    process.stderr.write(
      `soak: ${result.requests} requests in ${result.elapsedS} s, ${released} signatures, ${unexpectedTotal} unexpected errors, ${[...restartErrors.inFlightAtKill.values()].reduce((a, b) => a + b, 0)} in flight at a kill + ${[...restartErrors.sentWhileRestarting.values()].reduce((a, b) => a + b, 0)} sent while restarting (${restartLog.length} restarts); audit ${audits.map((a) => (a.valid ? `valid (${a.records} records)` : 'INVALID')).join(', ')}\n`,
    );
    for (const p of perInterval) process.stderr.write(`  t=${p.fromS}s  ${p.perSecond}/s  p50 ${p.p50Ms} p99 ${p.p99Ms} p99.9 ${p.p999Ms} ms  rss parent ${p.parentRssMb} MB enclave ${p.enclaveRssMb} MB\n`);
    if (unexpectedTotal) process.stderr.write(`unexpected: ${JSON.stringify(result.errors.unexpected, null, 2)}\n`);
    process.stderr.write(`wrote ${OUT}\n`);
    if (argv.check && !result.pass) process.exitCode = 1;
    rmSync(dir, { recursive: true, force: true });
  } finally {
    if (!stopped) for (const inst of instances) await inst.stop().catch(() => {});
  }
}

await main();
