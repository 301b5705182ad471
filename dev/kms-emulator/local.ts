/**
 * The local KMS emulator as a program: the dev CA's TLS certificate, the
 * attestation root Recipient documents must chain to, and the server, started
 * from one typed config. `enclave-signer kms-local` (cli/kms-local.ts) owns the
 * command line and the signal handling; this module never reads argv.
 */
import { join, resolve } from 'node:path';
import { awsNitroRoot } from '../../attestation/roots.js';
import type { TrustRoot } from '../../attestation/types.js';
import { loadOrCreateDevCa } from '../ca/index.js';
import { DEFAULT_ACCOUNT_ID, DEFAULT_REGION, startKmsEmulator } from './server.js';

/** Well-known development credentials, like LocalStack's test/test: not secrets, documented. */
export const DEV_ACCESS_KEY_ID = 'AKIADEVKMSLOCAL00000';
export const DEV_SECRET_ACCESS_KEY = 'kms-local-development-secret-NOT-A-REAL-KEY';
export const DEFAULT_DATA_DIR = '.dev-data/kms';
export const DEFAULT_CA_DIR = '.dev-data/dev-ca';

export interface KmsLocalConfig {
  /** State directory (default .dev-data/kms, resolved against the working directory). */
  dataDir?: string;
  /** Dev CA that issues the TLS certificate (default .dev-data/dev-ca). */
  caDir?: string;
  /** 127.0.0.1 (default), ::1 or localhost. */
  host?: string;
  /** 0 (default) = any free port. */
  port?: number;
  region?: string;
  accountId?: string;
  /** The one credential the emulator accepts; default the well-known dev credential. */
  credential?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Who the credential is, for key policies. Default arn:aws:iam::<account>:role/enclave-parent. */
  principalArn?: string;
  /** Root Recipient documents must chain to: the AWS root (default), the dev CA in caDir, or a root already loaded. */
  attestationRoot?: 'aws' | 'dev' | TrustRoot;
  /** Extra DNS names/IPs for the TLS certificate. */
  tlsNames?: readonly string[];
  log?: (line: string) => void;
}

export interface KmsLocalEndpoint {
  endpoint: string;
  port: number;
  region: string;
  accountId: string;
  accessKeyId: string;
  principalArn: string;
  /** PEM of the dev CA root the TLS certificate chains to. */
  caPem: string;
  caFile: string;
  dataDir: string;
  attestationRoot: { name: string; fingerprint: string };
}

export interface RunningKmsLocal {
  readonly info: KmsLocalEndpoint;
  close(): Promise<void>;
}

function tlsNames(host: string, extra: readonly string[]): string[] {
  const local = host === 'localhost' || host === '127.0.0.1' || host === '::1';
  return [...new Set(['localhost', '127.0.0.1', '::1', ...(local ? [] : [host]), ...extra])];
}

/** Starts the emulator; errors are the emulator's own (KMS_EMU_CONFIG for a bad option, others for a failed start). */
export async function startKmsLocal(config: KmsLocalConfig = {}): Promise<RunningKmsLocal> {
  const dataDir = resolve(config.dataDir ?? DEFAULT_DATA_DIR);
  const caDir = resolve(config.caDir ?? DEFAULT_CA_DIR);
  const region = config.region ?? DEFAULT_REGION;
  const accountId = config.accountId ?? DEFAULT_ACCOUNT_ID;
  const host = config.host ?? '127.0.0.1';
  const credential = config.credential ?? { accessKeyId: DEV_ACCESS_KEY_ID, secretAccessKey: DEV_SECRET_ACCESS_KEY };
  const principalArn = config.principalArn ?? `arn:aws:iam::${accountId}:role/enclave-parent`;

  const rootChoice = config.attestationRoot ?? 'aws';
  const root = rootChoice === 'aws' ? awsNitroRoot() : rootChoice === 'dev' ? loadOrCreateDevCa(caDir).trustRoot : rootChoice;
  const tls = loadOrCreateDevCa(caDir).issueTlsServerCert(tlsNames(host, config.tlsNames ?? []));
  const emulator = await startKmsEmulator({
    dataDir,
    host,
    port: config.port ?? 0,
    region,
    accountId,
    credentials: [{ ...credential, principalArn }],
    attestationRoot: root,
    tls: { cert: tls.chainPem, key: tls.keyPem, ca: tls.caPem },
    ...(config.log ? { log: config.log } : {}),
  });
  const info: KmsLocalEndpoint = {
    endpoint: emulator.url,
    port: emulator.port,
    region,
    accountId,
    accessKeyId: credential.accessKeyId,
    principalArn,
    caPem: tls.caPem,
    caFile: join(caDir, 'root.pem'),
    dataDir,
    attestationRoot: { name: root.name, fingerprint: root.fingerprint },
  };
  return { info, close: () => emulator.close() };
}
