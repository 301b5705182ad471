/**
 * Runs INSIDE the appliance test guest (bundled to /vmtest/harness.mjs in the
 * payload initramfs), chrooted into the EIF's own rootfs and run by the
 * image's own /bin/node. Never on the development machine: it opens real
 * AF_VSOCK sockets over vsock_loopback (CID 1), and refuses to start unless
 * the guest init set ENCLAVE_SIGNER_VM_GUEST=1.
 *
 * The whole appliance, one guest:
 *
 *   KMS emulator (127.0.0.1, TLS from a dev CA made here)  ◀── KMS pipe (listens vsock any:8000)
 *        ▲ CMK policy: ImageSha384 = simulated PCR0                  ▲ vsock://1:8000
 *        │                                                           │
 *   harness ── JSON-RPC (unix socket) ──▶ parent ── vsock://1:5000 ──▶ /bin/node /vmtest/enclave-dev.mjs
 *                                                                     (the dev enclave command, --nsm simulated,
 *                                                                      the image's node, addon and measured
 *                                                                      /app/enclave-config.json)
 *
 * The image's own entry (/bin/node, its V8 options, /app/enclave.mjs: its cmd unchanged) is run
 * first: it reads the pinned CMK from its measured configuration and refuses
 * to start without the hardware NSM, which the guest does not have.
 *
 * Progress goes to the serial console as `APPLIANCE-PROGRESS …` lines, the
 * outcome as one `APPLIANCE-RESULT {json}` line (see ApplianceResult).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { parseTransaction, recoverTransactionAddress, type Hex } from 'viem';
import { getIpcRpcClient } from 'viem/node';
import { createManifest } from '../../../attestation/manifest-format.js';
import { signManifest } from '../../../attestation/manifest-signature.js';
import { connectBridge, type BridgePeer } from '../../../common/bridge/index.js';
import { toHex } from '../../../common/bytes.js';
import { jsonToCbor } from '../../../common/cbor-json.js';
import { registerVsockTransport } from '../../../common/transport/vsock.js';
import { loadOrCreateDevCa } from '../../../dev/ca/index.js';
import { startKmsEmulator, type KmsEmulator } from '../../../dev/kms-emulator/index.js';
import { simulatedImagePcrs } from '../../../enclave/nsm/simulated.js';
import { startKmsPipe, type KmsPipe } from '../../../parent/kms-pipe.js';
import { startParent, type RunningParent } from '../../../parent/main.js';

export const PROGRESS_MARKER = 'APPLIANCE-PROGRESS ';
export const RESULT_MARKER = 'APPLIANCE-RESULT ';

/** /vmtest/config.json, written by the host test. */
export interface ApplianceConfig {
  imageId: string;
  /** From build-eif.sh's manifest: who the image is (the dev manifest names it; its PCRs are the simulated NSM's). */
  image: { name: string; version: string; sourceCommit: string; eifSha256: string };
  eifPcrs: { PCR0: string; PCR1: string; PCR2: string };
  /** The CMK the image pins (build-eif.sh --kms-key-arn): the emulator makes a key with this id. */
  cmkKeyId: string;
  cmkArn: string;
  bench: { statusPerRound: number; attestPerRound: number; rounds: number; warmup: number; signs: number };
  /** Whole-run watchdog inside the guest. */
  deadlineMs: number;
}

export interface RttStats {
  n: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  minUs: number;
  maxUs: number;
}

