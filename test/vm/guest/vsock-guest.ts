/**
 * Runs INSIDE the QEMU test guest (bundled by esbuild into /app/guest.mjs),
 * never on the development machine: it opens real AF_VSOCK sockets over
 * vsock_loopback (CID 1).
 *
 *   node guest.mjs server   listens (vsock + unix), runs checks, spawns the client
 *                           in a second node process, prints one result line
 *   node guest.mjs client   connects over the transports and measures
 *
 * Result: one serial-console line `VMTEST-RESULT {json}` (see GuestResult).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { loadNativeAddon } from '../../../native/addon.js';
import { FdSocket } from '../../../native/fd-socket.js';
import { createFrameDecoder, encodeFrame } from '../../../common/bridge/frame.js';
import type { CborValue } from '../../../common/cbor.js';
import { connect, listen, type TransportListener } from '../../../common/transport/index.js';
import { registerVsockTransport } from '../../../common/transport/vsock.js';

const ECHO_PORT = 5000;
const PING_PORT = 5001;
const REFUSED_PORT = 5999;
const UNIX_PING = '/tmp/es-ping.sock';
const ECHO_BYTES = 8 * 1024 * 1024;
/** The echo server ignores a new connection this long, so the client must hit backpressure. */
const ECHO_STALL_MS = 300;
const PINGS = 1000;
const WARMUP = 50;

export interface RttStats {
  n: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  minUs: number;
  maxUs: number;
}

export interface ClientResult {
  echo: { bytes: number; sha256Match: boolean; drains: number; maxWritableLength: number; stalledBytesWritten: number; ms: number };
  refused: { code: string; causeCode: string | undefined };
  /** vsock and unixFdSocket use FdSocket (our addon stream); unix uses net.Socket. */
  rtt: { vsock: RttStats; unix: RttStats; unixFdSocket: RttStats };
}

export interface GuestResult {
  ok: boolean;
  node: string;
  checks: Record<string, unknown>;
  client?: ClientResult;
  error?: string;
}

function codeOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}

// ------------------------------------------------------------------ server

function echoServer(sock: Duplex): void {
  sock.on('error', () => {});
  sock.pause();
  setTimeout(() => sock.pipe(sock), ECHO_STALL_MS);
}

/** Answers every frame {id, method, params} with {id, result: params}: the bridge's shape, minus the work. */
function pingServer(sock: Duplex): void {
  sock.on('error', () => {});
  const dec = createFrameDecoder();
  sock.on('data', (chunk: Buffer) => {
    let frames: CborValue[];
    try {
      frames = dec.push(chunk);
    } catch {
      sock.destroy();
      return;
    }
    for (const f of frames) {
      const m = f as Map<string, CborValue>;
      sock.write(
        encodeFrame(
          new Map<string, CborValue>([
            ['id', m.get('id') ?? null],
            ['result', m.get('params') ?? null],
          ]),
        ),
      );
    }
  });
  sock.on('end', () => sock.end());
}

async function serverChecks(addon: ReturnType<typeof loadNativeAddon>): Promise<Record<string, unknown>> {
  const checks: Record<string, unknown> = {};
  // Port "any": the kernel picks one and the listener reports it.
  const anyPort = await listen('vsock://1:4294967295', (s) => s.destroy());
  checks.anyPortUri = anyPort.uri;
  await anyPort.close();

  // A second listener on a live port is ADDRESS_IN_USE.
  const first = await listen('vsock://1:5100', (s) => s.destroy());
  checks.addressInUse = await listen('vsock://1:5100', (s) => s.destroy()).then(
    (l) => (void l.close(), 'listened twice'),
    (e: unknown) => codeOf(e),
  );
  await first.close();

  // Why FdSocket exists: net.Socket refuses AF_VSOCK fds (libuv calls them "UNKNOWN").
  const probe = await listen('vsock://1:5101', (s) => s.destroy());
  const raw = addon.vsockConnect(1, 5101);
  try {
    const s = new net.Socket({ fd: raw.fd });
    checks.netSocketFromVsockFd = 'accepted';
    s.destroy();
  } catch (e) {
    checks.netSocketFromVsockFd = codeOf(e) ?? String(e);
    addon.close(raw.fd);
  }
  await probe.close();
  return checks;
}

