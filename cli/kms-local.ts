/**
 * `enclave-signer kms-local`: the command line of the local KMS emulator.
 * Runs it until SIGINT or SIGTERM (or `io.signal`). The TLS certificate comes
 * from the dev CA in `--ca-dir` (created on first use); clients trust that
 * CA's root. The program itself is dev/kms-emulator/local.ts (`startKmsLocal`).
 *
 * Exit status: 0 stopped cleanly, 1 could not start (data dir locked or
 * corrupt, port busy, CA unusable), 2 usage error.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { trustRoot } from '../attestation/roots.js';
import type { TrustRoot } from '../attestation/types.js';
import { isSignerError } from '../common/errors.js';
import { DEFAULT_ACCOUNT_ID, DEFAULT_REGION } from '../dev/kms-emulator/server.js';
import { DEFAULT_CA_DIR, DEFAULT_DATA_DIR, DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY, startKmsLocal, type KmsLocalConfig, type KmsLocalEndpoint, type RunningKmsLocal } from '../dev/kms-emulator/local.js';
import { parseArgs, type Flags } from './args.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError } from './errors.js';
import type { Io } from './io.js';

export type { KmsLocalEndpoint } from '../dev/kms-emulator/local.js';

export interface KmsLocalIo extends Io {
  /** Stops the emulator when aborted. Without it, SIGINT/SIGTERM do. */
  signal?: AbortSignal;
  /** Called once the emulator listens (tests use it). */
  onReady?: (info: KmsLocalEndpoint) => void;
}

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

type KmsLocalFlags = Flags<typeof SPEC>;

function describeError(e: unknown): string {
  if (isSignerError(e)) return `${e.code}: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}`;
  return (e as Error)?.message ?? String(e);
}

/** The flags checked on their own (exit 2 with the usage); undefined after --help. */
function parseFlags(argv: string[]): KmsLocalFlags | undefined {
  const parsed = parseArgs(argv, SPEC);
  if (parsed.help) return undefined;
  const f = parsed.flags;
  if (f.port !== undefined && !/^\d{1,5}$/.test(f.port)) throw new UsageError('--port must be a number 0..65535');
  if ((f['access-key-id'] === undefined) !== (f['secret-access-key'] === undefined)) {
    throw new UsageError('give --access-key-id and --secret-access-key together (or neither, for the dev credential)');
  }
  return f;
}

/** --attestation-root: aws, dev, or a PEM file read here (an unreadable file is a usage error). */
async function attestationRoot(choice: string): Promise<'aws' | 'dev' | TrustRoot> {
  if (choice === 'aws' || choice === 'dev') return choice;
  let pem: string;
  try {
    pem = await readFile(choice, 'utf8');
  } catch (e) {
    throw new UsageError(`--attestation-root: cannot read ${choice} (${(e as NodeJS.ErrnoException).code ?? 'error'}); use aws, dev or a PEM file`);
  }
  return trustRoot(pem, `custom root from ${choice}`);
}

async function configFromFlags(f: KmsLocalFlags, io: Io): Promise<KmsLocalConfig> {
  const cfg: KmsLocalConfig = {
    attestationRoot: await attestationRoot(f['attestation-root'] ?? 'aws'),
    tlsNames: f['tls-name'],
    log: (line) => io.stderr(`${line}\n`),
  };
  if (f['data-dir'] !== undefined) cfg.dataDir = f['data-dir'];
  if (f['ca-dir'] !== undefined) cfg.caDir = f['ca-dir'];
  if (f.host !== undefined) cfg.host = f.host;
  if (f.port !== undefined) cfg.port = Number(f.port);
  if (f.region !== undefined) cfg.region = f.region;
  if (f['account-id'] !== undefined) cfg.accountId = f['account-id'];
  if (f['principal-arn'] !== undefined) cfg.principalArn = f['principal-arn'];
  if (f['access-key-id'] !== undefined || f['session-token'] !== undefined) {
    cfg.credential = {
      accessKeyId: f['access-key-id'] ?? DEV_ACCESS_KEY_ID,
      secretAccessKey: f['secret-access-key'] ?? DEV_SECRET_ACCESS_KEY,
      ...(f['session-token'] === undefined ? {} : { sessionToken: f['session-token'] }),
    };
  }
  return cfg;
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

function announce(info: KmsLocalEndpoint, io: Io): void {
  io.stderr(
    `kms-local: listening on ${info.endpoint} (region ${info.region}, account ${info.accountId})\n` +
      `kms-local: access key ${info.accessKeyId} → ${info.principalArn}\n` +
      `kms-local: TLS from the dev CA; trust ${info.caFile}\n` +
      `kms-local: Recipient documents must chain to ${info.attestationRoot.name} (${info.attestationRoot.fingerprint.slice(0, 16)}…)\n`,
  );
}

export async function runKmsLocal(argv: string[], io: KmsLocalIo): Promise<number> {
  let f: KmsLocalFlags | undefined;
  try {
    f = parseFlags(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr(`kms-local: ${e.message}\n\n${KMS_LOCAL_USAGE}`);
    return EXIT_USAGE;
  }
  if (f === undefined) {
    io.stdout(KMS_LOCAL_USAGE);
    return EXIT_OK;
  }

  io.stderr(
    `kms-local: this is a DEVELOPMENT KMS emulator. Key material is stored unencrypted in ${resolve(f['data-dir'] ?? DEFAULT_DATA_DIR)}.\n` +
      `kms-local: never point production enclaves or real keys at it.\n`,
  );
  let running: RunningKmsLocal;
  try {
    running = await startKmsLocal(await configFromFlags(f, io));
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`kms-local: ${e.message}\n`);
      return EXIT_USAGE;
    }
    const usage = isSignerError(e) && e.code === 'KMS_EMU_CONFIG';
    io.stderr(`kms-local: cannot start: ${describeError(e)}\n`);
    return usage ? EXIT_USAGE : EXIT_FAILED;
  }

  announce(running.info, io);
  if (f.json) io.stdout(`${JSON.stringify(running.info)}\n`);
  io.onReady?.(running.info);
  const why = await waitForStop(io.signal);
  await running.close();
  io.stderr(`kms-local: stopped (${why})\n`);
  return EXIT_OK;
}

/** The `kms-local` entry of the command table (cli/main.ts). */
export function kmsLocal(argv: string[], io: Io): Promise<number> {
  return runKmsLocal(argv, io);
}