export interface ApplianceResult {
  ok: boolean;
  error?: string;
  failedStep?: string;
  node: string;
  imageId: string;
  /** The image's cmd (from /cmd) and the argv the enclave was started with (the cmd, with dev flags replaced/added). */
  imageCmd: string[];
  enclaveArgv: string[];
  /** The image's own entry run with its cmd unchanged: exit status and its log lines. */
  imageEntry?: { code: number | null; lines: string[] };
  /** kms.allowedKeyArns of the image's /app/enclave-config.json. */
  pinned?: string[];
  cmk?: string;
  /** Shared libraries mapped into the signing enclave process (/proc/PID/maps), started with the image's env. */
  enclaveLibraries?: string[];
  /** SHA-256 of files as the guest sees them (the host compares with the EIF's ramdisk). */
  guestFiles: Record<string, string>;
  requiredPcr0: string;
  gate?: { state: string; moduleId?: string; pcr0?: string; manifestImage?: { name: string; version: string; sourceCommit: string }; rootName?: string };
  keyring?: { state: string; keyringId?: string };
  readyz?: { status: number; body: unknown };
  enclaveStatus?: unknown;
  /** Emulator request log: "Operation status" in order (the enclave reaches it only through the vsock pipe). */
  kmsOps: string[];
  key?: { keyId: string; address: string };
  tx?: { raw: string; recovered: string; type: string; chainId: number; to: string | null; value: string; nonce: number };
  restart?: { notReadyWhileDown: boolean; readyMs: number; keyringState: string; keyringId?: string; sameKeyring: boolean; recovered: string; kmsOpsAfter: string[] };
  bench?: {
    /** Bridge `status` round trips, same harness process, enclave over vsock://1:5000 vs a second enclave on unix:. */
    status: { vsock: RttStats; unix: RttStats };
    attest: { vsock: RttStats; unix: RttStats };
    /** eth_signTransaction through the parent's socket (one raw-IPC connection), enclave over vsock: JSON-RPC + gate + bridge + worker. */
    e2eSign: RttStats;
  };
  /** Milliseconds since the harness started, per step. */
  timeline: Record<string, number>;
}

