/**
 * `enclave-signer kms-local`: runs the local KMS emulator until SIGINT or
 * SIGTERM (or `io.signal`). The TLS certificate comes from the dev CA in
 * `--ca-dir` (created on first use); clients trust that CA's root.
 *
 * Exit status: 0 stopped cleanly, 1 could not start (data dir locked or
 * corrupt, port busy, CA unusable), 2 usage error.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from '../../cli/args.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError } from '../../cli/errors.js';
import { awsNitroRoot, trustRoot } from '../../attestation/roots.js';
import type { TrustRoot } from '../../attestation/types.js';
import { isSignerError } from '../../common/errors.js';
import { loadOrCreateDevCa } from '../ca/index.js';
import { DEFAULT_ACCOUNT_ID, DEFAULT_REGION, startKmsEmulator } from './server.js';

export interface KmsLocalIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Stops the emulator when aborted. Without it, SIGINT/SIGTERM do. */
  signal?: AbortSignal;
  /** Called once the emulator listens (tests and the `dev` command use it). */
  onReady?: (info: KmsLocalEndpoint) => void;
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

/** Well-known development credentials, like LocalStack's test/test: not secrets, documented. */
export const DEV_ACCESS_KEY_ID = 'AKIADEVKMSLOCAL00000';
export const DEV_SECRET_ACCESS_KEY = 'kms-local-development-secret-NOT-A-REAL-KEY';
export const DEFAULT_DATA_DIR = '.dev-data/kms';
export const DEFAULT_CA_DIR = '.dev-data/dev-ca';

export const KMS_LOCAL_USAGE = `usage: enclave-signer kms-local [options]

Runs a DEVELOPMENT KMS emulator: HTTPS, KMS's JSON 1.1 protocol, SigV4, key
policies with kms:RecipientAttestation:* conditions, CiphertextForRecipient.
Point @aws-sdk/client-kms at the printed endpoint and trust the dev CA root.
Key material is stored UNENCRYPTED in the data directory.

  --data-dir <dir>            state directory (default ${DEFAULT_DATA_DIR})
  --ca-dir <dir>              dev CA for the TLS certificate (default ${DEFAULT_CA_DIR})
  --host <addr>               127.0.0.1 (default), ::1 or localhost
  --port <n>                  port, 0 = any free port (default 0)
  --region <region>           default ${DEFAULT_REGION}
  --account-id <12 digits>    default ${DEFAULT_ACCOUNT_ID}
  --access-key-id <id>        default ${DEV_ACCESS_KEY_ID} (well-known dev credential)
  --secret-access-key <s>     default: the well-known dev secret (see docs/kms-emulator.md)
  --session-token <t>         require this session token on every request
  --principal-arn <arn>       who the credential is, for key policies
                              (default arn:aws:iam::<account>:role/enclave-parent)
  --attestation-root <r>      root for Recipient documents: aws (default), dev (the
                              dev CA in --ca-dir, for the simulated NSM), or a PEM file
  --tls-name <name>           extra DNS name/IP for the TLS certificate (repeatable)
  --json                      print the endpoint as one JSON line on stdout when ready
  -h, --help                  show this help

exit status: 0 stopped, 1 could not start, 2 usage error
`;

