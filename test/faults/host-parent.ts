/**
 * One instance's parent on its own "host": the real `enclave-signer parent`
 * CLI process, started inside a network namespace (`ip netns exec`, which
 * execs node itself, so the pid is the parent's), with the flags
 * dev/instances.ts gives a fleet member. Only the parent runs in the host's
 * namespace because only the parent uses the network (the keystore, over
 * TCP): its links to the enclave and to the client are Unix sockets (vsock and
 * a local socket on a real host), which a network namespace does not confine,
 * so the test reaches each instance's signing socket from the root namespace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { DEV_CREDENTIALS, type DevInfra } from '../../dev/stack.js';
import { BIN, REPO, waitReady } from '../e2e/dev-stack.js';
import type { NetHost } from './netns.js';

export interface HostParent {
  readonly host: NetHost;
  readonly instanceId: string;
  readonly socket: string;
  /** The parent process (it must stay the same one: recovery is without a restart). */
  readonly pid: number;
  readonly exited: boolean;
  stop(): Promise<void>;
}

export interface HostParentOptions {
  host: NetHost;
  infra: DevInfra;
  /** Which of infra.enclaves (0-based) this parent serves. */
  enclaveIndex: number;
  instanceId: string;
  socket: string;
  /** postgres://app@ADDR:PORT/DB?…, without the password (it goes in PGPASSWORD, never on a command line). */
  keystore: string;
  pgPassword: string;
  /** --request-timeout, in seconds. */
  requestTimeoutSec: number;
  log: (line: string) => void;
}

export async function startHostParent(o: HostParentOptions): Promise<HostParent> {
  const p = o.infra.paths;
  const args = [
    'netns', 'exec', o.host.netns,
    process.execPath, BIN, 'parent',
    '--enclave', o.infra.enclaves[o.enclaveIndex]!.uri,
    '--socket', o.socket,
    '--keystore', o.keystore,
    '--instance-id', o.instanceId,
    '--root', join(p.caDir, 'root.pem'),
    '--manifest', p.manifest,
    '--manifest-key', p.releasePub,
    '--kms-key-id', o.infra.cmkArn,
    '--aws-credentials', 'env',
    '--request-timeout', String(o.requestTimeoutSec),
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_ACCESS_KEY_ID: DEV_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: DEV_CREDENTIALS.secretAccessKey, PGPASSWORD: o.pgPassword };
  delete env.AWS_SESSION_TOKEN;
  const child: ChildProcess = spawn('ip', args, { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'], env });
  let rest = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    const lines = (rest + s).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) o.log(`[${o.instanceId}] ${l}`);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = true;
      o.log(`[${o.instanceId}] parent exited (${signal ?? code})`);
      resolve();
    }),
  );
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exit;
    clearTimeout(t);
  };
  try {
    await waitReady(o.socket, 60_000);
  } catch (e) {
    await stop();
    throw new Error(`instance ${o.instanceId} on ${o.host.netns} did not become ready: ${(e as Error).message}`, { cause: e });
  }
  return {
    host: o.host,
    instanceId: o.instanceId,
    socket: o.socket,
    pid: child.pid!,
    get exited() {
      return exited;
    },
    stop,
  };
}
