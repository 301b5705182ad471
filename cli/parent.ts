/**
 * `enclave-signer parent`: the command line of the parent proxy. Every flag
 * is read, checked and turned into a ParentConfig here; operator files
 * (manifest, keys, root, credentials) are read here too, so that a wrong
 * invocation is exit 2 before anything starts. The program itself is
 * parent/main.ts (`startParent`), which knows nothing of argv.
 */
import type { TrustedManifestKey } from '../attestation/manifest-signature.js';
import { MAX_SIGNED_MANIFEST_BYTES } from '../attestation/manifest-signature.js';
import { parseStrictJson } from '../attestation/manifest-json.js';
import type { KmsPipeConfig, ParentConfig } from '../parent/config.js';
import type { CredentialsConfig } from '../parent/credentials.js';
import type { DownstreamConfig } from '../parent/downstream.js';
import { ParentError } from '../parent/errors.js';
import { createImdsCredentialSource, type ImdsCredentialSource } from '../parent/imds.js';
import { startParent, type RunningParent } from '../parent/main.js';
import { parseArgs, type Flags } from './args.js';
import { guard } from './command.js';
import { CliInputError, EXIT_OK, UsageError } from './errors.js';
import { readTextFile, type Io } from './io.js';
import { loadPublicKey, loadRoot } from './keys.js';
import { untilSignal } from './run-until-signal.js';
import { chainIdFlag, pcrFlags } from './values.js';

export const PARENT_USAGE = `Usage: enclave-signer parent --enclave <uri> --socket <path> --keystore <file> [options]

Runs the parent proxy: verifies the enclave by attestation, then serves
JSON-RPC (HTTP and geth-style IPC) on a Unix socket and forwards signing
requests to it. Nothing is forwarded until the enclave has proven, with a
fresh nonce, that it runs an image named in the signed PCR manifest.

Required:
  --enclave <uri>              enclave bridge: vsock://CID:PORT, unix:/path, tcp://127.0.0.1:PORT
  --socket <path>              signing socket (absolute path)
  --keystore <file|url>        keystore (ciphertext and public data only): a SQLite file path or
                               sqlite:PATH (the default backend), or postgres://USER:PASS@HOST/DB
                               [?sslmode=verify-full&sslrootcert=ca.pem&pool_max=10] shared by a fleet
                               (docs/keystore.md, docs/scale-out.md)

Attestation:
  --manifest <signed.json>     signed PCR manifest the enclave must match
  --manifest-key <pub.pem>     public key trusted to sign manifests (repeatable);
                               or --manifest-key-id <hex> (SHA-256 of the SPKI DER)
  --root <aws|cert.pem>        attestation root (default aws; a PEM is for development)
  --expect-pcr <N=hex>         also require PCR N (repeatable; e.g. 3 = IAM role, 4 = instance)
  --allow-any-pcrs             no manifest: accept any image (development only)
  --allow-debug                accept debug-mode enclaves (development only)
  --reattest-interval <sec>    re-attest the connected enclave this often (default 300)

Keys and KMS:
  --kms-key-id <arn>           CMK for a first boot (creates the keyring when the keystore has none)
  --aws-credentials <src>      none (default); imds (the instance role, IMDSv2; imds:http://host:port
                               for another endpoint); env (AWS_ACCESS_KEY_ID, …); or file:<creds.json>
                               with { accessKeyId, secretAccessKey, sessionToken?, expiration? }
  --keystore-readonly          open the keystore read-only (signing only, no new keys)
  --instance-id <name>         this instance's name on a keystore shared by several instances: its
                               own audit chain and sealed state (default "default"; docs/scale-out.md)
  --chain-id <N>               the chain this signer serves: eth_chainId/net_version answer N and
                               eth_signTransaction refuses another chainId (fills N when absent)

Proxy mode (docs/json-rpc.md "Proxy mode"):
  --downstream <url>           http(s) JSON-RPC URL of an Ethereum node: read methods are forwarded
                               to it, eth_sendTransaction fills nonce/gas/fees from it, signs in the
                               enclave and broadcasts; --chain-id must match the node's (checked at start)
  --downstream-timeout <sec>   deadline of one call to the node (default 10)

KMS byte pipe (what the enclave's KMS client dials; TLS stays end to end):
  --kms-pipe <uri>             listen here, e.g. vsock://4294967295:8000 (off when not given)
  --kms-target <host:port>     where the pipe goes (default kms.<region>.amazonaws.com:443)
  --kms-region <region>        region for the default target (default us-east-1)
  --kms-allowlist <file>       vsock-proxy YAML allowlist the target must be in (required with --kms-pipe)

Listeners:
  --socket-mode <octal>        signing socket mode (default 600)
  --http <127.0.0.1:PORT>      also serve HTTP on a loopback port (other hosts are refused)
  --request-timeout <sec>      deadline of one enclave request (default 30)
  --max-body <bytes>           largest request body / IPC message (default 1048576)
  -h, --help                   show this help

Stops cleanly on SIGINT/SIGTERM (the socket file is removed).
Exit status: 0 stopped cleanly, 1 failed to start, 2 usage error.
`;

