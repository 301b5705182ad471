/**
 * The `enclave-signer dev` program: the whole appliance locally (dev stack
 * from dev/stack.ts plus the parent from parent/main.ts), started from one
 * typed config. cli/dev.ts owns the command line; this module never reads argv.
 */
import { join } from 'node:path';
import { SignerError } from '../common/errors.js';
import { redactUrl } from '../parent/keystore-pg.js';
import { startParent, type RunningParent } from '../parent/main.js';
import { startDevInstances, type ParentSupervisor } from './instances.js';
import { DEV_CREDENTIALS, devBanner, repoRoot, startDevInfra, type DevInfra } from './stack.js';

export interface DevApplianceConfig {
  /** State directory; default <repo>/.dev-data. A rerun over the same directory serves the same keys. */
  dataDir?: string;
  /** Signing socket; default <dataDir>/signer.sock. */
  socket?: string;
  /** Also serve JSON-RPC over loopback HTTP ("127.0.0.1:PORT"). */
  http?: string;
  /** The chain the signer serves (eth_chainId, net_version, the eth_signTransaction check); none by default. */
  chainId?: number;
  /** Proxy mode: the Ethereum node's JSON-RPC URL (parent/downstream-methods.ts). */
  downstream?: string;
  /** Signing operations the enclave refuses (shows a policy denial). */
  denyOps?: readonly string[];
  /** The enclave's policy file (absolute); absent: the permissive dev policy. */
  policy?: string;
  /** The keystore: default the data directory's SQLite file; `postgres://…` for a shared one. */
  keystore?: string;
  /**
   * Instances (docs/scale-out.md): each its own parent and enclave process, sharing the KMS
   * emulator, the dev CA and the keystore (which must then be PostgreSQL). Instance i's socket
   * is `<socket>.<i>`. Default 1 (the socket as given).
   */
  instances?: number;
  /**
   * The node binary the enclave process runs on; default this process's. The image ships the
   * pinned Node 22 of build/runtime, which `bench:e2e` uses for the enclave when it is installed.
   */
  enclaveNode?: string;
  /** A malloc library the enclave process preloads, as the image's env preloads tcmalloc (enclave/node-flags.ts). */
  enclaveAllocator?: string;
  /** The dev stack's own lines. */
  log: (line: string) => void;
  /** The parent's lines. */
  parentLog: (line: string) => void;
}

export interface RunningDevAppliance {
  /** The first (or only) instance's signing socket. */
  socketPath: string;
  /** Every instance's signing socket, instance i at [i - 1]. */
  sockets: string[];
  httpUrl: string | undefined;
  dataDir: string;
  enclavePid: number | undefined;
  enclavePids: (number | undefined)[];
  /** Each instance's parent process (this process with one instance). */
  parentPids: (number | undefined)[];
  /** The loud DEV MODE banner with the endpoints and PCRs. */
  banner: string;
  close(): Promise<void>;
}

function parentFor(infra: DevInfra, config: DevApplianceConfig): Promise<RunningParent> {
  return startParent({
    enclave: infra.enclave.uri,
    socket: config.socket ?? join(infra.paths.dataDir, 'signer.sock'),
    ...(config.http ? { http: config.http } : {}),
    keystore: config.keystore ?? infra.paths.keystore,
    root: infra.ca.trustRoot, // the dev CA, trusted here only because dev mode says so
    manifest: { signed: infra.manifest, trustedKeys: [infra.releasePublicPem] },
    kmsKeyId: infra.cmkArn,
    credentials: { kind: 'static', ...DEV_CREDENTIALS },
    log: config.parentLog,
    ...(config.chainId === undefined ? {} : { chainId: config.chainId }),
    ...(config.downstream === undefined ? {} : { downstream: config.downstream }),
  });
}

export async function startDevAppliance(config: DevApplianceConfig): Promise<RunningDevAppliance> {
  const dataDir = config.dataDir ?? join(repoRoot(), '.dev-data');
  const n = config.instances ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new SignerError('DEV_START_FAILED', `instances must be 1..16, got ${n}`);
  if (n > 1 && !/^postgres(ql)?:\/\//i.test(config.keystore ?? '')) {
    throw new SignerError('DEV_START_FAILED', 'several instances need a keystore they can share: --keystore postgres://…', { hint: 'docs/scale-out.md' });
  }
  const infra = await startDevInfra(dataDir, config.log, {
    denyOps: config.denyOps ?? [],
    ...(config.policy ? { policy: config.policy } : {}),
    ...(config.enclaveNode ? { enclaveNode: config.enclaveNode } : {}),
    ...(config.enclaveAllocator ? { enclaveAllocator: config.enclaveAllocator } : {}),
    instances: n,
  });
  if (n > 1 && config.http) throw new SignerError('DEV_START_FAILED', '--http is not served with several instances: use their sockets');
  if (n > 1) return startSeveral(infra, config, n);
  let parent: RunningParent;
  try {
    parent = await parentFor(infra, config);
  } catch (e) {
    await infra.close();
    throw e;
  }
  const banner = devBanner({
    socketPath: parent.socketPath,
    ...(config.keystore && /^postgres/i.test(config.keystore) ? { keystore: redactUrl(config.keystore) } : {}),
    ...(parent.httpUrl ? { httpUrl: parent.httpUrl } : {}),
    pcrs: infra.pcrs,
    dataDir: infra.paths.dataDir,
    kmsUrl: infra.kms.url,
    manifest: infra.paths.manifest,
    policy: config.policy ?? null,
  });
  return {
    socketPath: parent.socketPath,
    sockets: [parent.socketPath],
    httpUrl: parent.httpUrl,
    dataDir: infra.paths.dataDir,
    enclavePid: infra.enclave.pid,
    enclavePids: [infra.enclave.pid],
    parentPids: [process.pid],
    banner,
    async close() {
      await parent.close();
      await infra.close();
    },
  };
}

/** Several instances: each its own parent process and enclave process (dev/instances.ts). */
async function startSeveral(infra: DevInfra, config: DevApplianceConfig, n: number): Promise<RunningDevAppliance> {
  let parents: ParentSupervisor[];
  try {
    parents = await startDevInstances(infra, {
      instances: n,
      socket: config.socket ?? join(infra.paths.dataDir, 'signer.sock'),
      keystore: config.keystore!,
      parentLog: config.parentLog,
      ...(config.chainId === undefined ? {} : { chainId: config.chainId }),
      ...(config.downstream === undefined ? {} : { downstream: config.downstream }),
    });
  } catch (e) {
    await infra.close();
    throw e;
  }
  const sockets = parents.map((p) => p.socket);
  return {
    socketPath: sockets[0]!,
    sockets,
    httpUrl: undefined,
    dataDir: infra.paths.dataDir,
    enclavePid: infra.enclave.pid,
    enclavePids: infra.enclaves.map((e) => e.pid),
    parentPids: parents.map((p) => p.pid),
    banner: devBanner({
      socketPath: sockets[0]!,
      sockets,
      keystore: redactUrl(config.keystore!),
      pcrs: infra.pcrs,
      dataDir: infra.paths.dataDir,
      kmsUrl: infra.kms.url,
      manifest: infra.paths.manifest,
      policy: config.policy ?? null,
    }),
    async close() {
      for (const p of parents) await p.stop();
      await infra.close();
    },
  };
}
