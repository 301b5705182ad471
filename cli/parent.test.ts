/**
 * `enclave-signer parent` (runParent) and the config it builds: required
 * flags, manifest and key files, loopback-only HTTP, socket modes, clean
 * shutdown on SIGTERM/SIGINT with the socket file removed.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { derToPem } from '../attestation/roots.js';
import { createDevCa } from '../dev/ca/index.js';
import { isSignerError } from '../common/errors.js';
import { parseLoopbackHttp, resolveParentConfig } from '../parent/config.js';
import type { RunningParent } from '../parent/main.js';
import { runParent } from './parent.js';
import { devManifest, httpRequest, rpc, startFakeEnclave, waitFor } from '../parent/test-helpers.js';

vi.setConfig({ testTimeout: 30_000 });

const dir = mkdtempSync(join(tmpdir(), 'es-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function io() {
  const out = { stdout: '', stderr: '' };
  return { out, io: { stdout: (s: string) => void (out.stdout += s), stderr: (s: string) => void (out.stderr += s) } };
}

describe('config', () => {
  it('HTTP listens on loopback only', () => {
    expect(parseLoopbackHttp('127.0.0.1:8545')).toEqual({ host: '127.0.0.1', port: 8545 });
    expect(parseLoopbackHttp('tcp://127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseLoopbackHttp('localhost:1')).toEqual({ host: '127.0.0.1', port: 1 });
    expect(parseLoopbackHttp('[::1]:8545')).toEqual({ host: '::1', port: 8545 });
    for (const bad of ['0.0.0.0:8545', '10.0.0.1:8545', '[::]:8545', 'example.com:80', '127.0.0.1', '127.0.0.1:99999', ':8545']) {
      expect(() => parseLoopbackHttp(bad), bad).toThrow(/loopback|HOST:PORT|out of range/);
    }
  });

  it('refuses a world-accessible socket, a relative socket path, a bad enclave URI', () => {
    const base = { enclave: 'unix:/x.sock', socket: '/tmp/a.sock', keystore: '/tmp/k.db', allowAnyPcrs: true };
    expect(() => resolveParentConfig({ ...base, socketMode: 0o666 })).toThrow(/lets every local user sign/);
    expect(() => resolveParentConfig({ ...base, socket: 'rel.sock' })).toThrow(/absolute/);
    expect(() => resolveParentConfig({ ...base, enclave: 'http://x' })).toThrow(/enclave:/);
    expect(resolveParentConfig({ ...base, socketMode: 0o660 }).socketMode).toBe(0o660);
    expect(resolveParentConfig(base).rootIsAws).toBe(true);
  });
});

describe('runParent', () => {
  it('--help, missing flags and contradictions are usage errors', async () => {
    const h = io();
    expect(await runParent(['--help'], h.io)).toBe(0);
    expect(h.out.stdout).toContain('--enclave <uri>');
    const m = io();
    expect(await runParent(['--socket', '/tmp/s.sock'], m.io)).toBe(2);
    expect(m.out.stderr).toMatch(/--enclave is required/);
    const n = io();
    expect(await runParent(['--enclave', 'unix:/e.sock', '--socket', join(dir, 's.sock'), '--keystore', join(dir, 'k.db')], n.io)).toBe(2);
    expect(n.out.stderr).toMatch(/no PCR manifest configured/);
    const o = io();
    expect(await runParent(['--enclave', 'unix:/e.sock', '--socket', join(dir, 's.sock'), '--keystore', join(dir, 'k.db'), '--allow-any-pcrs', '--http', '0.0.0.0:8545'], o.io)).toBe(2);
    expect(o.out.stderr).toMatch(/only loopback/);
    const p = io();
    expect(await runParent(['--enclave', 'unix:/e.sock', '--socket', join(dir, 's.sock'), '--keystore', join(dir, 'k.db'), '--manifest', join(dir, 'none.json')], p.io)).toBe(2);
    expect(p.out.stderr).toMatch(/--manifest needs --manifest-key/);
    const q = io();
    expect(await runParent(['--enclave', 'unix:/e.sock', '--socket', join(dir, 's.sock'), '--keystore', join(dir, 'k.db'), '--allow-any-pcrs', '--aws-credentials', 'imds:ftp://x'], q.io)).toBe(2);
    expect(q.out.stderr).toMatch(/--aws-credentials imds:ftp:\/\/x: IMDS endpoint must be http/);
    const r = io();
    expect(await runParent(['--enclave', 'unix:/e.sock', '--enclave', 'unix:/other.sock', '--socket', join(dir, 's.sock'), '--keystore', join(dir, 'k.db'), '--allow-any-pcrs'], r.io)).toBe(2);
    expect(r.out.stderr).toMatch(/^error: --enclave given twice\n\nUsage: enclave-signer parent/);
  });

  it('runs from files (manifest, manifest key, dev root, credentials), serves, and stops on SIGTERM removing the socket', async () => {
    const ca = createDevCa();
    const enclave = await startFakeEnclave({ uri: `unix:${join(dir, 'enclave.sock')}`, ca });
    const m = devManifest();
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m.signed));
    writeFileSync(join(dir, 'manifest.pub.pem'), m.publicKeyPem);
    writeFileSync(join(dir, 'root.pem'), derToPem(ca.root.certDer));
    writeFileSync(join(dir, 'creds.json'), JSON.stringify({ accessKeyId: 'AKIDFILE', secretAccessKey: 'file-secret', sessionToken: 'tok', expiration: new Date(Date.now() + 3600_000).toISOString() }));
    const socket = join(dir, 'cli.sock');
    const t = io();
    let started: RunningParent | undefined;
    const exit = runParent(
      [
        '--enclave', `unix:${join(dir, 'enclave.sock')}`,
        '--socket', socket,
        '--keystore', join(dir, 'cli.db'),
        '--manifest', join(dir, 'manifest.json'),
        '--manifest-key', join(dir, 'manifest.pub.pem'),
        '--root', join(dir, 'root.pem'),
        '--kms-key-id', 'arn:aws:kms:us-east-1:000000000000:key/cli',
        '--aws-credentials', `file:${join(dir, 'creds.json')}`,
        '--http', '127.0.0.1:0',
        '--reattest-interval', '60',
      ],
      t.io,
      { onStarted: (p) => (started = p) },
    );
    try {
      await waitFor(() => started?.state().ready === true, 10_000, `ready (stderr: ${t.out.stderr})`);
      expect(enclave.credentials).toMatchObject({ accessKeyId: 'AKIDFILE', sessionToken: 'tok' });
      expect(t.out.stderr).toMatch(/\[parent\] WARNING: attestation root is custom root/);
      expect(t.out.stderr).not.toContain('file-secret');
      expect((await rpc(socket, 'signer_createKey', {})).result.address).toMatch(/^0x/);
      expect((await httpRequest(socket, { method: 'GET', path: '/readyz' })).status).toBe(200);
      expect(started!.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      process.emit('SIGTERM');
    }
    expect(await exit).toBe(0);
    expect(t.out.stderr).toMatch(/SIGTERM: shutting down/);
    expect(t.out.stderr).toMatch(/stopped/);
    expect(existsSync(socket)).toBe(false);
    await enclave.close();
  });

  it('--aws-credentials imds: the instance role from IMDSv2 (a fake IMDS on 127.0.0.1) is handed to the enclave', async () => {
    const imds = createHttpServer((req, res) => {
      if (req.method === 'PUT' && req.url === '/latest/api/token') return void res.end('imds-token');
      if (req.headers['x-aws-ec2-metadata-token'] !== 'imds-token') return void res.writeHead(401).end();
      if (req.url === '/latest/meta-data/iam/security-credentials/') return void res.end('parent-role');
      if (req.url === '/latest/meta-data/iam/security-credentials/parent-role') {
        return void res.end(JSON.stringify({ Code: 'Success', Type: 'AWS-HMAC', AccessKeyId: 'ASIAIMDSROLE00000001', SecretAccessKey: 'imds-secret', Token: 'imds-session', Expiration: new Date(Date.now() + 6 * 3600_000).toISOString(), LastUpdated: new Date().toISOString() }));
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => imds.listen(0, '127.0.0.1', r));
    const port = (imds.address() as AddressInfo).port;
    const ca = createDevCa();
    const enclave = await startFakeEnclave({ uri: `unix:${join(dir, 'imds-enclave.sock')}`, ca });
    writeFileSync(join(dir, 'imds-root.pem'), derToPem(ca.root.certDer));
    const stop = new AbortController();
    const t = io();
    let started: RunningParent | undefined;
    const exit = runParent(
      ['--enclave', `unix:${join(dir, 'imds-enclave.sock')}`, '--socket', join(dir, 'imds.sock'), '--keystore', join(dir, 'imds.db'), '--allow-any-pcrs', '--root', join(dir, 'imds-root.pem'), '--kms-key-id', 'arn:aws:kms:us-east-1:0:key/i', '--aws-credentials', `imds:http://127.0.0.1:${port}`],
      t.io,
      { signal: stop.signal, onStarted: (p) => (started = p) },
    );
    try {
      await Promise.race([exit.then((c) => { throw new Error(`exited ${c}: ${t.out.stderr}`); }), waitFor(() => started?.state().ready === true, 10_000, 'ready').catch((e) => { throw new Error(`${e.message}: ${t.out.stderr} ${JSON.stringify(started?.state())}`); })]);
      expect(enclave.credentials).toMatchObject({ accessKeyId: 'ASIAIMDSROLE00000001', secretAccessKey: 'imds-secret', sessionToken: 'imds-session' });
      expect(t.out.stderr).not.toMatch(/imds-secret|imds-session|imds-token/);
    } finally {
      stop.abort();
    }
    expect(await exit).toBe(0);
    await enclave.close();
    await new Promise<void>((r) => imds.close(() => r()));
  });

  it('a socket path held by a live listener is refused; a regular file in the way is left alone', async () => {
    const m = devManifest();
    writeFileSync(join(dir, 'm2.json'), JSON.stringify(m.signed));
    writeFileSync(join(dir, 'm2.pub.pem'), m.publicKeyPem);
    const args = (socket: string) => ['--enclave', `unix:${join(dir, 'nobody.sock')}`, '--socket', socket, '--keystore', join(dir, `${socket.length}.db`), '--manifest', join(dir, 'm2.json'), '--manifest-key', join(dir, 'm2.pub.pem')];
    const stop = new AbortController();
    const a = io();
    let first: RunningParent | undefined;
    const running = runParent(args(join(dir, 'busy.sock')), a.io, { signal: stop.signal, onStarted: (p) => (first = p) });
    await waitFor(() => first !== undefined);
    const b = io();
    expect(await runParent(args(join(dir, 'busy.sock')), b.io)).toBe(1);
    expect(b.out.stderr).toMatch(/PARENT_LISTEN|another process is listening/);
    stop.abort();
    expect(await running).toBe(0);
    // A regular file in the way is not deleted.
    writeFileSync(join(dir, 'file.sock'), 'not a socket');
    const c = io();
    expect(await runParent(args(join(dir, 'file.sock')), c.io)).toBe(1);
    expect(c.out.stderr).toMatch(/not a socket/);
    expect(existsSync(join(dir, 'file.sock'))).toBe(true);
  });

  it('config errors surface as typed errors from startParent', async () => {
    const { startParent } = await import('../parent/main.js');
    await expect(startParent({ enclave: 'unix:/e.sock', socket: join(dir, 'q.sock'), keystore: join(dir, 'q.db'), allowAnyPcrs: true, reattestIntervalMs: 5 })).rejects.toSatisfy(
      (e) => isSignerError(e) && e.code === 'PARENT_CONFIG',
    );
  });
});