const WORK = '/tmp/appliance';
const CREDS = { accessKeyId: 'AKIAVMAPPLIANCE00001', secretAccessKey: 'vm-appliance-secret-not-real', principalArn: 'arn:aws:iam::111122223333:role/enclave-parent' };
const t0 = performance.now();
const since = () => Math.round(performance.now() - t0);
const progress = (msg: string) => console.log(`${PROGRESS_MARKER}+${(since() / 1000).toFixed(1)}s ${msg}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let step = 'start';
const timeline: Record<string, number> = {};
/** Records step `name` in the timeline (short key) and prints it with its details. */
const mark = (name: string, detail = '') => {
  timeline[name] = since();
  step = name;
  progress(detail === '' ? name : `${name}: ${detail}`);
};

function stats(samplesUs: number[]): RttStats {
  const s = [...samplesUs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  const r = (x: number) => Math.round(x);
  return { n: s.length, meanUs: r(s.reduce((a, b) => a + b, 0) / s.length), p50Us: r(q(0.5)), p90Us: r(q(0.9)), p99Us: r(q(0.99)), minUs: r(s[0]!), maxUs: r(s[s.length - 1]!) };
}

// ------------------------------------------------------------------ processes

interface EnclaveProcess {
  name: string;
  child: ChildProcess;
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
}

/** The image's cmd with our flags: existing flags get new values, missing ones are appended. */
export function withFlags(cmd: readonly string[], flags: ReadonlyArray<[string, string]>): string[] {
  const out = [...cmd];
  for (const [flag, value] of flags) {
    const i = out.indexOf(flag);
    if (i >= 0 && i + 1 < out.length) out[i + 1] = value;
    else out.push(flag, value);
  }
  return out;
}

function spawnEnclave(name: string, argv: string[], env: Record<string, string>): EnclaveProcess {
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const onData = (buf: Buffer) => {
    for (const raw of buf.toString('utf8').split('\n')) {
      const line = raw.trimEnd();
      if (line === '') continue;
      lines.push(line);
      console.log(`[${name}] ${line}`);
      for (const w of [...waiters]) if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  void exited.then((e) => console.log(`[${name}] exited (${e.signal ?? e.code})`));
  return {
    name,
    child,
    lines,
    exited,
    waitFor(re, timeoutMs) {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: no line matching ${re} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ re, resolve: (l) => (clearTimeout(timer), resolve(l)) });
        void exited.then((e) => reject(new Error(`${name} exited (${e.signal ?? e.code}) before ${re}`)));
      });
    },
  };
}

async function stopEnclave(e: EnclaveProcess): Promise<void> {
  if (e.child.exitCode !== null || e.child.signalCode !== null) return;
  e.child.kill('SIGTERM');
  const t = setTimeout(() => e.child.kill('SIGKILL'), 5000);
  await e.exited;
  clearTimeout(t);
}

// ------------------------------------------------------------------ clients

function http(socketPath: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = httpRequest(
      { socketPath, method, path, headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

let rpcId = 0;
async function jsonRpc(socketPath: string, method: string, params?: unknown): Promise<unknown> {
  const r = await http(socketPath, 'POST', '/', { jsonrpc: '2.0', id: ++rpcId, method, ...(params === undefined ? {} : { params }) });
  const j = JSON.parse(r.body) as { result?: unknown; error?: { code: number; message: string } };
  if (j.error) throw new Error(`${method}: JSON-RPC error ${j.error.code}: ${j.error.message}`);
  return j.result;
}

async function waitReady(parent: RunningParent, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const r = await http(parent.socketPath, 'GET', '/readyz');
    if (r.status === 200) return { status: r.status, body: JSON.parse(r.body) as unknown };
    if (r.body !== last) {
      last = r.body;
      const reason = (JSON.parse(r.body) as { reason?: string }).reason;
      progress(`readyz ${r.status}: ${reason ?? r.body}`);
    }
    if (Date.now() > end) throw new Error(`parent not ready within ${timeoutMs} ms: ${last}`);
    await sleep(500);
  }
}

/** eth_signTransaction over raw IPC (viem's own IPC client), then recover the signer from the raw transaction. */
function txFor(from: string, nonce: number) {
  return {
    from,
    to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
    value: '0xde0b6b3a7640000',
    nonce: `0x${nonce.toString(16)}`,
    gas: '0x5208',
    maxFeePerGas: '0x77359400',
    maxPriorityFeePerGas: '0x3b9aca00',
    chainId: '0x1',
    type: '0x2',
  };
}

async function signAndRecover(socketPath: string, from: string, nonce: number) {
  const tx = txFor(from, nonce);
  const client = await getIpcRpcClient(socketPath, { reconnect: false });
  try {
    const res = await client.requestAsync({ body: { method: 'eth_signTransaction', params: [tx] }, timeout: 60_000 });
    if (res.error) throw new Error(`eth_signTransaction: JSON-RPC error ${res.error.code}: ${res.error.message}`);
    const raw = res.result as Hex;
    const recovered = await recoverTransactionAddress({ serializedTransaction: raw as Parameters<typeof recoverTransactionAddress>[0]['serializedTransaction'] });
    const parsed = parseTransaction(raw);
    return {
      raw,
      recovered,
      type: String(parsed.type),
      chainId: Number(parsed.chainId),
      to: parsed.to ?? null,
      value: String(parsed.value ?? 0n),
      nonce: Number(parsed.nonce ?? -1),
    };
  } finally {
    client.close();
  }
}

async function timeCalls(peer: BridgePeer, method: string, params: () => Parameters<BridgePeer['request']>[1], n: number, out: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const p = params();
    const s = performance.now();
    await peer.request(method, p, { deadlineMs: 30_000 });
    out.push((performance.now() - s) * 1000);
  }
}

// ------------------------------------------------------------------ main

async function main(): Promise<ApplianceResult> {
  const cfg = JSON.parse(readFileSync('/vmtest/config.json', 'utf8')) as ApplianceConfig;
  const imageCmd = readFileSync('/vmtest/image/cmd', 'utf8').split('\n').filter((l) => l !== '');
  const imageEnv = Object.fromEntries(
    readFileSync('/vmtest/image/env', 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>;
  const guestFiles: Record<string, string> = {};
  for (const f of ['/bin/node', '/app/enclave.mjs', '/app/worker.mjs', '/app/native/enclave_native.node', '/app/enclave-config.json']) {
    try {
      guestFiles[f] = createHash('sha256').update(readFileSync(f)).digest('hex');
    } catch {
      guestFiles[f] = 'missing';
    }
  }
  const pcrs = simulatedImagePcrs(cfg.imageId);
  const requiredPcr0 = toHex(pcrs.get(0)!);
  const kmsOps: string[] = [];
  const result: ApplianceResult = { ok: false, node: process.version, imageId: cfg.imageId, imageCmd, enclaveArgv: [], guestFiles, requiredPcr0, kmsOps, timeline };

  const cleanup: (() => Promise<void>)[] = [];
  try {
    await registerVsockTransport();
    mkdirSync(WORK, { recursive: true, mode: 0o700 });

    // Dev CA (in the guest's tmpfs): signs the simulated NSM's documents and the emulator's TLS certificate.
    const caDir = join(WORK, 'dev-ca');
    const ca = loadOrCreateDevCa(caDir);
    const tls = ca.issueTlsServerCert(['localhost', '127.0.0.1']);
    mark('devCa', 'dev CA ready (tmpfs)');

    const policy = {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'operator', Effect: 'Allow', Principal: { AWS: CREDS.principalArn }, Action: ['kms:DescribeKey', 'kms:PutKeyPolicy', 'kms:GetKeyPolicy', 'kms:EnableKey', 'kms:DisableKey'], Resource: '*' },
        {
          Sid: 'enclave-only',
          Effect: 'Allow',
          Principal: { AWS: CREDS.principalArn },
          Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          Resource: '*',
          Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': requiredPcr0 } },
        },
      ],
    };
    const kms: KmsEmulator = await startKmsEmulator({
      dataDir: join(WORK, 'kms'),
      credentials: [CREDS],
      // The CMK the image pins: its ARN was fixed before the build, so the emulator makes it with that id.
      presetKeys: [{ keyId: cfg.cmkKeyId, policy: JSON.stringify(policy), description: 'vm appliance keyring CMK (pinned in the image)' }],
      attestationRoot: ca.trustRoot,
      tls: { cert: tls.chainPem, key: tls.keyPem, ca: tls.caPem },
      log: (l) => {
        const m = /^kms-local (\S+) (\d+)(?: (\S+))? /.exec(l);
        if (m) kmsOps.push(`${m[1]} ${m[2]}${m[3] && !m[3].startsWith('arn:') ? ` ${m[3]}` : ''}`);
        console.log(`[kms] ${l}`);
      },
    });
    cleanup.push(() => kms.close());
    mark('kmsEmulator', kms.url);

    const cmk = cfg.cmkArn;
    result.cmk = cmk;
    mark('cmk', `${cmk} (Decrypt/GenerateDataKey only for ImageSha384 ${requiredPcr0.slice(0, 16)}…)`);

    // The dev manifest: names the EIF under test; its PCRs are what the simulated NSM reports for imageId.
    const release = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const manifest = signManifest(
      createManifest({
        image: cfg.image,
        pcrs: { 0: toHex(pcrs.get(0)!), 1: toHex(pcrs.get(1)!), 2: toHex(pcrs.get(2)!) },
        match: [0, 1, 2],
        buildInputs: {
          builder: 'test/vm appliance (simulated NSM inside a QEMU guest)',
          other: { imageId: cfg.imageId, eifPcr0: cfg.eifPcrs.PCR0, eifPcr1: cfg.eifPcrs.PCR1, eifPcr2: cfg.eifPcrs.PCR2 },
        },
      }),
      release.privateKey,
    );
    const releasePem = release.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    mark('manifest', 'dev manifest signed');

    const pipe: KmsPipe = await startKmsPipe({
      listen: 'vsock://4294967295:8000',
      target: { address: '127.0.0.1', port: kms.port },
      allowlist: [{ address: '127.0.0.1', port: kms.port }],
      log: (l) => console.log(`[pipe] ${l}`),
    });
    cleanup.push(() => pipe.close());
    mark('kmsPipe', pipe.uri);

    const common: [string, string][] = [
      ['--nsm', 'simulated'],
      ['--dev-ca', caDir],
      ['--image-id', cfg.imageId],
      ['--kms-pipe', 'vsock://1:8000'],
      ['--kms-endpoint', `https://localhost:${kms.port}`],
      ['--kms-ca', join(caDir, 'root.pem')],
    ];
    // The image's own entry, its cmd unchanged: it must get past its measured configuration and stop at the NSM.
    result.pinned = (JSON.parse(readFileSync('/app/enclave-config.json', 'utf8')) as { kms: { allowedKeyArns: string[] } }).kms.allowedKeyArns;
    const image = spawnEnclave('image-entry', imageCmd, imageEnv);
    const exit = await Promise.race([image.exited, sleep(60_000).then(() => ({ code: null, signal: 'timeout' as const }))]);
    if (exit.signal === 'timeout') await stopEnclave(image);
    result.imageEntry = { code: exit.code, lines: image.lines.slice(-10) };
    mark('imageEntry', `exit ${exit.code ?? exit.signal}`);

    // The appliance's enclave: the dev command (simulated NSM) with the image's cmd flags and its measured configuration.
    // The image's cmd is /bin/node, node's options, /app/enclave.mjs, the program's flags: the dev program
    // runs with the same node options and the same program flags.
    const program = imageCmd.indexOf('/app/enclave.mjs');
    const devEnclave = (flags: [string, string][]) => [
      ...imageCmd.slice(0, program),
      '/vmtest/enclave-dev.mjs',
      ...withFlags(imageCmd.slice(program + 1), [...flags, ['--enclave-config', '/app/enclave-config.json']]),
    ];
    const argvA = devEnclave([['--listen', 'vsock://4294967295:5000'], ...common]);
    result.enclaveArgv = argvA;
    let enclaveA = spawnEnclave('enclave', argvA, imageEnv);
    cleanup.push(() => stopEnclave(enclaveA));
    mark('enclaveSpawned', argvA.join(' '));

    const socket = join(WORK, 'signer.sock');
    const parent = await startParent({
      enclave: 'vsock://1:5000',
      socket,
      keystore: join(WORK, 'keystore.sqlite'),
      root: ca.trustRoot,
      manifest: { signed: manifest, trustedKeys: [releasePem] },
      kmsKeyId: cmk,
      credentials: { kind: 'static', accessKeyId: CREDS.accessKeyId, secretAccessKey: CREDS.secretAccessKey },
      reconnect: { minMs: 250, maxMs: 2000 },
      log: (l) => console.log(`[parent] ${l}`),
    });
    cleanup.push(() => parent.close());
    mark('parentStarted', 'dialing vsock://1:5000');

    await enclaveA.waitFor(/serving the enclave API/, 120_000);
    mark('enclaveServing');
    result.readyz = await waitReady(parent, 150_000);
    mark('parentReady', 'gate ready + keyring unlocked');
    const snap = parent.state();
    result.gate = {
      state: snap.gate.state,
      ...(snap.attestation
        ? {
            moduleId: snap.attestation.moduleId,
            ...(snap.attestation.pcrs['0'] ? { pcr0: snap.attestation.pcrs['0'] } : {}),
            ...(snap.attestation.manifest ? { manifestImage: snap.attestation.manifest.image } : {}),
            rootName: snap.attestation.root.name,
          }
        : {}),
    };
    result.keyring = { state: snap.keyring.state, ...(snap.keyring.keyringId ? { keyringId: snap.keyring.keyringId } : {}) };

    const key = (await jsonRpc(socket, 'signer_createKey', { label: 'vm-appliance' })) as { keyId: string; address: string };
    result.key = { keyId: key.keyId, address: key.address };
    mark('keyCreated', key.address);
    result.tx = await signAndRecover(socket, key.address, 0);
    mark('txSigned', `EIP-1559, recovered ${result.tx.recovered}`);
    result.enclaveStatus = ((await jsonRpc(socket, 'signer_status')) as { enclave?: unknown }).enclave;
    // The image's env preloads its malloc (enclave/node-flags.ts): what the signing enclave has mapped.
    result.enclaveLibraries = [...new Set(readFileSync(`/proc/${enclaveA.child.pid}/maps`, 'utf8').split('\n').map((l) => l.split(/\s+/)[5] ?? '').filter((p) => /\.so(\.|$)/.test(p)))].sort();

    // A new enclave life: same image, same keystore; the parent re-attests and unlocks (KMS Decrypt over the pipe).
    const opsBefore = kmsOps.length;
    await stopEnclave(enclaveA);
    const down = Date.now() + 30_000;
    while (parent.state().ready && Date.now() < down) await sleep(100);
    const notReadyWhileDown = !parent.state().ready;
    mark('enclaveStopped', `parent ready=${!notReadyWhileDown}`);
    const r0 = since();
    enclaveA = spawnEnclave('enclave', argvA, imageEnv);
    await waitReady(parent, 150_000);
    const snap2 = parent.state();
    const tx2 = await signAndRecover(socket, key.address, 1);
    result.restart = {
      notReadyWhileDown,
      readyMs: since() - r0,
      keyringState: snap2.keyring.state,
      ...(snap2.keyring.keyringId ? { keyringId: snap2.keyring.keyringId } : {}),
      sameKeyring: snap2.keyring.keyringId === result.keyring.keyringId,
      recovered: tx2.recovered,
      kmsOpsAfter: kmsOps.slice(opsBefore),
    };
    mark('restartReady', 'new enclave life: re-attested, keyring unlocked, same key signs');

    // Bench: bridge round trips over vsock vs unix, and end-to-end signing through the parent.
    const argvB = devEnclave([['--listen', `unix:${join(WORK, 'enclave-b.sock')}`], ...common]);
    const enclaveB = spawnEnclave('enclave-b', argvB, imageEnv);
    cleanup.push(() => stopEnclave(enclaveB));
    await enclaveB.waitFor(/serving the enclave API/, 120_000);
    mark('unixEnclaveServing', 'second enclave on a unix socket (bench)');
    const vs = await connectBridge('vsock://1:5000', { role: 'parent' });
    const ux = await connectBridge(`unix:${join(WORK, 'enclave-b.sock')}`, { role: 'parent' });
    cleanup.push(async () => {
      vs.close();
      ux.close();
    });
    const b = cfg.bench;
    // Params encoded as the parent's gate does (jsonToCbor), outside the timed part.
    const none = () => jsonToCbor({});
    const nonce = () => jsonToCbor({ nonce: new Uint8Array(randomBytes(32)) });
    const warm: number[] = [];
    for (const p of [vs, ux]) {
      await timeCalls(p, 'status', none, b.warmup, warm);
      await timeCalls(p, 'attest', nonce, Math.max(2, Math.floor(b.warmup / 5)), warm);
    }
    const st = { vsock: [] as number[], unix: [] as number[] };
    const at = { vsock: [] as number[], unix: [] as number[] };
    // Alternating rounds, so drift in the guest (GC, JIT, the parent's timers) lands on both sides.
    for (let r = 0; r < b.rounds; r++) {
      await timeCalls(vs, 'status', none, b.statusPerRound, st.vsock);
      await timeCalls(ux, 'status', none, b.statusPerRound, st.unix);
      await timeCalls(vs, 'attest', nonce, b.attestPerRound, at.vsock);
      await timeCalls(ux, 'attest', nonce, b.attestPerRound, at.unix);
    }
    mark('bridgeBench', 'status/attest round trips measured');
    // One IPC connection; only the request/response is timed, every signature is checked afterwards.
    const signs: number[] = [];
    const raws: Hex[] = [];
    const ipcClient = await getIpcRpcClient(socket, { reconnect: false });
    try {
      for (let i = 0; i < b.signs; i++) {
        const body = { method: 'eth_signTransaction', params: [txFor(key.address, 2 + i)] };
        const s = performance.now();
        const res = await ipcClient.requestAsync({ body, timeout: 60_000 });
        signs.push((performance.now() - s) * 1000);
        if (res.error) throw new Error(`eth_signTransaction: JSON-RPC error ${res.error.code}: ${res.error.message}`);
        raws.push(res.result as Hex);
      }
    } finally {
      ipcClient.close();
    }
    for (const raw of raws) {
      const who = await recoverTransactionAddress({ serializedTransaction: raw as Parameters<typeof recoverTransactionAddress>[0]['serializedTransaction'] });
      if (who.toLowerCase() !== key.address.toLowerCase()) throw new Error(`bench signature recovers to ${who}, not ${key.address}`);
    }
    result.bench = {
      status: { vsock: stats(st.vsock), unix: stats(st.unix) },
      attest: { vsock: stats(at.vsock), unix: stats(at.unix) },
      e2eSign: stats(signs),
    };
    mark('signBench', 'end-to-end signing measured');
    result.ok = true;
  } catch (e) {
    result.ok = false;
    result.failedStep = step;
    const cause = (e as { cause?: unknown } | undefined)?.cause;
    result.error = e instanceof Error ? `${(e as { code?: string }).code ?? e.name}: ${e.message}${cause instanceof Error ? ` (cause: ${cause.message.split('\n')[0]})` : ''}` : String(e);
  } finally {
    for (const c of cleanup.reverse()) await c().catch((e: unknown) => console.log(`cleanup: ${String(e)}`));
  }
  return result;
}

if (process.env.ENCLAVE_SIGNER_VM_GUEST !== '1') {
  console.error('appliance-harness: refusing to run outside the QEMU test guest (it opens AF_VSOCK sockets); ENCLAVE_SIGNER_VM_GUEST=1 is set only by the guest init');
  process.exit(2);
}

const cfgDeadline = (() => {
  try {
    return (JSON.parse(readFileSync('/vmtest/config.json', 'utf8')) as ApplianceConfig).deadlineMs;
  } catch {
    return 200_000;
  }
})();
const watchdog = setTimeout(() => {
  console.log(`${RESULT_MARKER}${JSON.stringify({ ok: false, error: `guest watchdog: no result after ${cfgDeadline} ms`, failedStep: step, timeline })}`);
  process.exit(3);
}, cfgDeadline);
progress(`harness started on node ${process.version}`);
const r = await main();
clearTimeout(watchdog);
console.log(`${RESULT_MARKER}${JSON.stringify(r)}`);
process.exit(r.ok ? 0 : 1);
