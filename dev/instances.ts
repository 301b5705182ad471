/**
 * `enclave-signer dev --instances N` (docs/scale-out.md): N instances as N
 * hosts would run them — each its own `enclave-signer parent` process and its
 * own enclave process — on one KMS emulator, one dev CA and one shared
 * PostgreSQL keystore. Instance i's socket is `<socket>.<i>`, its instance id
 * "i" (signer_status says which answered).
 *
 * The parents are started with the same flags a production host uses (dev CA
 * root, dev-signed manifest, --aws-credentials env with the dev credentials in
 * the child's environment only). Instance 1 starts first and makes (or
 * unlocks) the keyring; the others then unlock the same keyring record, each
 * through its own enclave's attested KMS call.
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { SignerError } from '../common/errors.js';
import { DEV_CREDENTIALS, repoRoot, type DevInfra } from './stack.js';
import { superviseProcess } from './supervise.js';

export interface ParentSupervisor {
  readonly instance: number;
  readonly socket: string;
  readonly pid: number | undefined;
  /** Kills the parent process (fault tests); the supervisor starts a new one. */
  kill(signal?: NodeJS.Signals): void;
  stop(): Promise<void>;
}

export interface DevInstancesConfig {
  instances: number;
  socket: string;
  keystore: string;
  chainId?: number;
  downstream?: string;
  parentLog: (line: string) => void;
}

/** Runs one `enclave-signer parent` and restarts it when it dies (as systemd would on a host). */
function superviseParent(instance: number, args: string[], socket: string, log: (l: string) => void): ParentSupervisor {
  const bin = join(repoRoot(), 'bin', 'enclave-signer.js');
  // The dev KMS credentials go to this child only (never on a command line).
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_ACCESS_KEY_ID: DEV_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: DEV_CREDENTIALS.secretAccessKey };
  delete env.AWS_SESSION_TOKEN;
  const p = superviseProcess({
    name: 'parent',
    spawn: () => spawn(process.execPath, [bin, 'parent', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env }),
    line: (l) => log(l.replace(/^\[parent\] /, '')),
    log,
    stopGraceMs: 5000,
  });
  return {
    instance,
    socket,
    get pid() {
      return p.pid;
    },
    kill: (signal) => p.kill(signal),
    stop: () => p.stop(),
  };
}

/** GET /readyz on a signing socket: the body, or undefined while it is not answering 200. */
function readyz(socket: string): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/readyz', method: 'GET', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export async function waitInstanceReady(p: ParentSupervisor, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last: string | undefined;
  for (;;) {
    const r = await readyz(p.socket);
    if (r?.status === 200) return;
    if (r) last = r.body;
    if (Date.now() > end) {
      let reason = last ?? 'its socket never answered';
      try {
        reason = (JSON.parse(reason) as { reason?: string }).reason ?? reason;
      } catch {
        // not JSON: shown as it is
      }
      throw new SignerError('DEV_START_FAILED', `instance ${p.instance} did not become ready: ${reason}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startDevInstances(infra: DevInfra, c: DevInstancesConfig): Promise<ParentSupervisor[]> {
  const parents: ParentSupervisor[] = [];
  try {
    for (let i = 1; i <= c.instances; i++) {
      const socket = `${c.socket}.${i}`;
      const args = [
        '--enclave', infra.enclaves[i - 1]!.uri,
        '--socket', socket,
        '--keystore', c.keystore,
        '--instance-id', String(i),
        // The dev CA: trusted here only because dev mode says so.
        '--root', join(infra.paths.caDir, 'root.pem'),
        '--manifest', infra.paths.manifest,
        '--manifest-key', infra.paths.releasePub,
        '--kms-key-id', infra.cmkArn,
        '--aws-credentials', 'env',
        ...(c.chainId === undefined ? [] : ['--chain-id', String(c.chainId)]),
        ...(c.downstream === undefined ? [] : ['--downstream', c.downstream]),
      ];
      const p = superviseParent(i, args, socket, (l) => c.parentLog(`[${i}] ${l}`));
      parents.push(p);
      // The first instance makes the keyring on a fresh keystore; the others unlock that one (never a second).
      if (i === 1) await waitInstanceReady(p);
    }
    for (const p of parents.slice(1)) await waitInstanceReady(p);
  } catch (e) {
    for (const p of parents) await p.stop();
    throw e;
  }
  return parents;
}
