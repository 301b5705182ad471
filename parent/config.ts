/**
 * The parent's configuration: what `startParent` takes, validated once at the
 * boundary into a resolved form with every default filled in. Fail closed:
 * without a signed PCR manifest the parent refuses to start unless the
 * operator said, by name, that any PCRs will do (development only).
 */
import { isAbsolute } from 'node:path';
import { isIP } from 'node:net';
import { awsNitroRoot, trustRoot, AWS_NITRO_ROOT_G1_FINGERPRINT } from '../attestation/roots.js';
import { verifySignedManifestDetailed, type TrustedManifestKey } from '../attestation/manifest-signature.js';
import type { PcrManifest } from '../attestation/manifest-format.js';
import type { TrustRoot } from '../attestation/types.js';
import { parseHex, toHex } from '../common/bytes.js';
import { parseTransportUri } from '../common/transport/index.js';
import { isSignerError } from '../common/errors.js';
import { createCredentialsProvider, type CredentialsConfig, type CredentialsProvider } from './credentials.js';
import { MAX_CHAIN_ID } from './chain-id.js';
import { resolveDownstreamConfig, type DownstreamConfig, type ResolvedDownstreamConfig } from './downstream.js';
import { ParentError } from './errors.js';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './server.js';

/** "aws" (default), a PEM certificate, or a TrustRoot already loaded (e.g. the dev CA's `trustRoot`). */
export type TrustRootConfig = 'aws' | { pem: string; name?: string } | TrustRoot;

export interface ParentConfig {
  /** Bridge URI of the enclave: vsock://16:5000 on Nitro, unix:/path or tcp://127.0.0.1:port in development. */
  enclave: string;
  /** Path of the signing socket (JSON-RPC over HTTP and raw IPC). */
  socket: string;
  /** File mode of the signing socket. Default 0o600 (only the owner may sign). */
  socketMode?: number;
  /** Optional loopback HTTP listener: "127.0.0.1:PORT" or "[::1]:PORT" (port 0 = pick one). Other hosts are refused. */
  http?: string;
  /**
   * The keystore (wrapped blobs, keyring records, audit records, sealed state; docs/keystore.md):
   * a SQLite file path or `sqlite:PATH`, or a `postgres://…` URL shared by a fleet.
   */
  keystore: string;
  /** This instance's name in a fleet sharing one keystore (its own audit chain and sealed state); default "default". */
  instanceId?: string;
  /** Open the keystore read-only: signing works, creating keys and keyrings does not. */
  keystoreReadonly?: boolean;
  /** Root the attestation chain must end at. Default: AWS_NitroEnclaves_Root-G1. */
  root?: TrustRootConfig;
  /** The signed PCR manifest (parsed JSON) and the keys trusted to sign it. */
  manifest?: { signed: unknown; trustedKeys: readonly TrustedManifestKey[] };
  /** Accept any PCRs when no manifest is given. Development only; logged loudly. */
  allowAnyPcrs?: boolean;
  /** PCRs to require beyond the manifest's (e.g. 3 = IAM role, 4 = instance id): index → 96 hex. */
  expectedPcrs?: Record<number, string | Uint8Array>;
  /** Accept debug-mode enclaves (PCR0/1/2 zero). Development only. */
  allowDebug?: boolean;
  /** CMK for a first boot: with no keyring in the keystore, `keyring.create` under this key. */
  kmsKeyId?: string;
  /** AWS credentials for the enclave's KMS calls. Default none. */
  credentials?: CredentialsConfig;
  /** Re-attest the connected enclave this often. Default 5 minutes. */
  reattestIntervalMs?: number;
  /** Deadline of one request to the enclave. Default 30 s. */
  requestTimeoutMs?: number;
  /** Largest HTTP body / IPC message. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Largest JSON-RPC batch. Default 100. */
  maxBatch?: number;
  /** JSON-RPC requests being served at once (all connections). Default 256. */
  maxInFlight?: number;
  /** Reconnect backoff to the enclave. Default 250 ms doubling to 30 s. */
  reconnect?: { minMs?: number; maxMs?: number };
  /** One line per event; default stderr with a "[parent]" prefix. */
  log?: (line: string) => void;
  /** The KMS byte pipe the enclave's KMS client dials (parent/kms-pipe.ts); off when absent. */
  kmsPipe?: KmsPipeConfig;
  /** Per-connection deadlines and the connection cap of the signing socket (parent/connections.ts). */
  connectionLimits?: Partial<ConnectionLimits>;
  /** The chain this signer serves (parent/chain-id.ts): answered by eth_chainId / net_version, checked on eth_signTransaction. */
  chainId?: number;
  /** Proxy mode (parent/downstream-methods.ts): the Ethereum node read methods and eth_sendTransaction go to. */
  downstream?: DownstreamConfig | string;
}

export interface KmsPipeConfig {
  /** Where to listen, e.g. vsock://4294967295:8000. */
  listen: string;
  /** Where the pipe goes, e.g. kms.us-east-1.amazonaws.com:443; must be in the allowlist. */
  target: { address: string; port: number };
  /** vsock-proxy YAML allowlist file. */
  allowlistFile: string;
}

