/**
 * `enclave-signer dev`: the whole appliance on one machine, on embedded
 * defaults — KMS emulator, the enclave (a child process with the simulated
 * NSM), the parent's KMS byte pipe and signing socket — with state in one
 * data directory so a rerun serves the same keys.
 *
 * Everything that is dev-only is named so: the dev CA (trusted by this
 * parent only because dev mode configures it explicitly), the dev release key
 * that signs the dev PCR manifest, the emulator's plaintext key store.
 */
import { CreateKeyCommand, DescribeKeyCommand, KMSClient, PutKeyPolicyCommand } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createManifest } from '../attestation/manifest-format.js';
import { signManifest, type SignedManifest } from '../attestation/manifest-signature.js';
import { toHex } from '../common/bytes.js';
import { SignerError } from '../common/errors.js';
import { loadOrCreateDevCa, type DevCa } from './ca/index.js';
import { superviseProcess } from './supervise.js';
import { DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY, startKmsEmulator, type KmsEmulator } from './kms-emulator/index.js';
import { ENCLAVE_NODE_FLAGS } from '../enclave/node-flags.js';
import { simulatedImagePcrs } from '../enclave/nsm/simulated.js';
import { startKmsPipe, type KmsPipe } from '../parent/kms-pipe.js';

export const DEV_IMAGE_ID = 'enclave-signer-dev';
export const DEV_REGION = 'us-east-1';
/** The parent's role: it makes the enclave's KMS requests, so it gets attested Decrypt/GenerateDataKey and nothing else. */
const DEV_PRINCIPAL = 'arn:aws:iam::111122223333:role/enclave-parent';
/** A separate key administrator (dev credentials of its own): manages the CMK, never unwraps. */
export const DEV_KMS_ADMIN = {
  accessKeyId: 'AKIADEVKMSADMIN00001',
  secretAccessKey: 'dev-kms-admin-secret-not-for-production',
  principalArn: 'arn:aws:iam::111122223333:role/enclave-signer-dev-kms-admin',
} as const;

/** dist/dev/stack.js → repo; also right when run from TypeScript sources under vitest (dev/stack.ts → ..). */
export function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return existsSync(join(here, '..', 'package.json')) ? resolve(here, '..') : resolve(here, '..', '..');
}

export interface DevPaths {
  dataDir: string;
  caDir: string;
  kmsDir: string;
  runDir: string;
  keystore: string;
  manifest: string;
  releaseKey: string;
  releasePub: string;
  cmkFile: string;
}

export function devPaths(dataDir: string): DevPaths {
  const d = resolve(dataDir);
  return {
    dataDir: d,
    caDir: join(d, 'dev-ca'),
    kmsDir: join(d, 'kms'),
    runDir: join(d, 'run'),
    keystore: join(d, 'keystore.sqlite'),
    manifest: join(d, 'pcr-manifest.dev.json'),
    releaseKey: join(d, 'release', 'dev-release.key.pem'),
    releasePub: join(d, 'release', 'dev-release.pub.pem'),
    cmkFile: join(d, 'cmk.json'),
  };
}

