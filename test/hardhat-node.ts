/**
 * A real EVM for tests: hardhat's EDR (`hardhat node`) on 127.0.0.1, started
 * from a temporary hardhat project (a one-line hardhat.config.cjs, the
 * repository's node_modules linked in). Loopback only; the port is picked
 * free just before the start and the start retried on a clash. Automining:
 * every accepted transaction is mined at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../', import.meta.url));

export interface HardhatNode {
  url: string;
  chainId: number;
  /** One JSON-RPC call; throws on a JSON-RPC error (with the node's message). */
  rpc(method: string, params?: unknown[]): Promise<any>;
  close(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function nodeRpc(url: string, method: string, params: unknown[] = []): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  const body = (await res.json()) as { result?: unknown; error?: { message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
}

function startOnce(dir: string, port: number): Promise<ChildProcess> {
  const cli = join(REPO, 'node_modules', 'hardhat', 'internal', 'cli', 'cli.js');
  const child = spawn(process.execPath, [cli, 'node', '--hostname', '127.0.0.1', '--port', String(port), '--config', join(dir, 'hardhat.config.cjs')], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: 'true', CI: 'true' },
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`hardhat node did not start in 60 s: ${out.slice(-500)}`));
    }, 60_000);
    const onData = (c: Buffer) => {
      out += c.toString();
      if (out.includes('Started HTTP')) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`hardhat node exited (${code}): ${out.slice(-500)}`));
    });
  });
}

export async function startHardhatNode(chainId = 31337): Promise<HardhatNode> {
  const dir = mkdtempSync(join(tmpdir(), 'es-hardhat-'));
  writeFileSync(join(dir, 'package.json'), '{"name":"es-hardhat-test","private":true}\n');
  writeFileSync(join(dir, 'hardhat.config.cjs'), `module.exports = { networks: { hardhat: { chainId: ${chainId} } } };\n`);
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
  let child: ChildProcess | undefined;
  let port = 0;
  let lastError: unknown;
  for (let attempt = 0; attempt < 3 && !child; attempt++) {
    port = await freePort();
    try {
      child = await startOnce(dir, port);
    } catch (e) {
      lastError = e;
    }
  }
  if (!child) {
    rmSync(dir, { recursive: true, force: true });
    throw lastError;
  }
  const url = `http://127.0.0.1:${port}`;
  const running = child;
  return {
    url,
    chainId,
    rpc: (method, params) => nodeRpc(url, method, params),
    close: () =>
      new Promise<void>((resolve) => {
        const done = () => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (running.exitCode !== null) return done();
        running.once('exit', done);
        running.kill('SIGTERM');
      }),
  };
}