export interface ResolvedParentConfig {
  enclave: string;
  socket: string;
  socketMode: number;
  http: { host: string; port: number } | undefined;
  keystore: string;
  instanceId: string;
  keystoreReadonly: boolean;
  root: TrustRoot;
  rootIsAws: boolean;
  manifest: { signed: unknown; trustedKeys: readonly TrustedManifestKey[]; parsed: PcrManifest; keyId: string } | undefined;
  allowAnyPcrs: boolean;
  expectedPcrs: Record<number, string>;
  allowDebug: boolean;
  kmsKeyId: string | undefined;
  credentials: CredentialsProvider;
  reattestIntervalMs: number;
  requestTimeoutMs: number;
  maxBodyBytes: number;
  maxBatch: number;
  maxInFlight: number;
  reconnect: { minMs: number; maxMs: number };
  connectionLimits: Partial<ConnectionLimits>;
  chainId: number | undefined;
  downstream: ResolvedDownstreamConfig | undefined;
  log: (line: string) => void;
}

const MiB = 1024 * 1024;

function bad(message: string, hint?: string, cause?: unknown): ParentError {
  return new ParentError('PARENT_CONFIG', message, { ...(hint === undefined ? {} : { hint }), ...(cause === undefined ? {} : { cause }) });
}

function int(name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw bad(`${name} must be an integer in ${min}..${max}, got ${String(v)}`);
  return v;
}

/**
 * "127.0.0.1:8545", "tcp://127.0.0.1:8545", "[::1]:8545" or "localhost:8545".
 * Only loopback: the signing API has no authentication beyond who can reach it.
 */
export function parseLoopbackHttp(spec: string): { host: string; port: number } {
  const s = spec.startsWith('tcp://') ? spec.slice(6) : spec.startsWith('http://') ? spec.slice(7).replace(/\/$/, '') : spec;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) throw bad(`--http ${JSON.stringify(spec)} is not HOST:PORT`, 'use 127.0.0.1:PORT');
  let host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (port > 65535) throw bad(`--http port ${port} is out of range`);
  if (host === 'localhost') host = '127.0.0.1';
  const loopback = (isIP(host) === 4 && host.startsWith('127.')) || (isIP(host) === 6 && (host === '::1' || host === '0:0:0:0:0:0:0:1'));
  if (!loopback) {
    throw bad(`--http ${JSON.stringify(spec)}: only loopback addresses are allowed (127.0.0.0/8 or ::1)`, 'the signing API must not be reachable from the network');
  }
  return { host, port };
}

function resolveRoot(r: TrustRootConfig | undefined): { root: TrustRoot; isAws: boolean } {
  if (r === undefined || r === 'aws') return { root: awsNitroRoot(), isAws: true };
  if (typeof r === 'object' && r !== null && 'der' in r && r.der instanceof Uint8Array) {
    // Re-derived from the DER: a fingerprint field that disagrees with the bytes is not believed.
    const root = trustRoot(r.der, typeof r.name === 'string' ? r.name : 'configured root');
    return { root, isAws: root.fingerprint === AWS_NITRO_ROOT_G1_FINGERPRINT };
  }
  if (typeof r !== 'object' || r === null || !('pem' in r) || typeof r.pem !== 'string') throw bad('root must be "aws", { pem } or a TrustRoot');
  let root: TrustRoot;
  try {
    root = trustRoot(r.pem, r.name ?? 'configured root');
  } catch (e) {
    throw bad(`root is not a PEM certificate: ${(e as Error).message}`, undefined, e);
  }
  return { root, isAws: root.fingerprint === AWS_NITRO_ROOT_G1_FINGERPRINT };
}

function resolvePcrs(p: Record<number, string | Uint8Array> | undefined): Record<number, string> {
  const out: Record<number, string> = {};
  for (const [k, v] of Object.entries(p ?? {})) {
    const idx = Number(k);
    if (!Number.isInteger(idx) || idx < 0 || idx > 31) throw bad(`expectedPcrs: index ${k} is not 0..31`);
    const b = typeof v === 'string' ? parseHex(v) : v instanceof Uint8Array ? v : undefined;
    if (!b || b.length !== 48) throw bad(`expectedPcrs: PCR${idx} must be 96 hex characters`);
    out[idx] = toHex(b);
  }
  return out;
}