function loadOrCreateReleaseKey(p: DevPaths): { privateKey: KeyObject; publicKey: KeyObject; publicPem: string } {
  if (existsSync(p.releaseKey)) {
    const privateKey = createPrivateKey(readFileSync(p.releaseKey, 'utf8'));
    const publicKey = createPublicKey(privateKey);
    return { privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
  }
  mkdirSync(dirname(p.releaseKey), { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  writeFileSync(p.releaseKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  writeFileSync(p.releasePub, publicPem);
  return { privateKey, publicKey, publicPem };
}

/** The dev image's manifest: PCRs the simulated NSM reports for DEV_IMAGE_ID, signed by the dev release key. */
export function devManifest(p: DevPaths, releaseKey: KeyObject): SignedManifest {
  const pcrs = simulatedImagePcrs(DEV_IMAGE_ID);
  const m = createManifest({
    image: { name: 'enclave-signer-dev', version: 'dev', sourceCommit: '0'.repeat(40), eifSha256: '0'.repeat(64) },
    pcrs: { 0: toHex(pcrs.get(0)!), 1: toHex(pcrs.get(1)!), 2: toHex(pcrs.get(2)!) },
    match: [0, 1, 2],
    buildInputs: { builder: 'enclave-signer dev (simulated NSM, no EIF)' },
    createdAt: new Date(0),
  });
  const signed = signManifest(m, releaseKey);
  writeFileSync(p.manifest, JSON.stringify(signed, null, 2) + '\n');
  return signed;
}

/**
 * The dev CMK's key policy, shaped like a production one (docs/kms-policy.md)
 * and checked by `enclave-signer kms check-policy` in dev/stack.test.ts: no
 * kms:Encrypt, no ReEncrypt, no grants; Decrypt/GenerateDataKey only for a
 * request whose attestation document shows the dev image's PCR0 and PCR2;
 * administration by a principal that never unwraps.
 */
export function devKeyPolicy(pcr0: string, pcr2: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Id: 'enclave-signer-dev',
    Statement: [
      {
        Sid: 'KeyAdministration',
        Effect: 'Allow',
        Principal: { AWS: DEV_KMS_ADMIN.principalArn },
        Action: ['kms:Describe*', 'kms:Get*', 'kms:List*', 'kms:PutKeyPolicy', 'kms:Enable*', 'kms:Disable*', 'kms:ScheduleKeyDeletion', 'kms:CancelKeyDeletion'],
        Resource: '*',
      },
      {
        Sid: 'EnclaveOnlyUnwrap',
        Effect: 'Allow',
        Principal: { AWS: DEV_PRINCIPAL },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Resource: '*',
        Condition: {
          StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': pcr0, 'kms:RecipientAttestation:PCR2': pcr2 },
        },
      },
    ],
  });
}

async function ensureCmk(p: DevPaths, kms: KmsEmulator, log: (l: string) => void): Promise<string> {
  const clientAs = (c: { accessKeyId: string; secretAccessKey: string }) =>
    new KMSClient({
      region: DEV_REGION,
      endpoint: kms.url,
      credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey },
      requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: kms.caPem! }) }),
    });
  const client = clientAs(DEV_KMS_ADMIN);
  const pcrs = simulatedImagePcrs(DEV_IMAGE_ID);
  const policy = devKeyPolicy(toHex(pcrs.get(0)!), toHex(pcrs.get(2)!));
  try {
    if (existsSync(p.cmkFile)) {
      const { arn } = JSON.parse(readFileSync(p.cmkFile, 'utf8')) as { arn: string };
      try {
        await client.send(new DescribeKeyCommand({ KeyId: arn }));
      } catch (e) {
        if ((e as { name?: string }).name !== 'AccessDeniedException') throw e;
        // A data directory from before the admin split: its policy let the parent role rewrite it (which is why it changed).
        const parentClient = clientAs({ accessKeyId: DEV_ACCESS_KEY_ID, secretAccessKey: DEV_SECRET_ACCESS_KEY });
        try {
          await parentClient.send(new PutKeyPolicyCommand({ KeyId: arn, Policy: policy, PolicyName: 'default', BypassPolicyLockoutSafetyCheck: true }));
        } finally {
          parentClient.destroy();
        }
        log(`dev CMK ${arn}: key policy replaced by the current dev policy (administrator separate from the parent role)`);
      }
      return arn;
    }
    const out = await client.send(new CreateKeyCommand({ Policy: policy, Description: 'enclave-signer dev keyring CMK (attestation-conditioned)' }));
    const arn = out.KeyMetadata!.Arn!;
    writeFileSync(p.cmkFile, JSON.stringify({ arn }, null, 2) + '\n');
    return arn;
  } finally {
    client.destroy();
  }
}

export interface EnclaveSupervisor {
  readonly uri: string;
  readonly pid: number | undefined;
  /** Kills the enclave process (tests use it); the supervisor starts a new one. */
  kill(signal?: NodeJS.Signals): void;
  stop(): Promise<void>;
}

