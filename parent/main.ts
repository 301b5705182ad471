/**
 * The parent process: keystore + attestation gate + signing socket.
 *
 *   startParent(config)   in-process (tests, `enclave-signer dev`)
 *   runParent(argv, io)   the `enclave-signer parent` command
 *
 * The parent host is untrusted: it holds only ciphertext and public data,
 * forwards nothing until the enclave has proven its image, and every
 * decision to sign is made in the enclave. See docs/parent.md.
 */
import type { TrustedManifestKey } from '../attestation/manifest-signature.js';
import { MAX_SIGNED_MANIFEST_BYTES } from '../attestation/manifest-signature.js';
import { parseStrictJson } from '../attestation/manifest-json.js';
import { parseArgs } from '../cli/args.js';
import { guard } from '../cli/command.js';
import { CliInputError, EXIT_OK, UsageError } from '../cli/errors.js';
import { readTextFile, type Io } from '../cli/io.js';
import { loadPublicKey, loadRoot } from '../cli/keys.js';
import { pcrFlags } from '../cli/values.js';
import { resolveParentConfig, type ParentConfig, type ResolvedParentConfig } from './config.js';
import type { CredentialsConfig } from './credentials.js';
import { createDispatcher } from './dispatch.js';
import { createImdsCredentialSource, type ImdsCredentialSource } from './imds.js';
import { ParentError } from './errors.js';
import { startGate, type GateSnapshot } from './gate.js';
import { createHttpHandler } from './http.js';
import { openKeystore, type Keystore } from './keystore.js';
import { createMetrics } from './metrics.js';
import { METHODS } from './methods.js';
import { startSigningServer } from './server.js';
import { createEnclaveVerifier } from './verify-enclave.js';

import { registerVsockTransportFor } from '../common/transport/vsock.js';
import { untilSignal } from '../cli/run-until-signal.js';
import { loadAllowlist, startKmsPipe, type KmsPipe } from './kms-pipe.js';

export type { ParentConfig } from './config.js';

export interface RunningParent {
  /** The signing socket's path. */
  socketPath: string;
  /** http://127.0.0.1:PORT when the loopback HTTP listener is on. */
  httpUrl?: string;
  /** Gate, keyring and attestation state. */
  state(): GateSnapshot;
  /** Stops listening (removes the socket file), disconnects from the enclave, closes the keystore. */
  close(): Promise<void>;
}

/** /readyz body: `ready`, and when not ready the one-line reason first. */
export function readinessOf(s: GateSnapshot): { ready: boolean; body: Record<string, unknown> } {
  let reason: string | undefined;
  if (s.gate.state !== 'ready') {
    reason = `enclave not attested: ${s.gate.state}${s.gate.reason ? `: ${s.gate.reason}` : ''}`;
    if (s.lastFailure && s.lastFailure.reason !== s.gate.reason) reason += ` (last failure: ${s.lastFailure.reason})`;
  } else if (s.keyring.state !== 'unlocked') {
    reason = `keyring not unlocked: ${s.keyring.state}${s.keyring.reason ? `: ${s.keyring.reason}` : ''}`;
  }
  const body: Record<string, unknown> = { ready: s.ready };
  if (!s.ready) body.reason = reason ?? 'not ready';
  body.gate = s.gate;
  body.keyring = s.keyring;
  if (s.attestation) body.attestation = { moduleId: s.attestation.moduleId, pcrs: s.attestation.pcrs, ageSeconds: s.attestationAgeSeconds, manifest: s.attestation.manifest ?? null };
  if (s.lastFailure) body.lastFailure = s.lastFailure;
  return { ready: s.ready, body };
}

function warnings(cfg: ResolvedParentConfig): string[] {
  const w: string[] = [];
  if (!cfg.rootIsAws) w.push(`WARNING: attestation root is ${cfg.root.name} (SHA-256 ${cfg.root.fingerprint}), NOT the AWS Nitro Enclaves root: development only`);
  if (!cfg.manifest) w.push('WARNING: no PCR manifest: any enclave image under that root is accepted (--allow-any-pcrs, development only)');
  if (cfg.allowDebug) w.push('WARNING: debug-mode enclaves are accepted: their memory is readable by this host (development only)');
  return w;
}