export function resolveParentConfig(c: ParentConfig): ResolvedParentConfig {
  if (c === null || typeof c !== 'object') throw bad('config must be an object');
  if (typeof c.enclave !== 'string' || c.enclave.length === 0) throw bad('enclave (the enclave bridge URI) is required');
  try {
    parseTransportUri(c.enclave);
  } catch (e) {
    throw bad(`enclave: ${(e as Error).message}`, 'use vsock://CID:PORT, unix:/path or tcp://127.0.0.1:PORT', e);
  }
  if (typeof c.socket !== 'string' || !isAbsolute(c.socket)) throw bad('socket must be an absolute path');
  if (Buffer.byteLength(c.socket) > 107) throw bad('socket path is longer than 107 bytes (the Unix socket limit)');
  if (typeof c.keystore !== 'string' || c.keystore.length === 0) throw bad('keystore (a file path, sqlite:PATH or postgres://…) is required');
  const instanceId = c.instanceId ?? 'default';
  if (typeof instanceId !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(instanceId)) throw bad('instanceId must be 1..64 of A-Z a-z 0-9 _ . -');
  const socketMode = int('socketMode', c.socketMode, 0o600, 0, 0o777);
  if ((socketMode & 0o007) !== 0) throw bad(`socketMode ${socketMode.toString(8)} lets every local user sign`, 'use 600 or 660 (with a dedicated group)');

  const { root, isAws } = resolveRoot(c.root);

  let manifest: ResolvedParentConfig['manifest'];
  if (c.manifest !== undefined) {
    if (!Array.isArray(c.manifest.trustedKeys) || c.manifest.trustedKeys.length === 0) {
      throw bad('manifest needs at least one trusted manifest key', 'pass --manifest-key pub.pem');
    }
    try {
      const v = verifySignedManifestDetailed(c.manifest.signed, c.manifest.trustedKeys, { allowDebug: c.allowDebug === true });
      manifest = { signed: c.manifest.signed, trustedKeys: c.manifest.trustedKeys, parsed: v.manifest, keyId: v.keyId };
    } catch (e) {
      throw bad(`manifest: ${(e as Error).message}`, isSignerError(e) ? e.hint : undefined, e);
    }
  } else if (c.allowAnyPcrs !== true) {
    throw bad('no PCR manifest configured', 'pass --manifest m.json --manifest-key pub.pem (or, for development only, --allow-any-pcrs)');
  }

  if (c.kmsKeyId !== undefined && (typeof c.kmsKeyId !== 'string' || c.kmsKeyId.length === 0 || c.kmsKeyId.length > 2048)) {
    throw bad('kmsKeyId must be a key id, ARN or alias of at most 2048 characters');
  }

  const minMs = int('reconnect.minMs', c.reconnect?.minMs, 250, 1, 600_000);
  const maxMs = int('reconnect.maxMs', c.reconnect?.maxMs, 30_000, minMs, 3_600_000);

  return {
    enclave: c.enclave,
    socket: c.socket,
    socketMode,
    http: c.http === undefined ? undefined : parseLoopbackHttp(c.http),
    keystore: c.keystore,
    instanceId,
    keystoreReadonly: c.keystoreReadonly === true,
    root,
    rootIsAws: isAws,
    manifest,
    allowAnyPcrs: manifest === undefined,
    expectedPcrs: resolvePcrs(c.expectedPcrs),
    allowDebug: c.allowDebug === true,
    kmsKeyId: c.kmsKeyId,
    credentials: createCredentialsProvider(c.credentials ?? { kind: 'none' }),
    reattestIntervalMs: int('reattestIntervalMs', c.reattestIntervalMs, 5 * 60_000, 100, 24 * 3_600_000),
    requestTimeoutMs: int('requestTimeoutMs', c.requestTimeoutMs, 30_000, 10, 600_000),
    maxBodyBytes: int('maxBodyBytes', c.maxBodyBytes, MiB, 1024, 64 * MiB),
    maxBatch: int('maxBatch', c.maxBatch, 100, 1, 10_000),
    maxInFlight: int('maxInFlight', c.maxInFlight, 256, 1, 100_000),
    reconnect: { minMs, maxMs },
    connectionLimits: resolveConnectionLimits(c.connectionLimits),
    chainId: c.chainId === undefined ? undefined : int('chainId', c.chainId, 0, 1, MAX_CHAIN_ID),
    downstream: c.downstream === undefined ? undefined : resolveDownstreamConfig(c.downstream),
    log: c.log ?? ((line: string) => void process.stderr.write(`[parent] ${line}\n`)),
  };
}

/** Each given limit must be a whole number in a sane range; absent ones take the server's defaults. */
function resolveConnectionLimits(l: Partial<ConnectionLimits> | undefined): Partial<ConnectionLimits> {
  const out: Partial<ConnectionLimits> = {};
  if (l === undefined) return out;
  const keys = Object.keys(DEFAULT_CONNECTION_LIMITS) as (keyof ConnectionLimits)[];
  for (const k of Object.keys(l)) {
    if (!keys.includes(k as keyof ConnectionLimits)) throw bad(`connectionLimits: unknown field ${JSON.stringify(k)}`);
  }
  for (const k of keys) {
    const v = l[k];
    if (v === undefined) continue;
    const min = k === 'maxConnections' ? 1 : 0;
    out[k] = int(`connectionLimits.${k}`, v, DEFAULT_CONNECTION_LIMITS[k], min, k === 'maxConnections' ? 1_000_000 : 24 * 3_600_000);
  }
  return out;
}