/** Runs the enclave as a child process and restarts it when it dies (as Nitro would after a crash). */
export function superviseEnclave(args: string[], uri: string, log: (l: string) => void, node = process.execPath, allocator?: string): EnclaveSupervisor {
  const bin = join(repoRoot(), 'bin', 'enclave-signer.js');
  // --cpu-prof* flags are passed on so `bench/e2e.ts --profile` profiles the enclave too; nothing else is.
  const prof = process.execArgv.filter((a) => a.startsWith('--cpu-prof'));
  const p = superviseProcess({
    name: 'enclave',
    // With the image's V8 options (enclave/node-flags.ts), so the dev enclave's collector behaves as the image's.
    // With the image's allocator when given (enclave/node-flags.ts ENCLAVE_ALLOCATOR), preloaded as the image's env does.
    spawn: () =>
      spawn(node, [...ENCLAVE_NODE_FLAGS, ...prof, bin, 'enclave', ...args], {
        stdio: ['ignore', 'inherit', 'pipe'],
        ...(allocator === undefined ? {} : { env: { ...process.env, LD_PRELOAD: allocator } }),
      }),
    line: (l) => log(l.replace(/^\[enclave\] /, 'enclave: ')),
    log,
    stopGraceMs: 3000,
  });
  return {
    uri,
    get pid() {
      return p.pid;
    },
    kill: (signal) => p.kill(signal),
    stop: () => p.stop(),
  };
}

export interface DevInfra {
  paths: DevPaths;
  ca: DevCa;
  kms: KmsEmulator;
  pipe: KmsPipe;
  cmkArn: string;
  manifest: SignedManifest;
  releasePublicPem: string;
  /** The first (or only) instance's enclave. */
  enclave: EnclaveSupervisor;
  /** One enclave process per instance (`--instances N`): instance i is enclaves[i - 1]. */
  enclaves: EnclaveSupervisor[];
  pcrs: Map<number, Uint8Array>;
  close(): Promise<void>;
}

/**
 * Starts everything but the parents: dev CA, emulator, CMK, signed manifest, KMS pipe, and one
 * enclave process per instance (default 1). Several instances share the emulator, the CA and the
 * CMK; each enclave unwraps the keyring through its own attested KMS call.
 */