export async function startParent(config: ParentConfig): Promise<RunningParent> {
  const cfg = resolveParentConfig(config);
  const log = cfg.log;
  for (const line of warnings(cfg)) log(line);

  const keystore: Keystore = openKeystore(cfg.keystore, { readonly: cfg.keystoreReadonly });
  const gate = startGate({ cfg, keystore, verifier: createEnclaveVerifier(cfg), log });
  const metrics = createMetrics(METHODS.keys());
  const dispatcher = createDispatcher({
    methods: METHODS,
    context: { gate, keystore, keystoreReadonly: cfg.keystoreReadonly },
    metrics,
    maxBatch: cfg.maxBatch,
    maxInFlight: cfg.maxInFlight,
    log,
  });
  const keysCount = () => {
    try {
      return keystore.countKeys();
    } catch {
      return undefined;
    }
  };
  const handlerOpts = {
    dispatcher,
    maxBodyBytes: cfg.maxBodyBytes,
    readiness: () => readinessOf(gate.snapshot()),
    metrics: () => metrics.render(gate.snapshot(), { keys: keysCount() }),
  };

  let server;
  try {
    server = await startSigningServer({
      socketPath: cfg.socket,
      socketMode: cfg.socketMode,
      ...(cfg.http ? { http: cfg.http } : {}),
      unixHttpHandler: createHttpHandler(handlerOpts),
      tcpHttpHandler: (allowedHosts) => createHttpHandler({ ...handlerOpts, allowedHosts }),
      ipcHandle: (message, signal) => dispatcher.handle(message, signal),
      maxBodyBytes: cfg.maxBodyBytes,
    });
  } catch (e) {
    await gate.close();
    keystore.close();
    throw e;
  }
  log(`signing socket ${server.socketPath} (mode ${cfg.socketMode.toString(8)})${server.httpUrl ? `, HTTP ${server.httpUrl}` : ''}; enclave ${cfg.enclave}`);

  let closing: Promise<void> | undefined;
  const out: RunningParent = {
    socketPath: server.socketPath,
    state: () => gate.snapshot(),
    close() {
      const s = server;
      closing ??= (async () => {
        await s.close();
        await gate.close();
        keystore.close();
        log('stopped');
      })();
      return closing;
    },
  };
  if (server.httpUrl) out.httpUrl = server.httpUrl;
  return out;
}

// ------------------------------------------------------------------ CLI