const SPEC = {
  enclave: { type: 'string' },
  socket: { type: 'string' },
  keystore: { type: 'string' },
  'instance-id': { type: 'string' },
  manifest: { type: 'string' },
  'manifest-key': { type: 'string', multiple: true },
  'manifest-key-id': { type: 'string', multiple: true },
  root: { type: 'string' },
  'expect-pcr': { type: 'string', multiple: true },
  'allow-any-pcrs': { type: 'boolean' },
  'allow-debug': { type: 'boolean' },
  'reattest-interval': { type: 'string' },
  'kms-key-id': { type: 'string' },
  'aws-credentials': { type: 'string' },
  'keystore-readonly': { type: 'boolean' },
  'chain-id': { type: 'string' },
  downstream: { type: 'string' },
  'downstream-timeout': { type: 'string' },
  'socket-mode': { type: 'string' },
  http: { type: 'string' },
  'request-timeout': { type: 'string' },
  'max-body': { type: 'string' },
  'kms-pipe': { type: 'string' },
  'kms-target': { type: 'string' },
  'kms-region': { type: 'string' },
  'kms-allowlist': { type: 'string' },
} as const;

type ParentFlags = Flags<typeof SPEC>;

function pipeFlags(f: ParentFlags): KmsPipeConfig | undefined {
  if (f['kms-pipe'] === undefined) {
    if (f['kms-target'] || f['kms-allowlist'] || f['kms-region']) throw new UsageError('--kms-target/--kms-allowlist/--kms-region need --kms-pipe');
    return undefined;
  }
  if (!f['kms-allowlist']) throw new UsageError('--kms-pipe needs --kms-allowlist <vsock-proxy.yaml>');
  const target = f['kms-target'] ?? `kms.${f['kms-region'] ?? 'us-east-1'}.amazonaws.com:443`;
  const m = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(target);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UsageError(`--kms-target must be host:port, got ${JSON.stringify(target)}`);
  return { listen: f['kms-pipe'], target: { address: m[1]!, port: Number(m[2]) }, allowlistFile: f['kms-allowlist'] };
}

function seconds(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+(?:\.\d+)?$/.test(v) || Number(v) <= 0) throw new UsageError(`--${flag} must be a positive number of seconds, got ${JSON.stringify(v)}`);
  return Math.round(Number(v) * 1000);
}

/** --downstream URL [--downstream-timeout S] (proxy mode); the URL itself is checked by the parent's config. */
export function downstreamFlags(url: string | undefined, timeoutMs: number | undefined): DownstreamConfig | undefined {
  if (url === undefined) {
    if (timeoutMs !== undefined) throw new UsageError('--downstream-timeout needs --downstream');
    return undefined;
  }
  return timeoutMs === undefined ? { url } : { url, timeoutMs };
}

function imdsCredentials(v: string): CredentialsConfig {
  // The instance role via IMDSv2 (parent/imds.ts); `imds:http://host:port` points at another endpoint (tests).
  const endpoint = v === 'imds' ? undefined : v.slice(5);
  let source: ImdsCredentialSource;
  try {
    source = createImdsCredentialSource(endpoint === undefined ? {} : { endpoint });
  } catch (e) {
    throw new UsageError(`--aws-credentials ${v}: ${(e as Error).message}`);
  }
  return { kind: 'custom', name: `imds ${source.endpoint}`, get: () => source.get() };
}

async function fileCredentials(path: string): Promise<CredentialsConfig> {
  const text = await readTextFile(path, 'credentials file', 64 * 1024);
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new CliInputError(`credentials file ${path} is not JSON`);
  }
  const o = j as Record<string, unknown>;
  if (o === null || typeof o !== 'object') throw new CliInputError(`credentials file ${path} must hold a JSON object`);
  const c: CredentialsConfig = { kind: 'static', accessKeyId: o.accessKeyId as string, secretAccessKey: o.secretAccessKey as string };
  if (o.sessionToken !== undefined) c.sessionToken = o.sessionToken as string;
  if (o.expiration !== undefined) c.expiration = o.expiration as string;
  return c;
}

async function credentialsFlag(v: string | undefined): Promise<CredentialsConfig> {
  if (v === undefined || v === 'none') return { kind: 'none' };
  if (v === 'env') return { kind: 'env' };
  if (v === 'imds' || v.startsWith('imds:')) return imdsCredentials(v);
  if (v.startsWith('file:')) return fileCredentials(v.slice(5));
  throw new UsageError(`--aws-credentials must be none, imds, env or file:<path>, got ${JSON.stringify(v)}`);
}