export async function startDevInfra(dataDir: string, log: (l: string) => void, opts: { denyOps?: readonly string[]; policy?: string; instances?: number; enclaveNode?: string; enclaveAllocator?: string } = {}): Promise<DevInfra> {
  const p = devPaths(dataDir);
  mkdirSync(p.runDir, { recursive: true, mode: 0o700 });
  chmodSync(p.dataDir, 0o700);
  const ca = loadOrCreateDevCa(p.caDir);
  const release = loadOrCreateReleaseKey(p);
  const manifest = devManifest(p, release.privateKey);
  const tls = ca.issueTlsServerCert(['localhost', '127.0.0.1']);
  const kms = await startKmsEmulator({
    dataDir: p.kmsDir,
    region: DEV_REGION,
    credentials: [{ accessKeyId: DEV_ACCESS_KEY_ID, secretAccessKey: DEV_SECRET_ACCESS_KEY, principalArn: DEV_PRINCIPAL }, { ...DEV_KMS_ADMIN }],
    attestationRoot: ca.trustRoot,
    tls: { cert: tls.chainPem, key: tls.keyPem, ca: tls.caPem },
  });
  const cleanup: (() => Promise<void>)[] = [() => kms.close()];
  const unwind = async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  };
  try {
    const cmkArn = await ensureCmk(p, kms, log);
    const pipe = await startKmsPipe({
      listen: `unix:${join(p.runDir, 'kms-pipe.sock')}`,
      target: { address: '127.0.0.1', port: kms.port },
      allowlist: [{ address: '127.0.0.1', port: kms.port }],
      log,
    });
    cleanup.push(() => pipe.close());
    const instances = opts.instances ?? 1;
    const enclaves: EnclaveSupervisor[] = [];
    for (let i = 1; i <= instances; i++) {
      // One instance keeps the historical socket name; instance i of several gets its own.
      const enclaveUri = `unix:${join(p.runDir, instances === 1 ? 'enclave.sock' : `enclave.${i}.sock`)}`;
      const enclave = superviseEnclave(
        [
          '--listen', enclaveUri,
          '--nsm', 'simulated',
          '--dev-ca', p.caDir,
          '--image-id', DEV_IMAGE_ID,
          '--kms-region', DEV_REGION,
          // Dev only: pinned on the command line, which is not measured (an image pins it in /app/enclave-config.json).
          '--kms-key-arn', cmkArn,
          '--kms-pipe', pipe.uri,
          '--kms-endpoint', `https://localhost:${kms.port}`,
          '--kms-ca', join(p.caDir, 'root.pem'),
          ...(opts.denyOps ?? []).flatMap((op) => ['--deny-op', op]),
          ...(opts.policy ? ['--policy', opts.policy] : []),
        ],
        enclaveUri,
        instances === 1 ? log : (l) => log(`[${i}] ${l}`),
        opts.enclaveNode,
        opts.enclaveAllocator,
      );
      cleanup.push(() => enclave.stop());
      enclaves.push(enclave);
    }
    return {
      paths: p,
      ca,
      kms,
      pipe,
      cmkArn,
      manifest,
      releasePublicPem: release.publicPem,
      enclave: enclaves[0]!,
      enclaves,
      pcrs: simulatedImagePcrs(DEV_IMAGE_ID),
      close: unwind,
    };
  } catch (e) {
    await unwind();
    throw e instanceof SignerError ? e : new SignerError('DEV_START_FAILED', `dev stack failed to start: ${(e as Error).message}`, { cause: e });
  }
}

export const DEV_CREDENTIALS = { accessKeyId: DEV_ACCESS_KEY_ID, secretAccessKey: DEV_SECRET_ACCESS_KEY };

export function devBanner(info: { socketPath: string; sockets?: readonly string[]; keystore?: string; httpUrl?: string; pcrs: Map<number, Uint8Array>; dataDir: string; kmsUrl: string; manifest: string; policy?: string | null }): string {
  const bar = '!'.repeat(78);
  const pcr = (i: number) => `PCR${i} ${toHex(info.pcrs.get(i)!)}`;
  return [
    bar,
    '!!  DEV MODE — NOT FOR PRODUCTION',
    '!!  simulated NSM: attestation documents are signed by a local DEV CA that only this',
    '!!  parent trusts because dev mode configured it; the KMS is a local emulator that keeps',
    '!!  key material unencrypted on disk. Never put real funds behind this.',
    ...(info.policy ? [] : ['!!  policy: the PERMISSIVE DEV POLICY (dev-permissive: allows every request from any', '!!  caller; docs/policy.md). Pass --policy FILE to run a real one.']),
    bar,
    ...(info.sockets && info.sockets.length > 1
      ? info.sockets.map((s, i) => `${i === 0 ? 'signing sockets' : '               '}: ${s}   (instance ${i + 1})`)
      : [`signing socket : ${info.socketPath}   (JSON-RPC over HTTP and raw IPC)`]),
    ...(info.keystore ? [`keystore       : ${info.keystore}`] : []),
    ...(info.httpUrl ? [`http           : ${info.httpUrl}`] : []),
    `data dir       : ${info.dataDir}`,
    `kms emulator   : ${info.kmsUrl}`,
    `policy         : ${info.policy ?? 'permissive dev policy (dev-permissive)'}   (hash: signer_status policy.hash)`,
    `pcr manifest   : ${info.manifest} (signed by the dev release key)`,
    `measurements   : ${pcr(0)}`,
    `                 ${pcr(1)}`,
    `                 ${pcr(2)}`,
    `try            : curl --unix-socket ${info.socketPath} -s -X POST http://signer/ -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"signer_status"}'`,
    bar,
  ].join('\n');
}