export const PARENT_USAGE = `Usage: enclave-signer parent --enclave <uri> --socket <path> --keystore <file> [options]

Runs the parent proxy: verifies the enclave by attestation, then serves
JSON-RPC (HTTP and geth-style IPC) on a Unix socket and forwards signing
requests to it. Nothing is forwarded until the enclave has proven, with a
fresh nonce, that it runs an image named in the signed PCR manifest.

Required:
  --enclave <uri>              enclave bridge: vsock://CID:PORT, unix:/path, tcp://127.0.0.1:PORT
  --socket <path>              signing socket (absolute path)
  --keystore <file>            SQLite keystore (ciphertext and public data only)

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
  'socket-mode': { type: 'string' },
  http: { type: 'string' },
  'request-timeout': { type: 'string' },
  'max-body': { type: 'string' },
  'kms-pipe': { type: 'string' },
  'kms-target': { type: 'string' },
  'kms-region': { type: 'string' },
  'kms-allowlist': { type: 'string' },
} as const;

interface PipeFlags {
  listen: string;
  target: { address: string; port: number };
  allowlist: string;
}

function pipeFlags(f: { 'kms-pipe'?: string | undefined; 'kms-target'?: string | undefined; 'kms-region'?: string | undefined; 'kms-allowlist'?: string | undefined }): PipeFlags | undefined {
  if (f['kms-pipe'] === undefined) {
    if (f['kms-target'] || f['kms-allowlist'] || f['kms-region']) throw new UsageError('--kms-target/--kms-allowlist/--kms-region need --kms-pipe');
    return undefined;
  }
  if (!f['kms-allowlist']) throw new UsageError('--kms-pipe needs --kms-allowlist <vsock-proxy.yaml>');
  const target = f['kms-target'] ?? `kms.${f['kms-region'] ?? 'us-east-1'}.amazonaws.com:443`;
  const m = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(target);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UsageError(`--kms-target must be host:port, got ${JSON.stringify(target)}`);
  return { listen: f['kms-pipe'], target: { address: m[1]!, port: Number(m[2]) }, allowlist: f['kms-allowlist'] };
}

function seconds(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+(?:\.\d+)?$/.test(v) || Number(v) <= 0) throw new UsageError(`--${flag} must be a positive number of seconds, got ${JSON.stringify(v)}`);
  return Math.round(Number(v) * 1000);
}

async function credentialsFlag(v: string | undefined): Promise<CredentialsConfig> {
  if (v === undefined || v === 'none') return { kind: 'none' };
  if (v === 'env') return { kind: 'env' };
  if (v === 'imds' || v.startsWith('imds:')) {
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
  if (v.startsWith('file:')) {
    const path = v.slice(5);
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
  throw new UsageError(`--aws-credentials must be none, imds, env or file:<path>, got ${JSON.stringify(v)}`);
}

/** Builds the config from the command line; operator files are read here (exit 2 when unusable). */
export async function configFromArgs(argv: string[]): Promise<ParentConfig | 'help'> {
  const parsed = await parseParentArgs(argv);
  return parsed === 'help' ? 'help' : parsed.cfg;
}

/** One parse of the command line: the parent's config and the optional KMS byte pipe. */
async function parseParentArgs(argv: string[]): Promise<{ cfg: ParentConfig; pipe: PipeFlags | undefined } | 'help'> {
  const args = parseArgs(argv, SPEC);
  if (args.help) return 'help';
  const f = args.flags;
  const pipe = pipeFlags(f);
  for (const name of ['enclave', 'socket', 'keystore'] as const) if (f[name] === undefined) throw new UsageError(`--${name} is required`);
  const keys: TrustedManifestKey[] = [];
  for (const p of f['manifest-key']) keys.push(await loadPublicKey(p, 'manifest-key'));
  for (const id of f['manifest-key-id']) {
    if (!/^[0-9a-fA-F]{64}$/.test(id)) throw new UsageError(`--manifest-key-id must be 64 hex characters`);
    keys.push(id.toLowerCase());
  }
  if (f.manifest === undefined && keys.length > 0) throw new UsageError('--manifest-key without --manifest');
  if (f.manifest !== undefined && keys.length === 0) throw new UsageError('--manifest needs --manifest-key <pub.pem>', { hint: 'a manifest is only as good as the key you trust to have signed it' });
  if (f.manifest !== undefined && f['allow-any-pcrs']) throw new UsageError('--allow-any-pcrs contradicts --manifest');

  const cfg: ParentConfig = { enclave: f.enclave!, socket: f.socket!, keystore: f.keystore! };
  if (f.manifest !== undefined) {
    const text = await readTextFile(f.manifest, 'manifest', MAX_SIGNED_MANIFEST_BYTES);
    let signed: unknown;
    try {
      signed = parseStrictJson(text);
    } catch (e) {
      throw new CliInputError(`manifest ${f.manifest} is not valid JSON: ${(e as Error).message}`);
    }
    cfg.manifest = { signed, trustedKeys: keys };
  }
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
  if (f['socket-mode'] !== undefined) {
    if (!/^0?[0-7]{3}$/.test(f['socket-mode'])) throw new UsageError('--socket-mode must be an octal mode like 600');
    cfg.socketMode = parseInt(f['socket-mode'], 8);
  }
  if (f.http !== undefined) cfg.http = f.http;
  if (f['max-body'] !== undefined) {
    if (!/^\d{1,9}$/.test(f['max-body'])) throw new UsageError('--max-body must be a number of bytes');
    cfg.maxBodyBytes = Number(f['max-body']);
  }
  return { cfg, pipe };
}

export interface RunParentOptions {
  /** Stops the parent like SIGTERM does (tests). */
  signal?: AbortSignal;
  /** Called once the parent listens (tests). */
  onStarted?: (p: RunningParent) => void;
}

/** `enclave-signer parent …`: runs until SIGINT/SIGTERM, then closes cleanly. */
export async function runParent(argv: string[], io: Io, opts: RunParentOptions = {}): Promise<number> {
  return guard(PARENT_USAGE, io, 'the parent could not start', async () => {
    const parsed = await parseParentArgs(argv);
    if (parsed === 'help') {
      io.stdout(PARENT_USAGE);
      return EXIT_OK;
    }
    const { cfg, pipe: pipeCfg } = parsed;
    cfg.log = (line) => io.stderr(`[parent] ${line}\n`);
    await registerVsockTransportFor([cfg.enclave, pipeCfg?.listen]);
    let pipe: KmsPipe | undefined;
    if (pipeCfg) {
      pipe = await startKmsPipe({ listen: pipeCfg.listen, target: pipeCfg.target, allowlist: loadAllowlist(pipeCfg.allowlist), log: cfg.log });
    }
    let parent: RunningParent;
    try {
      parent = await startParent(cfg);
    } catch (e) {
      await pipe?.close();
      if (e instanceof ParentError && e.code === 'PARENT_CONFIG') throw new UsageError(e.message, e.hint === undefined ? {} : { hint: e.hint });
      throw e;
    }
    opts.onStarted?.(parent);
    return untilSignal(
      async () => {
        await parent.close();
        await pipe?.close();
      },
      cfg.log,
      opts.signal,
    );
  });
}