async function runServer(): Promise<void> {
  const result: GuestResult = { ok: false, node: process.version, checks: {} };
  const listeners: TransportListener[] = [];
  try {
    await registerVsockTransport();
    const addon = loadNativeAddon();
    result.checks = await serverChecks(addon);
    listeners.push(await listen(`vsock://1:${ECHO_PORT}`, echoServer));
    listeners.push(await listen(`vsock://1:${PING_PORT}`, pingServer));
    listeners.push(await listen(`unix:${UNIX_PING}`, pingServer));

    const child = spawn(process.execPath, [process.argv[1]!, 'client'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    const [code] = (await once(child, 'exit')) as [number | null];
    const line = out.split('\n').find((l) => l.startsWith('CLIENT-RESULT '));
    if (code !== 0 || line === undefined) throw new Error(`client exited ${String(code)}: ${out.slice(-2000)}`);
    result.client = JSON.parse(line.slice('CLIENT-RESULT '.length)) as ClientResult;
    result.ok = true;
  } catch (e) {
    result.error = `${codeOf(e) ?? ''} ${(e as Error)?.stack ?? String(e)}`.trim();
  } finally {
    await Promise.all(listeners.map((l) => l.close()));
  }
  console.log(`VMTEST-RESULT ${JSON.stringify(result)}`);
}

// ------------------------------------------------------------------ client

async function echoCheck(): Promise<ClientResult['echo']> {
  const payload = randomBytes(ECHO_BYTES);
  const want = createHash('sha256').update(payload).digest('hex');
  const t0 = performance.now();
  const s = await connect(`vsock://1:${ECHO_PORT}`);
  const h = createHash('sha256');
  let got = 0;
  s.on('data', (c: Buffer) => {
    h.update(c);
    got += c.length;
  });
  const ended = once(s, 'end');
  let drains = 0;
  let maxWritableLength = 0;
  let stalledBytesWritten = -1;
  const CHUNK = 64 * 1024;
  for (let off = 0; off < payload.length; off += CHUNK) {
    const more = s.write(payload.subarray(off, off + CHUNK));
    maxWritableLength = Math.max(maxWritableLength, s.writableLength);
    if (!more) {
      // The first stall happens while the server is still ignoring us: what did the kernel take?
      if (stalledBytesWritten < 0) stalledBytesWritten = (s as unknown as { bytesWritten: number }).bytesWritten;
      drains++;
      await once(s, 'drain');
    }
  }
  s.end();
  await ended;
  return { bytes: got, sha256Match: got === payload.length && h.digest('hex') === want, drains, maxWritableLength, stalledBytesWritten, ms: Math.round(performance.now() - t0) };
}

async function refusedCheck(): Promise<ClientResult['refused']> {
  try {
    const s = await connect(`vsock://1:${REFUSED_PORT}`, { timeoutMs: 5000 });
    s.destroy();
    return { code: 'connected', causeCode: undefined };
  } catch (e) {
    return { code: codeOf(e) ?? String(e), causeCode: codeOf((e as { cause?: unknown }).cause) };
  }
}

function stats(samples: number[]): RttStats {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  const r = (ms: number) => Math.round(ms * 1000 * 10) / 10;
  return { n: s.length, meanUs: r(s.reduce((a, b) => a + b, 0) / s.length), p50Us: r(q(0.5)), p90Us: r(q(0.9)), p99Us: r(q(0.99)), minUs: r(s[0]!), maxUs: r(s[s.length - 1]!) };
}

/** Sequential request/response frames, like one bridge call at a time. */
async function pingPong(uri: string): Promise<RttStats> {
  return pingPongOn(await connect(uri));
}

async function pingPongOn(s: Duplex): Promise<RttStats> {
  const dec = createFrameDecoder();
  const waiting: ((v: CborValue) => void)[] = [];
  s.on('data', (chunk: Buffer) => {
    for (const f of dec.push(chunk)) waiting.shift()?.(f);
  });
  const params = new Uint8Array(32).fill(7);
  const call = (id: number) =>
    new Promise<CborValue>((resolve) => {
      waiting.push(resolve);
      s.write(encodeFrame(new Map<string, CborValue>([['id', id], ['method', 'ping'], ['params', params]])));
    });
  for (let i = 0; i < WARMUP; i++) await call(i);
  const samples: number[] = [];
  for (let i = 0; i < PINGS; i++) {
    const t = performance.now();
    const res = (await call(WARMUP + i)) as Map<string, CborValue>;
    samples.push(performance.now() - t);
    if (res.get('id') !== WARMUP + i) throw new Error(`ping ${i}: answer for id ${String(res.get('id'))}`);
  }
  s.end();
  return stats(samples);
}

/**
 * The same ping-pong over an AF_UNIX socket pair shared with a child process,
 * with FdSocket on both ends: separates what the vsock kernel path costs from
 * what our JS stream (vs net.Socket's C++ one) costs.
 */
async function pingPongFdSocketUnix(): Promise<RttStats> {
  const addon = loadNativeAddon();
  const [a, b] = addon.socketPair();
  const child = spawn(process.execPath, [process.argv[1]!, 'pair-server'], { stdio: ['ignore', 'inherit', 'inherit', b] });
  addon.close(b);
  const exited = once(child, 'exit');
  const result = await pingPongOn(new FdSocket(addon, a, { remote: 'socketpair' }));
  await exited;
  return result;
}

async function runClient(): Promise<void> {
  await registerVsockTransport();
  const echo = await echoCheck();
  const refused = await refusedCheck();
  // Same process, same code, same frames; each run has its own warm-up. Only the transport differs.
  const vsock = await pingPong(`vsock://1:${PING_PORT}`);
  const unix = await pingPong(`unix:${UNIX_PING}`);
  const unixFdSocket = await pingPongFdSocketUnix();
  const result: ClientResult = { echo, refused, rtt: { vsock, unix, unixFdSocket } };
  console.log(`CLIENT-RESULT ${JSON.stringify(result)}`);
}

/** Set by the guest's /init only: refuses to open AF_VSOCK anywhere else (e.g. on a development machine). */
const GUEST_MARKER = 'ENCLAVE_SIGNER_VM_GUEST';

const role = process.argv[2];
if (process.env[GUEST_MARKER] !== '1') {
  console.error(`refusing to run outside the QEMU test guest (${GUEST_MARKER} is not set)`);
  process.exitCode = 2;
} else if (role === 'server') await runServer();
else if (role === 'client') await runClient();
else if (role === 'pair-server') pingServer(new FdSocket(loadNativeAddon(), 3, { remote: 'socketpair' })); // fd 3: inherited from the client
else {
  console.error('usage: guest.mjs server|client');
  process.exitCode = 2;
}