const SPEC = {
  'data-dir': { type: 'string' },
  'ca-dir': { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  region: { type: 'string' },
  'account-id': { type: 'string' },
  'access-key-id': { type: 'string' },
  'secret-access-key': { type: 'string' },
  'session-token': { type: 'string' },
  'principal-arn': { type: 'string' },
  'attestation-root': { type: 'string' },
  'tls-name': { type: 'string', multiple: true },
  json: { type: 'boolean' },
} as const;

function describeError(e: unknown): string {
  if (isSignerError(e)) return `${e.code}: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}`;
  return (e as Error)?.message ?? String(e);
}

async function attestationRoot(choice: string, caDir: string): Promise<TrustRoot> {
  if (choice === 'aws') return awsNitroRoot();
  if (choice === 'dev') return loadOrCreateDevCa(caDir).trustRoot;
  let pem: string;
  try {
    pem = await readFile(choice, 'utf8');
  } catch (e) {
    throw new UsageError(`--attestation-root: cannot read ${choice} (${(e as NodeJS.ErrnoException).code ?? 'error'}); use aws, dev or a PEM file`);
  }
  return trustRoot(pem, `custom root from ${choice}`);
}

function waitForStop(signal: AbortSignal | undefined): Promise<string> {
  return new Promise((res) => {
    if (signal) {
      if (signal.aborted) return res('abort');
      signal.addEventListener('abort', () => res('abort'), { once: true });
      return;
    }
    const onSig = (s: NodeJS.Signals): void => {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
      res(s);
    };
    process.on('SIGINT', onSig);
    process.on('SIGTERM', onSig);
  });
}

export async function runKmsLocal(argv: string[], io: KmsLocalIo): Promise<number> {
  let f;
  try {
    const parsed = parseArgs(argv, SPEC);
    if (parsed.help) {
      io.stdout(KMS_LOCAL_USAGE);
      return EXIT_OK;
    }
    f = parsed.flags;
    if (f.port !== undefined && !/^\d{1,5}$/.test(f.port)) throw new UsageError('--port must be a number 0..65535');
    if ((f['access-key-id'] === undefined) !== (f['secret-access-key'] === undefined)) {
      throw new UsageError('give --access-key-id and --secret-access-key together (or neither, for the dev credential)');
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`kms-local: ${e.message}\n\n${KMS_LOCAL_USAGE}`);
      return EXIT_USAGE;
    }
    throw e;
  }

  const dataDir = resolve(f['data-dir'] ?? DEFAULT_DATA_DIR);
  const caDir = resolve(f['ca-dir'] ?? DEFAULT_CA_DIR);
  const region = f.region ?? DEFAULT_REGION;
  const accountId = f['account-id'] ?? DEFAULT_ACCOUNT_ID;
  const host = f.host ?? '127.0.0.1';
  const accessKeyId = f['access-key-id'] ?? DEV_ACCESS_KEY_ID;
  const principalArn = f['principal-arn'] ?? `arn:aws:iam::${accountId}:role/enclave-parent`;

  io.stderr(
    `kms-local: this is a DEVELOPMENT KMS emulator. Key material is stored unencrypted in ${dataDir}.\n` +
      `kms-local: never point production enclaves or real keys at it.\n`,
  );

  let emulator;
  let root: TrustRoot;
  let caPem: string;
  try {
    root = await attestationRoot(f['attestation-root'] ?? 'aws', caDir);
    const ca = loadOrCreateDevCa(caDir);
    const names = [...new Set(['localhost', '127.0.0.1', '::1', ...(host === 'localhost' || host === '127.0.0.1' || host === '::1' ? [] : [host]), ...f['tls-name']])];
    const tls = ca.issueTlsServerCert(names);
    caPem = tls.caPem;
    emulator = await startKmsEmulator({
      dataDir,
      host,
      port: f.port === undefined ? 0 : Number(f.port),
      region,
      accountId,
      credentials: [
        {
          accessKeyId,
          secretAccessKey: f['secret-access-key'] ?? DEV_SECRET_ACCESS_KEY,
          principalArn,
          ...(f['session-token'] === undefined ? {} : { sessionToken: f['session-token'] }),
        },
      ],
      attestationRoot: root,
      tls: { cert: tls.chainPem, key: tls.keyPem, ca: tls.caPem },
      log: (line) => io.stderr(`${line}\n`),
    });
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`kms-local: ${e.message}\n`);
      return EXIT_USAGE;
    }
    const usage = isSignerError(e) && e.code === 'KMS_EMU_CONFIG';
    io.stderr(`kms-local: cannot start: ${describeError(e)}\n`);
    return usage ? EXIT_USAGE : EXIT_FAILED;
  }

  const info: KmsLocalEndpoint = {
    endpoint: emulator.url,
    port: emulator.port,
    region,
    accountId,
    accessKeyId,
    principalArn,
    caPem,
    caFile: join(caDir, 'root.pem'),
    dataDir,
    attestationRoot: { name: root.name, fingerprint: root.fingerprint },
  };
  io.stderr(
    `kms-local: listening on ${emulator.url} (region ${region}, account ${accountId})\n` +
      `kms-local: access key ${accessKeyId} → ${principalArn}\n` +
      `kms-local: TLS from the dev CA; trust ${info.caFile}\n` +
      `kms-local: Recipient documents must chain to ${root.name} (${root.fingerprint.slice(0, 16)}…)\n`,
  );
  if (f.json) io.stdout(`${JSON.stringify(info)}\n`);
  io.onReady?.(info);

  const why = await waitForStop(io.signal);
  await emulator.close();
  io.stderr(`kms-local: stopped (${why})\n`);
  return EXIT_OK;
}