/** --manifest, --manifest-key(-id) and --allow-any-pcrs, checked together; the manifest file is read here. */
async function manifestFlags(f: ParentFlags): Promise<ParentConfig['manifest']> {
  const keys: TrustedManifestKey[] = [];
  for (const p of f['manifest-key']) keys.push(await loadPublicKey(p, 'manifest-key'));
  for (const id of f['manifest-key-id']) {
    if (!/^[0-9a-fA-F]{64}$/.test(id)) throw new UsageError(`--manifest-key-id must be 64 hex characters`);
    keys.push(id.toLowerCase());
  }
  if (f.manifest === undefined && keys.length > 0) throw new UsageError('--manifest-key without --manifest');
  if (f.manifest !== undefined && keys.length === 0) throw new UsageError('--manifest needs --manifest-key <pub.pem>', { hint: 'a manifest is only as good as the key you trust to have signed it' });
  if (f.manifest !== undefined && f['allow-any-pcrs']) throw new UsageError('--allow-any-pcrs contradicts --manifest');
  if (f.manifest === undefined) return undefined;
  const text = await readTextFile(f.manifest, 'manifest', MAX_SIGNED_MANIFEST_BYTES);
  let signed: unknown;
  try {
    signed = parseStrictJson(text);
  } catch (e) {
    throw new CliInputError(`manifest ${f.manifest} is not valid JSON: ${(e as Error).message}`);
  }
  return { signed, trustedKeys: keys };
}

/** The listener flags: --socket-mode, --http, --max-body. */
function listenerFlags(f: ParentFlags, cfg: ParentConfig): void {
  if (f['socket-mode'] !== undefined) {
    if (!/^0?[0-7]{3}$/.test(f['socket-mode'])) throw new UsageError('--socket-mode must be an octal mode like 600');
    cfg.socketMode = parseInt(f['socket-mode'], 8);
  }
  if (f.http !== undefined) cfg.http = f.http;
  if (f['max-body'] !== undefined) {
    if (!/^\d{1,9}$/.test(f['max-body'])) throw new UsageError('--max-body must be a number of bytes');
    cfg.maxBodyBytes = Number(f['max-body']);
  }
}

/**
 * Builds the parent's config from the command line (without `log`, which the
 * caller sets); operator files are read here (exit 2 when unusable).
 */
export async function configFromArgs(argv: string[]): Promise<ParentConfig | 'help'> {
  const args = parseArgs(argv, SPEC);
  if (args.help) return 'help';
  const f = args.flags;
  const kmsPipe = pipeFlags(f);
  for (const name of ['enclave', 'socket', 'keystore'] as const) if (f[name] === undefined) throw new UsageError(`--${name} is required`);
  const manifest = await manifestFlags(f);

  const cfg: ParentConfig = { enclave: f.enclave!, socket: f.socket!, keystore: f.keystore! };
  if (manifest) cfg.manifest = manifest;
  if (f.root !== undefined && f.root !== 'aws') cfg.root = await loadRoot(f.root);
  const pcrs = pcrFlags(f['expect-pcr']);
  if (pcrs) cfg.expectedPcrs = pcrs;
  if (f['allow-any-pcrs']) cfg.allowAnyPcrs = true;
  if (f['allow-debug']) cfg.allowDebug = true;
  const reattest = seconds('reattest-interval', f['reattest-interval']);
  if (reattest !== undefined) cfg.reattestIntervalMs = reattest;
  const timeout = seconds('request-timeout', f['request-timeout']);
  if (timeout !== undefined) cfg.requestTimeoutMs = timeout;
  if (f['kms-key-id'] !== undefined) cfg.kmsKeyId = f['kms-key-id'];
  cfg.credentials = await credentialsFlag(f['aws-credentials']);
  if (f['keystore-readonly']) cfg.keystoreReadonly = true;
  if (f['instance-id'] !== undefined) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(f['instance-id'])) throw new UsageError('--instance-id must be 1..64 of A-Z a-z 0-9 _ . -');
    cfg.instanceId = f['instance-id'];
  }
  const chainId = chainIdFlag(f['chain-id']);
  if (chainId !== undefined) cfg.chainId = chainId;
  const downstream = downstreamFlags(f.downstream, seconds('downstream-timeout', f['downstream-timeout']));
  if (downstream) cfg.downstream = downstream;
  listenerFlags(f, cfg);
  if (kmsPipe) cfg.kmsPipe = kmsPipe;
  return cfg;
}

export interface RunParentOptions {
  /** Stops the parent like SIGTERM does (tests). */
  signal?: AbortSignal;
  /** Called once the parent listens (tests). */
  onStarted?: (p: RunningParent) => void;
}

/** `enclave-signer parent …`: runs until SIGINT/SIGTERM, then closes cleanly. */
export async function parent(argv: string[], io: Io, opts: RunParentOptions = {}): Promise<number> {
  return guard(PARENT_USAGE, io, 'the parent could not start', async () => {
    const cfg = await configFromArgs(argv);
    if (cfg === 'help') {
      io.stdout(PARENT_USAGE);
      return EXIT_OK;
    }
    const log = (line: string) => io.stderr(`[parent] ${line}\n`);
    cfg.log = log;
    let running: RunningParent;
    try {
      running = await startParent(cfg);
    } catch (e) {
      // A config the parent refuses is the operator's invocation: usage, exit 2.
      if (e instanceof ParentError && e.code === 'PARENT_CONFIG') throw new UsageError(e.message, e.hint === undefined ? {} : { hint: e.hint });
      throw e;
    }
    opts.onStarted?.(running);
    return untilSignal(() => running.close(), log, opts.signal);
  });
}

/** The same command under the name the tests and docs use. */
export const runParent = parent;
