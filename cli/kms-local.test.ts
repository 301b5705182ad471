import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { build } from 'esbuild';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { loadOrCreateDevCa } from '../dev/ca/index.js';
import { createSimulatedNsm } from '../enclave/nsm/index.js';
import { generateKeyPairSync } from 'node:crypto';
import { decryptEnvelopedData } from '../common/cms/index.js';
import { DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY } from '../dev/kms-emulator/local.js';
import { runKmsLocal, type KmsLocalEndpoint } from './kms-local.js';

const here = dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'kms-local-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function clientFor(info: KmsLocalEndpoint): KMSClient {
  return new KMSClient({
    region: info.region,
    endpoint: info.endpoint,
    credentials: { accessKeyId: DEV_ACCESS_KEY_ID, secretAccessKey: DEV_SECRET_ACCESS_KEY },
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: info.caPem }) }),
  });
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (s: string) => void out.push(s), stderr: (s: string) => void err.push(s) } };
}

describe('runKmsLocal', () => {
  test('serves the SDK with the dev CA and dev credentials, prints the endpoint JSON, stops on abort', async () => {
    const c = capture();
    const ac = new AbortController();
    let ready!: (i: KmsLocalEndpoint) => void;
    const readyP = new Promise<KmsLocalEndpoint>((r) => (ready = r));
    const caDir = join(work, 'ca1');
    const done = runKmsLocal(['--data-dir', join(work, 'data1'), '--ca-dir', caDir, '--attestation-root', 'dev', '--json'], {
      ...c.io,
      signal: ac.signal,
      onReady: ready,
    });
    const info = await readyP;
    expect(JSON.parse(c.out.join(''))).toEqual(info);
    expect(info.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(info.principalArn).toBe('arn:aws:iam::111122223333:role/enclave-parent');
    expect(c.err.join('')).toMatch(/DEVELOPMENT KMS emulator/);

    const kms = clientFor(info);
    const k = await kms.send(new CreateKeyCommand({}));
    // --attestation-root dev: documents from the simulated NSM over the same dev CA verify.
    const ca = loadOrCreateDevCa(caDir);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
    const nsm = createSimulatedNsm({ ca });
    const doc = await nsm.attest({ publicKey: spki });
    nsm.close();
    const g = await kms.send(
      new GenerateDataKeyCommand({ KeyId: k.KeyMetadata!.KeyId!, KeySpec: 'AES_256', Recipient: { AttestationDocument: doc, KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' } }),
    );
    expect(decryptEnvelopedData(g.CiphertextForRecipient!, privateKey, spki)).toHaveLength(32);
    kms.destroy();

    ac.abort();
    expect(await done).toBe(0);
    expect(c.err.join('')).toMatch(/stopped/);
    // Log lines name operations, never secrets.
    expect(c.err.join('')).toMatch(/kms-local GenerateDataKey 200/);
    expect(c.err.join('')).not.toContain(DEV_SECRET_ACCESS_KEY);
  });

  test('usage errors exit 2, startup failures exit 1', async () => {
    const run = async (argv: string[]) => {
      const c = capture();
      const ac = new AbortController();
      ac.abort();
      return { code: await runKmsLocal(argv, { ...c.io, signal: ac.signal }), ...c };
    };
    expect((await run(['--help'])).code).toBe(0);
    expect((await run(['--bogus'])).code).toBe(2);
    expect((await run(['--port', 'eighty'])).code).toBe(2);
    expect((await run(['--access-key-id', 'AKIAONLYID0000000000'])).code).toBe(2);
    const base = ['--data-dir', join(work, 'data2'), '--ca-dir', join(work, 'ca2')];
    expect((await run([...base, '--attestation-root', join(work, 'missing.pem')])).code).toBe(2);
    expect((await run([...base, '--host', '0.0.0.0'])).code).toBe(2);
    writeFileSync(join(work, 'not-a-dir'), 'x');
    const r = await run(['--data-dir', join(work, 'not-a-dir'), '--ca-dir', join(work, 'ca2')]);
    expect(r.code).toBe(1);
    expect(r.err.join('')).toMatch(/cannot start/);
  });
});

function waitForLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let errBuf = '';
    child.stderr!.on('data', (d: Buffer) => (errBuf += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    child.on('exit', (code) => reject(new Error(`kms-local exited ${code}: ${errBuf}`)));
  });
}

describe('crash safety', () => {
  test('SIGKILL after acknowledged requests loses nothing; the stale lock is taken over', async () => {
    const entry = join(work, 'entry.ts');
    writeFileSync(
      entry,
      `import { runKmsLocal } from ${JSON.stringify(join(here, 'kms-local.ts'))};
runKmsLocal(process.argv.slice(2), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) }).then((c) => process.exit(c));\n`,
    );
    const outfile = join(work, 'kms-local.mjs');
    await build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', outfile, logLevel: 'silent' });
    const args = [outfile, '--data-dir', join(work, 'crash-data'), '--ca-dir', join(work, 'crash-ca'), '--json'];

    const first = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let kms: KMSClient | undefined;
    try {
      const info = JSON.parse(await waitForLine(first)) as KmsLocalEndpoint;
      kms = clientFor(info);
      const k = await kms.send(new CreateKeyCommand({}));
      const blobs: Uint8Array[] = [];
      for (let i = 0; i < 5; i++) blobs.push((await kms.send(new EncryptCommand({ KeyId: k.KeyMetadata!.KeyId!, Plaintext: Uint8Array.of(i) }))).CiphertextBlob!);
      kms.destroy();
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));

      const second = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        const info2 = JSON.parse(await waitForLine(second)) as KmsLocalEndpoint;
        kms = clientFor(info2);
        for (let i = 0; i < 5; i++) expect((await kms.send(new DecryptCommand({ CiphertextBlob: blobs[i]! }))).Plaintext).toEqual(Uint8Array.of(i));
        kms.destroy();
      } finally {
        second.kill('SIGTERM');
        await new Promise((r) => second.once('exit', r));
      }
      expect(second.exitCode).toBe(0);
    } finally {
      if (first.exitCode === null && first.signalCode === null) first.kill('SIGKILL');
    }
  });
});
