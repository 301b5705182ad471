/**
 * Test harness: a KMS emulator on a random port with a fresh dev CA, plus
 * real @aws-sdk/client-kms clients pointed at it (only the endpoint and the
 * trusted CA differ from production). For tests here and in other folders.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KMSClient } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createDevCa, type DevCa } from '../ca/index.js';
import { startKmsEmulator, type KmsEmulator, type KmsEmulatorCredential, type KmsEmulatorOptions } from './server.js';

export const TEST_ACCOUNT = '111122223333';
export const TEST_REGION = 'us-east-1';
export const PARENT_ROLE = `arn:aws:iam::${TEST_ACCOUNT}:role/enclave-parent`;
export const ADMIN_ROLE = `arn:aws:iam::${TEST_ACCOUNT}:role/kms-admin`;

export const PARENT_CREDENTIAL: KmsEmulatorCredential = {
  accessKeyId: 'AKIATESTPARENT000001',
  secretAccessKey: 'parent-secret-for-tests-only',
  principalArn: PARENT_ROLE,
};
export const ADMIN_CREDENTIAL: KmsEmulatorCredential = {
  accessKeyId: 'AKIATESTADMIN0000001',
  secretAccessKey: 'admin-secret-for-tests-only',
  principalArn: ADMIN_ROLE,
};

export interface TestKms {
  emulator: KmsEmulator;
  ca: DevCa;
  caPem: string;
  dataDir: string;
  /** A real SDK client signing as `cred` (default: the parent role). */
  client(cred?: Pick<KmsEmulatorCredential, 'accessKeyId' | 'secretAccessKey' | 'sessionToken'>): KMSClient;
  /** Restart over the same data directory (same CA, same credentials). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestKms(opts: Partial<Omit<KmsEmulatorOptions, 'tls'>> & { ca?: DevCa } = {}): Promise<TestKms> {
  const ca = opts.ca ?? createDevCa();
  const tls = ca.issueTlsServerCert(['127.0.0.1', 'localhost']);
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'kms-emu-'));
  const { ca: _ca, ...rest } = opts;
  const startOpts: KmsEmulatorOptions = {
    region: TEST_REGION,
    accountId: TEST_ACCOUNT,
    credentials: [PARENT_CREDENTIAL, ADMIN_CREDENTIAL],
    attestationRoot: ca.trustRoot,
    ...rest,
    dataDir,
    tls: { cert: tls.chainPem, key: tls.keyPem, ca: tls.caPem },
  };
  let emulator: KmsEmulator;
  try {
    emulator = await startKmsEmulator(startOpts);
  } catch (e) {
    // A refused start (bad options, a locked or corrupt state) must not leave its directory behind.
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const clients: KMSClient[] = [];
  const t: TestKms = {
    emulator,
    ca,
    caPem: tls.caPem,
    dataDir,
    client(cred = PARENT_CREDENTIAL) {
      const c = new KMSClient({
        region: startOpts.region ?? TEST_REGION,
        endpoint: t.emulator.url,
        credentials: { accessKeyId: cred.accessKeyId, secretAccessKey: cred.secretAccessKey, ...(cred.sessionToken ? { sessionToken: cred.sessionToken } : {}) },
        maxAttempts: 1,
        requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: tls.caPem, keepAlive: true }) }),
      });
      clients.push(c);
      return c;
    },
    async restart() {
      await t.emulator.close();
      t.emulator = await startKmsEmulator(startOpts);
    },
    async close() {
      for (const c of clients) c.destroy();
      await t.emulator.close();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return t;
}
